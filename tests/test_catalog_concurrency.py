"""Several real `video-inst` processes on one data directory at once (issue 12, item 3).

Three ingests start together on a fresh catalog: two clips and a copy of one of them. One
process migrates the new catalog under the lock while the others wait; the two ingests of
the same content never race on the insert (the second answers ``skipped``); SQL and the
FAISS files agree afterwards. The same on PostgreSQL, where three ``db upgrade`` race first.
Analysis is on (the real offline backbone, at a small input size) so FAISS files are written
by several processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from media_factory import render_clip

TRIALS = 3


def cli_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(home)
    env["VIDEO_INST_DASR_INPUT_SIZE"] = "192"  # a smaller network input: the same code paths, faster
    if database_url:
        env["VIDEO_INST_DATABASE_URL"] = database_url
    return env


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "video_inst.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen], timeout: float = 900) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        out.append((proc.returncode, stdout, stderr))
    return out


def assert_clean(runs: list[tuple[int, str, str]]) -> None:
    for code, stdout, stderr in runs:
        assert "Traceback" not in stderr, stderr[-3000:]
        assert "database is locked" not in stderr + stdout, stderr[-3000:]
        assert code == 0, (code, stdout[-2000:], stderr[-3000:])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("conc_clips")
    a = render_clip(d / "a.mp4", scenes=[30, 30]).path
    b = render_clip(d / "b.mp4", scenes=[25, 35], size=(128, 96)).path
    copy = d / "a_copy.mp4"
    shutil.copyfile(a, copy)  # same content, another path
    return {"a": a, "b": b, "a_copy": copy}


def three_ingests_at_once(env: dict[str, str], clips: dict[str, Path]) -> dict[str, dict]:
    """Start the three, wait, check every process ended cleanly; the JSON line of each clip."""
    names = ("a", "b", "a_copy")
    procs = [start(env, "ingest", str(clips[n]), "--json") for n in names]
    runs = finish(procs)
    assert_clean(runs)
    results = {}
    for name, (_, stdout, _) in zip(names, runs):
        (line,) = [json.loads(x) for x in stdout.splitlines() if x.strip()]
        results[name] = line
    return results


def check_catalog(env: dict[str, str], results: dict[str, dict]) -> None:
    a, copy, b = results["a"], results["a_copy"], results["b"]
    assert b["status"] == "done" and b["tracks"] > 0
    # The same content twice: one analysed it, the other waited and found it done.
    assert sorted([a["status"], copy["status"]]) == ["done", "skipped"], (a, copy)
    assert a["video_id"] == copy["video_id"] != b["video_id"]
    for key in ("shots", "keyframes", "tracks"):
        assert a[key] == copy[key] > 0
    ((code, stdout, stderr),) = finish([start(env, "videos", "--json")])
    assert code == 0, stderr
    videos = json.loads(stdout)
    assert sorted(v["video_id"] for v in videos) == sorted([a["video_id"], b["video_id"]])
    assert {v["status"] for v in videos} == {"done"}
    ((code, stdout, stderr),) = finish([start(env, "index", "check", "--json")])
    assert "Traceback" not in stderr, stderr
    rows = json.loads(stdout)
    assert code == 0, rows
    kinds = {row["kind"] for row in rows}
    assert "region" in kinds and "track" not in kinds, rows  # DASR track vectors: SQL only
    for row in rows:
        assert row["sql"] == row["index"] > 0 and row["missing"] == row["extra"] == 0, rows
    region_rows = [row for row in rows if row["kind"] == "region"]
    assert sum(row["sql"] for row in region_rows) == a["tracks"] + b["tracks"]  # one region vector a track


def test_three_ingests_at_once_on_a_fresh_embedded_data_directory(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    for trial in range(TRIALS):
        env = cli_env(tmp_path / f"home{trial}")
        check_catalog(env, three_ingests_at_once(env, clips))


def test_three_ingests_at_once_on_postgresql(tmp_path: Path, clips: dict[str, Path], pg_url: str) -> None:
    env = cli_env(tmp_path / "home", pg_url)
    upgrades = finish([start(env, "db", "upgrade") for _ in range(3)])
    assert_clean(upgrades)
    assert all("catalog at revision" in stdout for _, stdout, _ in upgrades)
    check_catalog(env, three_ingests_at_once(env, clips))


def test_a_search_answers_while_another_process_ingests(tmp_path: Path, clips: dict[str, Path]) -> None:
    env = cli_env(tmp_path / "home")
    assert_clean(finish([start(env, "ingest", str(clips["a"]), "--json")]))
    ingest = start(env, "ingest", str(clips["b"]), "--json")
    searches = 0
    # Searches run back to back for as long as the ingest runs (through its commit and sync);
    # every one answers, and at least one overlaps the ingest.
    while True:
        running = ingest.poll() is None
        ((code, stdout, stderr),) = finish([start(env, "search", "--track", "1", "--json")])
        assert code == 0 and "Traceback" not in stderr, stderr[-3000:]
        assert json.loads(stdout), stdout[:500]  # hits (the track finds itself at least)
        searches += 1
        if not running:
            break
    assert_clean(finish([ingest]))
    assert searches >= 2
    ((code, stdout, _),) = finish([start(env, "index", "check", "--json")])
    assert code == 0, stdout
