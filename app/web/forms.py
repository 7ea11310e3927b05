"""Reading the pages' forms (query parameters) into the API's request bodies.

Every view keeps its state in its URL, so a form is a `GET` and these functions turn its
query parameters into the same pydantic requests the JSON API takes, collecting an error
message per field. Messages are written for the person at the form: the field is named by
where the message is shown, so it is not repeated in the text.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import ImmutableMultiDict

from app.errors import DomainError

TRUE = {"1", "true", "on", "yes"}
FALSE = {"0", "false", "off", "no"}
_SPLIT = re.compile(r"[,;\s]+")
_PREFIX = re.compile(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ")
_OUTSIDE = re.compile(r"^(-?\d+) is outside \[0, (\d+)\) for SAE '(.+)'$")


def humanize(message: str, field_name: str | None) -> str:
    """An engine or API message without its `field:` prefix, in plainer words where a
    common one has a plainer form."""
    del field_name  # the prefix names it, whatever it is
    message = _PREFIX.sub("", message, count=1)
    outside = _OUTSIDE.match(message)
    if outside:
        value, size, sae = outside.groups()
        return f"There is no latent {value}: SAE '{sae}' has latents 0 to {int(size) - 1}."
    if message.startswith("Input should be "):
        message = "Must be " + message.removeprefix("Input should be ")
    return message[:1].upper() + message[1:]


def field_of(loc: Iterable[Any]) -> str:
    """The form field of a pydantic error location: ('steer', 'latent') -> 'latent',
    ('alphas', 0) -> 'alphas'."""
    parts = [p for p in loc if isinstance(p, str) and p not in ("body", "request", "steer")]
    return parts[0] if parts else "form"


@dataclass
class Form:
    """Typed reads of query parameters; each failed read leaves a message in `errors`."""

    params: ImmutableMultiDict
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def submitted(self) -> bool:
        """The form was sent (its hidden `run` field), not just linked to with a few values."""
        return self.params.get("run") in TRUE

    def has(self, name: str) -> bool:
        return name in self.params

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def fail_from(self, exc: Exception, default_field: str = "form") -> None:
        """Record a DomainError or a pydantic ValidationError against its field."""
        if isinstance(exc, DomainError):
            name = (exc.field or default_field).removeprefix("request.").split(".")[-1]
            name = re.sub(r"\[\d+\]$", "", name)
            self.fail(name, humanize(exc.message, exc.field))
        elif isinstance(exc, ValidationError):
            for err in exc.errors():
                name = field_of(err.get("loc", ()))
                self.fail(name, humanize(str(err.get("msg", "invalid value")), None))
        else:  # pragma: no cover - programming error
            raise exc

    def text(self, name: str, default: str = "", max_length: int = 100_000) -> str:
        value = self.params.get(name)
        if value is None:
            return default
        if len(value) > max_length:
            self.fail(name, f"Too long: at most {max_length:,} characters.")
        return value

    def texts(self, name: str) -> list[str]:
        return [v for v in self.params.getlist(name) if v.strip()]

    def lines(self, name: str) -> list[str]:
        """Non-empty lines of a textarea."""
        return [line.strip() for line in self.text(name).splitlines() if line.strip()]

    def integer(
        self, name: str, default: int | None, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        raw = (self.params.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.fail(name, f"Enter a whole number (got '{raw[:40]}').")
            return default
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(name, _range_message(lo, hi))
            return default
        return value

    def number(
        self, name: str, default: float | None, lo: float | None = None, hi: float | None = None
    ) -> float | None:
        raw = (self.params.get(name) or "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.fail(name, f"Enter a number (got '{raw[:40]}').")
            return default
        if not math.isfinite(value):
            self.fail(name, "Enter a finite number.")
            return default
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(name, _range_message(lo, hi))
            return default
        return value

    def numbers(self, name: str, default: list[float]) -> tuple[str, list[float]]:
        """A list like '0, 4, 8' (commas, semicolons or spaces); returns (text, values)."""
        raw = self.params.get(name)
        if raw is None:
            return ", ".join(f"{a:g}" for a in default), list(default)
        values = []
        for part in _SPLIT.split(raw.strip()):
            if not part:
                continue
            try:
                value = float(part)
            except ValueError:
                self.fail(name, f"'{part[:20]}' is not a number; separate values with commas.")
                return raw, []
            if not math.isfinite(value):
                self.fail(name, f"'{part[:20]}' is not a finite number.")
                return raw, []
            values.append(value)
        return raw, values

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        options = list(choices)
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if value not in options:
            self.fail(name, f"Choose one of {', '.join(options)}.")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        """A checkbox: absent from a submitted form means unchecked; absent from a link
        means the default."""
        value = self.params.get(name)
        if value is None:
            return False if self.submitted else default
        value = value.strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        self.fail(name, "Must be on or off.")
        return default


def _range_message(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"Must be between {lo:g} and {hi:g}."
    if lo is not None:
        return f"Must be at least {lo:g}."
    return f"Must be at most {hi:g}."


Schema = TypeVar("Schema", bound=BaseModel)


def build(schema: type[Schema], form: Form, **values: Any) -> Schema | None:
    """The API request from parsed values; pydantic's errors go to their fields."""
    try:
        return schema(**values)
    except ValidationError as exc:
        form.fail_from(exc)
        return None
