"""The browser UI: every HTML router, the static files, HEAD for pages, and error pages in
HTML for the pages (the JSON API keeps its JSON errors). The security headers are added by
`app.main`, outside every other middleware."""

from fastapi import APIRouter, FastAPI

from app.web import diff, directions, evaluate, home, inspector, latents, shared, steer, vendor
from app.web.errors import install_error_pages
from app.web.head import HeadAsGet

web_router = APIRouter(include_in_schema=False)
for module in (home, latents, inspector, steer, diff, evaluate, directions, shared):
    web_router.include_router(module.router)


def install(app: FastAPI) -> None:
    vendor.mount(app)
    app.include_router(web_router)
    install_error_pages(app)
    app.add_middleware(HeadAsGet)
