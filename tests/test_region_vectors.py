"""Which region vectors an ingest stores (Settings.region_vectors) and which indexes get files.

A real rendered clip of two long shots (several keyframes each, so tracks have several views),
real EfficientNet-Lite0 analysis and a real SQLite catalog, ingested twice: every view
(``all``) and one vector per track (``mean``, the default, measured by
scripts/eval_region_density.py). Tracks, boxes and labels are the same either way; only the
region rows differ, and DASR track vectors stay in SQL with no index file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from media_factory import render_clip
from sqlalchemy import select

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import ModelSpace, Track, TrackBox, Vector
from video_inst.config import Settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_clip(
        tmp_path_factory.mktemp("region_vectors") / "two.mp4", scenes=[75, 75], size=(320, 192)
    ).path


def _ingest(home: Path, clip: Path, **extra: object) -> tuple[Settings, Catalog, int]:
    from video_inst.ingest.pipeline import ingest_path

    settings = Settings(home=home, database_url=None, analysis_batch=1, **extra)
    catalog = Catalog(settings.resolved_database_url, auto_upgrade=True)
    result = ingest_path(clip, settings=settings, catalog=catalog)
    assert result.status == "done", result.error
    return settings, catalog, int(result.video_id)


def _rows(catalog: Catalog) -> dict:
    with catalog.session() as s:
        space = s.scalars(select(ModelSpace).where(ModelSpace.family == "dasr")).one()
        tracks = {t.id: (t.shot_id, t.best_keyframe_id, t.start_s, t.end_s) for t in s.scalars(select(Track))}
        boxes = {b.id: (b.track_id, b.keyframe_id) for b in s.scalars(select(TrackBox))}
        vecs = {
            kind: {int(o): bytes(d) for o, d in s.execute(
                select(Vector.owner_id, Vector.data).where(Vector.space_id == space.id, Vector.kind == kind)
            )}
            for kind in ("region", "track")
        }  # fmt: skip
        return {"space": space.id, "tracks": tracks, "boxes": boxes, "vectors": vecs}


@pytest.mark.slow
def test_one_region_vector_per_track_by_default_and_every_view_on_request(tmp_path: Path, clip: Path) -> None:
    assert Settings().region_vectors == "mean"
    s_all, cat_all, _ = _ingest(tmp_path / "all", clip, region_vectors="all")
    s_mean, cat_mean, _ = _ingest(tmp_path / "mean", clip)
    every, one = _rows(cat_all), _rows(cat_mean)
    assert list(every["tracks"].values()) == list(one["tracks"].values())  # same tracks and boxes
    assert sorted(every["boxes"].values()) == sorted(one["boxes"].values())
    assert any(sum(1 for t, _ in every["boxes"].values() if t == tid) > 1 for tid in every["tracks"])

    # all: a region vector per box; mean: one per track, under its best view's box, = its track vector
    assert set(every["vectors"]["region"]) == set(every["boxes"])
    assert len(one["vectors"]["region"]) == len(one["tracks"])
    best_box = {t: b for b, (t, kf) in one["boxes"].items() if kf == one["tracks"][t][1]}
    assert set(one["vectors"]["region"]) == set(best_box.values())
    for track_id, box_id in best_box.items():
        assert one["vectors"]["region"][box_id] == one["vectors"]["track"][track_id]
    assert every["vectors"]["track"].keys() == every["tracks"].keys()

    # DASR track vectors are SQL only: a region index file, no track index file
    for settings, rows in ((s_all, every), (s_mean, one)):
        assert (settings.index_dir / f"{rows['space']}-region.faiss").exists()
        assert not (settings.index_dir / f"{rows['space']}-track.faiss").exists()
