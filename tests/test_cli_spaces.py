"""``video-inst`` across a DASR backbone-parameter switch, each command a real subprocess.

The real EfficientNet-Lite0 weights at the default input size and then 384 (two model
spaces); CLIP weights are absent here, so text is not involved. Checks the commands an
operator runs: search notes, ``spaces list``, ``reindex --space dasr``, ``spaces drop``,
``index check``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from video_inst.config import Settings

OLD = f"dasr:efficientnet_lite0:s{Settings.model_fields['dasr_input_size'].default}:avg"
NEW = "dasr:efficientnet_lite0:s384:avg"


def run_cli(home: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env.update({"VIDEO_INST_HOME": str(home), "HF_HUB_OFFLINE": "1", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "video_inst.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def spaces(home: Path, **env: str) -> dict[str, dict]:
    proc = run_cli(home, "spaces", "list", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout) if row["family"] == "dasr"}


@pytest.mark.slow  # eleven CLI processes, each loading torch and the backbone: ~3 min here
def test_dasr_switch_from_the_command_line(tmp_path: Path, shared_media: Path) -> None:
    home = tmp_path / "home"
    proc = run_cli(home, "ingest", str(shared_media / "clips" / "realshort.mp4"), "--json")
    assert proc.returncode == 0, proc.stderr
    video_id = json.loads(proc.stdout.splitlines()[0])["video_id"]
    switched = {"VIDEO_INST_DASR_INPUT_SIZE": "384"}
    image = str(shared_media / "images" / "kite_and_cold.jpg")

    proc = run_cli(home, "search", "--image", image, "--top-k", "3", "--json", **switched)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits and {h["spaces"]["dasr"] for h in hits} == {OLD}
    assert f"note: dasr answered from model space {OLD}: the configured {NEW} covers 0 of 1" in proc.stderr
    assert spaces(home, **switched)[OLD]["active"] is True
    proc = run_cli(home, "spaces", "drop", OLD, **switched)
    assert proc.returncode == 1 and "answers dasr searches now" in proc.stderr

    proc = run_cli(home, "reindex", "--space", "dasr", "--json", **switched)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["space"], report["done"], report["failed"]) == (NEW, [video_id], [])
    listed = spaces(home, **switched)
    assert listed[NEW]["active"] and listed[NEW]["configured"] and listed[NEW]["videos"] == 1
    assert not listed[OLD]["active"] and listed[OLD]["videos"] == 1  # kept until dropped
    proc = run_cli(home, "search", "--image", image, "--top-k", "3", "--json", **switched)
    assert proc.returncode == 0 and "note:" not in proc.stderr
    assert {h["spaces"]["dasr"] for h in json.loads(proc.stdout)} == {NEW}
    # Without the switch in the environment the old configuration is "configured" again, but
    # both spaces are complete: the configured (old) one answers.
    assert spaces(home)[OLD]["active"] is True

    proc = run_cli(home, "spaces", "drop", OLD, **switched)
    assert proc.returncode == 0 and f"dropped {OLD}" in proc.stdout, proc.stderr
    assert set(spaces(home, **switched)) == {NEW}
    proc = run_cli(home, "index", "check", "--json", **switched)
    assert proc.returncode == 0, proc.stdout
    assert {row["space"] for row in json.loads(proc.stdout)} == {NEW}  # no CLIP vectors without weights
