"""Latent dashboards: one index per (model, SAE, dataset), per-latent statistics, top
snippets and the token contexts they show.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _index_fk() -> list:
    return [sa.Column("index_id", sa.String(length=32), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "latent_indexes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("sae_id", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.String(length=200), nullable=False),
        sa.Column("model_fingerprint", sa.String(length=200), nullable=False),
        sa.Column("sae_fingerprint", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("n_contexts", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("d_sae", sa.Integer(), nullable=False),
        sa.Column("build_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_latent_indexes")),
        sa.UniqueConstraint("model_id", "sae_id", "dataset_id",
                            name=op.f("uq_latent_indexes_model_id")),
    )
    op.create_index(op.f("ix_latent_indexes_sae_id"), "latent_indexes", ["sae_id"])
    op.create_table(
        "index_contexts",
        *_index_fk(),
        sa.Column("context", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=False),
        sa.Column("token_ids", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["latent_indexes.id"], ondelete="CASCADE",
                                name=op.f("fk_index_contexts_index_id_latent_indexes")),
        sa.PrimaryKeyConstraint("index_id", "context", name=op.f("pk_index_contexts")),
    )
    op.create_table(
        "latent_snippets",
        *_index_fk(),
        sa.Column("latent", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("context", sa.Integer(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["latent_indexes.id"], ondelete="CASCADE",
                                name=op.f("fk_latent_snippets_index_id_latent_indexes")),
        sa.PrimaryKeyConstraint("index_id", "latent", "rank", name=op.f("pk_latent_snippets")),
    )
    op.create_table(
        "latent_stats",
        *_index_fk(),
        sa.Column("latent", sa.Integer(), nullable=False),
        sa.Column("density", sa.Float(), nullable=False),
        sa.Column("n_active", sa.Integer(), nullable=False),
        sa.Column("max_activation", sa.Float(), nullable=False),
        sa.Column("mean_activation", sa.Float(), nullable=False),
        sa.Column("mean_active", sa.Float(), nullable=False),
        sa.Column("histogram", sa.JSON(), nullable=False),
        sa.Column("bins", sa.JSON(), nullable=False),
        sa.Column("logits", sa.JSON(), nullable=False),
        sa.Column("neighbors", sa.JSON(), nullable=False),
        sa.Column("top_tokens", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["index_id"], ["latent_indexes.id"], ondelete="CASCADE",
                                name=op.f("fk_latent_stats_index_id_latent_indexes")),
        sa.PrimaryKeyConstraint("index_id", "latent", name=op.f("pk_latent_stats")),
    )
    op.create_index("ix_latent_stats_density", "latent_stats", ["index_id", "density"])
    op.create_index("ix_latent_stats_max", "latent_stats", ["index_id", "max_activation"])


def downgrade() -> None:
    op.drop_index("ix_latent_stats_max", table_name="latent_stats")
    op.drop_index("ix_latent_stats_density", table_name="latent_stats")
    op.drop_table("latent_stats")
    op.drop_table("latent_snippets")
    op.drop_table("index_contexts")
    op.drop_index(op.f("ix_latent_indexes_sae_id"), table_name="latent_indexes")
    op.drop_table("latent_indexes")
