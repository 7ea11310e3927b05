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


def _loc(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts)


def validation_message(errors: list) -> tuple[str, str | None]:
    """(message, field) for pydantic's error list: the first error, its field named as the
    client sent it (`request.latent`, `alphas.0`)."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    field = _loc(first.get("loc", ())) or None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON: {first.get('ctx', {}).get('error', msg)}", None
    if first.get("type") == "missing":
        return f"{field}: this field is required", field
    return (f"{field}: {msg}" if field else msg), field
