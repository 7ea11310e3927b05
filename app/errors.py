"""Domain errors. The engine raises these; `app.api.errors` maps them to HTTP responses."""


class DomainError(Exception):
    """Base class: a request the engine cannot serve, with a message a user can act on."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404


class InvalidRequest(DomainError):
    status_code = 422


class Busy(DomainError):
    """The device queue is full; the client should retry later."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequests(Busy):
    """This client asked for this too often; it may again after `retry_after` seconds."""

    status_code = 429


class ConfigError(Exception):
    """A model config, model or SAE that cannot be loaded. Raised at start-up, never per request."""


def choices(values) -> str:
    """Format valid choices for an error message: 'a', 'b', 'c'."""
    values = list(values)
    return ", ".join(repr(v) for v in values) if values else "(none)"


class Unauthorized(DomainError):
    """A credential (e.g. a delete token) is required and was not sent."""

    status_code = 401


class Forbidden(DomainError):
    """A credential was sent and is wrong."""

    status_code = 403


class Conflict(DomainError):
    """The request is valid but the stored state forbids it (e.g. deleting a run that a
    comparison still shows)."""

    status_code = 409


class Unavailable(DomainError):
    """A service the request needs (e.g. the database) is not reachable right now."""

    status_code = 503


_UNION_TAGS = {"str", "int", "float", "bool"}


def _is_union_tag(part) -> bool:
    """pydantic names the member of a union in an error's location (`model.list[str]`)."""
    return isinstance(part, str) and (part in _UNION_TAGS or "[" in part)


def _loc(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path") and not _is_union_tag(p)]
    return ".".join(parts)


def validation_message(errors: list) -> tuple[str, str | None]:
    """(message, field) for pydantic's error list: the first error, its field named as the
    client sent it (`request.latent`, `alphas.0`). Of a union's members (a model id or a
    list of them), the one of the input's own type speaks."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") in ("string_type", "list_type") and any(
        _is_union_tag(p) for p in first.get("loc", ())
    ):
        first = next(
            (e for e in errors[1:] if e.get("type") not in ("string_type", "list_type")), first
        )
    field = _loc(first.get("loc", ())) or None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON: {first.get('ctx', {}).get('error', msg)}", None
    if first.get("type") == "missing":
        return (
            f"{field}: this field is required" if field else "a request body is required"
        ), field
    return (f"{field}: {msg}" if field else msg), field
