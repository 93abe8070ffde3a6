"""One video end to end: the one ingest path, in steps that workers can spread out.

Every way of ingesting (the CLI's ``ingest_path``, the API's embedded thread jobs and the
Celery chord, both through ``jobs.pipeline``) runs these steps and no other copy of them:

1. ``identify``: the one validation rule (media roots, then a regular file, else
   ``MissingFileError``) and the content hash;
2. ``begin_ingest``: the one skip rule (content already ``done`` and no ``force``: a
   ``skipped`` result with the active DASR space's counts, its index entries and thumbnails
   repaired), else a writable-catalog check, the shot plan (one decode pass) and its chunks
   of whole shots → ``Begun``;
3. ``analyse_shots``: decode the keyframes of a range of shots, thumbnails, DASR / CLIP,
   tracks → ``ChunkResult``, plain data (``ingest_data``) that crosses workers as JSON;
4. ``commit_video``: everything of the video in ONE transaction, then the FAISS sync;
5. ``fail_video``: a failure at any step leaves the catalog as it was, apart from the video
   row marked failed with the reason (never for a path outside the media roots).

``ingest_path`` runs them in this process, holding the content lock throughout, so a second
process ingesting the same content waits and then answers ``skipped``.

Example::

    from video_inst.ingest.pipeline import ingest_path
    result = ingest_path("clip.mp4")
    print(result.status, result.shots, result.keyframes)
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from video_inst.analysis.data import ChunkResult, PlannedVideo
from video_inst.catalog import repo
from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.locks import content_lock
from video_inst.catalog.models import Keyframe as KeyframeRow
from video_inst.catalog.models import Video
from video_inst.config import Settings, get_settings
from video_inst.errors import CatalogUnwritableError, MissingFileError, OutsideMediaRootsError, VideoInstError
from video_inst.ingest.orphans import collect_thumbnails, writing_thumbnails
from video_inst.media.decode import decode_keyframes, decode_keyframes_ahead, write_thumbnail
from video_inst.media.hashing import content_hash
from video_inst.media.probe import probe
from video_inst.media.shots import ShotSettings, plan_shots
from video_inst.media.types import Keyframe, ShotPlan

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


def pause_point(name: str) -> None:
    """A test hook for fault injection: stop here when ``VIDEO_INST_PAUSE_AT`` names this point.

    The process writes ``VIDEO_INST_PAUSE_FILE`` (so a test knows where it is) and sleeps, to
    be SIGKILLed; points: ``before-commit`` (analysis done, nothing stored) and ``after-commit``
    (SQL committed, FAISS not yet synced). Unset, it costs one environment lookup.
    """
    if os.environ.get("VIDEO_INST_PAUSE_AT") != name:
        return
    marker = os.environ.get("VIDEO_INST_PAUSE_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()} {name}\n")
    time.sleep(float(os.environ.get("VIDEO_INST_PAUSE_S", "600")))


@dataclass
class IngestResult:
    """The CLI's JSON line for one video (``asdict`` of this)."""

    video_id: int | None
    path: str
    status: str  # done | skipped | failed
    shots: int = 0
    keyframes: int = 0
    tracks: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Saved searches that found their object in this video: [{saved_search_id, name, threshold, hits}]
    watch: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Begun:
    """``begin_ingest``'s decision: a final ``skipped`` result, or the plan and its chunks to analyse."""

    path: Path
    digest: str
    skipped: IngestResult | None = None
    planned: PlannedVideo | None = None
    chunks: list[list[int]] = field(default_factory=list)
    reused_plan: bool = False  # the staged plan given was still this file's


def check_media_root(path: Path, settings: Settings, *, required: bool = False) -> Path:
    """Refuse a path outside the configured media roots (symlinks and '..' resolved first).

    With no roots configured, local CLI use is unrestricted unless ``required`` (tasks, API).
    """
    resolved = path.expanduser().resolve()
    roots = [r.expanduser().resolve() for r in settings.media_roots]
    if not roots:
        if required:
            raise OutsideMediaRootsError(
                f"{path}: no media roots are configured; set VIDEO_INST_MEDIA_ROOTS to the folders "
                "that workers and the API may read"
            )
        return resolved
    if not any(resolved == root or root in resolved.parents for root in roots):
        listed = ", ".join(str(r) for r in roots)
        raise OutsideMediaRootsError(f"{path}: outside the configured media roots ({listed})")
    return resolved


def thumbnail_relpath(digest: str, pts: int) -> str:
    """Thumbnails are keyed by content, so a re-ingest replaces them and a delete removes them."""
    return f"{digest[:16]}/{pts}.jpg"


# --- step 1: the one validation rule ----------------------------------------------------------

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def file_kind(mode: int) -> str:
    """What a non-regular directory entry is, for the error that names it ("a FIFO", "a folder")."""
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


def validate_path(path: Path, settings: Settings, *, required: bool = False) -> Path:
    """The resolved path if it may be ingested: inside the media roots, an existing regular file.

    Raises ``OutsideMediaRootsError``, or ``MissingFileError`` ("no such file", "not a regular
    file (a folder)"), found without opening the file (a FIFO would block).
    """
    resolved = check_media_root(path, settings, required=required)
    try:
        st = resolved.stat()
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except NotADirectoryError:
        raise MissingFileError(f"{path}: no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise MissingFileError(f"{path}: not a regular file ({file_kind(st.st_mode)})")
    return resolved


def identify(path: Path, settings: Settings, *, required: bool = False) -> tuple[Path, str]:
    """(resolved path, content hash; '' for an empty file) of a path that passes ``validate_path``."""
    resolved = validate_path(path, settings, required=required)
    return resolved, content_hash(resolved) if resolved.stat().st_size else ""


def find_existing(catalog: Catalog, digest: str) -> tuple[int | None, str | None]:
    """(video id, status) of this content in the catalog, if any."""
    with catalog.session() as s:
        video = repo.video_by_hash(s, content_hash=digest) if digest else None
        return (video.id, video.status) if video else (None, None)


# --- step 2: the one skip rule, then the plan ------------------------------------------------


def skip_if_done(
    path: Path, digest: str, settings: Settings, catalog: Catalog, *, force: bool = False
) -> IngestResult | None:
    """The ``skipped`` result when this content is already ``done`` (and no ``force``), else None.

    Its counts are those search answers from (tracks of the active DASR space); its index
    entries and thumbnails are repaired first, and the repairs named in its warnings.
    """
    if not digest or force:
        return None
    started = time.perf_counter()
    video_id, status = find_existing(catalog, digest)
    if status != "done" or video_id is None:
        return None
    with catalog.session() as s:
        from video_inst.spaces.active import active_tracks

        c = repo.counts(s, video_id=video_id, tracks=active_tracks(s, settings))
    with writing_thumbnails(settings, digest):
        notes = repair_done_video(video_id, digest, path, settings, catalog)
    return IngestResult(
        video_id=video_id,
        path=str(path),
        status="skipped",
        shots=c["shots"],
        keyframes=c["keyframes"],
        tracks=c["tracks"],
        warnings=notes,
        seconds=round(time.perf_counter() - started, 3),
    )


def plan_video(
    path: Path, settings: Settings, progress: Progress | None = None, *, digest: str | None = None
) -> PlannedVideo:
    """Hash (unless given), probe and shot-plan a file; raises the named media errors."""
    path = validate_path(path, settings)
    size = path.stat().st_size
    if progress:
        progress("hash", 0.0)
    if digest is None:
        digest = content_hash(path) if size else ""
    if progress:
        progress("probe", 0.0)
    info = probe(path)
    plan = plan_shots(
        path,
        info,
        ShotSettings.from_settings(settings),
        progress=(lambda f: progress("shots", f)) if progress else None,
    )
    return PlannedVideo(path=path, size=size, digest=digest, info=info, plan=plan)


def chunk_shots(plan: ShotPlan, max_keyframes: int | None) -> list[list[int]]:
    """Consecutive whole shots, about ``max_keyframes`` keyframes per chunk (None: one chunk).

    Shots are never split: tracks are linked within a shot. A shot with more keyframes
    than the limit is a chunk of its own.
    """
    if max_keyframes is None:
        return [[shot.index for shot in plan.shots]]
    per_shot = Counter(k.shot_index for k in plan.keyframes)
    chunks: list[list[int]] = []
    current: list[int] = []
    n = 0
    for shot in plan.shots:
        k = per_shot.get(shot.index, 0)
        if current and n + k > max(1, max_keyframes):
            chunks.append(current)
            current, n = [], 0
        current.append(shot.index)
        n += k
    if current:
        chunks.append(current)
    return chunks


def begin_ingest(
    path: Path,
    digest: str,
    settings: Settings,
    catalog: Catalog,
    *,
    force: bool = False,
    locked: bool = False,
    chunk_keyframes: int | None = None,
    staged: PlannedVideo | None = None,
    plan: bool = True,
    progress: Progress | None = None,
) -> Begun:
    """Skip, or check the catalog takes writes and plan: the decision every ingest path makes.

    ``locked``: the caller holds this content's lock (else it is taken for the skip lookup).
    ``staged``: a plan made earlier for this job, reused if the file is still the same.
    ``plan`` False: decide only; the caller plans (the in-process path plans and analyses in
    one decode pass, ``plan_and_analyse``).
    """
    if locked:
        skipped = skip_if_done(path, digest, settings, catalog, force=force)
    else:
        with content_lock(catalog, settings, digest):
            skipped = skip_if_done(path, digest, settings, catalog, force=force)
    if skipped is not None:
        return Begun(path, digest, skipped=skipped)
    catalog.check_writable()  # a read-only or full catalog fails before minutes of analysis
    if not plan:
        return Begun(path, digest)
    reused = staged is not None and staged.digest == digest and staged.path == path
    planned = staged if reused else plan_video(path, settings, progress, digest=digest)
    assert planned is not None
    return Begun(
        path, digest, planned=planned, chunks=chunk_shots(planned.plan, chunk_keyframes), reused_plan=reused
    )


# --- step 3: analysis of a range of shots ------------------------------------------------------


def analyse_shots(
    planned: PlannedVideo,
    settings: Settings,
    *,
    shot_indices: Sequence[int] | None = None,
    analyse: bool = True,
    analyser: Any | None = None,
    progress: Progress | None = None,
) -> ChunkResult:
    """Decode the keyframes of some shots (all by default), write thumbnails, run the models.

    ``analyser`` (video_inst.analysis.analyser.Analyser) defaults to the process's shared one. The
    result is plain data: no model or session travels with it.
    """
    wanted = set(range(len(planned.plan.shots))) if shot_indices is None else set(shot_indices)
    keyframes = [k for k in planned.plan.keyframes if k.shot_index in wanted]
    analysis = None
    if analyse:
        from video_inst.analysis.analyser import VideoAnalysis, get_analyser

        analysis = VideoAnalysis(analyser or get_analyser(settings), planned.plan)
    thumbs = settings.thumbnail_dir
    total = max(len(keyframes), 1)
    with writing_thumbnails(settings, planned.digest):
        decoded = decode_keyframes_ahead(  # decodes in a thread while the models run
            planned.path, keyframes, rotation=planned.info.rotation, threads=settings.decode_threads
        )
        for n, (keyframe, rgb) in enumerate(decoded):
            write_thumbnail(
                rgb,
                thumbs / thumbnail_relpath(planned.digest, keyframe.pts),
                settings.thumbnail_max_side,
                settings.thumbnail_quality,
            )
            if analysis is not None:
                analysis.add(keyframe, rgb)
            if progress:
                progress("keyframes", (n + 1) / total)
    if analysis is None:
        return ChunkResult(shot_indices=sorted(wanted), analysis=None)
    from video_inst.analysis.analyser import analysis_data

    analysis.finish()
    return ChunkResult(
        shot_indices=sorted(wanted), analysis=analysis_data(analysis), warnings=list(analysis.warnings)
    )


# --- steps 2 and 3 in one decode pass (the in-process path) ------------------------------------


def plan_and_analyse(
    path: Path,
    settings: Settings,
    progress: Progress | None = None,
    *,
    digest: str,
    analyse: bool = True,
    analyser: Any | None = None,
) -> tuple[PlannedVideo, ChunkResult]:
    """``plan_video`` then ``analyse_shots`` of every shot, with one decode pass instead of two.

    The plan pass hands its keyframes to thumbnails and the models while it decodes on
    (``analysis.analyser.analyse_while_planning``); same results as the two stages (tests). Should the
    streamed plan ever differ from the final one, the analysis is redone the two-pass way.
    """
    from video_inst.analysis.analyser import analyse_while_planning, get_analyser

    size = path.stat().st_size  # the path passed ``validate_path``; ``digest`` is its content hash
    if progress:
        progress("probe", 0.0)
    info = probe(path)
    thumbs = settings.thumbnail_dir

    def thumbnail(keyframe: Keyframe, rgb: Any) -> None:
        write_thumbnail(
            rgb,
            thumbs / thumbnail_relpath(digest, keyframe.pts),
            settings.thumbnail_max_side,
            settings.thumbnail_quality,
        )

    streamed = analyse_while_planning(
        path,
        info,
        ShotSettings.from_settings(settings),
        (lambda: analyser or get_analyser(settings)) if analyse else None,
        on_keyframe=thumbnail,
        progress=(lambda f: progress("shots", f)) if progress else None,
    )
    planned = PlannedVideo(path=path, size=size, digest=digest, info=info, plan=streamed.plan)
    if not streamed.agreed:
        return planned, analyse_shots(
            planned, settings, analyse=analyse, analyser=analyser, progress=progress
        )
    analysis = streamed.analysis
    if progress:
        progress("keyframes", 1.0)
    if analysis is None:
        return planned, ChunkResult(shot_indices=list(range(len(planned.plan.shots))), analysis=None)
    from video_inst.analysis.analyser import analysis_data

    return planned, ChunkResult(
        shot_indices=list(range(len(planned.plan.shots))),
        analysis=analysis_data(analysis),
        warnings=list(analysis.warnings),
    )


# --- step 4: commit ----------------------------------------------------------------------------


def commit_video(
    planned: PlannedVideo, chunks: Sequence[ChunkResult], settings: Settings, catalog: Catalog
) -> IngestResult:
    """Replace this content's rows with the new results in one transaction, then sync FAISS."""
    warnings = list(planned.plan.warnings)
    for chunk in chunks:
        warnings += [w for w in chunk.warnings if w not in warnings]
    analyses = [c.analysis for c in chunks if c.analysis is not None]
    with writing_thumbnails(settings, planned.digest):
        try:
            video_id, tracks, spaces = _store(planned, analyses, warnings, catalog, settings)
        except IntegrityError:
            # Another process inserted a row this transaction also inserts (the content's video row,
            # or a model space on first use) and committed first: a second attempt finds and reuses it.
            log.info("%s: concurrent insert, committing again", planned.path)
            video_id, tracks, spaces = _store(planned, analyses, warnings, catalog, settings)
        pause_point("after-commit")
        if spaces:
            from video_inst.vectors.store import get_index_store

            store = get_index_store(settings)
            for space_id, kind in sorted(spaces):
                store.sync(space_id, kind)
        if planned.digest:
            # Thumbnails of an earlier run killed before its commit (or made with other settings).
            collect_thumbnails(catalog, settings, [planned.digest[:16]], locked=True)
    watch: list[dict] = []
    if analyses:
        from video_inst.search.saved import watch_video

        try:
            watch, notes = watch_video(video_id, settings, catalog)
        except Exception as exc:  # noqa: BLE001 - the video is stored; a watch failure must not undo that
            log.warning("saved searches not checked for video %s", video_id, exc_info=True)
            notes = [f"saved searches not checked: {type(exc).__name__}: {exc}"]
        warnings += [n for n in notes if n not in warnings]
    return IngestResult(
        video_id=video_id,
        path=str(planned.path),
        status="done",
        shots=len(planned.plan.shots),
        keyframes=len(planned.plan.keyframes),
        tracks=tracks,
        warnings=warnings,
        watch=watch,
    )


def _store(
    planned: PlannedVideo, analyses: list[Any], warnings: list[str], catalog: Catalog, settings: Settings
) -> tuple[int, int, set[tuple[int, str]]]:
    """The one transaction of a commit: (video id, tracks stored, indexes to sync)."""
    tracks, spaces = 0, set()
    pause_point("before-commit")
    with catalog.session() as s:
        video = repo.upsert_video(
            s,
            path=str(planned.path),
            size=planned.size,
            content_hash=planned.digest,
            info=planned.info,
            status="done",
        )
        repo.clear_video_outputs(s, video_id=video.id)
        keyframe_rows = repo.store_shot_plan(s, video=video, plan=planned.plan)
        for keyframe in planned.plan.keyframes:
            keyframe_rows[keyframe.pts].thumbnail = thumbnail_relpath(planned.digest, keyframe.pts)
        if analyses:
            from video_inst.ingest.store import store_analysis_data

            tracks, spaces = store_analysis_data(
                s, analyses, video=video, keyframe_rows=keyframe_rows, settings=settings
            )
        video.warnings = warnings
        video_id = video.id
    return video_id, tracks, spaces


def repair_done_video(
    video_id: int, digest: str, path: Path, settings: Settings, catalog: Catalog
) -> list[str]:
    """What a skipped re-ingest restores: the video's vectors in FAISS, missing thumbnails, orphans.

    Returns notes for the result's warnings (empty when nothing needed repair). A thumbnail
    that cannot be re-decoded (the file changed since) is named, never fatal.
    """
    notes: list[str] = []
    with catalog.session() as s:
        spaces = repo.vector_spaces_of_video(s, video_id=video_id)
        video = s.get(Video, video_id)
        rotation = int(video.rotation or 0) if video is not None else 0
        rows = s.execute(
            select(KeyframeRow.pts, KeyframeRow.time_s, KeyframeRow.frame, KeyframeRow.thumbnail).where(
                KeyframeRow.video_id == video_id
            )
        ).all()
    if spaces:
        from video_inst.vectors.store import get_index_store

        store = get_index_store(settings)
        for space_id, kind in spaces:
            problem = store.repair_if_behind(space_id, kind)  # header vs SQL: no index is loaded
            if problem:
                notes.append(f"index repaired from the catalog ({problem})")
    thumbs = settings.thumbnail_dir
    missing = {int(r.pts): r.thumbnail for r in rows if r.thumbnail and not (thumbs / r.thumbnail).is_file()}
    if missing:
        wanted = [
            Keyframe(0, int(r.pts), float(r.time_s), int(r.frame)) for r in rows if int(r.pts) in missing
        ]
        try:
            for keyframe, rgb in decode_keyframes(
                path, wanted, rotation=rotation, threads=settings.decode_threads
            ):
                write_thumbnail(
                    rgb,
                    thumbs / missing[keyframe.pts],
                    settings.thumbnail_max_side,
                    settings.thumbnail_quality,
                )
            notes.append(f"{len(missing)} missing thumbnails restored")
        except (VideoInstError, OSError) as exc:
            notes.append(f"{len(missing)} thumbnails are missing and could not be restored: {exc}")
    if digest:
        collect_thumbnails(catalog, settings, [digest[:16]], locked=True)
    return notes


# --- step 5: failure ---------------------------------------------------------------------------


def record_failure(catalog: Catalog, path: Path, error: str) -> int | None:
    """Mark the video row failed with the reason; nothing else in the catalog changes.

    Content that an earlier run ingested fine keeps its rows and status.
    """
    if not path.is_file():
        # Nothing to identify: mark an existing row for this path, never invent one.
        with catalog.session() as s:
            rows = s.scalars(select(Video).where(Video.path == str(path))).all()
            for row in rows:
                row.status, row.error = "failed", error
            return rows[-1].id if rows else None
    size = path.stat().st_size
    digest = None
    if size:
        try:
            digest = content_hash(path)
        except OSError:
            digest = None
    with catalog.session() as s:
        existing = repo.video_by_hash(s, content_hash=digest) if digest else None
        if existing is not None and existing.status == "done":
            return existing.id
        return repo.record_failure(s, path=str(path), size=size, content_hash=digest, error=error).id


def fail_video(
    path: str | Path,
    error: str,
    settings: Settings,
    catalog: Catalog,
    *,
    required: bool = False,
    digest: str = "",
) -> int | None:
    """The failure step of every path: the video row records the reason; returns its id, if any.

    A path outside the media roots is never touched (not even hashed). Thumbnails this failed
    run wrote (``digest`` known) that no row names are removed; earlier rows keep theirs.
    """
    try:
        allowed = check_media_root(Path(path), settings, required=required)
    except OutsideMediaRootsError:
        return None
    if digest:
        collect_thumbnails(catalog, settings, [digest[:16]])
    return record_failure(catalog, allowed, error)


# --- in this process ---------------------------------------------------------------------------


def ingest_path(
    path: str | Path,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    force: bool = False,
    analyse: bool = True,
    require_media_root: bool = False,
    analyser: Any | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest one file in this process; never raises for bad media, the result says what went wrong.

    The steps of the module docstring, one chunk of all shots, the content lock held throughout.
    """
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    started = time.perf_counter()
    result = IngestResult(video_id=None, path=str(path), status="failed")
    digest = ""
    try:
        resolved, digest = identify(Path(path), settings, required=require_media_root)
        result.path = str(resolved)
        # One ingest of a given content at a time, across processes: a second one waits here,
        # then finds the first one's row and answers "skipped" (never a race on the insert).
        with content_lock(catalog, settings, digest):
            begun = begin_ingest(
                resolved, digest, settings, catalog, force=force, locked=True, plan=False, progress=progress
            )
            if begun.skipped is not None:
                result = begun.skipped
            else:
                if analyse and analyser is None:
                    from video_inst.analysis.analyser import prefetch_analyser

                    prefetch_analyser(settings)  # the models load while the plan pass decodes
                with writing_thumbnails(settings, digest):
                    planned, chunk = plan_and_analyse(
                        resolved, settings, progress, digest=digest, analyse=analyse, analyser=analyser
                    )
                if progress:
                    progress("commit", 0.0)
                result = commit_video(planned, [chunk], settings, catalog)
    except CatalogUnwritableError as exc:
        result.status, result.error = "failed", exc.message  # nothing can be recorded in the catalog
    except VideoInstError as exc:
        result.status = "failed"
        result.error = exc.message
        try:
            result.video_id = fail_video(
                path, exc.message, settings, catalog, required=require_media_root, digest=digest
            )
        except CatalogUnwritableError as unwritable:
            result.error = f"{exc.message}; {unwritable.message}"
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def delete_video(ref: str | int, *, settings: Settings | None = None, catalog: Catalog | None = None) -> int:
    """Delete a video, its thumbnails and its vectors; SQL and FAISS agree afterwards."""
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    with catalog.session() as s:
        video = repo.find_video(s, ref=ref)
        video_id, digest = video.id, video.content_hash
        spaces = repo.vector_spaces_of_video(s, video_id=video_id)
        repo.delete_video(s, video_id=video_id)
    if digest:
        shutil.rmtree(settings.thumbnail_dir / digest[:16], ignore_errors=True)
    if spaces:
        from video_inst.vectors.store import get_index_store

        store = get_index_store(settings)
        for space_id, kind in spaces:
            store.sync(space_id, kind)
    return video_id
