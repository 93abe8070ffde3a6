"""Real worker processes on real brokers: Redis, RabbitMQ and the embedded SQLite transport.

Each test starts ``video-inst worker`` subprocesses (``workers.testing.WorkerProcess``) with
their own queue-name prefix, so concurrent runs never take each other's messages, and a
fresh PostgreSQL database (or SQLite) as the catalog. Tasks are sent by name from a
``python -c`` process that imports only celery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from video_inst.catalog.db import Catalog, upgrade
from video_inst.catalog.models import Keyframe, Shot, Track, TrackBox, Vector, Video
from video_inst.config import Settings
from video_inst.jobs import enqueue_ingest, state, wait_jobs
from workers.testing import ARCHIVE_GOOD, CallbackReceiver, WorkerProcess, build_test_archive

pytestmark = [pytest.mark.broker]

REDIS = "redis://127.0.0.1:6379/{db}"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"

SENDER = r"""
import json, sys
import celery
broker, backend, queue, paths, kwargs = sys.argv[1:4] + [json.loads(a) for a in sys.argv[4:6]]
app = celery.Celery(broker=broker, backend=backend)
results = [app.send_task("video_inst.ingest", args=[p], kwargs=kwargs.get(p, {}), queue=queue) for p in paths]
out = [r.get(timeout=240) for r in results]
assert not [m for m in sys.modules if m.split(".")[0] in ("video_inst", "workers")]
print(json.dumps(out))
"""


# --- plumbing ----------------------------------------------------------------------------


class Stack:
    """One deployment: broker + result backend + catalog + data dir + queue prefix."""

    def __init__(self, tmp_path: Path, shared_media: Path, broker: str, database_url: str | None, **env: str):
        self.tmp = tmp_path
        self.prefix = f"vitest{uuid.uuid4().hex[:8]}-"
        self.broker = broker
        self.database_url = database_url
        if broker.startswith("redis"):
            self.backend = broker
        elif database_url:
            self.backend = "db+" + database_url
        else:
            self.backend = f"db+sqlite:///{tmp_path / 'home' / 'results.sqlite3'}"
        self.env = {
            "VIDEO_INST_HOME": str(tmp_path / "home"),
            "VIDEO_INST_BROKER_URL": broker,
            "VIDEO_INST_RESULT_BACKEND": self.backend,
            "VIDEO_INST_QUEUE_PREFIX": self.prefix,
            "VIDEO_INST_MEDIA_ROOTS": os.pathsep.join([str(shared_media), str(tmp_path / "archive")]),
            "VIDEO_INST_CHUNK_KEYFRAMES": "8",
            **env,
        }
        if database_url:
            self.env["VIDEO_INST_DATABASE_URL"] = database_url
        (tmp_path / "archive").mkdir(exist_ok=True)
        self.workers: list[WorkerProcess] = []

    @property
    def settings(self) -> Settings:
        """The same settings in this process (to queue from here and to read the catalog)."""
        values = {k.removeprefix("VIDEO_INST_").lower(): v for k, v in self.env.items()}
        return Settings(**values)

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.resolved_database_url, auto_upgrade=self.database_url is None)

    def worker(self, name: str = "w", **env: str) -> WorkerProcess:
        w = WorkerProcess({**self.env, **env}, log_path=self.tmp / f"{name}.log", name=name)
        self.workers.append(w)
        return w.start()

    def send(
        self, paths: list[str], kwargs: dict[str, dict] | None = None, timeout: float = 300
    ) -> list[dict]:
        """Send ``video_inst.ingest`` by name from a process that does not import video_inst."""
        out = subprocess.run(
            [sys.executable, "-c", SENDER, self.broker, self.backend, f"{self.prefix}ingest"]
            + [json.dumps(paths), json.dumps(kwargs or {})],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp,
        )
        assert out.returncode == 0, out.stderr[-3000:] + "\n" + self.logs()
        return json.loads(out.stdout.strip().splitlines()[-1])

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail()}" for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        queues = [f"{self.prefix}{q}" for q in ("ingest", "analyse", "index")]
        if self.broker.startswith("redis"):
            import redis

            client = redis.Redis.from_url(self.broker)
            for key in client.scan_iter(match=f"*{self.prefix}*"):
                client.delete(key)
        elif self.broker.startswith("amqp"):
            from kombu import Connection

            with Connection(self.broker) as conn:
                channel = conn.channel()
                for q in queues:
                    channel.queue_delete(q)
                    channel.exchange_delete(q)


@pytest.fixture
def pg_catalog(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


def _redis_url() -> str:
    return REDIS.format(db=11)


@pytest.fixture
def redis_stack(tmp_path: Path, shared_media: Path, pg_catalog: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, shared_media, _redis_url(), pg_catalog)
    yield stack
    stack.close()


@pytest.fixture
def rabbit_stack(tmp_path: Path, shared_media: Path, pg_catalog: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, shared_media, RABBITMQ, pg_catalog)
    yield stack
    stack.close()


def _no_duplicates(catalog: Catalog) -> None:
    with catalog.session() as s:
        assert not s.execute(
            select(Shot.video_id, Shot.index).group_by(Shot.video_id, Shot.index).having(func.count() > 1)
        ).all()
        assert not s.execute(
            select(Keyframe.video_id, Keyframe.pts)
            .group_by(Keyframe.video_id, Keyframe.pts)
            .having(func.count() > 1)
        ).all()
        box_key = (TrackBox.keyframe_id, TrackBox.x0, TrackBox.y0, TrackBox.x1, TrackBox.y1, TrackBox.score)
        assert not s.execute(select(*box_key).group_by(*box_key).having(func.count() > 1)).all()  # tracks
        assert not s.execute(
            select(Vector.space_id, Vector.kind, Vector.owner_id)
            .group_by(Vector.space_id, Vector.kind, Vector.owner_id)
            .having(func.count() > 1)
        ).all()


def _check_results_against_catalog(stack: Stack, results: list[dict]) -> None:
    catalog = stack.catalog
    for result in results:
        job = state.get_job(catalog, result["job_id"])
        assert job is not None and job["status"] == ("done" if result["status"] == "done" else "failed")
        if result["status"] != "done":
            continue
        assert job["progress"] == 1.0 and job["started_at"] and job["finished_at"]
        with catalog.session() as s:
            video = s.get(Video, result["video_id"])
            assert video.status == "done"
            shots = s.scalar(select(func.count()).select_from(Shot).where(Shot.video_id == video.id))
            keyframes = s.scalar(
                select(func.count()).select_from(Keyframe).where(Keyframe.video_id == video.id)
            )
        assert (shots, keyframes) == (result["shots"], result["keyframes"]) and shots > 0


# --- tests -------------------------------------------------------------------------------


def test_redis_worker_ingests_tasks_sent_by_name(
    redis_stack: Stack, shared_media: Path, edit_clip: Path
) -> None:
    receiver = CallbackReceiver()
    try:
        redis_stack.worker()
        flower = str(shared_media / "clips" / "flower.mp4")
        not_video = str(shared_media / "clips" / "LICENSE.mdn")
        paths = [str(edit_clip), flower, not_video, "/etc/passwd"]
        kwargs = {p: {"analyse": False} for p in paths}
        kwargs[flower]["callback_url"] = receiver.url
        results = redis_stack.send(paths, kwargs)
        edit, flower_r, bad, outside = results
        assert edit["status"] == "done" and edit["shots"] > 1 and flower_r["status"] == "done"
        assert bad["status"] == "failed" and "LICENSE.mdn" in bad["error"]
        assert outside["status"] == "failed" and "outside the configured media roots" in outside["error"]
        _check_results_against_catalog(redis_stack, results)
        job = state.get_job(redis_stack.catalog, edit["job_id"])
        assert job["counts"]["chunks"] > 1 and job["counts"]["chunks_done"] == job["counts"]["chunks"]
        [body] = receiver.wait(1)
        assert body["job_id"] == flower_r["job_id"] and body["status"] == "done"
        assert body["result"]["keyframes"] == flower_r["keyframes"]
    finally:
        receiver.close()


def test_rabbitmq_worker_ingests_tasks_sent_by_name(
    rabbit_stack: Stack, shared_media: Path, edit_clip: Path
) -> None:
    rabbit_stack.worker()
    paths = [str(edit_clip), str(shared_media / "clips" / "sintel_snow.mp4"), "/etc/hostname"]
    results = rabbit_stack.send(paths, {p: {"analyse": False} for p in paths})
    assert [r["status"] for r in results] == ["done", "done", "failed"]
    assert "outside the configured media roots" in results[2]["error"]
    _check_results_against_catalog(rabbit_stack, results)


def test_archive_through_a_worker_reports_and_skips_on_second_run(
    redis_stack: Stack, shared_media: Path
) -> None:
    from video_inst.jobs import archive

    redis_stack.worker()
    folder = redis_stack.tmp / "archive"
    build_test_archive(folder, shared_media)
    settings, catalog = redis_stack.settings, redis_stack.catalog
    run = archive.run_archive(folder, settings=settings, catalog=catalog, analyse=False)
    assert run.summary()["enqueued"] == 4  # three good files and the corrupt one; the rest failed at once
    report = archive.wait_archive(run.job_id, timeout_s=120, settings=settings, catalog=catalog)
    assert report["status"] == "done", redis_stack.logs()
    assert (report["ingested"], report["failed"], report["pending"]) == (3, 3, 0)
    reasons = {Path(f["path"]).name: f["error"] for f in report["failures"]}
    assert set(reasons) == {"corrupt.mp4", "offline.mov", "pipe.mkv"} and all(reasons.values())
    second = archive.run_archive(folder, settings=settings, catalog=catalog, analyse=False)
    assert len(second.skipped) == len(ARCHIVE_GOOD)
    report2 = archive.wait_archive(second.job_id, timeout_s=60, settings=settings, catalog=catalog)
    assert (report2["ingested"], report2["skipped"], report2["failed"]) == (0, 3, 3)


def test_embedded_broker_needs_no_server_and_time_limits_fail_the_job(
    tmp_path: Path, shared_media: Path
) -> None:
    """SQLite broker, results and catalog in the data dir; a task over a soft or hard limit fails its job."""
    stack = Stack(tmp_path, shared_media, f"sqla+sqlite:///{tmp_path / 'home' / 'broker.sqlite3'}", None)
    limits = {"VIDEO_INST_TASK_SOFT_TIME_LIMIT_S": "6"}
    try:
        stack.worker("fast", **limits)
        settings, catalog = stack.settings, stack.catalog
        [ok] = enqueue_ingest([shared_media / "clips" / "realshort.mp4"], analyse=False, settings=settings)
        [job] = wait_jobs([ok], timeout_s=90, settings=settings, catalog=catalog)
        assert job["status"] == "done", stack.logs()
        stack.workers[-1].kill()  # idle: nothing in flight
        stack.worker("slow", VIDEO_INST_CHUNK_DELAY_S="10", **limits)
        [slow] = enqueue_ingest(
            [shared_media / "clips" / "sintel_snow.mp4"], analyse=False, settings=settings
        )
        [job] = wait_jobs([slow], timeout_s=120, settings=settings, catalog=catalog)
        assert job["status"] == "failed" and "soft time limit of 6 s" in job["error"], stack.logs()
        assert job["counts"]["chunks_done"] == 0
        stack.workers[-1].kill()  # idle: nothing in flight
        stack.worker("killed", VIDEO_INST_CHUNK_DELAY_S="30", VIDEO_INST_TASK_TIME_LIMIT_S="5")
        [hard] = enqueue_ingest([shared_media / "clips" / "flower.mp4"], analyse=False, settings=settings)
        [job] = wait_jobs([hard], timeout_s=120, settings=settings, catalog=catalog)
        assert job["status"] == "failed" and "hard time limit of 5 s" in job["error"], stack.logs()
    finally:
        stack.close()


@pytest.mark.slow
def test_worker_killed_mid_video_then_new_worker_completes_without_duplicates(
    rabbit_stack: Stack, shared_media: Path
) -> None:
    """SIGKILL (whole worker, pool included) while a chunk runs, after another was staged; a new worker
    finishes the job. One keyframe per shot and one shot per chunk keep the analysis short on a CPU."""
    from video_inst.vectors.store import SQL_ONLY_KINDS, IndexStore

    rabbit_stack.env.update({"VIDEO_INST_KEYFRAME_INTERVAL_S": "60", "VIDEO_INST_CHUNK_KEYFRAMES": "1"})
    settings, catalog = rabbit_stack.settings, rabbit_stack.catalog
    first = rabbit_stack.worker("doomed", VIDEO_INST_CHUNK_DELAY_S="2")
    [job_id] = enqueue_ingest([shared_media / "clips" / "big_buck_bunny_0_30.webm"], settings=settings)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = state.get_job(catalog, job_id)
        started = [k for k in job["counts"].get("deliveries", {}) if k.startswith("chunk")]
        if job["counts"].get("chunks_done", 0) >= 1 and len(started) > job["counts"]["chunks_done"]:
            break  # one chunk staged, the next one running
        assert job["status"] in ("queued", "running"), (job["error"], rabbit_stack.logs())
        time.sleep(0.1)
    else:
        pytest.fail("no chunk finished in time:\n" + rabbit_stack.logs())
    first.kill()
    job = state.get_job(catalog, job_id)
    assert job["status"] == "running" and 1 <= job["counts"]["chunks_done"] < job["counts"]["chunks"]

    rabbit_stack.worker("rescuer")
    [job] = wait_jobs([job_id], timeout_s=500, settings=settings, catalog=catalog)
    assert job["status"] == "done", (job["error"], rabbit_stack.logs())
    assert max(job["counts"]["deliveries"].values()) == 2  # the running chunk was delivered again
    _no_duplicates(catalog)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Shot)) == job["counts"]["shots"]
        assert s.scalar(select(func.count()).select_from(Keyframe)) == job["counts"]["keyframes"]
        assert s.scalar(select(func.count()).select_from(Track)) == job["counts"]["tracks"] > 0
    store = IndexStore(settings.index_dir, catalog, sql_only=SQL_ONLY_KINDS)
    pairs = store.known_indexes()
    assert pairs
    for space_id, kind in pairs:
        consistency = store.check_consistency(space_id, kind)
        assert consistency.ok and consistency.sql_count == consistency.index_count > 0


TEN = [
    "clips/realshort.mp4",
    "clips/sintel_snow.mp4",
    "clips/classroom.gif",
    "clips/stream-of-water.mp4",
    "clips/store-aisle-detection.gif",
    "clips/flower.mp4",
    "clips/friday.mp4",
    "clips/cockatoo.mp4",
    "clips/big_buck_bunny_0_30.webm",
    "clips/car-detection.mp4",
]


@pytest.mark.slow
def test_ten_videos_two_workers_sql_and_faiss_agree(redis_stack: Stack, shared_media: Path) -> None:
    import numpy as np

    from video_inst.vectors.codec import decode
    from video_inst.vectors.store import SQL_ONLY_KINDS, IndexStore

    redis_stack.env.update({"VIDEO_INST_KEYFRAME_INTERVAL_S": "60", "VIDEO_INST_CHUNK_KEYFRAMES": "2"})
    settings, catalog = redis_stack.settings, redis_stack.catalog
    redis_stack.worker("a")
    redis_stack.worker("b")
    job_ids = enqueue_ingest([shared_media / p for p in TEN], settings=settings, catalog=catalog)
    jobs = wait_jobs(job_ids, timeout_s=600, settings=settings, catalog=catalog)
    assert [j["status"] for j in jobs] == ["done"] * 10, ([j["error"] for j in jobs], redis_stack.logs())
    _no_duplicates(catalog)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Video).where(Video.status == "done")) == 10
        assert s.scalar(select(func.count()).select_from(Track)) == sum(j["counts"]["tracks"] for j in jobs)
    store = IndexStore(settings.index_dir, catalog, sql_only=SQL_ONLY_KINDS)
    owners = {"track": Track, "region": TrackBox, "frame": Keyframe}
    pairs = store.known_indexes()
    assert {kind for _, kind in pairs} >= {"region"}
    for space_id, kind in pairs:
        consistency = store.check_consistency(space_id, kind)
        assert consistency.ok and consistency.sql_count == consistency.index_count > 0
        with catalog.session() as s:
            rows = s.execute(
                select(Vector.data, Vector.space_id)
                .where(Vector.space_id == space_id, Vector.kind == kind)
                .limit(20)
            ).all()
            dim = store._space_dim(space_id)
        queries = decode([r.data for r in rows], dim)
        for hits in store.search(space_id, kind, np.asarray(queries), k=10):
            assert hits
            with catalog.session() as s:
                for vector_id, _ in hits:
                    vector = s.get(Vector, vector_id)
                    assert vector is not None and vector.kind == kind
                    assert s.get(owners[kind], vector.owner_id) is not None
                    assert s.get(Video, vector.video_id).status == "done"
