"""The Celery app of video_inst, configured from the same ``Settings`` as the CLI and the API.

Three queues (names prefixed by ``VIDEO_INST_QUEUE_PREFIX``): ``ingest`` (hash, probe,
shot plan; and keyframe decode when a job has no analysis), ``analyse`` (keyframe decode
+ DASR + CLIP of a chunk of shots; the GPU machines) and ``index`` (the one-transaction
commit and the FAISS sync). Delivery is at-least-once: late acknowledgement, re-delivery
when a worker is lost, one message prefetched at a time; every step is idempotent
(see ``video_inst.jobs.pipeline``).

Queue names, task routes and the Celery configuration live in the library
(``video_inst.jobs.queue``), so senders never import this module; this one adds the task
bodies and the worker process.

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
from video_inst.jobs.queue import QUEUES, ROUTES, celery_config, client_app, queue_name, result_backend_url


def create_app(settings: Settings, *, with_tasks: bool = True) -> Celery:
    """A Celery app for these settings; ``with_tasks`` registers the task bodies (workers)."""
    app = Celery("video_inst", set_as_current=False)
    app.conf.update(celery_config(settings))
    if with_tasks:
        app.conf.include = ["workers.tasks"]
    return app


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
    if pool == "prefork":
        share_cores_between_processes(concurrency or os.cpu_count() or 1)
    app.worker_main(argv)


def share_cores_between_processes(processes: int) -> None:
    """Give each pool process ``cores // processes`` torch threads unless OMP_NUM_THREADS is set.

    Why: every prefork child would otherwise start one torch thread per core (N processes x
    cores threads spinning on the same cores); the analysis sizes its parallel batches from the
    same budget (``video_inst.analysis.analyser.cpu_budget``). Set before the children fork and
    before anything imports torch.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // max(1, processes)))


app = create_app(get_settings())


__all__ = [
    "QUEUES",
    "ROUTES",
    "app",
    "celery_config",
    "client_app",
    "create_app",
    "queue_name",
    "result_backend_url",
    "run_worker",
]
