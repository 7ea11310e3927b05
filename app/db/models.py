"""Tables: saved runs, comparisons (ordered collections of runs), latent annotations,
pinned latents and residual-stream directions. The schema is created and changed only by
`migrations/` (Alembic)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.schemas.fields import LABEL_LENGTH, TITLE_LENGTH

ID_LENGTH = 32  # ids are 22 URL-safe characters (128 random bits); room to grow
SAE_ID_LENGTH = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


class Run(Base):
    """One computation, stored as the server computed it. Never updated, only deleted."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    # Plain JSON (not JSONB): Postgres keeps the text as written, key order included.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    result_sha256: Mapped[str] = mapped_column(String(64))
    unlisted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Only a hash: a database dump does not hand out the right to delete.
    delete_token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class Comparison(Base):
    """A named, ordered collection of runs shared as one link. Immutable like a run."""

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    unlisted: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    items: Mapped[list["ComparisonRun"]] = relationship(
        order_by="ComparisonRun.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class ComparisonRun(Base):
    """Position `position` of a comparison is run `run_id`. A run that belongs to a
    comparison cannot be deleted (RESTRICT): the comparison's link must keep working."""

    __tablename__ = "comparison_runs"

    comparison_id: Mapped[str] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"), index=True)

    run: Mapped[Run] = relationship()


class LatentAnnotation(Base):
    """A team's label and notes on one latent of one SAE (e.g. "villain persona")."""

    __tablename__ = "latent_annotations"

    sae_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH), primary_key=True)
    latent: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LatentPin(Base):
    """A latent pinned on an SAE (shown first in the UI), beside the config's default pins."""

    __tablename__ = "latent_pins"

    sae_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH), primary_key=True)
    latent: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Direction(Base):
    """A vector in one hook's space (d_model), with how it was made. Immutable; deleted only
    with its delete token."""

    __tablename__ = "directions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    method: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(SAE_ID_LENGTH))
    hook: Mapped[str] = mapped_column(String(SAE_ID_LENGTH))
    d_model: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    norm: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    unlisted: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
