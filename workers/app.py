"""The Celery app of video_inst, configured from the same ``Settings`` as the CLI and the API.

Three queues (names prefixed by ``VIDEO_INST_QUEUE_PREFIX``): ``ingest`` (hash, probe,
shot plan; and keyframe decode when a job has no analysis), ``analyse`` (keyframe decode
+ DASR + CLIP of a chunk of shots; the GPU machines) and ``index`` (the one-transaction
commit and the FAISS sync). Delivery is at-least-once: late acknowledgement, re-delivery
when a worker is lost, one message prefetched at a time; every step is idempotent
(see ``video_inst.jobs.pipeline``).

Example::

    celery -A workers.app worker -Q ingest,analyse,index -c 2      # or: video-inst worker
    # from any other program, without importing video_inst:
    Celery(broker=URL, backend=URL).send_task("video_inst.ingest", args=["/media/a.mp4"], queue="ingest")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from video_inst.config import Settings, get_settings

QUEUES = ("ingest", "analyse", "index")

# Public and internal task names -> logical queue.
ROUTES = {
    "video_inst.ingest": "ingest",
    "video_inst.ingest_archive": "ingest",
    "video_inst.notify": "ingest",
    "video_inst.ping": "ingest",
    "video_inst.ingest_chunk": "analyse",
    "video_inst.ingest_commit": "index",
    "video_inst.job_failed": "index",
    "celery.chord_unlock": "index",
}


def queue_name(settings: Settings, logical: str) -> str:
    """The broker queue of a logical queue (``ingest``, ``analyse``, ``index``)."""
    return f"{settings.queue_prefix}{logical}"


def result_backend_url(settings: Settings) -> str:
    """A result backend that supports chords: the setting, else Redis or the catalog database."""
    if settings.result_backend:
        return settings.result_backend
    broker = settings.resolved_broker_url
    if broker.startswith(("redis://", "rediss://", "redis+socket://")):
        return broker
    if settings.database_url:
        return "db+" + settings.database_url
    return f"db+sqlite:///{settings.home / 'results.sqlite3'}"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting derived from ours (the same for workers and for clients)."""
    broker = settings.resolved_broker_url
    visibility = settings.broker_visibility_timeout_s or settings.task_time_limit_s + 300
    transport: dict[str, Any] = {"visibility_timeout": visibility}
    if broker.startswith("sqla+"):
        transport = {}  # kombu hands these to create_engine; the embedded broker polls every second
    backend = result_backend_url(settings)
    soft = settings.task_soft_time_limit_s
    if "sqlite:///" in broker + backend:
        settings.home.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": broker,
        "result_backend": backend,
        "task_default_queue": queue_name(settings, "ingest"),
        "task_routes": {name: {"queue": queue_name(settings, q)} for name, q in ROUTES.items()},
        "task_create_missing_queues": True,
        # At-least-once, made safe by idempotent steps.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A soft limit at or above the hard one could never act first: none then.
        "task_soft_time_limit": soft if soft < settings.task_time_limit_s else None,
        "task_time_limit": settings.task_time_limit_s,
        "task_track_started": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


def create_app(settings: Settings, *, with_tasks: bool = True) -> Celery:
    """A Celery app for these settings; ``with_tasks`` registers the task bodies (workers)."""
    app = Celery("video_inst", set_as_current=False)
    app.conf.update(celery_config(settings))
    if with_tasks:
        app.conf.include = ["workers.tasks"]
    return app


_CLIENTS: dict[str, Celery] = {}


def client_app(settings: Settings) -> Celery:
    """An app that only sends (the CLI, the API): no task bodies, no heavy imports."""
    config = celery_config(settings)
    key = repr(sorted(config.items()))
    if key not in _CLIENTS:
        app = Celery("video_inst", set_as_current=False)
        app.conf.update(config)
        _CLIENTS[key] = app
    return _CLIENTS[key]


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections."""
    from video_inst.catalog import db

    db._catalog_for.cache_clear()


def run_worker(
    queues: Sequence[str] = QUEUES,
    *,
    concurrency: int | None = None,
    pool: str = "prefork",
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> None:
    """Start a worker in this process (blocks) on the given logical queues of the current settings."""
    settings = get_settings()
    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        from video_inst.errors import VideoInstError

        raise VideoInstError(f"unknown queue(s) {', '.join(unknown)}; choose from {', '.join(QUEUES)}")
    argv = [
        "worker",
        f"--queues={','.join(queue_name(settings, q) for q in queues)}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        f"--hostname={hostname or f'video-inst-{os.getpid()}@%h'}",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)


app = create_app(get_settings())
