"""SQLAlchemy 2.0 tables of the catalog: the source of truth.

FAISS indexes are derived from the ``vectors`` table and can always be rebuilt from it.
Alembic (``migrations/``) owns the schema on every database; nothing calls ``create_all``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# A 64-bit integer key on PostgreSQL that is still SQLite's INTEGER PRIMARY KEY (rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Video(Base):
    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|partial|failed
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    container: Mapped[str | None] = mapped_column(String(128))
    codec: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    fps_num: Mapped[int | None] = mapped_column(Integer)
    fps_den: Mapped[int | None] = mapped_column(Integer)
    time_base_num: Mapped[int | None] = mapped_column(Integer)
    time_base_den: Mapped[int | None] = mapped_column(Integer)
    start_pts: Mapped[int] = mapped_column(BigInteger, default=0)
    end_pts: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    start_timecode: Mapped[str | None] = mapped_column(String(16))
    variable_frame_rate: Mapped[bool] = mapped_column(Boolean, default=False)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    shots: Mapped[list[Shot]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="Shot.index", passive_deletes=True
    )


class Shot(Base):
    __tablename__ = "shots"
    __table_args__ = (UniqueConstraint("video_id", "index", name="uq_shots_video_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    start_pts: Mapped[int] = mapped_column(BigInteger)
    end_pts: Mapped[int] = mapped_column(BigInteger)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)

    video: Mapped[Video] = relationship(back_populates="shots")
    keyframes: Mapped[list[Keyframe]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", order_by="Keyframe.pts", passive_deletes=True
    )


class Keyframe(Base):
    __tablename__ = "keyframes"
    __table_args__ = (UniqueConstraint("video_id", "pts", name="uq_keyframes_video_pts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    pts: Mapped[int] = mapped_column(BigInteger)
    time_s: Mapped[float] = mapped_column(Float)
    frame: Mapped[int] = mapped_column(Integer)
    thumbnail: Mapped[str | None] = mapped_column(Text)  # path relative to settings.thumbnail_dir

    shot: Mapped[Shot] = relationship(back_populates="keyframes")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # ingest|archive|reindex|...
    # queued|running|done|failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    path: Mapped[str | None] = mapped_column(Text)
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="SET NULL"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelSpace(Base):
    """One embedding space: a model id plus every parameter that changes its vectors."""

    __tablename__ = "model_spaces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # e.g. "dasr:efficientnet_lite0@512"
    family: Mapped[str] = mapped_column(String(16))  # dasr|clip
    dim: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    whitening: Mapped[bytes | None] = mapped_column(LargeBinary)  # npz of mean + projection, if fitted
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Track(Base):
    """An instance followed through consecutive keyframes of one shot.

    Tracks come from DASR regions, so they belong to the DASR model space that made them
    (``space_id``): after a backbone switch the old and the new tracks of a video coexist
    until the old space is dropped, and readers show one space at a time (``spaces/active.py``).
    """

    __tablename__ = "tracks"
    __table_args__ = (Index("ix_tracks_video_space", "video_id", "space_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    # NULL only for rows written before migration 0002 that had no DASR vector to backfill from.
    space_id: Mapped[int | None] = mapped_column(ForeignKey("model_spaces.id", ondelete="CASCADE"))
    shot_id: Mapped[int] = mapped_column(ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    is_frame: Mapped[bool] = mapped_column(Boolean, default=False)  # the whole-frame pseudo track
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    best_keyframe_id: Mapped[int | None] = mapped_column(ForeignKey("keyframes.id", ondelete="SET NULL"))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    labels: Mapped[list] = mapped_column(JSON, default=list)  # [[label, prob], ...] top-5

    boxes: Mapped[list[TrackBox]] = relationship(
        back_populates="track", cascade="all, delete-orphan", passive_deletes=True
    )


class TrackBox(Base):
    """The box of a track at one keyframe, in source pixels."""

    __tablename__ = "track_boxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    keyframe_id: Mapped[int] = mapped_column(ForeignKey("keyframes.id", ondelete="CASCADE"), index=True)
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, default=0.0)

    track: Mapped[Track] = relationship(back_populates="boxes")


class Label(Base):
    """Top-k ImageNet labels of a track, one row each so they can be filtered in SQL."""

    __tablename__ = "track_labels"
    # Covering index: label search sums weight * prob per track from the index alone (migration 0003).
    __table_args__ = (Index("ix_track_labels_label_track_prob", "label", "track_id", "prob"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(128))
    prob: Mapped[float] = mapped_column(Float)


class Vector(Base):
    """A stored embedding. Its id is the FAISS id, so a hit maps straight back to a row."""

    __tablename__ = "vectors"
    __table_args__ = (
        UniqueConstraint("space_id", "kind", "owner_id", name="uq_vectors_space_kind_owner"),
        Index("ix_vectors_space_kind", "space_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("model_spaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # track|frame|region
    owner_id: Mapped[int] = mapped_column(BigInteger)  # tracks.id, keyframes.id or track_boxes.id
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # L2-normalised float16, dense or sparse (codec.py)


class VideoSpace(Base):
    """Which model spaces a video has vectors in (and which it is still missing)."""

    __tablename__ = "video_spaces"
    __table_args__ = (UniqueConstraint("video_id", "space_id", name="uq_video_spaces_video_space"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("model_spaces.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="done")  # done|missing
    note: Mapped[str | None] = mapped_column(Text)


class IndexState(Base):
    """Generation counter of each FAISS index, so readers know when to reload."""

    __tablename__ = "index_state"
    __table_args__ = (UniqueConstraint("space_id", "kind", name="uq_index_state_space_kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("model_spaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    factory: Mapped[str] = mapped_column(String(64), default="Flat")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SavedSearch(Base):
    """A query kept by name (relevance feedback included) that also watches newly ingested footage.

    The DASR query vectors are stored (float16 blobs, like ``vectors.data``) with the model space
    that made them, so a saved crop query answers without its images; ``query`` holds the JSON
    fields (text, track_id, positives, negatives, label, top_k, min_score).
    """

    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    query: Mapped[dict] = mapped_column(JSON, default=dict)
    space_name: Mapped[str | None] = mapped_column(String(255))  # DASR space of ``vectors``
    dim: Mapped[int | None] = mapped_column(Integer)
    vectors: Mapped[list] = mapped_column(JSON, default=list)  # hex of each float16 blob
    threshold: Mapped[float | None] = mapped_column(Float)  # a new video's hit counts at or above it
    watch: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SavedSearchMatch(Base):
    """A newly ingested video in which a watching saved search found its object (the hits, as JSON)."""

    __tablename__ = "saved_search_matches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    saved_search_id: Mapped[int] = mapped_column(
        ForeignKey("saved_searches.id", ondelete="CASCADE"), index=True
    )
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    hits: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
