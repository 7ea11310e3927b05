"""Typed dependencies for the JSON and HTML routers (both call services; neither imports
the other): route signatures read like sentences."""

from typing import Annotated

from fastapi import Depends, Request

from app.errors import Unavailable
from app.services.context import Context


def get_context(request: Request) -> Context:
    ctx = getattr(request.app.state, "services", None)
    if ctx is None:
        raise Unavailable("the server is still starting; retry shortly")
    return ctx


def get_base_url(request: Request) -> str:
    """Where share links point: the configured public URL, else the URL of this request."""
    settings = request.app.state.settings
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


def get_client(request: Request) -> str:
    """Who is asking, for per-client limits: the peer address (behind a proxy, uvicorn's
    --proxy-headers makes it the forwarded client)."""
    return request.client.host if request.client else "unknown"


ContextDep = Annotated[Context, Depends(get_context)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
ClientDep = Annotated[str, Depends(get_client)]
