"""Bulk ingestion of a folder tree: walk, skip content already ingested, queue the rest, report.

An archive is a job (kind ``archive``) whose children are one ingest job per file. The
walk is idempotent, so an interrupted run resumes when run again: content already in the
catalog is skipped (by content hash), files whose job is still queued or running are left
to it, failed ones are tried again. Files that cannot be read are reported at once with
the reason: a dangling symbolic link, a FIFO or other non-regular file, permission denied,
a symlink leading outside the media roots. The archive job ends when its last file does.

Example::

    run = run_archive("/media/archive", pattern="*.mov")
    report = wait_archive(run.job_id)     # {"ingested": 10, "skipped": 3, "failed": 1, ...}
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.config import Settings, get_settings
from video_inst.errors import MissingFileError, OutsideMediaRootsError, TransientError, VideoInstError
from video_inst.ingest.pipeline import file_kind
from video_inst.jobs import pipeline, state
from video_inst.jobs.results import report_of

VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".mxf",
        ".mts",
        ".m2ts",
        ".ts",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".vob",
        ".wmv",
        ".asf",
        ".flv",
        ".3gp",
        ".3g2",
        ".ogv",
        ".dv",
        ".gif",
        ".y4m",
        ".hevc",
        ".h264",
        ".264",
        ".ivf",
    }
)

Progress = Callable[[dict[str, int]], None]


@dataclass
class ArchiveRun:
    """What one walk did (the archive job in the catalog has the rest)."""

    job_id: str
    root: str
    files: int = 0
    enqueued: list[str] = field(default_factory=list)  # child job ids queued by this walk
    skipped: list[str] = field(default_factory=list)  # paths whose content was already ingested
    failed: list[dict[str, str]] = field(default_factory=list)  # {path, error} found by the walk
    pending: list[str] = field(default_factory=list)  # paths left to a job already queued/running
    resumed: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "root": self.root,
            "files": self.files,
            "enqueued": len(self.enqueued),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "pending": len(self.pending),
            "resumed": self.resumed,
        }

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.summary().items() if isinstance(v, int) and not isinstance(v, bool)}


def matches(rel: str, pattern: str | None) -> bool:
    """Video suffixes by default; a glob on the name, or on the relative path if it has a '/'."""
    name = rel.rsplit("/", 1)[-1]
    if pattern is None:
        return Path(name).suffix.lower() in VIDEO_SUFFIXES
    return fnmatch.fnmatch(rel if "/" in pattern else name, pattern)


def walk(root: Path, pattern: str | None, errors: list[dict[str, str]] | None = None) -> Iterator[Path]:
    """Matching entries under ``root`` in a stable order; symlinked folders are not followed."""

    def on_error(exc: OSError) -> None:
        if errors is not None:
            errors.append(
                {"path": str(exc.filename), "error": f"{exc.filename}: folder unreadable ({exc.strerror})"}
            )

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if matches(path.relative_to(root).as_posix(), pattern):
                yield path


def problem_of(path: Path) -> str | None:
    """Why this entry cannot be ingested, found without opening it (a FIFO would block)."""
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            try:
                st = path.stat()
            except FileNotFoundError:
                return f"{path}: dangling symbolic link (target {os.readlink(path)} does not exist)"
    except OSError as exc:
        return f"{path}: unreadable ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file ({file_kind(st.st_mode)})"  # the words of ingest.validate_path
    if not os.access(path, os.R_OK):
        return f"{path}: unreadable (permission denied)"
    return None


def _stale(job: dict[str, Any], settings: Settings) -> bool:
    created = datetime.fromisoformat(job["created_at"]) if job["created_at"] else None
    if created is None:
        return True
    return (datetime.now(timezone.utc) - created).total_seconds() > settings.job_stale_after_s


def run_archive(
    root: str | Path,
    *,
    pattern: str | None = None,
    force: bool = False,
    analyse: bool = True,
    callback_url: str | None = None,
    job_id: str | None = None,
    in_process: bool = False,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    sender: Any = None,
    notify: Callable[[str], Any] | None = None,
    progress: Progress | None = None,
) -> ArchiveRun:
    """Walk ``root`` and queue (or, ``in_process``, run) an ingest job per file not yet done.

    Re-running after an interruption resumes the unfinished archive job of the same root
    and pattern. ``sender``: the Celery app to queue with (default: a client app).
    """
    from video_inst.ingest.pipeline import check_media_root, find_existing
    from video_inst.jobs.callback import notify as send_callback
    from video_inst.jobs.enqueue import send_ingest
    from video_inst.media.hashing import content_hash

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    notify = notify or (lambda due: send_callback(catalog, settings, due))
    top = check_media_root(Path(root), settings, required=True)
    if not top.is_dir():
        raise MissingFileError(f"{root}: not a folder")
    resumed = False
    if job_id is None:
        open_job = state.latest_open_archive(catalog, root=str(top), pattern=pattern)
        job_id, resumed = (open_job["job_id"], True) if open_job else (None, False)
    if job_id is None:
        job_id = state.create_job(catalog, kind="archive", path=str(top), callback_url=callback_url)
    else:
        state.ensure_job(catalog, job_id=job_id, kind="archive", path=str(top), callback_url=callback_url)
    state.merge_counts(
        catalog, job_id, {"pattern": pattern, "analyse": analyse, "force": force, "walk_done": False}
    )
    state.mark_running(catalog, job_id)
    run = ArchiveRun(job_id=job_id, root=str(top), resumed=resumed)

    def fail(child: dict[str, Any] | None, path: Path, error: str, allowed: bool = True) -> None:
        child_id = child["job_id"] if child else None
        if child_id:
            state.reopen_job(catalog, child_id)
        else:
            child_id = state.create_job(catalog, kind="ingest", path=str(path), parent_id=job_id)
        pipeline.fail_ingest(
            child_id, error, settings=settings, catalog=catalog, path=path if allowed else None
        )
        run.failed.append({"path": str(path), "error": error})

    walk_errors: list[dict[str, str]] = []
    for path in walk(top, pattern, walk_errors):
        run.files += 1
        if progress:
            progress(run.counts())
        child = state.child_for_path(catalog, parent_id=job_id, path=str(path))
        if child and child["status"] == "done":
            continue  # done earlier in this archive (an interrupted run)
        if child and child["status"] in state.ACTIVE and not (in_process or _stale(child, settings)):
            run.pending.append(str(path))
            continue
        problem = problem_of(path)
        if problem:
            fail(child, path, problem)
            continue
        try:
            check_media_root(path, settings, required=True)
        except OutsideMediaRootsError as exc:  # a symlink leading out of the roots
            fail(child, path, exc.message, allowed=False)
            continue
        try:
            digest = content_hash(path)
        except (OSError, VideoInstError) as exc:
            fail(child, path, pipeline.describe(exc, settings))
            continue
        if not force and digest and find_existing(catalog, digest)[1] == "done":
            run.skipped.append(str(path))
            continue
        other = state.active_job_for_path(catalog, path=str(path))
        if (
            other
            and other["job_id"] != (child or {}).get("job_id")
            and not (in_process or _stale(other, settings))
        ):
            run.pending.append(str(path))
            continue
        if child:
            child_id = child["job_id"]
            state.reopen_job(catalog, child_id, task_id=child_id)
        else:
            child_id = state.create_job(
                catalog,
                kind="ingest",
                path=str(path),
                parent_id=job_id,
                counts={"analyse": analyse, "force": force},
            )
        run.enqueued.append(child_id)
        if in_process:
            pipeline.ingest_in_process(
                child_id,
                path,
                settings=settings,
                catalog=catalog,
                force=force,
                analyse=analyse,
                notify=notify,
            )
        else:
            try:
                send_ingest(child_id, path, settings=settings, force=force, analyse=analyse, app=sender)
            except TransientError as exc:
                state.end_job(catalog, child_id, status="failed", error=exc.message)
                raise
    for problem in walk_errors:
        fail(None, Path(problem["path"]), problem["error"], allowed=False)
    if progress:
        progress(run.counts())
    state.merge_counts(
        catalog,
        job_id,
        {"files": run.files, "skipped": len(run.skipped), "walk_failed": len(run.failed), "walk_done": True},
    )
    if state.maybe_finish_parent(catalog, job_id) and state.require_job(catalog, job_id)["callback_url"]:
        notify(job_id)
    return run


def wait_archive(
    job_id: str,
    *,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Poll until the archive job ends; ``progress(files ended, files queued)`` on each poll."""
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job = state.require_job(catalog, job_id)
        if job["status"] not in state.TERMINAL and job["counts"].get("walk_done"):
            state.maybe_finish_parent(catalog, job_id)  # children that ended before the walk did
        by_status = state.status_counts(catalog, parent_id=job_id)
        if progress:
            progress(by_status.get("done", 0) + by_status.get("failed", 0), sum(by_status.values()))
        if job["status"] in state.TERMINAL:
            return report_of(catalog, job_id)
        if deadline is not None and time.monotonic() > deadline:
            raise TransientError(f"archive job {job_id} still running after {timeout_s:.0f} s")
        time.sleep(poll_s)
