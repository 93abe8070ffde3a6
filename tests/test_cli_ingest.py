"""`video-inst ingest / videos / shots / delete` as editing tools call them: a real process, real files.

Analysis is switched off here (``--no-analyse``): these tests are about the catalog, the JSON
contract and bad input; DASR and search have their own tests.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from media_factory import render_audio_only, render_clip, render_undecodable, truncate_copy

INGEST_KEYS = {"video_id", "path", "status", "shots", "keyframes", "error", "seconds"}


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "video_inst.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def ingest_json(home: Path, *paths: Path, extra: tuple[str, ...] = ()) -> tuple[int, list[dict]]:
    proc = run_cli(home, "ingest", *map(str, paths), "--json", "--no-analyse", *extra)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines


def catalog_rows(home: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608 - fixed table names
            for table in ("shots", "keyframes")
        } | {"videos": sorted(db.execute("SELECT id, path, status, error, content_hash FROM videos"))}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli_clips")
    good = render_clip(d / "good.mp4", scenes=[30, 30, 30]).path
    long_mkv = render_clip(d / "long.mkv", scenes=[75] * 4, size=(160, 96)).path
    out = {
        "good": good,
        "missing": d / "missing.mp4",
        "text": d / "notes.mp4",
        "image": d / "still.png",
        "empty": d / "empty.mov",
        "truncated_mp4": truncate_copy(good, d / "cut.mp4", 0.5),
        "truncated_mkv": truncate_copy(long_mkv, d / "cut.mkv", 0.5),
        "audio": render_audio_only(d / "voice.m4a"),
        "unsupported": render_undecodable(d / "exotic.avi"),
    }
    out["text"].write_text("not a video at all\n")
    out["empty"].write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 10, 10)).save(out["image"])
    return out


def test_ingest_json_lines_shots_and_skip(tmp_path: Path, clips: dict[str, Path]) -> None:
    home = tmp_path / "home"
    code, lines = ingest_json(home, clips["good"])
    assert code == 0
    (line,) = lines
    assert set(line) >= INGEST_KEYS
    assert line["status"] == "done" and line["error"] is None
    assert line["shots"] == 3 and line["keyframes"] >= 3

    proc = run_cli(home, "shots", str(line["video_id"]), "--json")
    shots = json.loads(proc.stdout)
    assert [s["index"] for s in shots] == [0, 1, 2]
    assert [s["start_frame"] for s in shots] == [0, 30, 60]
    assert [s["end_frame"] for s in shots] == [29, 59, 89]
    assert shots[0]["start_s"] == 0.0 and shots[1]["start_s"] == pytest.approx(1.2)
    assert all(a["end_s"] == b["start_s"] for a, b in zip(shots, shots[1:]))
    assert shots[1]["start_tc"] == "00:00:01:05"
    assert all(s["start_s"] <= k["time_s"] < s["end_s"] for s in shots for k in s["keyframes"])
    assert json.loads(run_cli(home, "shots", str(clips["good"]), "--json").stdout) == shots

    before = catalog_rows(home)
    code, (again,) = ingest_json(home, clips["good"])
    assert code == 0 and again["status"] == "skipped" and again["video_id"] == line["video_id"]
    assert catalog_rows(home) == before

    code, (forced,) = ingest_json(home, clips["good"], extra=("--force",))
    assert code == 0 and forced["status"] == "done" and forced["video_id"] == line["video_id"]
    after = catalog_rows(home)
    assert len(after["shots"]) == len(before["shots"]) and len(after["keyframes"]) == len(before["keyframes"])

    videos = json.loads(run_cli(home, "videos", "--json").stdout)
    assert [(v["video_id"], v["status"], v["width"], v["height"]) for v in videos] == [
        (line["video_id"], "done", 160, 96)
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "no such file"),
        ("text", "not a video"),
        ("image", "still image"),
        ("empty", "empty"),
        ("truncated_mp4", "header cannot be read"),
        ("audio", "no video stream"),
        ("unsupported", "no decoder"),
    ],
)
def test_bad_input_is_named_marked_failed_and_changes_nothing_else(
    tmp_path: Path, clips: dict[str, Path], name: str, message: str
) -> None:
    home = tmp_path / "home"
    code, _ = ingest_json(home, clips["good"])
    assert code == 0
    before = catalog_rows(home)

    code, (line,) = ingest_json(home, clips[name])
    assert code == 1
    assert line["status"] == "failed"
    assert message in line["error"] and str(clips[name].name) in line["error"]

    after = catalog_rows(home)
    assert after["shots"] == before["shots"] and after["keyframes"] == before["keyframes"]
    good = [v for v in after["videos"] if v[1] == str(clips["good"].resolve())]
    assert good == [v for v in before["videos"] if v[1] == str(clips["good"].resolve())]
    failed = [v for v in after["videos"] if v not in before["videos"]]
    if name == "missing":
        assert failed == []  # nothing to identify: no row is invented
    else:
        assert [(v[2], message in v[3]) for v in failed] == [("failed", True)]


def test_one_bad_file_fails_the_run_but_not_the_others(tmp_path: Path, clips: dict[str, Path]) -> None:
    code, lines = ingest_json(tmp_path / "home", clips["text"], clips["good"])
    assert code == 1
    assert [line["status"] for line in lines] == ["failed", "done"]


def test_truncated_file_ingests_what_decodes_and_says_so(tmp_path: Path, clips: dict[str, Path]) -> None:
    home = tmp_path / "home"
    code, (line,) = ingest_json(home, clips["truncated_mkv"])
    assert code == 0 and line["status"] == "done"
    assert any("truncated" in w for w in line["warnings"])
    assert 1 <= line["shots"] < 4
    videos = json.loads(run_cli(home, "videos", "--json").stdout)
    assert videos[0]["truncated"] is True and videos[0]["warnings"]


def test_delete_removes_rows_and_thumbnails(tmp_path: Path, clips: dict[str, Path]) -> None:
    home = tmp_path / "home"
    code, (line,) = ingest_json(home, clips["good"])
    thumbs = list((home / "thumbnails").rglob("*.jpg"))
    assert len(thumbs) == line["keyframes"]
    proc = run_cli(home, "delete", str(line["video_id"]))
    assert proc.returncode == 0, proc.stderr
    rows = catalog_rows(home)
    assert rows == {"shots": [], "keyframes": [], "videos": []}
    assert not list((home / "thumbnails").rglob("*.jpg"))
    proc = run_cli(home, "shots", str(line["video_id"]), "--json")
    assert proc.returncode == 1 and "no video" in json.loads(proc.stdout)["error"]["message"]
