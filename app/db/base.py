"""The declarative base every table derives from. Its metadata is what Alembic compares
the migrations against (`tests/db/test_migrations.py` fails on any drift)."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints: SQLite batch migrations (copy-and-move) and downgrades can only drop
# a constraint by name, and both databases then agree on every name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
