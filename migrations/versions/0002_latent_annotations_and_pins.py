"""Latent annotations (label, note) and pinned latents per SAE; runs indexed by kind for
the filtered listing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "latent_annotations",
        sa.Column("sae_id", sa.String(length=200), nullable=False),
        sa.Column("latent", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sae_id", "latent", name=op.f("pk_latent_annotations")),
    )
    op.create_table(
        "latent_pins",
        sa.Column("sae_id", sa.String(length=200), nullable=False),
        sa.Column("latent", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sae_id", "latent", name=op.f("pk_latent_pins")),
    )
    op.create_index(op.f("ix_runs_kind"), "runs", ["kind"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_kind"), table_name="runs")
    op.drop_table("latent_pins")
    op.drop_table("latent_annotations")
