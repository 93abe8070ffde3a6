"""track_labels: covering index (label, track_id, prob) for label search

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:00:00

Why: text search without CLIP sums ``weight(label) * prob`` per track over every row of the
matched classes (993k rows for "bird" at 1M tracks). With an index on ``label`` alone each
row costs a lookup into the table; with (label, track_id, prob) the aggregation reads the
index only. The old (label) index is a prefix of the new one, so it is dropped.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("track_labels", schema=None) as batch_op:
        batch_op.create_index("ix_track_labels_label_track_prob", ["label", "track_id", "prob"], unique=False)
        batch_op.drop_index("ix_track_labels_label")


def downgrade() -> None:
    with op.batch_alter_table("track_labels", schema=None) as batch_op:
        batch_op.create_index("ix_track_labels_label", ["label"], unique=False)
        batch_op.drop_index("ix_track_labels_label_track_prob")
