"""Error pages in HTML for the pages; the JSON API keeps its JSON errors (the handlers
`app.main` installs first, which these wrap)."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError, validation_message
from app.web.forms import humanize
from app.web.templating import render

log = logging.getLogger(__name__)

NOT_PAGES = ("/api/", "/static/", "/openapi.json", "/docs", "/redoc", "/healthz", "/readyz")
TITLES = {
    400: "Bad request",
    401: "Not allowed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid request",
    503: "Busy",
}


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES)


def error_page(request: Request, status: int, message: str):
    return render(
        request,
        "error.html",
        {"title": TITLES.get(status, "Error"), "message": message, "links": []},
        status_code=status,
    )


def _message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, DomainError):
        return exc.status_code, humanize(exc.message, None)
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = exc.errors()
        message, _field = validation_message(errors)
        return 422, humanize(message, None)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return 404, "There is no page at this address."
        return exc.status_code, str(exc.detail)
    if isinstance(exc, OperationalError):
        return 503, "The database is unavailable; try again shortly."
    return 500, "Something went wrong on the server; the error is logged."


def install_error_pages(app: FastAPI) -> None:
    """Wrap the JSON error handlers already installed so a page answers with an HTML page."""
    for cls in (
        DomainError,
        RequestValidationError,
        ValidationError,
        StarletteHTTPException,
        OperationalError,
        Exception,
    ):
        json_handler = app.exception_handlers.get(cls)
        if json_handler is None:
            continue

        async def handler(request: Request, exc: Exception, json_handler=json_handler):
            if not is_page(request):
                return await json_handler(request, exc)
            status, message = _message(exc)
            if status >= 500:
                log.error("error on %s", request.url.path, exc_info=exc)
            return error_page(request, status, message)

        app.add_exception_handler(cls, handler)
