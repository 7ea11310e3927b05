"""Database engines and sessions for SQLite (default: a file under the data directory) and
Postgres (`DATABASE_URL`, psycopg 3).

SQLite runs in WAL mode with a busy timeout, so readers never block the writer and
concurrent writers wait their turn instead of failing; foreign keys are enforced.
"""

import logging
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import ConfigError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for the write lock
CONNECT_TIMEOUT_S = 5  # Postgres: fail /readyz quickly when the server is unreachable


def normalise_url(url: str) -> str:
    """`postgres://` and `postgresql://` (what most hosts hand out) mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def backend(url: str) -> str:
    return make_url(normalise_url(url)).get_backend_name()


def redact(url: str) -> str:
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn, _record, *, foreign_keys: bool) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    finally:
        cursor.close()


def make_engine(url: str, *, foreign_keys: bool = True, **kwargs) -> Engine:
    """An engine for `url`. `foreign_keys=False` is for SQLite migrations only: a batch
    migration copies and drops tables, which must not cascade deletes."""
    parsed = make_url(normalise_url(url))
    name = parsed.get_backend_name()
    if name == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, foreign_keys=foreign_keys))
        return engine
    if name == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ConfigError(
                f"database URL {redact(url)}: use the psycopg 3 driver (postgresql+psycopg://)"
            )
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            **kwargs,
        )
    raise ConfigError(
        f"database URL {redact(url)}: unsupported database {name!r}; "
        "use sqlite:///path or postgresql+psycopg://user:password@host/db"
    )


class Database:
    """One engine and its session factory, created once per app."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.backend = backend(self.url)
        self.engine = make_engine(self.url)
        # Objects stay readable after commit: routes shape responses after the transaction.
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessionmaker()

    def ping(self) -> bool:
        """True when the database answers `SELECT 1` (for /readyz)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("database is not reachable: %s", exc)
            return False

    def dispose(self) -> None:
        self.engine.dispose()
