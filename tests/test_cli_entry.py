"""Both ways of starting the CLI see every command, including those cli_api and cli_jobs register.

``python -m video_inst.cli`` runs the module as ``__main__`` (a second copy); the commands of
cli_api / cli_jobs register on the ``video_inst.cli`` copy, so ``serve`` once went missing there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGISTERED_ELSEWHERE = {"serve", "export", "worker", "jobs", "ingest-archive"}  # cli_api, cli_jobs
REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _commands(help_text: str) -> set[str]:
    lines = help_text.split("Commands:", 1)[1].splitlines()
    return {line.split()[0] for line in lines if line.startswith("  ") and line.split()}


def _entry_points() -> list[list[str]]:
    script = Path(sys.executable).with_name("video-inst")
    return [[sys.executable, "-m", "video_inst.cli"], [str(script)]]


@pytest.mark.parametrize("argv", _entry_points(), ids=["python -m video_inst.cli", "video-inst"])
def test_every_command_is_registered(argv: list[str], tmp_path: Path) -> None:
    if not Path(argv[0]).exists():
        pytest.fail(f"{argv[0]} is missing: install the package (pip install -e .)")
    proc = subprocess.run([*argv, "--help"], env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    commands = _commands(proc.stdout)
    assert commands >= REGISTERED_ELSEWHERE, f"missing: {REGISTERED_ELSEWHERE - commands}"
    assert {"ingest", "search", "videos", "shots"} <= commands


@pytest.mark.parametrize("argv", _entry_points(), ids=["python -m video_inst.cli", "video-inst"])
def test_serve_runs_from_both_entry_points(argv: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [*argv, "serve", "--help"], env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--port" in proc.stdout
