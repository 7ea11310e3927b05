"""Maps domain errors and validation errors to HTTP responses, in one place.

Every error body is `{"detail": <message a user can act on>, "field": <field or null>}`;
validation errors also list pydantic's `errors`. Nothing leaks a traceback.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import Busy, DomainError

log = logging.getLogger(__name__)


def _loc(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts)


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
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


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return JSONResponse(
            {"detail": exc.message, "field": exc.field}, exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        message, field = validation_message(exc)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": message, "field": field, "errors": errors}, 422)

    @app.exception_handler(ValidationError)
    async def invalid_model(request: Request, exc: ValidationError):
        # A body built inside a route (e.g. from query parameters) failed validation.
        return await invalid(request, RequestValidationError(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse(
            {"detail": exc.detail, "field": None},
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError):
        # Connection refused, server gone, lock wait exhausted: transient, not a bug.
        log.warning("database error: %s", exc)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly", "field": None},
            503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}", "field": None}, 500)
