"""One ingest path: the same inputs through each way of ingesting give the same results.

The in-process CLI path (``ingest.pipeline.ingest_path``), the embedded async path of the API
(``api.ingest_runner.IngestRunner`` in thread mode) and the Celery chord (a real
``video-inst worker`` process on a real Redis broker, chunks of one shot each crossing
workers as staged JSON) each ingest, into a data directory of their own: a rendered
three-shot clip with analysis on, the same clip again (skipped), a folder (not a file)
and a truncated copy of the clip (corrupt). Real PyAV decoding, real EfficientNet-Lite0
weights (CLIP weights are absent here: every path records them missing alike), real
SQLite catalogs. ``analysis_batch`` is 1 so that the DASR numbers of a keyframe cannot
depend on which keyframes share its batch, whatever the chunking.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from media_factory import render_clip, truncate_copy
from sqlalchemy import select

from video_inst.analysis.data import ChunkResult, PlannedVideo, from_json, to_json
from video_inst.catalog.db import Catalog
from video_inst.catalog.models import Track, TrackBox, Vector, VideoSpace
from video_inst.config import Settings
from video_inst.errors import VideoInstError
from video_inst.jobs import enqueue_ingest, state, wait_jobs
from video_inst.jobs.results import result_of
from workers.testing import WorkerProcess

REDIS = "redis://127.0.0.1:6379/11"
COMPARED = ("status", "shots", "keyframes", "tracks", "error", "warnings")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ingest_paths").resolve()
    good = render_clip(d / "good.mp4", scenes=[30, 30, 30]).path
    (d / "a-folder.mp4").mkdir()
    return {
        "good": good,
        "again": good,
        "not_a_file": d / "a-folder.mp4",
        "corrupt": truncate_copy(good, d / "cut.mp4", 0.5),
    }


def _settings(home: Path, roots: Path, **extra: object) -> Settings:
    return Settings(home=home, media_roots=[roots], analysis_batch=1, chunk_keyframes=1, **extra)


def _catalog(settings: Settings) -> Catalog:
    return Catalog(settings.resolved_database_url, auto_upgrade=True)


def _in_process(settings: Settings, inputs: dict[str, Path]) -> dict[str, dict]:
    from video_inst.ingest.pipeline import ingest_path

    catalog = _catalog(settings)
    out = {}
    for name, path in inputs.items():
        result = ingest_path(path, settings=settings, catalog=catalog, require_media_root=True)
        out[name] = result.to_json()
    return out


def _wait(catalog: Catalog, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := state.require_job(catalog, job_id))["status"] not in state.TERMINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def _embedded_async(settings: Settings, inputs: dict[str, Path]) -> dict[str, dict]:
    from video_inst.api.ingest_runner import IngestRunner

    catalog = _catalog(settings)
    runner = IngestRunner(settings, catalog, mode="thread")
    out = {}
    try:
        for name, path in inputs.items():
            try:
                job = runner.start(path)
            except VideoInstError as exc:  # answered at once (an HTTP 404), no job is created
                out[name] = {"status": "failed", "error": exc.message, "video_id": None, "shots": 0}
                out[name] |= {"keyframes": 0, "tracks": 0, "warnings": []}
                continue
            out[name] = result_of(_wait(catalog, job["job_id"]))
    finally:
        runner.close()
    return out


def _celery(settings: Settings, inputs: dict[str, Path], tmp_path: Path) -> dict[str, dict]:
    env = {
        "VIDEO_INST_HOME": str(settings.home),
        "VIDEO_INST_BROKER_URL": settings.broker_url or "",
        "VIDEO_INST_RESULT_BACKEND": settings.result_backend or "",
        "VIDEO_INST_QUEUE_PREFIX": settings.queue_prefix,
        "VIDEO_INST_MEDIA_ROOTS": str(settings.media_roots[0]),
        "VIDEO_INST_ANALYSIS_BATCH": "1",
        "VIDEO_INST_CHUNK_KEYFRAMES": "1",
    }
    catalog = _catalog(settings)
    out = {}
    with WorkerProcess(env, log_path=tmp_path / "worker.log", name="paths") as worker:
        for name, path in inputs.items():  # one at a time: "again" must find "good" done
            (job_id,) = enqueue_ingest([path], settings=settings, catalog=catalog)
            (job,) = wait_jobs([job_id], timeout_s=300, settings=settings, catalog=catalog)
            out[name] = result_of(job)
            if name == "good":
                assert job["counts"]["chunks"] == 3, (job, worker.log_tail())  # one chunk per shot
    _clear_queues(settings.queue_prefix)
    return out


def _clear_queues(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)


def _stored(settings: Settings) -> dict[str, object]:
    """What the catalog holds of the analysis: tracks with their boxes, vectors per kind, coverage."""
    catalog = _catalog(settings)
    with catalog.session() as s:
        tracks = sorted(
            (t.is_frame, round(t.start_s, 6), round(t.end_s, 6), t.score, tuple(map(tuple, t.labels)))
            for t in s.scalars(select(Track))
        )
        boxes = sorted((b.x0, b.y0, b.x1, b.y1, b.score) for b in s.scalars(select(TrackBox)))
        vectors = sorted((v.kind, v.data) for v in s.scalars(select(Vector)))
        coverage = sorted((c.status, c.note or "") for c in s.scalars(select(VideoSpace)))
    return {"tracks": tracks, "boxes": boxes, "vectors": vectors, "coverage": coverage}


@pytest.mark.broker
def test_every_path_gives_the_same_results(tmp_path: Path, inputs: dict[str, Path]) -> None:
    roots = inputs["good"].parent
    prefix = f"vitest{uuid.uuid4().hex[:8]}-"
    homes = {name: tmp_path / name for name in ("in_process", "embedded_async", "celery")}
    settings = {
        "in_process": _settings(homes["in_process"], roots),
        "embedded_async": _settings(homes["embedded_async"], roots),
        "celery": _settings(
            homes["celery"], roots, broker_url=REDIS, result_backend=REDIS, queue_prefix=prefix
        ),
    }
    results = {
        "in_process": _in_process(settings["in_process"], inputs),
        "embedded_async": _embedded_async(settings["embedded_async"], inputs),
        "celery": _celery(settings["celery"], inputs, tmp_path),
    }
    reference = results["in_process"]
    assert reference["good"]["status"] == "done" and reference["good"]["shots"] == 3
    assert reference["good"]["tracks"] > 0
    assert (
        reference["again"]["status"] == "skipped"
        and reference["again"]["tracks"] == reference["good"]["tracks"]
    )
    assert reference["not_a_file"]["error"] == f"{inputs['not_a_file']}: not a regular file (a folder)"
    assert reference["corrupt"]["status"] == "failed" and "cut.mp4" in reference["corrupt"]["error"]
    for way, got in results.items():
        for name in inputs:
            assert {k: got[name][k] for k in COMPARED} == {k: reference[name][k] for k in COMPARED}, (
                way,
                name,
            )
        # The skipped re-ingest names the first one's video; the folder leaves no row, the corrupt file one.
        assert got["again"]["video_id"] == got["good"]["video_id"] is not None, way
        assert got["not_a_file"]["video_id"] is None, way
        assert got["corrupt"]["video_id"] is not None, way
    stored = {way: _stored(s) for way, s in settings.items()}
    assert stored["in_process"]["tracks"] and stored["in_process"]["vectors"]
    assert stored["embedded_async"] == stored["in_process"]
    assert stored["celery"] == stored["in_process"]  # chunks of plain data, committed together, bit for bit


def test_chunks_cross_workers_as_json_bit_for_bit(vi_home: Path, inputs: dict[str, Path]) -> None:
    """A planned video and an analysed chunk come back from JSON equal, vectors byte for byte."""
    from video_inst.ingest.pipeline import analyse_shots, plan_video

    settings = _settings(vi_home, inputs["good"].parent)
    planned = plan_video(inputs["good"], settings)
    assert from_json(to_json(planned), PlannedVideo) == planned
    chunk = analyse_shots(planned, settings, shot_indices=[1, 2])
    assert chunk.analysis is not None and chunk.analysis.tracks
    back = from_json(to_json(chunk), ChunkResult)
    assert back.shot_indices == [1, 2] and back.warnings == chunk.warnings
    assert (
        back.analysis.dasr == chunk.analysis.dasr
        and back.analysis.clip_missing == chunk.analysis.clip_missing
    )
    assert {t.shot_index for t in back.analysis.tracks} <= {1, 2}
    for a, b in zip(chunk.analysis.tracks, back.analysis.tracks, strict=True):
        assert a.keyframe_pts == b.keyframe_pts and a.labels == b.labels and a.best == b.best
        for field in ("boxes", "vectors", "representative"):
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and np.array_equal(x, y), field
    with pytest.raises(ValueError, match="expected a planned_video"):
        from_json(to_json(chunk), PlannedVideo)
