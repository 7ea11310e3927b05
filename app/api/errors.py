"""Maps domain errors and validation errors to HTTP responses, in one place.

Every error body is `{"detail": <message a user can act on>, "field": <field or null>}`;
validation errors also list pydantic's `errors`. Nothing leaks a traceback.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import Busy, DomainError, validation_message

log = logging.getLogger(__name__)


def _routes(routes):
    """Every route, inside included routers too (this app includes them without prefixes)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _routes(inner.routes) if inner is not None else (route,)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers at this path."""
    scope = {**request.scope, "method": "OPTIONS"}
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError):
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        )  # and 429
        return JSONResponse(
            {"detail": exc.message, "field": exc.field}, exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        message, field = validation_message(exc.errors())
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
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse({"detail": exc.detail, "field": None}, exc.status_code, headers=headers)

    @app.exception_handler(DataError)
    async def out_of_range(_request: Request, exc: DataError):
        # A value the database cannot hold that validation let through: the client's input.
        log.warning("database refused a value: %s", exc)
        return JSONResponse(
            {"detail": "a value is out of range for the database", "field": None}, 422
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
