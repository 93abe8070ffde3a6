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


@pytest.fixture
def pg_url() -> str:
    """A fresh, empty PostgreSQL database on this machine's server, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"vi_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - report why PostgreSQL is unusable
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not usable: {exc}")
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from video_inst.catalog import db as catalog_db

    catalog_db._catalog_for.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
