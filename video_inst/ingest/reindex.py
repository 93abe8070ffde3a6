"""Fill a new model space for videos already in the catalog: resumable, one video at a time.

``video-inst reindex --space clip`` adds CLIP vectors (no weights at ingest, or a new CLIP
model configured) by decoding each video's stored keyframes again; DASR is not redone.
``video-inst reindex --space dasr`` re-analyses the stored keyframes with the configured
backbone / DASR parameters into a new DASR space: regions, tracks, labels and vectors (and
CLIP vectors of the new tracks when CLIP weights are there), beside the old ones.

Both run through :func:`run_space_job`: each video is prepared outside any transaction,
written in its own transaction and recorded ``done`` in ``video_spaces`` (the progress rows),
so an interrupted job resumes where it stopped; a ``jobs`` row (kind ``reindex``) carries the
progress for the API. The old space stays complete and answers searches
(``spaces.active.active_space``) until the new one covers every video; :func:`drop_space` then
removes the old rows, only when asked. A whitened copy, derived from stored vectors, is
filled by ``spaces.whitened.fill_whitened_space`` (the same one-transaction-per-video rule).

Example::

    report = reindex_dasr(settings=settings)
    print(report.done, report.skipped, report.failed)
    drop_space("dasr:efficientnet_lite0:s512:avg", settings=settings)
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from video_inst.catalog import jobs
from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import (
    IndexState,
    Keyframe,
    ModelSpace,
    Shot,
    Track,
    TrackBox,
    Vector,
    Video,
    VideoSpace,
)
from video_inst.config import Settings, get_settings
from video_inst.errors import MissingFileError, NotFoundError, VideoInstError

log = logging.getLogger(__name__)

SYNC_EVERY = 20  # videos between index syncs, so an interruption leaves FAISS close to SQL


@dataclass
class ReindexReport:
    space: str
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    job_id: str | None = None


@dataclass
class SpaceJob:
    """One space to fill: its identity, and how one video is prepared and written.

    ``prepare(video_id)`` does the slow part outside any transaction (decode, models) and may
    raise a VideoInstError or OSError for that video alone; ``write(session, space, video_id,
    prepared)`` stores it inside the video's transaction and returns the (space id, kind)
    indexes it touched.
    """

    name: str
    family: str
    dim: int
    params: dict[str, Any]
    prepare: Callable[[int], Any]
    write: Callable[[Session, ModelSpace, int, Any], set[tuple[int, str]]]


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


def _job_row(catalog: Catalog, space_name: str) -> str:
    """The unfinished reindex job of this space (a resumed run continues it), else a new one."""
    job = jobs.active_job_for_path(catalog, path=space_name, kind="reindex")
    job_id = job["job_id"] if job is not None else jobs.create_job(catalog, kind="reindex", path=space_name)
    jobs.mark_running(catalog, job_id)
    return job_id


def _job_progress(
    catalog: Catalog, job_id: str, report: ReindexReport, total: int, *, end: str | None = None
) -> None:
    """Progress and counts of the job row; ``end`` ('done' / 'failed') ends it with the failures named."""
    finished = len(report.done) + len(report.skipped)
    counts = {
        "total": total,
        "done": len(report.done),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
    }
    jobs.set_progress(catalog, job_id, finished / total if total else 1.0, counts)
    if end is not None:
        failed = "; ".join(f"video {v}: {e}" for v, e in report.failed) or None
        jobs.end_job(catalog, job_id, status=end, error=failed, counts=counts)


def run_space_job(
    job: SpaceJob,
    *,
    settings: Settings,
    catalog: Catalog,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Give every ingested video the vectors of ``job``'s space; resumable (see module docstring)."""
    from video_inst.catalog import repo
    from video_inst.vectors.store import get_index_store

    store = get_index_store(settings)
    with catalog.session() as s:
        space_id = store.ensure_space(s, name=job.name, family=job.family, dim=job.dim, params=job.params).id
    pending, finished = _pending_videos(catalog, space_id)
    report = ReindexReport(space=job.name, skipped=finished, job_id=_job_row(catalog, job.name))
    total = len(pending) + len(finished)
    touched: set[tuple[int, str]] = set()
    try:
        for n, video_id in enumerate(pending):
            try:
                prepared = job.prepare(video_id)
            except (VideoInstError, OSError) as exc:
                message = getattr(exc, "message", str(exc))
                report.failed.append((video_id, message))
                log.warning("reindex %s: video %s failed: %s", job.name, video_id, message)
                continue
            with catalog.session() as s:
                space = s.get(ModelSpace, space_id)
                touched |= job.write(s, space, video_id, prepared)
                repo.mark_video_space(s, video_id=video_id, space_id=space_id, status="done")
            report.done.append(video_id)
            _job_progress(catalog, report.job_id, report, total)  # type: ignore[arg-type]
            if progress:
                progress(n + 1, len(pending))
            if (n + 1) % SYNC_EVERY == 0:
                _sync(store, touched)
    finally:
        _sync(store, touched)
    _job_progress(catalog, report.job_id, report, total, end="failed" if report.failed else "done")  # type: ignore[arg-type]
    return report


def _sync(store: Any, touched: set[tuple[int, str]]) -> None:
    for space_id, kind in sorted(touched):
        store.sync(space_id, kind)


# --- CLIP ----------------------------------------------------------------------------------


def reindex_clip(
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    clip: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Give every ingested video CLIP vectors in the configured (or given) CLIP model space."""
    from video_inst.models.loading import load_clip

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    if clip is None:
        clip, reason = load_clip(settings)
        if clip is None:
            raise VideoInstError(f"cannot re-index CLIP vectors: {reason}")
    from video_inst.vectors.store import get_index_store

    store = get_index_store(settings)

    def write(s: Session, space: ModelSpace, video_id: int, prepared: Any) -> set[tuple[int, str]]:
        frames, tracks = prepared
        s.execute(delete(Vector).where(Vector.space_id == space.id, Vector.video_id == video_id))
        touched = {(space.id, "frame"), (space.id, "track")}
        if frames:
            store.add_vectors(
                s, space, "frame", list(frames), [video_id] * len(frames), np.stack(list(frames.values()))
            )
        if tracks:
            store.add_vectors(
                s, space, "track", list(tracks), [video_id] * len(tracks), np.stack(list(tracks.values()))
            )
        return touched

    job = SpaceJob(
        name=clip.space_name,
        family="clip",
        dim=clip.dim,
        params={},
        prepare=lambda video_id: _embed_video(video_id, clip, catalog),
        write=write,
    )
    return run_space_job(job, settings=settings, catalog=catalog, progress=progress)


# --- DASR ----------------------------------------------------------------------------------


def _stored_plan(session: Session, video_id: int) -> tuple[Video, Any]:
    """The shot plan a video was ingested with, rebuilt from its shot and keyframe rows."""
    from video_inst.media.types import Keyframe as KeyframeT
    from video_inst.media.types import Shot as ShotT
    from video_inst.media.types import ShotPlan

    video = session.get(Video, video_id)
    if video is None:
        raise NotFoundError(f"no video {video_id} in the catalog")
    shots = session.scalars(select(Shot).where(Shot.video_id == video_id).order_by(Shot.index)).all()
    index_of = {s.id: s.index for s in shots}
    keyframes = session.scalars(
        select(Keyframe).where(Keyframe.video_id == video_id).order_by(Keyframe.pts)
    ).all()
    plan = ShotPlan(
        shots=[
            ShotT(s.index, s.start_pts, s.end_pts, s.start_s, s.end_s, s.start_frame, s.end_frame)
            for s in shots
        ],
        keyframes=[KeyframeT(index_of[k.shot_id], k.pts, k.time_s, k.frame) for k in keyframes],
        frame_count=video.frame_count or 0,
        end_pts=video.end_pts or 0,
    )
    return video, plan


def _analyse_video(video_id: int, analyser: Any, catalog: Catalog) -> Any:
    """Decode a video's stored keyframes again and run DASR (and CLIP) on them: a VideoAnalysis."""
    from video_inst.analysis.analyser import VideoAnalysis
    from video_inst.media.decode import decode_keyframes

    with catalog.session() as s:
        video, plan = _stored_plan(s, video_id)
        path, rotation, size = Path(video.path), video.rotation or 0, video.size_bytes
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (video {video_id} cannot be re-analysed)")
    if size and path.stat().st_size != size:
        raise MissingFileError(
            f"{path}: {path.stat().st_size} bytes, but {size} at ingest; re-ingest it "
            f"(`video-inst ingest --force`) rather than re-analyse a different file"
        )
    analysis = VideoAnalysis(analyser, plan)
    threads = analyser.settings.decode_threads
    for keyframe, rgb in decode_keyframes(path, plan.keyframes, rotation=rotation, threads=threads):
        analysis.add(keyframe, rgb)
    analysis.finish()
    return analysis


def reindex_dasr(
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    dasr: Any | None = None,
    clip: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Re-analyse every ingested video with the configured (or given) DASR model into its space.

    New tracks are written beside the old space's; searches keep answering from the old
    space until this one covers every video. ``clip`` (default: the configured one, when its
    weights are here) embeds the new tracks too, so text search keeps its track vectors.
    """
    from video_inst.analysis.analyser import Analyser
    from video_inst.ingest.store import store_analyses
    from video_inst.models.loading import load_clip, load_dasr

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    dasr = dasr or load_dasr(settings)
    if clip is None:
        clip, reason = load_clip(settings)
        if clip is None:
            log.warning("reindex dasr: new tracks get no CLIP track vectors: %s", reason)
    analyser = Analyser(settings=settings, dasr=dasr, clip=clip)

    def write(s: Session, space: ModelSpace, video_id: int, analysis: Any) -> set[tuple[int, str]]:
        # A rerun after a crash inside this transaction finds nothing to replace; a rerun of a
        # video whose row says missing replaces whatever an older attempt left.
        old = list(s.scalars(select(Track.id).where(Track.video_id == video_id, Track.space_id == space.id)))
        if old:
            _delete_tracks(s, old)
        video = s.get(Video, video_id)
        keyframe_rows = {k.pts: k for k in s.scalars(select(Keyframe).where(Keyframe.video_id == video_id))}
        store_analyses(s, [analysis], video=video, keyframe_rows=keyframe_rows)
        return analysis.spaces | {(space.id, "region"), (space.id, "track")}

    job = SpaceJob(
        name=dasr.space_name,
        family="dasr",
        dim=dasr.dim,
        params={"backbone": dasr.backbone.model_id},
        prepare=lambda video_id: _analyse_video(video_id, analyser, catalog),
        write=write,
    )
    return run_space_job(job, settings=settings, catalog=catalog, progress=progress)


# --- dropping an old space ------------------------------------------------------------------


def _delete_tracks(session: Session, track_ids: list[int]) -> set[tuple[int, str]]:
    """Delete tracks with their boxes, labels and every vector they own (any space)."""
    touched: set[tuple[int, str]] = set()
    for start in range(0, len(track_ids), 5000):
        chunk = track_ids[start : start + 5000]
        box_ids = list(session.scalars(select(TrackBox.id).where(TrackBox.track_id.in_(chunk))))
        for kind, owners in (("track", chunk), ("region", box_ids)):
            for b in range(0, len(owners), 5000):
                part = owners[b : b + 5000]
                touched |= {
                    (int(sp), kind)
                    for sp in session.scalars(
                        select(Vector.space_id)
                        .where(Vector.kind == kind, Vector.owner_id.in_(part))
                        .distinct()
                    )
                }
                session.execute(
                    delete(Vector)
                    .where(Vector.kind == kind, Vector.owner_id.in_(part))
                    .execution_options(synchronize_session=False)
                )
        session.execute(delete(Track).where(Track.id.in_(chunk)).execution_options(synchronize_session=False))
    return touched


def drop_space(
    name: str, *, settings: Settings | None = None, catalog: Catalog | None = None, force: bool = False
) -> dict[str, Any]:
    """Remove a model space: its vectors, index files and (DASR) its tracks. Never implicit.

    Refused while the space is the one answering its family's searches, unless ``force``
    (e.g. a space no model can rebuild). Its whitened copies (whitened_spaces.py) go with it:
    they are computed from its vectors and mean nothing without them. Returns counts of what
    was removed and the names of the copies.
    """
    from video_inst.spaces.active import active_space
    from video_inst.spaces.whitened import derived_spaces
    from video_inst.vectors.store import get_index_store

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    store = get_index_store(settings)
    with catalog.session() as s:
        space = s.scalars(select(ModelSpace).where(ModelSpace.name == name)).first()
        if space is None:
            known = ", ".join(s.scalars(select(ModelSpace.name).order_by(ModelSpace.id))) or "none"
            raise NotFoundError(f"no model space {name!r}; known: {known}")
        choice = active_space(s, space.family, settings)
        if choice.space_id == space.id and not force:
            raise VideoInstError(
                f"model space {name!r} answers {space.family} searches now ({choice.covered} of "
                f"{choice.total} videos; configured: {choice.configured}); finish the re-index first, "
                "or pass --force"
            )
        space_id = int(space.id)
        derived = [d.name for d in derived_spaces(s, name)]
    for copy in derived:
        drop_space(copy, settings=settings, catalog=catalog, force=True)
    with catalog.session() as s:
        space = s.get(ModelSpace, space_id)
        touched: set[tuple[int, str]] = set()
        tracks = 0
        if space.family == "dasr":
            track_ids = list(s.scalars(select(Track.id).where(Track.space_id == space_id)))
            tracks = len(track_ids)
            touched = _delete_tracks(s, track_ids)
        vectors = s.execute(delete(Vector).where(Vector.space_id == space_id)).rowcount or 0
        s.execute(delete(VideoSpace).where(VideoSpace.space_id == space_id))
        s.execute(delete(IndexState).where(IndexState.space_id == space_id))
        jobs.fail_open_jobs(
            s, kind="reindex", path=name, error="model space dropped before the re-index finished"
        )
        s.delete(space)
    for path in store.root.glob(f"{space_id}-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    store.drop_cache()
    _sync(store, {(sp, kind) for sp, kind in touched if sp != space_id})
    return {"space_id": space_id, "tracks": tracks, "vectors": int(vectors), "derived": derived}


def _embed_video(
    video_id: int, clip: Any, catalog: Catalog
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """CLIP vectors of one video: per keyframe id (whole frame) and per track id."""
    from video_inst.analysis.analyser import crop_region
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
            crops.append(crop_region(rgb, np.asarray(box, dtype=np.float32)))
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
