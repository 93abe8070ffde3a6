"""Job rows as the jobs layer sees them: ``catalog.jobs`` (the one data-access layer), and dead jobs.

The row functions live in ``video_inst.catalog.jobs`` so that ``reindex`` (below this layer)
and the API write and read job rows the same way; they are named here too for the pipeline,
the archive walk, the callbacks and the CLI. :func:`fail_dead_jobs` adds what only this layer
knows: a dead job's staging folder.

Example::

    job_id = create_job(catalog, kind="ingest", path="/media/a.mp4")
    mark_running(catalog, job_id)
    set_progress(catalog, job_id, 0.5, {"chunks_done": 2})
    if end_job(catalog, job_id, status="done", video_id=7):
        ...  # this caller ended it: notify
"""

from __future__ import annotations

from typing import Any

from video_inst.catalog.db import Catalog
from video_inst.catalog.jobs import (
    ACTIVE,
    TERMINAL,
    active_job_for_path,
    bump,
    child_for_path,
    create_job,
    end_job,
    ensure_job,
    get_job,
    job_json,
    latest_open_archive,
    list_jobs,
    mark_running,
    maybe_finish_parent,
    merge_counts,
    new_job_id,
    owner_alive,
    owner_here,
    reopen_job,
    require_job,
    set_progress,
    status_counts,
)

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "active_job_for_path",
    "bump",
    "child_for_path",
    "create_job",
    "end_job",
    "ensure_job",
    "fail_dead_jobs",
    "get_job",
    "job_json",
    "latest_open_archive",
    "list_jobs",
    "mark_running",
    "maybe_finish_parent",
    "merge_counts",
    "new_job_id",
    "owner_alive",
    "owner_here",
    "reopen_job",
    "require_job",
    "set_progress",
    "status_counts",
]


def fail_dead_jobs(catalog: Catalog, settings: Any) -> list[str]:
    """Fail the queued / running in-process jobs whose owner process on this host is gone.

    The API's embedded ingest runs jobs on a thread of the server; a server killed mid-job
    would leave them ``running`` for ever and their ``staging/<job>`` on disk. Called when a
    server starts. Jobs of Celery workers carry no owner and are left to the broker's
    redelivery. Returns the ids of the jobs it failed.
    """
    from video_inst.jobs import staging

    failed: list[str] = []
    for job in list_jobs(catalog, status=ACTIVE, limit=None):
        owner = job["counts"].get("owner")
        if not isinstance(owner, dict) or owner_alive(owner) is not False:
            continue
        what = "stopped before it ran" if job["status"] == "queued" else "died while it ran"
        reason = (
            f"the process that owned this job (pid {owner.get('pid')} on {owner.get('host')}) {what}; "
            "start the ingest again"
        )
        if end_job(catalog, job["job_id"], status="failed", error=reason):
            failed.append(job["job_id"])
        staging.remove(settings, job["job_id"])
    return failed
