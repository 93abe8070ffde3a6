"""Both ways of starting the CLI see every command, whichever module of ``video_inst.cli`` defines it.

``python -m video_inst.cli`` once ran a second copy of the module on which the serve and queue
commands had not registered, so ``serve`` went missing there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGISTERED_ELSEWHERE = {
    "serve",
    "export",
    "worker",
    "jobs",
    "ingest-archive",
    "fit-whitening",
}  # not commands.py
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


def _db(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "video_inst.cli", "db", *args],
        env=_env(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_downgrade_needs_a_revision_and_a_confirmation(tmp_path: Path) -> None:
    """A bare ``db downgrade`` once went to ``base`` and deleted the catalog with exit 0."""
    assert _db(tmp_path, "upgrade").returncode == 0
    head = _db(tmp_path, "current").stdout.strip()
    assert head.startswith("0004")

    bare = _db(tmp_path, "downgrade")
    assert bare.returncode == 2 and "--revision" in bare.stderr
    refused = _db(tmp_path, "downgrade", "--revision", "base", stdin="n\n")
    assert refused.returncode == 1 and "Aborted" in refused.stderr
    assert "dropped with their data" in refused.stderr
    no_answer = _db(tmp_path, "downgrade", "--revision", "base")  # no terminal, nobody to ask
    assert no_answer.returncode == 1
    empty = _db(tmp_path, "downgrade", "--revision", " ", "--yes")  # not a revision, even with --yes
    assert empty.returncode == 2 and "give a revision" in empty.stderr
    assert _db(tmp_path, "current").stdout.strip() == head  # nothing was dropped

    confirmed = _db(tmp_path, "downgrade", "--revision", "0002", stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert _db(tmp_path, "current").stdout.strip().startswith("0002")
    assert _db(tmp_path, "downgrade", "--revision", "base", "--yes").returncode == 0
    assert _db(tmp_path, "current").stdout.strip() == "empty"


def test_the_library_downgrade_has_no_default_revision(tmp_path: Path) -> None:
    """``catalog.db.downgrade`` once defaulted to ``base``: a forgotten argument dropped the catalog."""
    from video_inst.catalog.db import current_revision, downgrade, head_revision, upgrade

    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    upgrade(url)
    with pytest.raises(TypeError):
        downgrade(url)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="explicit revision"):
        downgrade(url, "")
    assert current_revision(url) == head_revision()
