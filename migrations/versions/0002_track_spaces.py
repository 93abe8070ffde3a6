"""tracks belong to a DASR model space

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:55:00

Tracks are made from DASR regions, so a backbone (or DASR parameter) switch makes new
tracks beside the old ones; ``tracks.space_id`` says which space made each. Existing rows
are backfilled from their DASR track vector, else from the video's one DASR space.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_FROM_VECTORS = """
UPDATE tracks SET space_id = (
    SELECT MIN(v.space_id) FROM vectors v JOIN model_spaces m ON m.id = v.space_id
    WHERE v.kind = 'track' AND v.owner_id = tracks.id AND m.family = 'dasr'
) WHERE space_id IS NULL
"""
_FROM_VIDEO_SPACES = """
UPDATE tracks SET space_id = (
    SELECT MIN(vs.space_id) FROM video_spaces vs JOIN model_spaces m ON m.id = vs.space_id
    WHERE vs.video_id = tracks.video_id AND m.family = 'dasr' AND vs.status = 'done'
) WHERE space_id IS NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("space_id", _ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tracks_space_id_model_spaces"),
            "model_spaces",
            ["space_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index("ix_tracks_video_space", ["video_id", "space_id"], unique=False)
    op.execute(sa.text(_FROM_VECTORS))
    op.execute(sa.text(_FROM_VIDEO_SPACES))


def downgrade() -> None:
    # Several DASR spaces per video cannot be expressed without the column: refuse rather than
    # silently merge two backbones' tracks (drop the old space first: `video-inst spaces drop`).
    bind = op.get_bind()
    mixed = bind.execute(
        sa.text("SELECT COUNT(*) FROM (SELECT DISTINCT space_id FROM tracks WHERE space_id IS NOT NULL) t")
    ).scalar()
    if mixed and int(mixed) > 1:
        raise RuntimeError(
            "tracks of several DASR model spaces exist; drop all but one (`video-inst spaces drop NAME`) "
            "before downgrading below revision 0002"
        )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index("ix_tracks_video_space")
        batch_op.drop_constraint(batch_op.f("fk_tracks_space_id_model_spaces"), type_="foreignkey")
        batch_op.drop_column("space_id")
