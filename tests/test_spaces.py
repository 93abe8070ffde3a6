"""Which model space answers (``spaces.active.active_space``), on real SQLite and PostgreSQL catalogs.

Rows only, no models: the rule is pure SQL over ``video_spaces``. The end-to-end switches
(real decode, DASR, random tiny CLIP) are in test_reindex_spaces.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import ModelSpace, Video, VideoSpace
from video_inst.config import Settings
from video_inst.errors import ModelSpaceMismatchError
from video_inst.models.loading import load_space_model
from video_inst.spaces.active import active_space, configured_space_name


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    url = (
        f"sqlite:///{tmp_path / 'c.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    return Catalog(url, auto_upgrade=True)


def _setup(catalog: Catalog, videos: int, coverage: dict[str, int]) -> None:
    """``videos`` ingested videos; space NAME (created in dict order) done for the first N of them."""
    with catalog.session() as s:
        rows = [Video(path=f"v{i}.mp4", status="done") for i in range(videos)]
        s.add_all(rows + [Video(path="failed.mp4", status="failed")])
        s.flush()
        for name, n in coverage.items():
            space = ModelSpace(name=name, family="clip", dim=4, params={})
            s.add(space)
            s.flush()
            s.add_all([VideoSpace(video_id=v.id, space_id=space.id, status="done") for v in rows[:n]])


def _choose(catalog: Catalog, configured: str):  # noqa: ANN202 - SpaceChoice
    with catalog.session() as s:
        return active_space(s, "clip", Settings(), configured)


def test_configured_space_answers_once_complete(catalog: Catalog) -> None:
    _setup(catalog, 3, {"clip:old:a": 3, "clip:new:b": 3})
    choice = _choose(catalog, "clip:new:b")
    assert (choice.name, choice.complete, choice.fallback, choice.note) == ("clip:new:b", True, False, None)


def test_old_complete_space_answers_while_the_new_one_fills(catalog: Catalog) -> None:
    _setup(catalog, 3, {"clip:old:a": 3, "clip:new:b": 1})
    choice = _choose(catalog, "clip:new:b")
    assert choice.name == "clip:old:a" and choice.fallback and choice.complete
    assert "configured clip:new:b covers 1 of 3 videos" in choice.note
    assert "reindex --space clip" in choice.note


def test_most_recent_complete_space_wins_over_an_older_complete_one(catalog: Catalog) -> None:
    _setup(catalog, 2, {"clip:oldest:a": 2, "clip:old:b": 2, "clip:new:c": 0})
    assert _choose(catalog, "clip:new:c").name == "clip:old:b"


def test_without_a_complete_space_the_best_covered_one_answers_and_says_what_it_lacks(
    catalog: Catalog,
) -> None:
    # A video ingested during a switch lands only in the configured space.
    _setup(catalog, 4, {"clip:old:a": 3, "clip:new:b": 2})
    choice = _choose(catalog, "clip:new:b")
    assert choice.name == "clip:old:a" and not choice.complete
    assert "1 video not yet in model space clip:old:a" in choice.note
    # A tie goes to the configured space.
    with catalog.session() as s:
        new = s.query(ModelSpace).filter_by(name="clip:new:b").one()
        third = s.query(Video).filter_by(path="v2.mp4").one()
        s.add(VideoSpace(video_id=third.id, space_id=new.id, status="done"))
    assert _choose(catalog, "clip:new:b").name == "clip:new:b"


def test_missing_rows_do_not_count_and_no_space_means_none(catalog: Catalog) -> None:
    _setup(catalog, 2, {})
    assert _choose(catalog, "clip:x:y").space_id is None
    with catalog.session() as s:
        space = ModelSpace(name="clip:x:y", family="clip", dim=4, params={})
        s.add(space)
        s.flush()
        for v in s.query(Video).all():
            s.add(VideoSpace(video_id=v.id, space_id=space.id, status="missing", note="no weights"))
    assert _choose(catalog, "clip:x:y").space_id is None


def test_configured_dasr_name_matches_the_loaded_extractor_and_rebuilds_from_its_name() -> None:
    """The name the settings predict is the one the model gives, and the name alone rebuilds it."""
    from video_inst.models.loading import load_dasr

    settings = Settings(device="cpu", dasr_input_size=320, dasr_pooling="gem")
    dasr = load_dasr(settings)
    assert configured_space_name(settings, "dasr") == dasr.space_name == "dasr:efficientnet_lite0:s320:gem3"
    rebuilt = load_space_model(dasr.space_name, Settings(device="cpu"))
    assert rebuilt.space_name == dasr.space_name and rebuilt.params.input_size == 320
    with pytest.raises(ModelSpaceMismatchError):
        load_space_model("dasr:efficientnet_lite0:random:s512:avg", Settings(device="cpu"))


def test_random_clip_space_rebuilds_to_the_same_vectors(clip) -> None:  # noqa: ANN001
    """Random test spaces record their seed, so the model is rebuilt exactly (real open_clip code)."""
    import numpy as np

    rebuilt = load_space_model(clip.space_name, Settings(device="cpu"))
    assert rebuilt.space_name == clip.space_name
    assert np.allclose(rebuilt.embed_texts(["a red car"]), clip.embed_texts(["a red car"]), atol=1e-6)
