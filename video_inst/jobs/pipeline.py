"""One video as a job in three steps that workers can spread out, and the same in-process.

``start_ingest`` (queue ``ingest``): check the media roots, hash, skip content already
done, plan shots, stage the plan and cut it into chunks of whole shots.
``run_chunk`` (queue ``analyse``, or ``ingest`` without analysis): decode, thumbnail
and analyse one chunk's keyframes, stage the result.
``finish_ingest`` (queue ``index``): every chunk of the video in ONE transaction
(``ingest.pipeline.commit_video`` replaces the video's outputs) and the FAISS sync.

Each step can run twice (a re-delivered task) without harm: staged files are reused,
the commit replaces rather than adds, and a job that has ended stays ended. Errors
either are transient (retried by the task with backoff) or fail the job at once with
the reason in its row (:func:`is_transient`).

Example::

    job_id = state.create_job(catalog, kind="ingest", path=str(path))
    result = ingest_in_process(job_id, path, settings=settings, catalog=catalog, analyse=False)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

from video_inst.catalog.db import Catalog
from video_inst.catalog.locks import content_lock
from video_inst.config import Settings
from video_inst.errors import VideoInstError
from video_inst.ingest.pipeline import chunk_shots  # noqa: F401 - re-exported: one chunking rule, in ingest
from video_inst.jobs import staging, state
from video_inst.jobs.results import result_of

log = logging.getLogger(__name__)

MAX_DELIVERIES = 3  # a step whose worker keeps dying (a crashing decoder) fails after this many
PLAN_DONE = 0.1  # progress once the plan is staged; chunks fill the rest up to CHUNKS_DONE
CHUNKS_DONE = 0.9

_TRANSIENT_ERRNOS = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.EINTR,
    errno.EIO,
    errno.ENOSPC,
    errno.ESTALE,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}


@dataclass
class Started:
    """What ``start_ingest`` decided: either a final result, or the chunks to analyse."""

    job_id: str
    result: dict[str, Any] | None = None
    chunks: list[list[int]] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)


@dataclass
class Finished:
    """A final result and the jobs whose callbacks are now due."""

    result: dict[str, Any]
    notify: list[str] = field(default_factory=list)


# --- errors ------------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Can a retry help? Named errors say so themselves; database and I/O hiccups can."""
    if isinstance(exc, VideoInstError):
        return not exc.permanent
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.IntegrityError)):
        return True  # server gone, lock timeout, or a concurrent insert of the same content
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return False


def describe(exc: BaseException, settings: Settings | None = None) -> str:
    """The reason stored in the job row: a named error's message, else the exception."""
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        limit = f" of {settings.task_soft_time_limit_s} s" if settings else ""
        return f"stopped by the soft time limit{limit} (VIDEO_INST_TASK_SOFT_TIME_LIMIT_S)"
    if type(exc).__name__ == "TimeLimitExceeded":
        limit = f" of {settings.task_time_limit_s} s" if settings else ""
        return f"killed by the hard time limit{limit} (VIDEO_INST_TASK_TIME_LIMIT_S)"
    if isinstance(exc, VideoInstError):
        return exc.message
    if isinstance(exc, PermissionError):
        return f"{exc.filename or ''}: unreadable ({exc.strerror})".strip()
    return f"{type(exc).__name__}: {exc}"


def backoff_s(retries: int, settings: Settings) -> float:
    """Exponential backoff: 2, 4, 8 ... seconds, capped."""
    return float(min(settings.retry_backoff_s * (2**retries), settings.retry_backoff_max_s))


# --- helpers -----------------------------------------------------------------------------


def count_delivery(catalog: Catalog, job_id: str, step: str) -> int:
    """How many times this step (of this retry) has been delivered, this time included.

    Late acknowledgement re-delivers a task whose worker died; a task that kills its
    worker every time must not loop forever.
    """
    return max(state.bump(catalog, job_id, "deliveries", step), 1)


def _after_end(catalog: Catalog, job_id: str) -> list[str]:
    """Callbacks due now that this job ended: its own, and its archive's if that ended too."""
    job = state.require_job(catalog, job_id)
    due = [job_id] if job["callback_url"] else []
    parent_id = job["parent_id"]
    if parent_id and state.maybe_finish_parent(catalog, parent_id):
        parent = state.require_job(catalog, parent_id)
        if parent["callback_url"]:
            due.append(parent_id)
    return due


def fail_ingest(
    job_id: str, error: str, *, settings: Settings, catalog: Catalog, path: str | Path | None = None
) -> Finished:
    """Fail the job with the reason; the video row records it too (``ingest.pipeline.fail_video``)."""
    from video_inst.ingest.pipeline import fail_video

    video_id = None
    if path is not None:
        digest = ""
        plan_file = staging.plan_path(settings, job_id)
        if plan_file.exists():  # thumbnails its chunks wrote that no row names are removed
            with contextlib.suppress(Exception):
                digest = staging.load_plan(plan_file).digest
        video_id = fail_video(path, error, settings, catalog, required=True, digest=digest)
    staging.remove(settings, job_id)
    notify: list[str] = []
    if state.end_job(catalog, job_id, status="failed", error=error, video_id=video_id):
        notify = _after_end(catalog, job_id)
    return Finished(result_of(state.require_job(catalog, job_id)), notify)


# --- step 1: plan ------------------------------------------------------------------------


def start_ingest(
    job_id: str,
    path: str | Path,
    *,
    settings: Settings,
    catalog: Catalog,
    force: bool = False,
    analyse: bool = True,
    callback_url: str | None = None,
    task_id: str | None = None,
) -> Started:
    """``ingest.pipeline``'s identify + begin_ingest; stage the plan. Raises (the caller retries or fails)."""
    from video_inst.ingest.pipeline import begin_ingest, identify

    job = state.ensure_job(catalog, job_id=job_id, kind="ingest", path=str(path), callback_url=callback_url)
    if job["status"] in state.TERMINAL:  # a re-delivered task of a job that has ended
        return Started(job_id, result=result_of(job))
    state.mark_running(catalog, job_id, task_id=task_id)
    resolved, digest = identify(Path(path), settings, required=True)
    plan_file = staging.plan_path(settings, job_id)
    staged = staging.load_plan(plan_file) if plan_file.exists() else None
    begun = begin_ingest(
        resolved,
        digest,
        settings,
        catalog,
        force=force,
        chunk_keyframes=settings.chunk_keyframes,
        staged=staged,
    )
    if begun.skipped is not None:
        result, notify = _end_skipped(catalog, job_id, begun.skipped)
        return Started(job_id, result=result, notify=notify)
    planned = begun.planned
    assert planned is not None
    if not begun.reused_plan:
        if staged is not None:  # the file changed since: chunks staged from the old plan must go too
            staging.remove(settings, job_id)
        staging.save(plan_file, planned)
    chunks = begun.chunks
    done = staging.chunks_done(settings, job_id)
    state.set_progress(
        catalog,
        job_id,
        PLAN_DONE + (CHUNKS_DONE - PLAN_DONE) * done / max(len(chunks), 1),
        {
            "shots": len(planned.plan.shots),
            "keyframes": len(planned.plan.keyframes),
            "chunks": len(chunks),
            "chunks_done": done,
            "analyse": analyse,
            "duration_s": planned.info.duration_s,
        },
    )
    return Started(job_id, chunks=chunks)


# --- step 2: chunks ----------------------------------------------------------------------


def run_chunk(
    job_id: str,
    index: int,
    shot_indices: Sequence[int],
    *,
    settings: Settings,
    catalog: Catalog,
    analyse: bool = True,
) -> dict[str, Any]:
    """Analyse one chunk and stage it; a chunk staged before (re-delivery) is reused."""
    from video_inst.ingest.pipeline import analyse_shots

    out = staging.chunk_path(settings, job_id, index)
    job = state.get_job(catalog, job_id)
    if job is None or job["status"] in state.TERMINAL:
        return {"chunk": index, "error": None, "skipped": True}
    if not out.exists():
        planned = staging.load_plan(staging.plan_path(settings, job_id))
        if settings.chunk_delay_s > 0:
            time.sleep(settings.chunk_delay_s)
        chunk = analyse_shots(planned, settings, shot_indices=list(shot_indices), analyse=analyse)
        staging.save(out, chunk)  # plain data as JSON: the models stay in this process
    total = max(int(job["counts"].get("chunks", 1)), 1)
    done = staging.chunks_done(settings, job_id)
    state.set_progress(
        catalog,
        job_id,
        PLAN_DONE + (CHUNKS_DONE - PLAN_DONE) * min(done, total) / total,
        {"chunks_done": done},
    )
    return {"chunk": index, "error": None}


def _end_skipped(catalog: Catalog, job_id: str, skipped: Any) -> tuple[dict[str, Any], list[str]]:
    """End a job whose content is already stored: its counts are the stored video's."""
    counts: dict[str, Any] = {
        "outcome": "skipped",
        "shots": skipped.shots,
        "keyframes": skipped.keyframes,
        "tracks": skipped.tracks,
    }
    if skipped.warnings:
        counts["warnings"] = skipped.warnings
    notify: list[str] = []
    if state.end_job(catalog, job_id, status="done", video_id=skipped.video_id, counts=counts):
        notify = _after_end(catalog, job_id)
    return result_of(state.require_job(catalog, job_id)), notify


def _forced(job: dict[str, Any]) -> bool:
    """Whether the job was queued with ``force`` (kept in its counts from the enqueue on)."""
    return bool((job.get("counts") or {}).get("force"))


# --- step 3: commit ----------------------------------------------------------------------


def finish_ingest(
    job_id: str, chunk_results: Sequence[dict[str, Any] | None], *, settings: Settings, catalog: Catalog
) -> Finished:
    """Commit every chunk of the video in one transaction, or fail the job with a chunk's error."""
    from video_inst.ingest.pipeline import commit_video, skip_if_done

    job = state.require_job(catalog, job_id)
    if job["status"] in state.TERMINAL:
        return Finished(result_of(job))
    errors = [r["error"] for r in chunk_results if isinstance(r, dict) and r.get("error")]
    if errors:
        return fail_ingest(job_id, errors[0], settings=settings, catalog=catalog, path=job["path"])
    planned = staging.load_plan(staging.plan_path(settings, job_id))
    chunks = [
        staging.load_chunk(staging.chunk_path(settings, job_id, i)) for i in range(job["counts"]["chunks"])
    ]
    state.set_progress(catalog, job_id, CHUNKS_DONE, {"chunks_done": len(chunks)})
    with content_lock(catalog, settings, planned.digest):
        job = state.require_job(catalog, job_id)
        if job["status"] in state.TERMINAL:  # a duplicate commit finished while we waited
            return Finished(result_of(job))
        # The skip rule of every path, again under the lock: another job of the same content
        # may have committed while this one analysed (two queued at once); it stays, this ends
        # "skipped" like the CLI's second ingest does, unless this job was forced.
        skipped = skip_if_done(Path(job["path"]), planned.digest, settings, catalog, force=_forced(job))
        if skipped is not None:
            done, notify = _end_skipped(catalog, job_id, skipped)
            staging.remove(settings, job_id)
            return Finished(done, notify)
        result = commit_video(planned, chunks, settings, catalog)
        counts = {
            "outcome": "done",
            "tracks": result.tracks,
            "warnings": result.warnings,
            "watch": result.watch,
        }
        ended = state.end_job(catalog, job_id, status="done", video_id=result.video_id, counts=counts)
    staging.remove(settings, job_id)
    notify = _after_end(catalog, job_id) if ended else []
    return Finished(result_of(state.require_job(catalog, job_id)), notify)


# --- all three in this process -----------------------------------------------------------


def ingest_in_process(
    job_id: str,
    path: str | Path,
    *,
    settings: Settings,
    catalog: Catalog,
    force: bool = False,
    analyse: bool = True,
    callback_url: str | None = None,
    notify: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run a job's steps here, one after the other (one-shot CLI runs, tests, benchmarks).

    Transient errors are not retried here: the job fails with the reason and can be run again.
    """
    from video_inst.jobs.callback import notify as send_callback

    def fail(exc: BaseException) -> Finished:
        return fail_ingest(job_id, describe(exc, settings), settings=settings, catalog=catalog, path=path)

    try:
        started = start_ingest(
            job_id,
            path,
            settings=settings,
            catalog=catalog,
            force=force,
            analyse=analyse,
            callback_url=callback_url,
        )
    except Exception as exc:  # noqa: BLE001 - every failure ends the job with its reason
        finished = fail(exc)
    else:
        if started.result is not None:
            finished = Finished(started.result, started.notify)
        else:
            results = []
            for i, shots in enumerate(started.chunks):
                try:
                    results.append(
                        run_chunk(job_id, i, shots, settings=settings, catalog=catalog, analyse=analyse)
                    )
                except Exception as exc:  # noqa: BLE001
                    results.append({"chunk": i, "error": describe(exc, settings)})
                    break
            try:
                finished = finish_ingest(job_id, results, settings=settings, catalog=catalog)
            except Exception as exc:  # noqa: BLE001
                finished = fail(exc)
    for due in finished.notify:
        (notify or (lambda j: send_callback(catalog, settings, j)))(due)
    return finished.result
