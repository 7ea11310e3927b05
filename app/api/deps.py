"""Typed dependencies: route signatures read like sentences."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db.session import Database
from app.engine.engine import Engine
from app.errors import Unavailable
from app.settings import Settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    db = getattr(request.app.state, "db", None)
    if db is None:
        raise Unavailable("the database is not ready yet")
    return db


def get_base_url(request: Request) -> str:
    """Where share links point: the configured public URL, else the URL of this request."""
    settings: Settings = request.app.state.settings
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


def get_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.session() as session:
        yield session


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
