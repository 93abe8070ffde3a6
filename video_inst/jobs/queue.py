"""Queue names, task routes and the Celery configuration: what a sender needs, no task bodies.

The library queues work by task name through :func:`client_app` (``jobs.enqueue``, the
archive walk); ``workers.app`` builds the worker's app from the same :func:`celery_config`
and adds the task bodies. Keeping this here means the library never imports ``workers``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from video_inst.config import Settings

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
