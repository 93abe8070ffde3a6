"""List settings as an operator writes them: separated strings in the environment, lists in TOML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from video_inst.config import Settings


def test_list_settings_are_split_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_INST_MEDIA_ROOTS", os.pathsep.join(["/mnt/media", "/mnt/archive"]))
    monkeypatch.setenv("VIDEO_INST_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = Settings()
    assert settings.media_roots == [Path("/mnt/media"), Path("/mnt/archive")]
    assert settings.cors_origins == ["http://a.example", "http://b.example"]


def test_list_settings_from_a_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('media_roots = ["/mnt/media", "/mnt/archive"]\ncors_origins = ["http://a.example"]\n')
    monkeypatch.setenv("VIDEO_INST_CONFIG", str(config))
    for var in ("VIDEO_INST_MEDIA_ROOTS", "VIDEO_INST_CORS_ORIGINS"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert settings.media_roots == [Path("/mnt/media"), Path("/mnt/archive")]
    assert settings.cors_origins == ["http://a.example"]
