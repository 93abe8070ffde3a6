"""Benchmark of the worker layer: archive throughput with 1 and 2 workers, and queue overhead per task.

Starts real ``video-inst worker`` processes (concurrency 1 each) on a real broker, ingests
an archive of the shared test clips (symlinks in a temporary folder) and reports video
hours ingested per wall-clock hour, models loaded beforehand (one warm-up file per worker).
Then measures the round trip of a no-op task (``video_inst.ping``: send, run, result back)
on each broker. Prints figures; asserts nothing.

Example::

    .venv/bin/python scripts/bench_workers.py                       # full analysis, Redis
    .venv/bin/python scripts/bench_workers.py --no-analyse --workers 1,2 --pings 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from video_inst.catalog.db import Catalog  # noqa: E402
from video_inst.catalog.models import Keyframe, Video  # noqa: E402
from video_inst.config import Settings  # noqa: E402
from video_inst.jobs import archive, enqueue_ingest, wait_jobs  # noqa: E402
from video_inst.jobs.queue import client_app, queue_name  # noqa: E402
from workers.testing import WorkerProcess  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
WARMUP = ["clips/realshort.mp4", "clips/sintel_snow.mp4"]
BROKERS = {
    "redis": "redis://127.0.0.1:6379/12",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "embedded": "sqla+sqlite:///{home}/broker.sqlite3",
}


def _env(home: Path, broker: str, prefix: str, archive_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        "VIDEO_INST_HOME": str(home),
        "VIDEO_INST_BROKER_URL": broker.format(home=home),
        "VIDEO_INST_QUEUE_PREFIX": prefix,
        "VIDEO_INST_MEDIA_ROOTS": json.dumps([str(MEDIA), str(archive_dir)]),
        **extra,
    }


def _settings(env: dict[str, str]) -> Settings:
    values = {k.removeprefix("VIDEO_INST_").lower(): v for k, v in env.items()}
    values["media_roots"] = json.loads(values["media_roots"])
    return Settings(**values)


def _cleanup(broker: str, prefix: str) -> None:
    queues = [f"{prefix}{q}" for q in ("ingest", "analyse", "index")]
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
    elif broker.startswith("amqp"):
        from kombu import Connection

        with Connection(broker) as conn:
            channel = conn.channel()
            for q in queues:
                channel.queue_delete(q)
                channel.exchange_delete(q)


def archive_throughput(
    n_workers: int, broker: str, analyse: bool, extra: dict[str, str], files: list[str]
) -> None:
    with tempfile.TemporaryDirectory(prefix="vi-bench-") as tmp:
        tmp_path = Path(tmp)
        folder = tmp_path / "archive"
        folder.mkdir()
        for rel in files:
            (folder / Path(rel).name).symlink_to(MEDIA / rel)
        prefix = f"bench{uuid.uuid4().hex[:6]}-"
        env = _env(tmp_path / "home", broker, prefix, folder, extra)
        settings = _settings(env)
        catalog = Catalog(settings.resolved_database_url, auto_upgrade=True)
        workers = [
            WorkerProcess(env, log_path=tmp_path / f"w{i}.log", name=f"b{i}") for i in range(n_workers)
        ]
        try:
            for w in workers:
                w.start()
            t0 = time.perf_counter()
            warm = enqueue_ingest([MEDIA / p for p in WARMUP[:n_workers]], analyse=analyse, settings=settings)
            wait_jobs(warm, timeout_s=1800, settings=settings, catalog=catalog)
            warm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            run = archive.run_archive(folder, analyse=analyse, settings=settings, catalog=catalog)
            report = archive.wait_archive(run.job_id, timeout_s=7200, settings=settings, catalog=catalog)
            wall = time.perf_counter() - t0
            warm_paths = [str(MEDIA / p) for p in WARMUP]
            with catalog.session() as s:
                video_s = s.scalar(
                    select(func.sum(Video.duration_s)).where(
                        Video.status == "done", Video.path.notin_(warm_paths)
                    )
                )
                keyframes = s.scalar(select(func.count()).select_from(Keyframe))
            hours = float(video_s or 0.0) / 3600
            print(
                f"archive  workers={n_workers}  analyse={analyse}"
                f"  ingested={report['ingested']}/{report['files']}"
                f"  video={hours * 3600:.1f}s  keyframes(all)={keyframes}  wall={wall:.1f}s"
                f"  throughput={hours / (wall / 3600):.1f} video-hours/hour"
                f"  (warm-up incl. model load {warm_s:.1f}s)",
                flush=True,
            )
        finally:
            for w in workers:
                w.stop()
            _cleanup(broker, prefix)


# (name, broker, result backend or None for the default)
PINGS = [
    ("redis", BROKERS["redis"], None),
    ("rabbitmq", BROKERS["rabbitmq"], None),  # results in SQL (polled): the default without Redis
    ("rabbitmq+redis-results", BROKERS["rabbitmq"], BROKERS["redis"]),
    ("embedded", BROKERS["embedded"], None),
]


def ping_overhead(name: str, broker: str, backend: str | None, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vi-bench-") as tmp:
        tmp_path = Path(tmp)
        prefix = f"bench{uuid.uuid4().hex[:6]}-"
        env = _env(tmp_path / "home", broker, prefix, tmp_path, {})
        if backend:
            env["VIDEO_INST_RESULT_BACKEND"] = backend
        settings = _settings(env)
        app = client_app(settings)
        worker = WorkerProcess(env, log_path=tmp_path / "w.log", pool="solo", name="ping")
        try:
            worker.start()
            app.send_task("video_inst.ping", queue=queue_name(settings, "ingest")).get(timeout=60)  # warm
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                app.send_task("video_inst.ping", queue=queue_name(settings, "ingest")).get(timeout=60)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            print(
                f"ping     {name:22} n={n}  median={statistics.median(times):.1f} ms  "
                f"p90={times[int(0.9 * (n - 1))]:.1f} ms  mean={statistics.fmean(times):.1f} ms",
                flush=True,
            )
        finally:
            worker.stop()
            _cleanup(broker, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=sorted(BROKERS), default="redis", help="for the archive runs")
    parser.add_argument("--workers", default="1,2", help="worker process counts to compare")
    parser.add_argument("--analyse", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--keyframe-interval", type=float, default=None, help="VIDEO_INST_KEYFRAME_INTERVAL_S"
    )
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--skip-archive", action="store_true")
    args = parser.parse_args()
    extra = {}
    if args.keyframe_interval:
        extra["VIDEO_INST_KEYFRAME_INTERVAL_S"] = str(args.keyframe_interval)
    files = sorted(
        f"clips/{p.name}"
        for p in (MEDIA / "clips").iterdir()
        if p.suffix in archive.VIDEO_SUFFIXES and f"clips/{p.name}" not in WARMUP
    ) + ["edits/instance_test_edit.mp4"]
    print(
        f"machine: {sys.platform}, {__import__('os').cpu_count()} CPUs; archive: {len(files)} files",
        flush=True,
    )
    if not args.skip_archive:
        for n in (int(x) for x in args.workers.split(",")):
            archive_throughput(n, BROKERS[args.broker], args.analyse, extra, files)
    for name, broker, backend in PINGS if args.pings > 0 else []:
        ping_overhead(name, broker, backend, args.pings)


if __name__ == "__main__":
    main()
