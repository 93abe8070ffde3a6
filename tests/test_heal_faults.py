"""Fault injection with real processes (issue 12 items 1, 2, 6): SIGKILLed ingests, damaged index files.

A real ``video-inst ingest`` is stopped at a named point by the test hook
``VIDEO_INST_PAUSE_AT`` (video_inst/ingest/pipeline.py ``pause_point``: it writes a marker file and
sleeps) and SIGKILLed there by the test; a real ``video-inst serve`` has its index files
deleted, truncated and garbled under it. Each step checks what an operator would see: exit
codes, search hits, ``index check``, the files in the data directory.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_live import error_of, free_port

CLIP = "realshort.mp4"  # 1 shot, 1 keyframe, 17 tracks: the quickest real analysis
QUERY = "images/astronaut.png"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env.update({"VIDEO_INST_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra})
    return env


def run_cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "video_inst.cli", *args],
        env=cli_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


def kill_at(home: Path, point: str, clip: Path) -> None:
    """Start ``video-inst ingest clip``, wait until it pauses at ``point``, SIGKILL it."""
    marker = home.parent / f"paused-{home.name}-{point}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "video_inst.cli", "ingest", str(clip), "--json"],
        env=cli_env(home, VIDEO_INST_PAUSE_AT=point, VIDEO_INST_PAUSE_FILE=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 600
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"ingest ended before {point}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"ingest never reached {point}")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]


def index_check(home: Path, *args: str) -> tuple[int, list[dict], str]:
    proc = run_cli(home, "index", "check", "--json", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def thumbnails_on_disk(home: Path) -> set[str]:
    root = home / "thumbnails"
    return {str(p.relative_to(root)) for p in root.rglob("*.jpg")}


def thumbnails_in_catalog(home: Path) -> set[str]:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        return {r[0] for r in db.execute("SELECT thumbnail FROM keyframes WHERE thumbnail IS NOT NULL")}


def search_videos(home: Path, shared_media: Path) -> set[int]:
    proc = run_cli(home, "search", "--image", str(shared_media / QUERY), "--top-k", "5", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return {hit["video_id"] for hit in json.loads(proc.stdout)}


@pytest.mark.slow  # eight CLI processes with the real backbone: ~2 min here
def test_ingest_killed_between_sql_commit_and_faiss_sync(tmp_path: Path, shared_media: Path) -> None:
    home = tmp_path / "home"
    # 1. The next CLI search repairs the indexes before it answers.
    kill_at(home, "after-commit", shared_media / "clips" / CLIP)
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        ((video_id, status),) = db.execute("SELECT id, status FROM videos").fetchall()
    assert status == "done"  # SQL has it all ...
    rc, rows, _ = index_check(home)
    assert rc == 1 and all(r["missing"] == r["sql"] > 0 for r in rows), rows  # ... FAISS has none of it
    assert video_id in search_videos(home, shared_media)
    rc, rows, _ = index_check(home)
    assert rc == 0 and all(r["sql"] == r["index"] > 0 for r in rows), rows
    # 2. A skipped re-ingest of the killed video repairs the indexes too (another data dir).
    home = tmp_path / "home2"
    other = shared_media / "clips" / CLIP
    kill_at(home, "after-commit", other)
    rc, rows, _ = index_check(home)
    assert rc == 1 and any(r["missing"] for r in rows), rows
    proc = run_cli(home, "ingest", str(other), "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["status"] == "skipped", proc.stderr
    assert any("index repaired" in w for w in result["warnings"]), result
    rc, rows, _ = index_check(home)
    assert rc == 0 and all(r["sql"] == r["index"] > 0 for r in rows), rows
    found = run_cli(
        home, "search", "--image", str(shared_media / QUERY), "--video", str(result["video_id"]), "--json"
    )
    assert found.returncode == 0 and {h["video_id"] for h in json.loads(found.stdout)} == {result["video_id"]}
    # 3. A re-run of the first answers skipped with nothing to repair; every file has its row.
    proc = run_cli(home, "ingest", str(shared_media / "clips" / CLIP), "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["status"] == "skipped" and not result["warnings"], proc.stderr
    assert thumbnails_on_disk(home) == thumbnails_in_catalog(home) != set()


@pytest.mark.slow  # four CLI processes with the real backbone: ~1 min here
def test_orphan_thumbnails_are_collected_and_missing_ones_restored(
    tmp_path: Path, shared_media: Path
) -> None:
    home = tmp_path / "home"
    clip = shared_media / "clips" / CLIP
    kill_at(home, "before-commit", clip)
    left = thumbnails_on_disk(home)
    assert left and not thumbnails_in_catalog(home)  # written before the kill, no row
    # A leftover of a killed run with other shot settings: a keyframe this run will not have.
    folder = home / "thumbnails" / next(iter(left)).split("/")[0]
    (folder / "987654321.jpg").write_bytes((home / "thumbnails" / next(iter(left))).read_bytes())
    rc, _, notes = index_check(home)
    assert rc == 0 and "note: orphans" not in notes  # young orphans may be an ingest under way
    proc = run_cli(home, "ingest", str(clip), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "done", proc.stderr
    assert thumbnails_on_disk(home) == thumbnails_in_catalog(home) == left
    # A deleted thumbnail comes back with a plain (skipped) re-ingest.
    gone = home / "thumbnails" / sorted(left)[0]
    gone.unlink()
    proc = run_cli(home, "ingest", str(clip), "--json")
    result = json.loads(proc.stdout)
    assert result["status"] == "skipped" and any("restored" in w for w in result["warnings"]), result
    assert gone.is_file() and thumbnails_on_disk(home) == left
    # Staging of a job that no longer exists, and an old orphan thumbnail: named, then removed.
    (home / "staging" / "no-such-job").mkdir(parents=True)
    (home / "staging" / "no-such-job" / "plan.pkl").write_bytes(b"x")
    old = folder / "111.jpg"
    old.write_bytes(gone.read_bytes())
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    rc, _, notes = index_check(home)
    assert rc == 1 and "1 thumbnails, 1 staging folders" in notes, notes
    rc, _, notes = index_check(home, "--repair")
    assert rc == 0 and "removed" in notes, notes
    assert not old.exists() and not (home / "staging" / "no-such-job").exists()
    assert thumbnails_on_disk(home) == left
    assert index_check(home)[0] == 0


def garble(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(os.urandom(4096))


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


@pytest.mark.slow  # a real ingest and a real server: ~1 min here
def test_index_damage_under_a_running_server(tmp_path: Path, shared_media: Path) -> None:
    home = tmp_path / "home"
    proc = run_cli(home, "ingest", str(shared_media / "clips" / CLIP), "--json")
    assert proc.returncode == 0, proc.stderr
    video_id = json.loads(proc.stdout)["video_id"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "video_inst.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    image = (shared_media / QUERY).read_bytes()

    def health() -> dict:
        response = httpx.get(base + "/health", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_ok() -> dict:
        deadline = time.monotonic() + 300
        while True:
            body = health()
            if body["status"] == "ok":
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.2)

    def search() -> httpx.Response:
        files = [("image", ("q.png", image, "image/png"))]
        return httpx.post(base + "/search", data={"top_k": "5"}, files=files, timeout=120)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/health", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert wait_ok()["indexes"]
        first = search()
        assert first.status_code == 200 and {h["video_id"] for h in first.json()["hits"]} == {video_id}
        index_file = home / "index" / "1-region.faiss"
        for damage in (Path.unlink, truncate, garble):
            damage(index_file)
            answer = search()
            if answer.status_code == 200:  # answered from SQL while the repair runs, never empty
                assert answer.json()["hits"] == first.json()["hits"], damage
            else:
                error = error_of(answer)
                assert answer.status_code == 503 and error["code"] == "index_unavailable", answer.text
                assert str(home) not in error["message"]
            healed = wait_ok()
            assert all(i["state"] == "ok" for i in healed["indexes"])
            assert index_file.is_file()
            after = search()
            assert after.status_code == 200 and after.json()["hits"] == first.json()["hits"], damage
            rc, rows, _ = index_check(home)
            assert rc == 0, rows
    finally:
        server.terminate()
        try:
            _, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    assert "Traceback" not in err, err[-3000:]
