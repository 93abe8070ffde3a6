"""Job rows of the catalog (ingest, archive and re-index jobs): the one data-access layer for them.

queued → running → done | failed, progress that never goes back. ``jobs.state`` (the jobs
layer's name for these functions) and ``reindex`` both read and write job rows here only.

Every change locks the row first (``FOR UPDATE`` on PostgreSQL, a write statement first on
SQLite), so chunk workers finishing together, a re-delivered task and the archive walker
can all update one job without losing each other's writes, and exactly one of them sees a
job (or an archive) end: that one sends the callback.

Example::

    job_id = create_job(catalog, kind="ingest", path="/media/a.mp4")
    mark_running(catalog, job_id)
    set_progress(catalog, job_id, 0.5, {"chunks_done": 2})
    if end_job(catalog, job_id, status="done", video_id=7):
        ...  # this caller ended it: notify
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import Job
from video_inst.errors import NotFoundError

TERMINAL = ("done", "failed")
ACTIVE = ("queued", "running")


def new_job_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def job_json(job: Job) -> dict[str, Any]:
    """The public shape of a job (CLI ``jobs --json``, callback bodies)."""
    return {
        "job_id": job.id,
        "kind": job.kind,
        "status": job.status,
        "path": job.path,
        "video_id": job.video_id,
        "parent_id": job.parent_id,
        "progress": round(float(job.progress or 0.0), 4),
        "counts": dict(job.counts or {}),
        "error": job.error,
        "callback_url": job.callback_url,
        "task_id": job.task_id,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def _locked(session: Session, job_id: str) -> Job | None:
    """The job row, locked for this transaction so read-modify-write cannot lose an update."""
    if session.get_bind().dialect.name == "sqlite":
        # A write first takes SQLite's write lock before anything is read.
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(kind=Job.kind)
            .execution_options(synchronize_session=False)
        )
    return session.scalars(
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    ).first()


def create_job(
    catalog: Catalog,
    *,
    kind: str,
    path: str | None = None,
    job_id: str | None = None,
    parent_id: str | None = None,
    callback_url: str | None = None,
    counts: dict[str, Any] | None = None,
    owned: bool = False,
) -> str:
    """A queued job; ``owned``: run by this process (not a worker), see :func:`fail_dead_jobs`."""
    job_id = job_id or new_job_id()
    counts = dict(counts or {})
    if owned:
        counts["owner"] = owner_here()
    with catalog.session() as s:
        s.add(
            Job(
                id=job_id,
                kind=kind,
                path=path,
                status="queued",
                parent_id=parent_id,
                callback_url=callback_url,
                counts=counts,
                progress=0.0,
                created_at=_now(),
            )
        )
    return job_id


def ensure_job(
    catalog: Catalog, *, job_id: str, kind: str, path: str | None, callback_url: str | None = None
) -> dict[str, Any]:
    """The job row, created when a task arrives without one (sent by name from another tool)."""
    existing = get_job(catalog, job_id)
    if existing is not None:
        if callback_url and not existing["callback_url"]:
            with catalog.session() as s:
                job = _locked(s, job_id)
                if job is not None:
                    job.callback_url = callback_url
            existing["callback_url"] = callback_url
        return existing
    with suppress(IntegrityError):  # another delivery of the same task created it a moment ago
        create_job(catalog, kind=kind, path=path, job_id=job_id, callback_url=callback_url)
    job = get_job(catalog, job_id)
    assert job is not None
    return job


def get_job(catalog: Catalog, job_id: str) -> dict[str, Any] | None:
    with catalog.session() as s:
        job = s.get(Job, job_id)
        return job_json(job) if job is not None else None


def require_job(catalog: Catalog, job_id: str) -> dict[str, Any]:
    job = get_job(catalog, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r} in the catalog")
    return job


def mark_running(catalog: Catalog, job_id: str, *, task_id: str | None = None) -> bool:
    """queued → running (started_at set once); False when the job has already ended."""
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is None or job.status in TERMINAL:
            return False
        job.status = "running"
        if job.started_at is None:
            job.started_at = _now()
        if task_id:
            job.task_id = task_id
        return True


def set_progress(
    catalog: Catalog, job_id: str, progress: float, counts: dict[str, Any] | None = None
) -> bool:
    """Raise a running job's progress (never lower it) and merge counts; False if nothing changed."""
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is None or job.status in TERMINAL or progress < float(job.progress or 0.0):
            return False
        job.progress = min(max(progress, 0.0), 1.0)
        if counts:
            job.counts = {**(job.counts or {}), **counts}
        return True


def end_job(
    catalog: Catalog,
    job_id: str,
    *,
    status: str,
    error: str | None = None,
    video_id: int | None = None,
    counts: dict[str, Any] | None = None,
) -> bool:
    """running → done | failed. True only for the one caller that ended it (it notifies)."""
    assert status in TERMINAL
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is None or job.status in TERMINAL:
            return False
        job.status = status
        job.error = error
        if video_id is not None:
            job.video_id = video_id
        if status == "done":
            job.progress = 1.0
        job.finished_at = _now()
        if job.started_at is None:
            job.started_at = job.finished_at
        if counts:
            job.counts = {**(job.counts or {}), **counts}
        return True


def merge_counts(catalog: Catalog, job_id: str, counts: dict[str, Any]) -> None:
    """Add facts to a job whatever its status (e.g. how its callback went)."""
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is not None:
            job.counts = {**(job.counts or {}), **counts}


def bump(catalog: Catalog, job_id: str, group: str, key: str) -> int:
    """Add one to ``counts[group][key]`` atomically; returns the new value (0: no such job)."""
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is None:
            return 0
        counts = dict(job.counts or {})
        bucket = dict(counts.get(group, {}))
        bucket[key] = int(bucket.get(key, 0)) + 1
        counts[group] = bucket
        job.counts = counts
        return bucket[key]


def reopen_job(catalog: Catalog, job_id: str, *, task_id: str | None = None) -> None:
    """A failed or stale job goes back to queued for another attempt under the same id."""
    with catalog.session() as s:
        job = _locked(s, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} in the catalog")
        job.status = "queued"
        job.error = None
        job.progress = 0.0
        job.started_at = None
        job.finished_at = None
        job.created_at = _now()
        job.task_id = task_id
        job.counts = {k: v for k, v in (job.counts or {}).items() if k in ("analyse", "force")}


def list_jobs(
    catalog: Catalog,
    *,
    status: Sequence[str] | None = None,
    parent_id: str | None = None,
    kind: str | None = None,
    limit: int | None = 200,
) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id)
    if status:
        query = query.where(Job.status.in_(list(status)))
    if parent_id is not None:
        query = query.where(Job.parent_id == parent_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if limit:
        query = query.limit(limit)
    with catalog.session() as s:
        return [job_json(j) for j in s.scalars(query)]


def status_counts(catalog: Catalog, *, parent_id: str) -> dict[str, int]:
    """How many children of a job are in each status."""
    with catalog.session() as s:
        rows = s.execute(
            select(Job.status, func.count()).where(Job.parent_id == parent_id).group_by(Job.status)
        )
        return {status: int(n) for status, n in rows}


def active_job_for_path(catalog: Catalog, *, path: str, kind: str = "ingest") -> dict[str, Any] | None:
    """The newest queued or running job of this kind for this path, if any."""
    with catalog.session() as s:
        job = s.scalars(
            select(Job)
            .where(Job.path == path, Job.kind == kind, Job.status.in_(ACTIVE))
            .order_by(Job.created_at.desc())
            .limit(1)
        ).first()
        return job_json(job) if job is not None else None


def child_for_path(catalog: Catalog, *, parent_id: str, path: str) -> dict[str, Any] | None:
    with catalog.session() as s:
        job = s.scalars(
            select(Job).where(Job.parent_id == parent_id, Job.path == path).order_by(Job.created_at.desc())
        ).first()
        return job_json(job) if job is not None else None


def maybe_finish_parent(catalog: Catalog, parent_id: str) -> bool:
    """End an archive job once its walk is over and no child is queued or running.

    Called by the walker when it finishes and by every child that ends; whichever comes
    last sees everything, and the row lock lets only one of them end it.
    """
    with catalog.session() as s:
        parent = _locked(s, parent_id)
        if parent is None or parent.status in TERMINAL or not (parent.counts or {}).get("walk_done"):
            return False
        rows = s.execute(
            select(Job.status, func.count()).where(Job.parent_id == parent_id).group_by(Job.status)
        )
        by_status = {status: int(n) for status, n in rows}
        if any(by_status.get(st, 0) for st in ACTIVE):
            total = sum(by_status.values()) or 1
            parent.progress = max(float(parent.progress or 0.0), by_status.get("done", 0) / total)
            return False
        failed = by_status.get("failed", 0)
        parent.status = "done"
        parent.progress = 1.0
        parent.error = f"{failed} file(s) failed" if failed else None
        parent.finished_at = _now()
        parent.counts = {**(parent.counts or {}), "done": by_status.get("done", 0), "failed": failed}
        return True


def latest_open_archive(catalog: Catalog, *, root: str, pattern: str | None) -> dict[str, Any] | None:
    """An archive job for the same root and pattern that never ended (an interrupted run)."""
    for job in list_jobs(catalog, status=ACTIVE, kind="archive", limit=None):
        if job["path"] == root and job["counts"].get("pattern") == pattern:
            return job
    return None


def active_job_ids(catalog: Catalog) -> set[str]:
    """Ids of every queued or running job (their staging folders are in use)."""
    with catalog.session() as s:
        return set(s.scalars(select(Job.id).where(Job.status.in_(ACTIVE))))


def fail_open_jobs(session: Session, *, kind: str, path: str, error: str) -> int:
    """Fail the queued / running jobs of this kind and path in the caller's transaction (a space dropped)."""
    jobs = list(
        session.scalars(select(Job).where(Job.kind == kind, Job.path == path, Job.status.in_(ACTIVE)))
    )
    for job in jobs:
        job.status, job.error = "failed", error
    return len(jobs)


# --- jobs whose process died -------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a reused pid is not taken for the owner."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: PTH123, SIM115 - one short read
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def owner_here() -> dict[str, Any]:
    """Who runs an in-process job: host, pid and the pid's start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start(pid)}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Is the process that owns a job still running? None: another host, cannot tell from here."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner.get("pid") or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = owner.get("started")
    return started is None or _process_start(pid) in (None, started)
