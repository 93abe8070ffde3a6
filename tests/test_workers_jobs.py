"""Jobs without a broker: chunking, job rows, idempotent steps, callbacks and archives (in-process).

Real clips decoded by PyAV, a real SQLite catalog, a real HTTP server on 127.0.0.1 for
callbacks. The same library functions run inside the Celery tasks (test_workers_brokers.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from video_inst.catalog.db import get_catalog
from video_inst.catalog.models import Job, Keyframe, Shot, Video
from video_inst.config import Settings, get_settings
from video_inst.errors import OutsideMediaRootsError
from video_inst.jobs import archive, pipeline, staging, state
from video_inst.jobs.enqueue import enqueue_ingest
from video_inst.media.types import Keyframe as KeyframeT
from video_inst.media.types import Shot as ShotT
from video_inst.media.types import ShotPlan
from workers.testing import ARCHIVE_GOOD, CallbackReceiver, build_test_archive

# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def roots(vi_home: Path, tmp_path: Path, shared_media: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Media roots: the shared media and a scratch archive folder; returns the archive folder."""
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    monkeypatch.setenv("VIDEO_INST_MEDIA_ROOTS", os.pathsep.join([str(shared_media), str(archive_dir)]))
    monkeypatch.setenv("VIDEO_INST_CHUNK_KEYFRAMES", "8")
    get_settings.cache_clear()
    return archive_dir


@pytest.fixture
def ctx(roots: Path) -> tuple[Settings, object]:
    settings = get_settings()
    return settings, get_catalog(settings)


def _counts(catalog: object) -> dict[str, int]:
    with catalog.session() as s:  # type: ignore[attr-defined]
        return {
            "videos": s.scalar(select(func.count()).select_from(Video)),
            "shots": s.scalar(select(func.count()).select_from(Shot)),
            "keyframes": s.scalar(select(func.count()).select_from(Keyframe)),
        }


def _ingest(settings: Settings, catalog: object, path: Path, **kw: object) -> dict:
    job_id = state.create_job(catalog, kind="ingest", path=str(path))  # type: ignore[arg-type]
    return pipeline.ingest_in_process(job_id, path, settings=settings, catalog=catalog, analyse=False, **kw)  # type: ignore[arg-type]


# --- chunking ----------------------------------------------------------------------------


def _plan(keyframes_per_shot: list[int]) -> ShotPlan:
    shots, keyframes, t = [], [], 0
    for i, n in enumerate(keyframes_per_shot):
        shots.append(
            ShotT(i, t, t + max(n, 1) * 10, t / 10, (t + max(n, 1) * 10) / 10, t, t + max(n, 1) * 10 - 1)
        )
        keyframes += [KeyframeT(i, t + 10 * k, (t + 10 * k) / 10, t + 10 * k) for k in range(n)]
        t += max(n, 1) * 10
    return ShotPlan(shots=shots, keyframes=keyframes, frame_count=t, end_pts=t)


@given(st.lists(st.integers(0, 30), min_size=0, max_size=40), st.integers(1, 25))
def test_chunks_cover_every_shot_once_in_order_and_respect_the_limit(per_shot: list[int], limit: int) -> None:
    chunks = pipeline.chunk_shots(_plan(per_shot), limit)
    assert [i for c in chunks for i in c] == list(range(len(per_shot)))
    for chunk in chunks:
        keyframes = sum(per_shot[i] for i in chunk)
        assert keyframes <= limit or len(chunk) == 1  # only a single oversized shot may exceed it
    for left, right in zip(chunks, chunks[1:]):  # chunks are as full as whole shots allow
        assert sum(per_shot[i] for i in left) + per_shot[right[0]] > limit


# --- one video as a job ------------------------------------------------------------------


def test_job_runs_through_chunks_and_is_skipped_when_done(ctx: tuple, edit_clip: Path) -> None:
    settings, catalog = ctx
    result = _ingest(settings, catalog, edit_clip)
    assert result["status"] == "done" and result["error"] is None
    job = state.get_job(catalog, result["job_id"])
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["started_at"] <= job["finished_at"]
    assert job["counts"]["chunks"] > 1  # split by shot ranges
    assert job["counts"]["chunks_done"] == job["counts"]["chunks"]
    c = _counts(catalog)
    assert c["shots"] == result["shots"] > 1 and c["keyframes"] == result["keyframes"]
    assert not staging.job_dir(settings, result["job_id"]).exists()  # staged files cleaned up
    thumbs = sorted(settings.thumbnail_dir.rglob("*.jpg"))
    assert len(thumbs) == result["keyframes"]
    lost = thumbs[len(thumbs) // 2].read_bytes()
    thumbs[len(thumbs) // 2].unlink()  # damage a derived file: the skipped re-run restores it
    again = _ingest(settings, catalog, edit_clip)
    assert again["status"] == "skipped" and again["video_id"] == result["video_id"]
    assert again["shots"] == result["shots"]
    assert _counts(catalog) == c
    assert thumbs[len(thumbs) // 2].read_bytes()[:3] == lost[:3] == b"\xff\xd8\xff"  # a JPEG again
    assert any("thumbnails restored" in w for w in again["warnings"]), again["warnings"]


def test_every_step_twice_leaves_no_duplicates(ctx: tuple, edit_clip: Path) -> None:
    """Plan, chunk and commit delivered twice, and a second job of the same content: replaced, not added."""
    settings, catalog = ctx
    job_id = state.create_job(catalog, kind="ingest", path=str(edit_clip))
    kw = {"settings": settings, "catalog": catalog}
    started = pipeline.start_ingest(job_id, edit_clip, analyse=False, **kw)
    again = pipeline.start_ingest(job_id, edit_clip, analyse=False, **kw)  # plan re-delivered: reused
    assert again.chunks == started.chunks and len(started.chunks) > 1
    results = [pipeline.run_chunk(job_id, i, c, analyse=False, **kw) for i, c in enumerate(started.chunks)]
    first_chunk = staging.chunk_path(settings, job_id, 0).stat().st_mtime_ns
    pipeline.run_chunk(job_id, 0, started.chunks[0], analyse=False, **kw)  # chunk re-delivered: reused
    assert staging.chunk_path(settings, job_id, 0).stat().st_mtime_ns == first_chunk
    # A second job of the same content (a forced re-ingest) with the same staged results.
    twin = state.create_job(catalog, kind="ingest", path=str(edit_clip))
    shutil.copytree(staging.job_dir(settings, job_id), staging.job_dir(settings, twin))
    state.mark_running(catalog, twin)
    state.merge_counts(catalog, twin, {**state.get_job(catalog, job_id)["counts"], "force": True})

    done = pipeline.finish_ingest(job_id, results, **kw)
    assert done.result["status"] == "done"
    c = _counts(catalog)
    assert c["shots"] == done.result["shots"] and c["keyframes"] == done.result["keyframes"]
    assert pipeline.finish_ingest(job_id, results, **kw).result == done.result  # commit re-delivered
    assert _counts(catalog) == c
    redo = pipeline.finish_ingest(twin, results, **kw)
    assert redo.result["status"] == "done" and redo.result["video_id"] == done.result["video_id"]
    assert _counts(catalog) == c
    with catalog.session() as s:
        dupes = s.execute(
            select(Keyframe.video_id, Keyframe.pts)
            .group_by(Keyframe.video_id, Keyframe.pts)
            .having(func.count() > 1)
        ).all()
    assert dupes == []


def test_two_queued_jobs_of_one_content_commit_once(ctx: tuple, edit_clip: Path) -> None:
    """Both planned and analysed before either committed: the second ends "skipped" at its commit."""
    settings, catalog = ctx
    kw = {"settings": settings, "catalog": catalog}
    jobs = [state.create_job(catalog, kind="ingest", path=str(edit_clip)) for _ in range(2)]
    staged = {}
    for job_id in jobs:  # the two plan and chunk steps run before either commit
        started = pipeline.start_ingest(job_id, edit_clip, analyse=False, **kw)
        staged[job_id] = [
            pipeline.run_chunk(job_id, i, c, analyse=False, **kw) for i, c in enumerate(started.chunks)
        ]
    first = pipeline.finish_ingest(jobs[0], staged[jobs[0]], **kw).result
    with catalog.session() as s:
        committed = s.get(Video, first["video_id"]).updated_at
    second = pipeline.finish_ingest(jobs[1], staged[jobs[1]], **kw).result
    assert (first["status"], second["status"]) == ("done", "skipped")  # as the CLI's second ingest
    assert second["video_id"] == first["video_id"]
    assert state.get_job(catalog, jobs[1])["counts"]["outcome"] == "skipped"
    assert state.get_job(catalog, jobs[0])["counts"]["outcome"] == "done"
    assert (second["shots"], second["keyframes"]) == (first["shots"], first["keyframes"])
    with catalog.session() as s:
        assert s.get(Video, first["video_id"]).updated_at == committed  # not committed again
    assert not staging.job_dir(settings, jobs[1]).exists()  # its staged chunks are cleaned up
    assert _counts(catalog)["videos"] == 1


def test_permanent_error_fails_at_once_with_the_reason(ctx: tuple, shared_media: Path) -> None:
    settings, catalog = ctx
    not_video = shared_media / "clips" / "LICENSE.mdn"
    result = _ingest(settings, catalog, not_video)
    job = state.get_job(catalog, result["job_id"])
    assert job["status"] == "failed" and "LICENSE.mdn" in job["error"]
    assert job["counts"].get("deliveries") is None  # in-process: no re-delivery bookkeeping
    with catalog.session() as s:
        video = s.get(Video, result["video_id"])
        assert video.status == "failed" and video.error == job["error"]


def test_outside_media_roots_is_refused(ctx: tuple, tmp_path: Path) -> None:
    settings, catalog = ctx
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"\0" * 64)
    with pytest.raises(OutsideMediaRootsError, match="outside the configured media roots"):
        enqueue_ingest([outside], settings=settings, catalog=catalog)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0  # nothing queued
    result = _ingest(settings, catalog, outside)  # a task given such a path fails its job
    assert result["status"] == "failed" and "outside the configured media roots" in result["error"]
    assert result["video_id"] is None
    with pytest.raises(OutsideMediaRootsError):
        archive.run_archive(tmp_path, settings=settings, catalog=catalog, in_process=True)


def test_no_media_roots_configured_is_refused(vi_home: Path, edit_clip: Path) -> None:
    with pytest.raises(OutsideMediaRootsError, match="no media roots are configured"):
        enqueue_ingest([edit_clip])


# --- job rows ----------------------------------------------------------------------------


def test_progress_never_goes_back_and_a_job_ends_once(ctx: tuple) -> None:
    _, catalog = ctx
    job_id = state.create_job(catalog, kind="ingest", path="/x.mp4")
    assert state.get_job(catalog, job_id)["status"] == "queued"
    assert state.mark_running(catalog, job_id)
    assert state.set_progress(catalog, job_id, 0.5, {"chunks_done": 2})
    assert not state.set_progress(catalog, job_id, 0.3, {"chunks_done": 1})
    job = state.get_job(catalog, job_id)
    assert job["progress"] == 0.5 and job["counts"]["chunks_done"] == 2
    assert state.end_job(catalog, job_id, status="failed", error="boom")
    assert not state.end_job(catalog, job_id, status="done")  # a second ending changes nothing
    assert not state.mark_running(catalog, job_id)
    job = state.get_job(catalog, job_id)
    assert job["status"] == "failed" and job["error"] == "boom" and job["finished_at"]


# --- callbacks ---------------------------------------------------------------------------


def test_callback_receives_json_post_after_transient_failures(ctx: tuple, shared_media: Path) -> None:
    settings, catalog = ctx
    clip = shared_media / "clips" / "sintel_snow.mp4"
    receiver = CallbackReceiver(codes=[503, 502])  # two failures, then 200
    try:
        result = _ingest(settings, catalog, clip, callback_url=receiver.url)
    finally:
        receiver.close()
    assert len(receiver.bodies) == 3
    body = receiver.bodies[-1]
    assert body["job_id"] == result["job_id"] and body["status"] == "done"
    assert body["result"]["shots"] == result["shots"] > 0
    assert state.get_job(catalog, result["job_id"])["counts"]["callback"] == "sent 200"


def test_callback_refused_with_4xx_is_not_retried_and_does_not_fail_the_job(
    ctx: tuple, shared_media: Path
) -> None:
    settings, catalog = ctx
    clip = shared_media / "clips" / "sintel_snow.mp4"
    receiver = CallbackReceiver(codes=[404])
    try:
        result = _ingest(settings, catalog, clip, callback_url=receiver.url)
    finally:
        receiver.close()
    assert len(receiver.bodies) == 1
    job = state.get_job(catalog, result["job_id"])
    assert job["status"] == "done" and job["counts"]["callback"].startswith("failed:")


# --- archives ----------------------------------------------------------------------------

GOOD = ARCHIVE_GOOD


def test_archive_reports_failures_with_reasons_and_second_run_skips(
    ctx: tuple, roots: Path, shared_media: Path
) -> None:
    settings, catalog = ctx
    files = build_test_archive(roots, shared_media)
    run = archive.run_archive(roots, settings=settings, catalog=catalog, in_process=True, analyse=False)
    report = archive.report_of(catalog, run.job_id)
    assert report["status"] == "done" and report["files"] == 6
    assert report["ingested"] == 3 and report["skipped"] == 0 and report["failed"] == 3
    reasons = {Path(f["path"]).name: f["error"] for f in report["failures"]}
    assert "dangling symbolic link" in reasons["offline.mov"]
    assert "not a regular file (a FIFO)" in reasons["pipe.mkv"]
    assert "corrupt.mp4" in reasons["corrupt.mp4"]  # the media layer's message, naming the file
    assert sorted(report["ingested_paths"]) == sorted(str(files[r]) for r in GOOD)
    before = _counts(catalog)
    with catalog.session() as s:
        failed_rows = {Path(v.path).name for v in s.scalars(select(Video).where(Video.status == "failed"))}
    assert "corrupt.mp4" in failed_rows  # a regular file's failure is on record in the catalog too
    assert before["videos"] == 3 + len(failed_rows)

    second = archive.run_archive(roots, settings=settings, catalog=catalog, in_process=True, analyse=False)
    assert second.job_id != run.job_id and not second.resumed
    assert sorted(second.skipped) == sorted(str(files[r]) for r in GOOD)
    assert second.summary()["enqueued"] == 1  # only the corrupt file is tried again
    report2 = archive.report_of(catalog, second.job_id)
    assert report2["skipped"] == 3 and report2["failed"] == 3 and report2["ingested"] == 0
    assert _counts(catalog) == before


def test_interrupted_archive_resumes(ctx: tuple, roots: Path, shared_media: Path) -> None:
    settings, catalog = ctx
    build_test_archive(roots, shared_media)

    def interrupt(counts: dict[str, int]) -> None:
        if counts["enqueued"] >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive.run_archive(
            roots, settings=settings, catalog=catalog, in_process=True, analyse=False, progress=interrupt
        )
    [open_job] = state.list_jobs(catalog, kind="archive")
    assert open_job["status"] == "running" and not open_job["counts"]["walk_done"]
    done_before = state.status_counts(catalog, parent_id=open_job["job_id"]).get("done", 0)
    assert done_before == 2

    run = archive.run_archive(roots, settings=settings, catalog=catalog, in_process=True, analyse=False)
    assert run.resumed and run.job_id == open_job["job_id"]
    report = archive.report_of(catalog, run.job_id)
    assert report["status"] == "done"
    assert report["ingested"] == 3 and report["failed"] == 3 and report["pending"] == 0
    assert _counts(catalog)["shots"] >= 3
    with catalog.session() as s:  # one child job per file, however many runs
        per_path = s.execute(
            select(Job.path, func.count()).where(Job.parent_id == run.job_id).group_by(Job.path)
        ).all()
    assert len(per_path) == 6 and all(n == 1 for _, n in per_path)


def test_symlink_leading_outside_the_roots_is_refused(ctx: tuple, roots: Path, tmp_path: Path) -> None:
    settings, catalog = ctx
    secret = tmp_path / "private" / "secret.mp4"
    secret.parent.mkdir()
    secret.write_bytes(b"\0" * 64)
    (roots / "leak.mp4").symlink_to(secret)
    run = archive.run_archive(roots, settings=settings, catalog=catalog, in_process=True, analyse=False)
    [failure] = archive.report_of(catalog, run.job_id)["failures"]
    assert "outside the configured media roots" in failure["error"]
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == 0  # never hashed, never recorded


# --- CLI ---------------------------------------------------------------------------------


def test_cli_ingest_archive_and_jobs(ctx: tuple, roots: Path, shared_media: Path) -> None:
    from video_inst.cli import main

    build_test_archive(roots, shared_media)
    runner = CliRunner()
    out = runner.invoke(main, ["ingest-archive", str(roots), "--in-process", "--no-analyse", "--json"])
    assert out.exit_code == 1, out.output  # some files failed
    report = json.loads(out.output)
    assert report["ingested"] == 3 and report["failed"] == 3
    assert all(f["error"] for f in report["failures"])
    out = runner.invoke(
        main, ["ingest-archive", str(roots), "--in-process", "--no-analyse", "--json", "--pattern", "*.mp4"]
    )
    report = json.loads(out.output)
    assert report["skipped"] == 3 and report["files"] == 4 and report["failed"] == 1  # corrupt.mp4 only
    out = runner.invoke(main, ["jobs", "--json", "--limit", "100"])
    assert out.exit_code == 0
    jobs = json.loads(out.output)
    assert {j["kind"] for j in jobs} == {"archive", "ingest"}
    one = runner.invoke(main, ["jobs", report["job_id"], "--json"])
    assert json.loads(one.output)["report"]["skipped"] == 3
    refused = runner.invoke(main, ["ingest-archive", "/tmp", "--in-process"])
    assert refused.exit_code == 1 and "outside the configured media roots" in refused.output
