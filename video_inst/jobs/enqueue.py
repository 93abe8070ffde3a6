"""Hand videos to the workers: a job row per file, then a message to the ``ingest`` queue.

Only the broker is contacted (by task name), so callers never import the task bodies or
the models. Paths outside the configured media roots are refused before anything is
queued (``OutsideMediaRootsError``).

Example::

    job_ids = enqueue_ingest(["/media/a.mp4", "/media/b.mov"], callback_url="http://mam:8080/hook")
    jobs = wait_jobs(job_ids, timeout_s=600)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.config import Settings, get_settings
from video_inst.errors import TransientError, VideoInstError
from video_inst.jobs import state
from video_inst.jobs.callback import valid_callback_url


def send_ingest(
    job_id: str,
    path: str | Path,
    *,
    settings: Settings,
    force: bool = False,
    analyse: bool = True,
    app: Any = None,
) -> None:
    """Queue ``video_inst.ingest`` for an existing job row (task id = job id)."""
    from kombu.utils.url import maybe_sanitize_url

    from video_inst.jobs.queue import client_app, queue_name

    app = app or client_app(settings)
    try:
        app.send_task(
            "video_inst.ingest",
            args=[str(path)],
            kwargs={"force": force, "job_id": job_id, "analyse": analyse},
            task_id=job_id,
            queue=queue_name(settings, "ingest"),
        )
    except Exception as exc:  # noqa: BLE001 - kombu/redis/amqp each raise their own
        broker = maybe_sanitize_url(settings.resolved_broker_url)
        raise TransientError(f"could not queue {path}: broker {broker} unreachable ({exc})") from exc


def enqueue_ingest(
    paths: Sequence[str | Path],
    *,
    force: bool = False,
    analyse: bool = True,
    callback_url: str | None = None,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
) -> list[str]:
    """Queue one ingest job per path; returns the job ids (``video-inst ingest --async``).

    Every path is checked against the media roots first, so a refused path queues nothing.
    """
    from video_inst.ingest.pipeline import check_media_root

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    if callback_url and not valid_callback_url(callback_url):
        raise VideoInstError(f"{callback_url}: a callback URL must be http(s)://host[:port]/path")
    resolved = [check_media_root(Path(p), settings, required=True) for p in paths]
    job_ids = []
    for path in resolved:
        job_id = state.create_job(
            catalog,
            kind="ingest",
            path=str(path),
            callback_url=callback_url,
            counts={"analyse": analyse, "force": force},
        )
        try:
            send_ingest(job_id, path, settings=settings, force=force, analyse=analyse)
        except TransientError as exc:
            state.end_job(catalog, job_id, status="failed", error=exc.message)
            raise
        job_ids.append(job_id)
    return job_ids


def wait_jobs(
    job_ids: Sequence[str],
    *,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
) -> list[dict[str, Any]]:
    """Poll the jobs table until every job has ended; raises TransientError on timeout."""
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        jobs = [state.require_job(catalog, j) for j in job_ids]
        if all(j["status"] in state.TERMINAL for j in jobs):
            return jobs
        if deadline is not None and time.monotonic() > deadline:
            open_ = [j["job_id"] for j in jobs if j["status"] not in state.TERMINAL]
            raise TransientError(f"jobs still open after {timeout_s:.0f} s: {', '.join(open_)}")
        time.sleep(poll_s)
