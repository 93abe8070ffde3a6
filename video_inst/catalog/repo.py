"""Data access of the catalog: keyword-only functions that take a session.

Callers own the transaction (``Catalog.session()``), so one video's results are
committed together or not at all.

Example::

    with catalog.session() as s:
        video = repo.find_video(s, ref="clip.mp4")
        shots = repo.list_shots(s, video_id=video.id)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from video_inst.catalog.models import Keyframe, Shot, Track, Vector, Video, VideoSpace
from video_inst.errors import NotFoundError
from video_inst.media.types import ShotPlan, VideoInfo


def find_video(session: Session, *, ref: str | int) -> Video:
    """A video by id, by path (as given or resolved) or by content hash prefix."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        video = session.get(Video, int(ref))
        if video is not None:
            return video
    ref = str(ref)
    candidates = {ref, str(Path(ref).expanduser().resolve())}
    video = session.scalars(
        select(Video).where(Video.path.in_(candidates)).order_by(Video.id.desc()).limit(1)
    ).first()
    if video is None and len(ref) >= 8:
        video = session.scalars(select(Video).where(Video.content_hash.startswith(ref)).limit(1)).first()
    if video is None:
        raise NotFoundError(f"no video {ref!r} in the catalog (give an id, a path or a content hash)")
    return video


def video_by_hash(session: Session, *, content_hash: str) -> Video | None:
    return session.scalars(select(Video).where(Video.content_hash == content_hash)).first()


def list_videos(session: Session) -> list[Video]:
    return list(session.scalars(select(Video).order_by(Video.id)))


def record_failure(session: Session, *, path: str, size: int, content_hash: str | None, error: str) -> Video:
    """Mark the video row for ``path`` failed with the reason, touching nothing else.

    A failed file keeps its existing row (if its content was ingested before, its
    shots stay) only when the content matches; otherwise a row with no hash records it.
    """
    video = None
    if content_hash:
        video = video_by_hash(session, content_hash=content_hash)
    if video is None:
        video = session.scalars(select(Video).where(Video.path == path, Video.content_hash.is_(None))).first()
    if video is None:
        video = Video(path=path, size_bytes=size, content_hash=content_hash)
        session.add(video)
    video.status = "failed"
    video.error = error
    session.flush()
    return video


def upsert_video(
    session: Session, *, path: str, size: int, content_hash: str, info: VideoInfo, status: str
) -> Video:
    """The row for this content, created or refreshed with the probe facts."""
    video = video_by_hash(session, content_hash=content_hash)
    if video is None:
        # A failed row for this path with no hash (e.g. an earlier unreadable copy) is reused.
        video = session.scalars(
            select(Video).where(Video.path == path, Video.content_hash.is_(None))
        ).first() or Video(path=path)
        session.add(video)
    video.path = path
    video.size_bytes = size
    video.content_hash = content_hash
    video.container = info.container
    video.codec = info.codec
    video.width, video.height, video.rotation = info.width, info.height, info.rotation
    video.fps_num, video.fps_den = info.frame_rate.numerator, info.frame_rate.denominator
    video.time_base_num, video.time_base_den = info.time_base.numerator, info.time_base.denominator
    video.start_pts = info.start_pts
    video.duration_s = info.duration_s
    video.frame_count = info.frame_count
    video.start_timecode = info.start_timecode
    video.variable_frame_rate = info.variable_frame_rate
    video.status = status
    video.error = None
    session.flush()
    return video


def clear_video_outputs(session: Session, *, video_id: int) -> None:
    """Remove every derived row of a video (shots, keyframes, tracks, vectors) before a redo."""
    session.execute(delete(Vector).where(Vector.video_id == video_id))
    session.execute(delete(VideoSpace).where(VideoSpace.video_id == video_id))
    session.execute(delete(Track).where(Track.video_id == video_id))
    session.execute(delete(Keyframe).where(Keyframe.video_id == video_id))
    session.execute(delete(Shot).where(Shot.video_id == video_id))
    session.flush()


def store_shot_plan(session: Session, *, video: Video, plan: ShotPlan) -> dict[int, Keyframe]:
    """Insert shots and keyframes of a plan; returns keyframe rows by PTS."""
    shots: dict[int, Shot] = {}
    for s in plan.shots:
        row = Shot(
            video_id=video.id,
            index=s.index,
            start_pts=s.start_pts,
            end_pts=s.end_pts,
            start_s=s.start_s,
            end_s=s.end_s,
            start_frame=s.start_frame,
            end_frame=s.end_frame,
        )
        session.add(row)
        shots[s.index] = row
    session.flush()
    keyframes: dict[int, Keyframe] = {}
    for k in plan.keyframes:
        row = Keyframe(
            video_id=video.id, shot_id=shots[k.shot_index].id, pts=k.pts, time_s=k.time_s, frame=k.frame
        )
        session.add(row)
        keyframes[k.pts] = row
    video.frame_count = plan.frame_count
    video.end_pts = plan.end_pts
    video.truncated = plan.truncated
    video.warnings = list(plan.warnings)
    session.flush()
    return keyframes


def list_shots(session: Session, *, video_id: int) -> list[Shot]:
    return list(
        session.scalars(
            select(Shot)
            .where(Shot.video_id == video_id)
            .order_by(Shot.index)
            .options(selectinload(Shot.keyframes))
        )
    )


def vector_spaces_of_video(session: Session, *, video_id: int) -> list[tuple[int, str]]:
    """(space id, kind) of every index that holds vectors of this video."""
    rows = session.execute(select(Vector.space_id, Vector.kind).where(Vector.video_id == video_id).distinct())
    return sorted((int(space), kind) for space, kind in rows)


def delete_video(session: Session, *, video_id: int) -> None:
    """Delete a video and everything derived from it (rows cascade)."""
    clear_video_outputs(session, video_id=video_id)
    video = session.get(Video, video_id)
    if video is None:
        raise NotFoundError(f"no video {video_id} in the catalog")
    session.delete(video)
    session.flush()


def counts(session: Session, *, video_id: int, tracks: Any = None) -> dict[str, int]:
    """Rows of a video; ``tracks`` filters the tracks counted (``spaces.active.active_tracks``: one space)."""

    def n(model, col, *extra) -> int:  # type: ignore[no-untyped-def]
        query = select(func.count()).select_from(model).where(col == video_id, *extra)
        return int(session.scalar(query) or 0)

    return {
        "shots": n(Shot, Shot.video_id),
        "keyframes": n(Keyframe, Keyframe.video_id),
        "tracks": n(Track, Track.video_id, *(() if tracks is None else (tracks,))),
        "vectors": n(Vector, Vector.video_id),
    }


def video_space_status(session: Session, *, video_id: int, space_id: int) -> str | None:
    """'done' / 'missing' for a video in a model space, None when it was never recorded."""
    return session.scalar(
        select(VideoSpace.status).where(VideoSpace.video_id == video_id, VideoSpace.space_id == space_id)
    )


def mark_video_space(
    session: Session, *, video_id: int, space_id: int, status: str, note: str | None = None
) -> None:
    """Record (insert or update) whether a video's vectors in a model space are complete."""
    row = session.scalars(
        select(VideoSpace).where(VideoSpace.video_id == video_id, VideoSpace.space_id == space_id)
    ).first() or VideoSpace(video_id=video_id, space_id=space_id)
    row.status, row.note = status, note
    session.add(row)
