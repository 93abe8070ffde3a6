"""saved_searches and saved_search_matches: kept queries that watch new footage (issue 16 item 6)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:30:00

Why: an editor keeps a query (a crop, marked hits, a text) by name and wants to hear when a
newly ingested video holds its object. The query's DASR vectors are stored with it (their
model space named), so it answers without the images; each match (saved search, video, hits)
is a row, so the job result, the callback and ``GET /saved-searches/{id}/matches`` agree.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "saved_searches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("space_name", sa.String(length=255), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=True),
        sa.Column("vectors", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("watch", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_searches")),
        sa.UniqueConstraint("name", name=op.f("uq_saved_searches_name")),
    )
    op.create_table(
        "saved_search_matches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("saved_search_id", BigId, nullable=False),
        sa.Column("video_id", BigId, nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["saved_search_id"],
            ["saved_searches.id"],
            name=op.f("fk_saved_search_matches_saved_search_id_saved_searches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_saved_search_matches_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_search_matches")),
    )
    op.create_index(
        op.f("ix_saved_search_matches_saved_search_id"),
        "saved_search_matches",
        ["saved_search_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_saved_search_matches_video_id"), "saved_search_matches", ["video_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_saved_search_matches_video_id"), table_name="saved_search_matches")
    op.drop_index(op.f("ix_saved_search_matches_saved_search_id"), table_name="saved_search_matches")
    op.drop_table("saved_search_matches")
    op.drop_table("saved_searches")
