"""Reading a page's form (its query string, or a posted form) into the same pydantic model
the JSON API takes, with a message per field written for the person at the form.

Every view keeps its state in its URL, so a form is a `GET` whose parameters are the
fields of one request model (`app.schemas`). `read` validates each field on its own (so
every field's problem shows at once, next to it), applies the server's caps from
`Settings`, then builds the model. The page shows `values`: what was typed where a field
is wrong, the parsed value (or the model's default) elsewhere.
"""

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app.errors import DomainError
from app.schemas.fields import json_text, split_lines, split_list

TRUE = {"1", "true", "on", "yes"}
FALSE = {"0", "false", "off", "no"}
_PREFIX = re.compile(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: ")
_OUTSIDE = re.compile(r"^(-?\d+) is outside \[0, (\d+)\) for SAE '(.+)'$")

M = TypeVar("M", bound=BaseModel)


def humanize(message: str, field_name: str | None = None) -> str:
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
    """The form field of an error location: ('steer', 'latent') -> 'latent',
    ('alphas', 0) -> 'alphas'."""
    parts = [p for p in loc if isinstance(p, str) and p not in ("body", "request", "steer")]
    return parts[0] if parts else "form"


# --------------------------------------------------------------------------- field types
def _bare(annotation: Any) -> Any:
    """The type inside `X | None` and `Annotated[X, ...]`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and get_origin(annotation) is not list:  # a union: the non-None part
        return _bare(args[0]) if len(args) == 1 else annotation
    return annotation


def _is_list(info: FieldInfo) -> bool:
    return get_origin(_bare(info.annotation)) is list


def _is_bool(info: FieldInfo) -> bool:
    return _bare(info.annotation) is bool


def _metadata(annotation: Any) -> list[Any]:
    """Metadata of every `Annotated` inside a type (e.g. inside `X | None`)."""
    out = []
    if get_origin(annotation) is Annotated:
        out.extend(annotation.__metadata__)
    for arg in get_args(annotation):
        out.extend(_metadata(arg))
    return out


def _splitter(info: FieldInfo):
    for meta in [*info.metadata, *_metadata(info.annotation)]:
        fn = getattr(meta, "func", None)
        if fn in (split_list, split_lines, json_text):
            return fn
    return None


def _plain(value: Any) -> Any:
    """Parsed models inside a structured value as the plain JSON data they were read from."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for meta in info.metadata:
        lo = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else lo
        lo = getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else lo
        hi = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else hi
        hi = getattr(meta, "lt", None) if getattr(meta, "lt", None) is not None else hi
    return lo, hi


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(Annotated[info.annotation, *info.metadata])


def range_message(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"Must be between {lo:g} and {hi:g}."
    if lo is not None:
        return f"Must be at least {lo:g}."
    return f"Must be at most {hi:g}."


def friendly(error: dict[str, Any], info: FieldInfo | None, cap: float | None = None) -> str:
    """A pydantic error as the person at the form should read it."""
    kind = error.get("type", "")
    typed = str(error.get("input", ""))[:40]
    item = any(isinstance(p, int) for p in error.get("loc", ()))  # one value of a list
    lo, hi = _bounds(info) if info is not None else (None, None)
    hi = cap if cap is not None else hi
    if kind == "int_parsing" or kind == "int_from_float":
        return f"Enter a whole number (got '{typed}')."
    if kind == "float_parsing":
        return (
            f"'{typed[:20]}' is not a number; separate values with commas."
            if item
            else f"Enter a number (got '{typed}')."
        )
    if kind == "finite_number":
        return f"'{typed[:20]}' is not a finite number." if item else "Enter a finite number."
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return range_message(lo, hi)
    if kind == "literal_error":
        return f"Choose one of {error.get('ctx', {}).get('expected', '').replace(chr(39), '')}."
    if kind == "string_too_long":
        return f"At most {error.get('ctx', {}).get('max_length', 0):,} characters."
    if kind == "bool_parsing":
        return "Must be on or off."
    if kind in ("missing", "too_short") and not item:
        return "This field is required."
    return humanize(str(error.get("msg", "invalid value")).removeprefix("Value error, "))


def display(info: FieldInfo, value: Any) -> Any:
    """A parsed value as its input shows it: number lists as '0, 4, 8', line lists one per
    line, a structured field (a conversation, edits) as the JSON text it is typed and linked
    as; everything else as it is."""
    split = _splitter(info)
    if split is split_list and isinstance(value, list):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if split is split_lines and isinstance(value, list):
        return "\n".join(value)
    if split is json_text and isinstance(value, list | dict):
        return json.dumps(_plain(value), ensure_ascii=False)
    return "" if value is None else value


# ---------------------------------------------------------------------------------- reading
@dataclass
class FormInput(Generic[M]):
    """A form read into `model`: the values to show, a message per wrong field, and the
    validated request when every field is right."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    submitted: bool = False
    body: M | None = None

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)
        self.body = None

    def fail_from(self, exc: Exception, default_field: str = "form") -> None:
        """Record a DomainError or a pydantic ValidationError against its field."""
        if isinstance(exc, DomainError):
            name = (exc.field or default_field).removeprefix("request.").split(".")[-1]
            name = re.sub(r"\[\d+\]$", "", name)
            self.fail(name, humanize(exc.message, exc.field))
        elif isinstance(exc, ValidationError):
            for err in exc.errors():
                self.fail(field_of(err.get("loc", ())), friendly(dict(err), None))
        else:  # pragma: no cover - programming error
            raise exc


def submitted(params: Mapping[str, Any]) -> bool:
    """The form was sent (its hidden `run` field), not just linked to with a few values."""
    return str(params.get("run", "")).strip().lower() in TRUE


def read(
    model: type[M],
    params,
    *,
    defaults: Mapping[str, Any] | None = None,
    caps: Mapping[str, float] | None = None,
    errors: Mapping[str, str] | None = None,
    checkboxes: Iterable[str] | None = None,
) -> FormInput[M]:
    """Read `params` (a query string or a posted form) into `model`.

    `defaults` fill fields the form does not name at all (the page's own, e.g. the hosted
    model); a field sent blank takes the model's default. `caps` are upper bounds from
    settings. An unchecked checkbox of a submitted form is False (absent from a link, it
    keeps its default); `checkboxes` names the boolean fields the page shows as checkboxes
    (default: all). `errors` are the page's own findings, shown before the model's."""
    sent = submitted(params)
    defaults = defaults or {}
    caps = caps or {}
    form: FormInput[M] = FormInput(values={}, errors=dict(errors or {}), submitted=sent)
    parsed: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if _is_list(info):
            raw: Any = [v for v in params.getlist(name) if str(v).strip()] or None
            if raw is not None and len(raw) == 1 and _splitter(info) is not None:
                raw = raw[0]  # one text input that holds the list ('0, 4, 8', lines)
        else:
            raw = params.get(name)
            if raw is not None and not str(raw).strip() and not _is_bool(info):
                raw = None
        if _is_bool(info) and raw is None and sent and (checkboxes is None or name in checkboxes):
            raw = False
        if raw is None and name in defaults and name not in params:
            raw = defaults[name]
        if raw is None:
            if info.default is PydanticUndefined and info.default_factory is None:
                form.values[name] = ""
                continue  # left to the model: "required"
            parsed[name] = info.get_default(call_default_factory=True)
            form.values[name] = display(info, parsed[name])
            continue
        if _is_bool(info) and isinstance(raw, str):
            text = raw.strip().lower()
            raw = True if text in TRUE else False if text in FALSE else raw
        try:
            value = _adapter(model, name).validate_python(raw)
        except ValidationError as exc:
            form.fail(name, friendly(dict(exc.errors()[0]), info, caps.get(name)))
            form.values[name] = raw if not isinstance(raw, list) or len(raw) > 1 else raw[0]
            continue
        if name in caps and isinstance(value, int | float) and value > caps[name]:
            form.fail(name, range_message(_bounds(info)[0], caps[name]))
        if isinstance(value, float) and not math.isfinite(value):
            form.fail(name, "Enter a finite number.")
        parsed[name] = value
        form.values[name] = display(info, value)
    if not form.errors:
        try:
            form.body = model.model_validate(parsed)
        except ValidationError as exc:
            for err in exc.errors():
                name = field_of(err.get("loc", ()))
                form.fail(name, friendly(dict(err), model.model_fields.get(name)))
    return form
