"""The FastAPI application: `uvicorn app.main:app`, or `python -m app serve`."""

import logging
from contextlib import asynccontextmanager

import transformers
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.gzip import GZipMiddleware

from app import __version__
from app.api import errors
from app.api.limits import BodySizeLimit, NoNulInUrl, ServerErrors
from app.api.main import api_router
from app.db import migrate
from app.db.session import Database, redact
from app.engine.engine import Engine
from app.engine.registry import Registry
from app.services import Context
from app.settings import Settings, get_settings
from app.web import api_docs
from app.web import main as web
from app.web.security import SecurityHeaders

log = logging.getLogger(__name__)


def open_database(settings: Settings) -> Database:
    """Migrate the database to head (unless turned off) and open it. Fails start-up with
    the reason when the database cannot be reached."""
    url = settings.resolved_database_url
    try:
        if settings.migrate_on_start:
            migrate.upgrade(url)
        db = Database(url)
    except SQLAlchemyError as exc:
        raise RuntimeError(f"database {redact(url)} is not usable: {exc}") from exc
    log.info("database %s ready", redact(url))
    return db


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        transformers.utils.logging.disable_progress_bar()
        db = await run_in_threadpool(open_database, settings)
        app.state.db = db
        app.state.db_ready = db.ping
        # Only an engine made here is shut down here: one passed in belongs to the caller.
        owns_engine = app.state.engine is None
        try:
            if owns_engine:
                registry = Registry.from_file(
                    settings.models_config, device=settings.device, dtype=settings.dtype
                )
                app.state.engine = Engine(registry, settings)
            app.state.services = Context(app.state.engine, db, app_settings=settings)
            yield
        finally:
            if owns_engine and app.state.engine is not None:
                app.state.engine.worker.shutdown()
            db.dispose()

    app = FastAPI(
        title="PersonaScope",
        version=__version__,
        summary="Inspect and steer villain-persona SAE latents in base and fine-tuned models.",
        lifespan=lifespan,
        docs_url=None,  # served from vendored files by app.web.api_docs (offline)
        redoc_url=None,  # ReDoc's bundle loads its logo from a CDN
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.db = None
    app.state.services = None
    errors.install(app)
    app.include_router(api_router)
    app.include_router(api_docs.router)
    web.install(app)  # pages, static files, HTML error pages, HEAD for pages
    # Middleware, innermost first: every response, 413 and 500 included, leaves through
    # the security headers.
    app.add_middleware(ServerErrors)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Pages, JSON and static files compressed (never server-sent events: they stream).
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=6)
    app.add_middleware(SecurityHeaders)
    return app


app = create_app()
