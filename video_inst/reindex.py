"""Add the vectors of a model space to videos already in the catalog, without redoing DASR.

``video-inst reindex --space clip`` walks the videos whose CLIP vectors are missing (no
weights at ingest, or a new CLIP model configured), decodes their stored keyframes again,
embeds the frames and each track's crop at its best keyframe, and commits each video in
its own transaction. Interrupted, it resumes where it stopped: finished videos are
recorded in ``video_spaces``. The vectors of other spaces stay searchable throughout;
a new space is used by search once it covers every video (``search.choose_space``).

Example::

    report = reindex_clip(settings=settings)
    print(report.done, report.skipped, report.failed)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import Keyframe, Shot, Track, TrackBox, Vector, Video, VideoSpace
from video_inst.config import Settings, get_settings
from video_inst.errors import VideoInstError

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    space: str
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def _pending_videos(catalog: Catalog, space_id: int) -> tuple[list[int], list[int]]:
    with catalog.session() as s:
        finished = set(
            s.scalars(
                select(VideoSpace.video_id).where(
                    VideoSpace.space_id == space_id, VideoSpace.status == "done"
                )
            )
        )
        videos = list(s.scalars(select(Video.id).where(Video.status == "done").order_by(Video.id)))
    return [v for v in videos if v not in finished], [v for v in videos if v in finished]


def _embed_video(
    video_id: int, clip: Any, catalog: Catalog
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """CLIP vectors of one video: per keyframe id (whole frame) and per track id."""
    from video_inst.analyse import _crop
    from video_inst.media.decode import decode_keyframes
    from video_inst.media.types import Keyframe as KeyframeT

    with catalog.session() as s:
        video = s.get(Video, video_id)
        path, rotation = Path(video.path), video.rotation or 0
        rows = s.execute(
            select(Keyframe.id, Keyframe.pts, Keyframe.time_s, Keyframe.frame, Shot.index)
            .join(Shot, Shot.id == Keyframe.shot_id)
            .where(Keyframe.video_id == video_id)
            .order_by(Keyframe.pts)
        ).all()
        tracks = s.execute(
            select(Track.id, Track.is_frame, Track.best_keyframe_id).where(Track.video_id == video_id)
        ).all()
        boxes = {
            (b.track_id, b.keyframe_id): (b.x0, b.y0, b.x1, b.y1)
            for b in s.scalars(select(TrackBox).join(Track).where(Track.video_id == video_id))
        }
        members: dict[int, list[int]] = {}
        for track_id, kf_id in boxes:
            members.setdefault(track_id, []).append(kf_id)
    by_pts = {pts: kf_id for kf_id, pts, *_ in rows}
    wanted = [KeyframeT(shot_index=shot, pts=pts, time_s=t, frame=frame) for _, pts, t, frame, shot in rows]
    crops_needed: dict[int, list[tuple[int, tuple]]] = {}
    for track_id, is_frame, best_kf in tracks:
        if not is_frame and best_kf is not None and (track_id, best_kf) in boxes:
            crops_needed.setdefault(best_kf, []).append((track_id, boxes[(track_id, best_kf)]))
    frame_vectors: dict[int, np.ndarray] = {}
    crop_ids: list[int] = []
    crops: list[np.ndarray] = []
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if batch:
            vectors = clip.embed_images([rgb for _, rgb in batch])
            frame_vectors.update({kf: v for (kf, _), v in zip(batch, vectors)})
            batch.clear()

    for keyframe, rgb in decode_keyframes(path, wanted, rotation=rotation):
        kf_id = by_pts[keyframe.pts]
        batch.append((kf_id, rgb))
        for track_id, box in crops_needed.get(kf_id, []):
            crop_ids.append(track_id)
            crops.append(_crop(rgb, np.asarray(box, dtype=np.float32)))
        if len(batch) >= 16:
            flush()
    flush()
    track_vectors: dict[int, np.ndarray] = {}
    if crops:
        track_vectors.update(zip(crop_ids, clip.embed_images(crops)))
    for track_id, is_frame, _ in tracks:
        if is_frame:
            views = [frame_vectors[k] for k in members.get(track_id, []) if k in frame_vectors]
            if views:
                mean = np.mean(views, axis=0)
                track_vectors[track_id] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return frame_vectors, track_vectors


def reindex_clip(
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    clip: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Give every ingested video CLIP vectors in the configured (or given) CLIP model space."""
    from video_inst.analyse import load_clip
    from video_inst.vectors.store import get_index_store

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    if clip is None:
        clip, reason = load_clip(settings)
        if clip is None:
            raise VideoInstError(f"cannot re-index CLIP vectors: {reason}")
    store = get_index_store(settings)
    with catalog.session() as s:
        space = store.ensure_space(s, name=clip.space_name, family="clip", dim=clip.dim, params={})
        space_id = space.id
    pending, finished = _pending_videos(catalog, space_id)
    report = ReindexReport(space=clip.space_name, skipped=finished)
    for n, video_id in enumerate(pending):
        try:
            frames, tracks = _embed_video(video_id, clip, catalog)
        except (VideoInstError, OSError) as exc:
            message = getattr(exc, "message", str(exc))
            report.failed.append((video_id, message))
            log.warning("reindex: video %s failed: %s", video_id, message)
            continue
        with catalog.session() as s:
            space = s.get(type(space), space_id)
            s.execute(delete(Vector).where(Vector.space_id == space_id, Vector.video_id == video_id))
            if frames:
                store.add_vectors(
                    s, space, "frame", list(frames), [video_id] * len(frames), np.stack(list(frames.values()))
                )
            if tracks:
                store.add_vectors(
                    s, space, "track", list(tracks), [video_id] * len(tracks), np.stack(list(tracks.values()))
                )
            row = s.scalars(
                select(VideoSpace).where(VideoSpace.video_id == video_id, VideoSpace.space_id == space_id)
            ).first() or VideoSpace(video_id=video_id, space_id=space_id)
            row.status, row.note = "done", None
            s.add(row)
        report.done.append(video_id)
        if progress:
            progress(n + 1, len(pending))
        if (n + 1) % 20 == 0:
            _sync(store, space_id)
    _sync(store, space_id)
    return report


def _sync(store: Any, space_id: int) -> None:
    for kind in ("frame", "track"):
        store.sync(space_id, kind)
