"""Thin Celery tasks over ``video_inst.jobs``: names, queues, retries; no logic of their own.

Public (stable names, JSON arguments and results; docs/WORKERS.md):

- ``video_inst.ingest(path, force=False, callback_url=None, job_id=None, analyse=True)``
  → ``{job_id, video_id, status, path, shots, keyframes, tracks, error, warnings}``
- ``video_inst.ingest_archive(root, pattern=None, force=False, callback_url=None, job_id=None,
  analyse=True)`` → ``{job_id, root, files, enqueued, skipped, failed, pending}``
- ``video_inst.ping()`` → ``"pong"`` (queue round trips)

Internal: ``video_inst.ingest_chunk``, ``video_inst.ingest_commit``, ``video_inst.job_failed``,
``video_inst.notify``. ``video_inst.ingest`` replaces itself with a chord
(chunks → commit), so its result is the commit's result.

Example::

    from workers.tasks import ingest
    ingest.delay("/media/a.mp4").get()
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, chord
from celery.signals import task_failure

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.config import Settings, get_settings
from video_inst.errors import MediaError
from video_inst.jobs import archive, callback, pipeline, state
from workers.app import app, queue_name

log = logging.getLogger(__name__)


def _context() -> tuple[Settings, Catalog]:
    settings = get_settings()
    return settings, get_catalog(settings)


def _notify_later(job_ids: list[str], settings: Settings) -> None:
    for job_id in job_ids:
        notify.apply_async(args=[job_id], queue=queue_name(settings, "ingest"))


def _retry_or_fail(
    task: Task, exc: Exception, job_id: str, path: str | None, settings: Settings, catalog: Catalog
) -> dict[str, Any]:
    """Transient: retry with exponential backoff. Permanent, or out of retries: fail the job now."""
    retries = task.request.retries
    reason = pipeline.describe(exc, settings)
    if pipeline.is_transient(exc):
        if retries < settings.task_max_retries:
            log.warning("job %s: transient error, retry %d: %s", job_id, retries + 1, reason)
            raise task.retry(
                exc=exc,
                countdown=pipeline.backoff_s(retries, settings),
                max_retries=settings.task_max_retries,
            )
        reason = f"gave up after {retries} retries: {reason}"
    finished = pipeline.fail_ingest(job_id, reason, settings=settings, catalog=catalog, path=path)
    _notify_later(finished.notify, settings)
    return finished.result


@app.task(name="video_inst.ingest", bind=True)
def ingest(
    self: Task,
    path: str,
    force: bool = False,
    callback_url: str | None = None,
    job_id: str | None = None,
    analyse: bool = True,
) -> dict[str, Any]:
    settings, catalog = _context()
    job_id = job_id or self.request.id
    try:
        n = pipeline.count_delivery(catalog, job_id, f"plan.r{self.request.retries}")
        if n > pipeline.MAX_DELIVERIES:
            raise MediaError(f"{path}: its worker was lost {n - 1} times while planning (crash?)")
        started = pipeline.start_ingest(
            job_id,
            path,
            settings=settings,
            catalog=catalog,
            force=force,
            analyse=analyse,
            callback_url=callback_url,
            task_id=self.request.id,
        )
    except Exception as exc:  # noqa: BLE001 - classified in _retry_or_fail
        return _retry_or_fail(self, exc, job_id, path, settings, catalog)
    if started.result is not None:
        _notify_later(started.notify, settings)
        return started.result
    chunk_queue = queue_name(settings, "analyse" if analyse else "ingest")
    commit = ingest_commit.s(job_id).set(queue=queue_name(settings, "index"))
    commit.link_error(job_failed.s(job_id=job_id))
    header = [
        ingest_chunk.si(job_id, i, shots, analyse).set(queue=chunk_queue)
        for i, shots in enumerate(started.chunks)
    ]
    if not header:
        return self.replace(ingest_commit.si([], job_id).set(queue=queue_name(settings, "index")))
    return self.replace(chord(header, commit))


@app.task(name="video_inst.ingest_chunk", bind=True)
def ingest_chunk(
    self: Task, job_id: str, index: int, shot_indices: list[int], analyse: bool = True
) -> dict[str, Any]:
    """Never raises (but for retries): a permanent error fails the job at once and is returned."""
    settings, catalog = _context()
    try:
        n = pipeline.count_delivery(catalog, job_id, f"chunk{index}.r{self.request.retries}")
        if n > pipeline.MAX_DELIVERIES:
            raise MediaError(f"chunk {index}: its worker was lost {n - 1} times while analysing it (crash?)")
        return pipeline.run_chunk(
            job_id, index, shot_indices, settings=settings, catalog=catalog, analyse=analyse
        )
    except Exception as exc:  # noqa: BLE001
        if pipeline.is_transient(exc) and self.request.retries < settings.task_max_retries:
            raise self.retry(
                exc=exc,
                countdown=pipeline.backoff_s(self.request.retries, settings),
                max_retries=settings.task_max_retries,
            ) from None
        reason = pipeline.describe(exc, settings)
        job = state.get_job(catalog, job_id)
        finished = pipeline.fail_ingest(  # at once: the other chunks of this job stop early
            job_id, reason, settings=settings, catalog=catalog, path=job["path"] if job else None
        )
        _notify_later(finished.notify, settings)
        return {"chunk": index, "error": reason}


@app.task(name="video_inst.ingest_commit", bind=True)
def ingest_commit(self: Task, chunk_results: list[dict[str, Any]], job_id: str) -> dict[str, Any]:
    settings, catalog = _context()
    try:
        finished = pipeline.finish_ingest(job_id, chunk_results, settings=settings, catalog=catalog)
    except Exception as exc:  # noqa: BLE001
        job = state.get_job(catalog, job_id)
        return _retry_or_fail(self, exc, job_id, job["path"] if job else None, settings, catalog)
    _notify_later(finished.notify, settings)
    return finished.result


@app.task(name="video_inst.job_failed")
def job_failed(request: Any, exc: BaseException, traceback: Any, job_id: str | None = None) -> None:
    """Errback of a chord whose chunk task itself failed (e.g. killed by the hard time limit)."""
    if not job_id:
        return
    settings, catalog = _context()
    job = state.get_job(catalog, job_id)
    finished = pipeline.fail_ingest(
        job_id, pipeline.describe(exc, settings), settings=settings, catalog=catalog, path=job and job["path"]
    )
    _notify_later(finished.notify, settings)


@app.task(name="video_inst.ingest_archive", bind=True)
def ingest_archive(
    self: Task,
    root: str,
    pattern: str | None = None,
    force: bool = False,
    callback_url: str | None = None,
    job_id: str | None = None,
    analyse: bool = True,
) -> dict[str, Any]:
    """Walk, skip what is done, enqueue the rest; the archive job ends when its files do."""
    settings, catalog = _context()
    run = archive.run_archive(
        root,
        pattern=pattern,
        force=force,
        analyse=analyse,
        callback_url=callback_url,
        job_id=job_id or self.request.id,
        settings=settings,
        catalog=catalog,
        sender=app,
        notify=lambda due: _notify_later([due], settings),
    )
    return run.summary()


@app.task(name="video_inst.notify")
def notify(job_id: str) -> str:
    settings, catalog = _context()
    return callback.notify(catalog, settings, job_id)


@app.task(name="video_inst.ping")
def ping() -> str:
    return "pong"


def _job_of(name: str, task_id: str | None, args: tuple, kwargs: dict) -> str | None:
    """The job a failed task worked for, from its arguments."""
    if name in ("video_inst.ingest", "video_inst.ingest_archive"):
        return kwargs.get("job_id") or (args[4] if len(args) > 4 else None) or task_id
    if name == "video_inst.ingest_chunk":
        return kwargs.get("job_id") or (args[0] if args else None)
    if name == "video_inst.ingest_commit":
        return kwargs.get("job_id") or (args[1] if len(args) > 1 else None)
    return None


@task_failure.connect
def _fail_job_of_failed_task(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: tuple | None = None,
    kwargs: dict | None = None,
    **_: Any,
) -> None:
    """A task that failed outright (hard time limit, an error escaping it) must not leave its job running."""
    name = getattr(sender, "name", "") or ""
    job_id = _job_of(name, task_id, tuple(args or ()), dict(kwargs or {}))
    if not job_id:
        return
    settings, catalog = _context()
    job = state.get_job(catalog, job_id)
    if job is None or job["status"] in state.TERMINAL:
        return
    reason = pipeline.describe(exception, settings) if exception else f"{name} failed"
    if job["kind"] == "archive":
        state.end_job(catalog, job_id, status="failed", error=reason)
        return
    finished = pipeline.fail_ingest(job_id, reason, settings=settings, catalog=catalog, path=job["path"])
    _notify_later(finished.notify, settings)
