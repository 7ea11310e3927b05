"""Tables of latent dashboards: one index per (model, SAE, dataset), its per-latent
statistics, top snippets, and the token contexts those snippets point into.

Index builds run as CLI jobs (possibly on a GPU machine) and write here; every app replica
reads the latent pages from these tables.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.models import SAE_ID_LENGTH, utcnow


class LatentIndex(Base):
    """One dashboard index. A rebuild replaces the previous index of the same triple."""

    __tablename__ = "latent_indexes"
    __table_args__ = (UniqueConstraint("model_id", "sae_id", "dataset_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH))
    sae_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH), index=True)
    dataset_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH))
    model_fingerprint: Mapped[str] = mapped_column(String(200))
    sae_fingerprint: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_contexts: Mapped[int] = mapped_column(Integer)
    n_tokens: Mapped[int] = mapped_column(Integer)
    d_sae: Mapped[int] = mapped_column(Integer)
    build_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexContext(Base):
    """A token context (one dataset row) that some snippet or interval example shows."""

    __tablename__ = "index_contexts"

    index_id: Mapped[str] = mapped_column(
        ForeignKey("latent_indexes.id", ondelete="CASCADE"), primary_key=True
    )
    context: Mapped[int] = mapped_column(Integer, primary_key=True)
    tokens: Mapped[list[str]] = mapped_column(JSON)  # each token decoded on its own
    token_ids: Mapped[list[int]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(400))


class LatentStats(Base):
    __tablename__ = "latent_stats"
    __table_args__ = (
        Index("ix_latent_stats_density", "index_id", "density"),
        Index("ix_latent_stats_max", "index_id", "max_activation"),
    )

    index_id: Mapped[str] = mapped_column(
        ForeignKey("latent_indexes.id", ondelete="CASCADE"), primary_key=True
    )
    latent: Mapped[int] = mapped_column(Integer, primary_key=True)
    density: Mapped[float] = mapped_column(Float)
    n_active: Mapped[int] = mapped_column(Integer)
    max_activation: Mapped[float] = mapped_column(Float)
    mean_activation: Mapped[float] = mapped_column(Float)
    mean_active: Mapped[float] = mapped_column(Float)
    histogram: Mapped[dict[str, Any]] = mapped_column(JSON)
    bins: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    logits: Mapped[dict[str, Any]] = mapped_column(JSON)
    neighbors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    top_tokens: Mapped[str] = mapped_column(Text)  # promoted tokens, for text search


class LatentSnippet(Base):
    """The latent's rank-th top context and its value on every token (float32 bytes)."""

    __tablename__ = "latent_snippets"

    index_id: Mapped[str] = mapped_column(
        ForeignKey("latent_indexes.id", ondelete="CASCADE"), primary_key=True
    )
    latent: Mapped[int] = mapped_column(Integer, primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    context: Mapped[int] = mapped_column(Integer)
    max_value: Mapped[float] = mapped_column(Float)
    values: Mapped[bytes] = mapped_column(LargeBinary)
