"""The FastAPI application: `uvicorn app.main:app`, or `python -m app serve`."""

import logging
from contextlib import asynccontextmanager

import transformers
from fastapi import FastAPI

from app import __version__
from app.api import errors
from app.api.limits import BodySizeLimit
from app.api.main import api_router
from app.engine.engine import Engine
from app.engine.registry import Registry
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        transformers.utils.logging.disable_progress_bar()
        if app.state.engine is None:
            registry = Registry.from_file(
                settings.models_config, device=settings.device, dtype=settings.dtype
            )
            app.state.engine = Engine(registry, settings)
        yield
        app.state.engine.worker.shutdown()

    app = FastAPI(
        title="PersonaScope",
        version=__version__,
        summary="Inspect and steer villain-persona SAE latents in base and fine-tuned models.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    errors.install(app)
    app.include_router(api_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


app = create_app()
