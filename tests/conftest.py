"""Shared fixtures: real media from ../shared/media (fails loudly when absent) and a fresh data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
POSTGRES_URL = os.environ.get("VIDEO_INST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The licensed test media beside the checkout; tests read it in place, never copy it."""
    if not (SHARED_MEDIA / "clips").is_dir():
        pytest.fail(f"test media not found at {SHARED_MEDIA}; set VIDEO_INST_TEST_MEDIA")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def edit_clip(shared_media: Path) -> Path:
    return shared_media / "edits" / "instance_test_edit.mp4"


@pytest.fixture
def vi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded data directory for one test; settings re-read from the environment."""
    from video_inst.config import get_settings

    home = tmp_path / "vi_home"
    monkeypatch.setenv("VIDEO_INST_HOME", str(home))
    for var in ("VIDEO_INST_DATABASE_URL", "VIDEO_INST_BROKER_URL", "VIDEO_INST_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
