"""Shared fixtures: the suite's own licensed media (tests/media) and a fresh data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests/media is a byte-identical licensed subset of the shared media (see its SOURCES.md), so a
# fresh clone tests itself; VIDEO_INST_TEST_MEDIA points at another folder of the same layout.
SHARED_MEDIA = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO / "tests" / "media"))
POSTGRES_URL = os.environ.get("VIDEO_INST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The licensed test media; tests read it in place, never write to it."""
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


# A tiny open_clip architecture (same code paths as ViT-B-32, small widths). Tests that use it
# run the real open_clip code with RANDOM weights: plumbing only, never retrieval quality.
TINY_CLIP = "vi-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register the tiny architecture with open_clip (its registry is data: one JSON per model)."""
    import json

    import open_clip

    path = tmp_path_factory.mktemp("clip_cfg") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


@pytest.fixture(scope="session")
def clip(tiny_model: str):  # noqa: ANN201 - ClipEmbedder, imported lazily
    """A randomly initialised tiny CLIP (seeded): real code paths, meaningless vectors."""
    from video_inst.models.clip import ClipEmbedder

    return ClipEmbedder.random_init(tiny_model, "cpu", seed=0)
