"""CLIP through ingest, storage, indexes, text / fused search and re-index, with RANDOM weights.

No real CLIP weights exist here: these tests run the real open_clip code paths with a tiny,
randomly initialised model (``clip`` fixture) and the real offline DASR backbone. They check
plumbing (shapes, storage, index consistency, modes, fusion, re-index and resume), never
retrieval quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from video_inst.analysis.analyser import build_analyser
from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import Keyframe, ModelSpace, Track, Vector, VideoSpace
from video_inst.config import Settings
from video_inst.ingest.pipeline import ingest_path
from video_inst.ingest.reindex import reindex_clip
from video_inst.search.searcher import Query, Searcher
from video_inst.vectors.store import get_index_store


def _count(catalog: Catalog, space_name: str, kind: str) -> int:
    with catalog.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Vector)
                .join(ModelSpace, ModelSpace.id == Vector.space_id)
                .where(ModelSpace.name == space_name, Vector.kind == kind)
            )
        )


@pytest.fixture(scope="module")
def dasr():
    from video_inst.models.loading import load_dasr

    return load_dasr(Settings(device="cpu"))


@pytest.fixture
def home_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=None, device="cpu")


def test_ingest_stores_frame_and_track_clip_vectors_and_text_search_uses_them(
    home_settings: Settings, shared_media: Path, clip, dasr
) -> None:
    catalog = get_catalog(home_settings)
    analyser = build_analyser(home_settings, clip=clip, dasr=dasr)
    result = ingest_path(
        shared_media / "clips" / "sintel_snow.mp4", settings=home_settings, catalog=catalog, analyser=analyser
    )
    assert result.status == "done", result.error
    with catalog.session() as s:
        keyframes = s.scalar(select(func.count()).select_from(Keyframe))
        tracks = s.scalar(select(func.count()).select_from(Track))
        states = {
            (sp.name, vs.status)
            for vs, sp in s.execute(
                select(VideoSpace, ModelSpace).join(ModelSpace, ModelSpace.id == VideoSpace.space_id)
            )
        }
    assert (clip.space_name, "done") in states
    assert _count(catalog, clip.space_name, "frame") == keyframes
    assert _count(catalog, clip.space_name, "track") == tracks  # every track has a crop or frame vector
    store = get_index_store(home_settings)
    with catalog.session() as s:
        space_id = s.scalar(select(ModelSpace.id).where(ModelSpace.name == clip.space_name))
        blobs = s.scalars(
            select(Vector.data).where(Vector.space_id == space_id, Vector.kind == "frame")
        ).all()
    from video_inst.vectors.codec import decode

    vectors = decode(blobs, clip.dim)
    assert vectors.shape == (keyframes, clip.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)  # float16 storage
    for kind in ("frame", "track"):
        assert store.check_consistency(space_id, kind).ok

    searcher = Searcher(home_settings, catalog, dasr=dasr, clip=clip)
    text = searcher.search(Query(text="a hooded figure in the snow", top_k=5))
    assert text.mode == "text" and text.hits
    assert all(h.box and h.track_id for h in text.hits)

    from PIL import Image

    query = np.asarray(Image.open(shared_media / "images" / "kite_and_cold.jpg").convert("RGB"))
    fused = searcher.search(Query(image=query, text="snowy mountain", top_k=5))
    assert fused.mode == "image+text" and fused.hits
    scores = [h.score for h in fused.hits]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 2 / 61 + 1e-6 for s in scores)


def test_without_clip_weights_labels_answer_then_reindex_adds_clip_and_resumes(
    home_settings: Settings, shared_media: Path, clip, dasr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home_settings.home / "empty_hf"))
    catalog = get_catalog(home_settings)
    no_clip = build_analyser(home_settings, dasr=dasr)  # the configured ViT-B-32 weights are absent
    assert no_clip.clip is None and "VIDEO_INST_CLIP_WEIGHTS" in no_clip.clip_missing_reason
    paths = [shared_media / "clips" / n for n in ("realshort.mp4", "sintel_snow.mp4")]
    for path in paths:
        result = ingest_path(path, settings=home_settings, catalog=catalog, analyser=no_clip)
        assert result.status == "done"
        assert any("CLIP vectors missing" in w for w in result.warnings)
    with catalog.session() as s:
        assert set(
            s.scalars(select(VideoSpace.status).join(ModelSpace).where(ModelSpace.family == "clip"))
        ) == {"missing"}

    labels = Searcher(home_settings, catalog, dasr=dasr).search(Query(text="alp", top_k=5))
    assert labels.mode == "labels" and any("labels" in n for n in labels.notes)

    # Interrupted after the first video: the second run finishes the rest and redoes nothing.
    calls = []

    def stop_after_first(done: int, total: int) -> None:
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex_clip(settings=home_settings, catalog=catalog, clip=clip, progress=stop_after_first)
    report = reindex_clip(settings=home_settings, catalog=catalog, clip=clip)
    assert len(report.done) == 1 and len(report.skipped) == 1 and not report.failed
    again = reindex_clip(settings=home_settings, catalog=catalog, clip=clip)
    assert again.done == [] and len(again.skipped) == 2

    with catalog.session() as s:
        keyframes = s.scalar(select(func.count()).select_from(Keyframe))
    assert _count(catalog, clip.space_name, "frame") == keyframes
    text = Searcher(home_settings, catalog, dasr=dasr, clip=clip).search(Query(text="a plant", top_k=5))
    assert text.mode == "text" and text.hits
