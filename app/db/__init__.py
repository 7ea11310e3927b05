"""The database layer: SQLAlchemy models, sessions and queries. The schema belongs to
`migrations/` (Alembic). Importing this package registers every table on `Base.metadata`,
which is what `migrations/env.py` and the drift test compare against: a new model module
must be imported here."""

from app.db import index_models, models  # noqa: F401  (registers the tables)
from app.db.base import Base

__all__ = ["Base"]
