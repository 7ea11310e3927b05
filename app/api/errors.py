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

from app.errors import Busy, DomainError, validation_message

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
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
