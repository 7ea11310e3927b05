"""Alembic environment: the metadata comes from `app.db` (every model module it imports),
the URL from the app's settings unless the caller passes one.

The whole upgrade runs in one transaction. On Postgres it first takes an advisory lock, so
app replicas that start together migrate one at a time: the first applies the revisions,
the others wait, then find the schema at head and do nothing. On SQLite the transaction
begins IMMEDIATE (the database's write lock) for the same effect, and DDL is transactional,
so a killed migration leaves the previous revision intact.
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import event, pool, text

import app.db  # noqa: F401  (registers every table on Base.metadata)
from app.db.base import Base
from app.db.migrate import MIGRATION_LOCK_KEY
from app.db.session import backend, make_engine, normalise_url
from app.settings import get_settings

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or get_settings().resolved_database_url
    )
    return normalise_url(url)


def options(dialect_name: str) -> dict:
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        "render_as_batch": dialect_name == "sqlite",
    }


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(
        url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options(backend(url))
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_transactional_ddl(engine) -> None:
    # pysqlite commits DDL on its own; hand transaction control to SQLAlchemy instead.
    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def run_migrations_online() -> None:
    url = database_url()
    engine = make_engine(url, foreign_keys=False, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        _sqlite_transactional_ddl(engine)
    try:
        with engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            context.configure(connection=connection, **options(connection.dialect.name))
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
