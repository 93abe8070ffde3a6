"""Label search in SQL, ``min_score`` against the shown score, and the searcher's lazy loads.

A real catalog (SQLite and this machine's PostgreSQL) with hand-made tracks and labels: the
SQL aggregation must give exactly the ranking a plain Python sum over the label rows gives.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from media_factory import video_info

from video_inst.catalog import repo
from video_inst.catalog.db import get_catalog, upgrade
from video_inst.catalog.models import Label, Track
from video_inst.config import Settings
from video_inst.media.types import Keyframe as KeyframeT
from video_inst.media.types import Shot as ShotT
from video_inst.media.types import ShotPlan
from video_inst.models.labels import LabelMatcher, label_class_ids, label_names
from video_inst.search.label_postings import PostingsCache
from video_inst.search.searcher import Query, Searcher, _Candidate
from video_inst.spaces.active import SpaceChoice

BIRD_NAMES = label_names(sorted(label_class_ids("bird")))
OTHER_NAMES = label_names([281, 817, 879, 440, 504])  # tabby, sports car, umbrella, beer bottle, coffee mug
# Tracks made here carry no DASR space (like rows from before migration 0002): any space admits them.
ANY_SPACE = SpaceChoice("dasr", "dasr:test", None, None, 0, 0, 0, 0)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(home=tmp_path, database_url=None)
    url = request.getfixturevalue("pg_url")
    upgrade(url)
    return Settings(home=tmp_path, database_url=url)


def _video(session, shots: int) -> tuple[int, list[int], list[int]]:  # noqa: ANN001 - a Session
    info = video_info("/v/labels.mp4", duration_s=shots)
    plan = ShotPlan(
        shots=[
            ShotT(i, i * 12800, (i + 1) * 12800, float(i), i + 1.0, 25 * i, 25 * i + 24) for i in range(shots)
        ],
        keyframes=[KeyframeT(i, i * 12800 + 6400, i + 0.5, 25 * i + 12) for i in range(shots)],
        frame_count=25 * shots,
        end_pts=shots * 12800,
    )
    video = repo.upsert_video(
        session, path="/v/labels.mp4", size=10, content_hash="cd" * 32, info=info, status="done"
    )
    repo.store_shot_plan(session, video=video, plan=plan)
    session.flush()
    shot_rows = repo.list_shots(session, video_id=video.id)
    return video.id, [s.id for s in shot_rows], [s.keyframes[0].id for s in shot_rows]


def _add_track(session, video_id: int, shot_id: int, labels: list[tuple[str, float]], is_frame=False) -> int:  # noqa: ANN001
    track = Track(
        video_id=video_id,
        shot_id=shot_id,
        is_frame=is_frame,
        start_s=0.0,
        end_s=1.0,
        labels=[list(x) for x in labels],
    )
    session.add(track)
    session.flush()
    session.add_all(Label(track_id=track.id, rank=r, label=n, prob=p) for r, (n, p) in enumerate(labels))
    return track.id


def _searcher(settings: Settings, *, postings: bool = False) -> Searcher:
    """``postings``: rank in memory as the API server does, built before the first search."""
    searcher = Searcher(settings)
    searcher._labels = LabelMatcher.load(sentence_model=False)  # the table's words only: no model load
    if postings:
        searcher.label_postings = PostingsCache(searcher.catalog.session)
        with searcher.catalog.session() as s:
            assert searcher.label_postings.get(s, ANY_SPACE.space_id, wait=True) is not None
    return searcher


def test_sql_label_ranking_equals_the_sum_over_label_rows(settings: Settings) -> None:
    rnd = random.Random(5)
    catalog = get_catalog(settings)
    expected: dict[int, float] = {}
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 20)
        for i in range(300):
            names = rnd.sample(BIRD_NAMES, rnd.randint(0, 3)) + rnd.sample(OTHER_NAMES, 2)
            probs = sorted((rnd.random() for _ in names), reverse=True)
            is_frame = i % 5 == 0
            track_id = _add_track(s, video_id, shot_ids[i % 20], list(zip(names, probs)), is_frame)
            score = sum(0.9 * p for n, p in zip(names, probs) if n in BIRD_NAMES)  # 0.9: group word
            if score > 0 and not is_frame:
                expected[track_id] = score
    want = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
    for searcher in (_searcher(settings), _searcher(settings, postings=True)):
        with catalog.session() as s:
            for k in (1, 7, 50, 1000):
                got = searcher._by_labels(s, "bird", k, ANY_SPACE)
                assert [c.track_id for c in got] == [t for t, _ in want[:k]]
                assert [c.score for c in got] == pytest.approx([v for _, v in want[:k]], abs=1e-9)
    catalog.engine.dispose()


def test_postings_and_sql_rank_alike_with_ties_and_several_words(settings: Settings) -> None:
    """In-memory postings give SQL's ranking exactly: ties (equal probs) broken by track id."""
    rnd = random.Random(11)
    catalog = get_catalog(settings)
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 10)
        for i in range(400):
            names = rnd.sample(BIRD_NAMES[:6] + OTHER_NAMES, rnd.randint(1, 4))
            probs = [rnd.choice([0.5, 0.25, 0.125, 0.0]) for _ in names]  # exact in binary: many ties
            _add_track(s, video_id, shot_ids[i % 10], list(zip(names, probs)), is_frame=i % 7 == 0)
    sql, memory = _searcher(settings), _searcher(settings, postings=True)
    with catalog.session() as s:
        for text in ("bird", "tabby", "coffee mug and umbrella", "sports car beer bottle bird"):
            for k in (1, 5, 40, 500):
                want = [(c.track_id, c.score) for c in sql._by_labels(s, text, k, ANY_SPACE)]
                got = [(c.track_id, c.score) for c in memory._by_labels(s, text, k, ANY_SPACE)]
                assert got == want, (text, k)
    catalog.engine.dispose()


def test_postings_are_rebuilt_when_the_catalog_changes(settings: Settings) -> None:
    """A track added after the build is not missed: stale postings are never used."""
    catalog = get_catalog(settings)
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 1)
        first = _add_track(s, video_id, shot_ids[0], [("tabby", 0.5)])
    searcher = _searcher(settings, postings=True)
    with catalog.session() as s:
        assert [c.track_id for c in searcher._by_labels(s, "tabby", 5, ANY_SPACE)] == [first]
    with catalog.session() as s:
        second = _add_track(s, video_id, shot_ids[0], [("tabby", 0.75)])
    with catalog.session() as s:
        assert searcher.label_postings.get(s, None) is None  # stale: SQL answers while it rebuilds
        assert [c.track_id for c in searcher._by_labels(s, "tabby", 5, ANY_SPACE)] == [second, first]
        assert searcher.label_postings.get(s, None, wait=True) is not None
        assert [c.track_id for c in searcher._by_labels(s, "tabby", 5, ANY_SPACE)] == [second, first]
    catalog.engine.dispose()


def test_frame_tracks_above_the_first_limit_do_not_hide_object_tracks(settings: Settings) -> None:
    """The limit grows when frame tracks (dropped after the SQL limit) fill it."""
    catalog = get_catalog(settings)
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 1)
        for i in range(200):
            _add_track(s, video_id, shot_ids[0], [(BIRD_NAMES[0], 0.9 - i / 1000)], is_frame=True)
        objects = [_add_track(s, video_id, shot_ids[0], [(BIRD_NAMES[1], 0.5 - i / 100)]) for i in range(5)]
    for searcher in (_searcher(settings), _searcher(settings, postings=True)):
        with catalog.session() as s:
            got = searcher._by_labels(s, "bird", 3, ANY_SPACE)
        assert [c.track_id for c in got] == objects[:3]
    catalog.engine.dispose()


def test_min_score_filters_on_the_score_the_hit_shows(settings: Settings) -> None:
    catalog = get_catalog(settings)
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 2)
        near = _add_track(s, video_id, shot_ids[0], [("tabby", 0.4999996)])  # shown as 0.5
        _add_track(s, video_id, shot_ids[1], [("tabby", 0.4999994)])  # shown as 0.499999
    result = _searcher(settings).search(Query(text="tabby", min_score=0.5))
    assert [(h.track_id, h.score) for h in result.hits] == [(near, 0.5)]
    result = _searcher(settings).search(Query(text="tabby", min_score=0.499999))
    assert [h.score for h in result.hits] == [0.5, 0.499999]
    # the same for any ranking's raw scores (FAISS cosine similarities here)
    with catalog.session() as s:
        hits = _searcher(settings)._to_hits(
            s, [_Candidate(track_id=near, score=0.49999961)], Query(text="x", min_score=0.5), "image", None
        )
    assert [(h.track_id, h.score) for h in hits] == [(near, 0.5)]
    catalog.engine.dispose()


def test_lazy_models_load_once_under_concurrent_first_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API searches from a thread pool: two first requests must not both load a model."""
    import video_inst.models.labels
    import video_inst.models.loading

    calls = {"dasr": 0, "labels": 0}

    def slow(kind: str):  # noqa: ANN202
        def load(*_args: object, **_kwargs: object) -> object:
            calls[kind] += 1
            time.sleep(0.2)  # a model load takes seconds; long enough for every thread to arrive
            return object()

        return load

    monkeypatch.setattr(video_inst.models.loading, "load_dasr", slow("dasr"))
    monkeypatch.setattr(video_inst.models.labels.LabelMatcher, "load", slow("labels"))
    # an empty process cache for this test only: an earlier test may already hold a DASR
    monkeypatch.setattr(video_inst.models.loading, "_SHARED", {})
    searcher = Searcher(Settings(home=tmp_path, database_url=None))
    start = threading.Barrier(6)
    seen: list[tuple[object, object]] = []

    def first_request() -> None:
        start.wait()
        seen.append((searcher.dasr, searcher.labels))

    threads = [threading.Thread(target=first_request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == {"dasr": 1, "labels": 1}
    assert len(set(seen)) == 1


def test_label_search_keeps_to_the_answering_dasr_space(settings: Settings) -> None:
    """Tracks of another DASR space (a backbone switch in progress) never come back."""
    from video_inst.catalog.models import ModelSpace

    catalog = get_catalog(settings)
    with catalog.session() as s:
        old, new = (
            ModelSpace(name=f"dasr:test:{n}", family="dasr", dim=4, params={}) for n in ("old", "new")
        )
        s.add_all([old, new])
        s.flush()
        video_id, shot_ids, _ = _video(s, 1)
        ours = [_add_track(s, video_id, shot_ids[0], [(BIRD_NAMES[0], 0.9 - i / 10)]) for i in range(3)]
        theirs = [_add_track(s, video_id, shot_ids[0], [(BIRD_NAMES[1], 0.95 - i / 10)]) for i in range(3)]
        for track_id in ours:
            s.get(Track, track_id).space_id = old.id
        for track_id in theirs:
            s.get(Track, track_id).space_id = new.id
        choice = SpaceChoice("dasr", new.name, old.id, old.name, 4, 1, 1, 0)
    for searcher in (_searcher(settings), _searcher(settings, postings=True)):
        with catalog.session() as s:
            if searcher.label_postings is not None:
                searcher.label_postings.get(s, choice.space_id, wait=True)
            got = searcher._by_labels(s, "bird", 5, choice)
        assert [c.track_id for c in got] == ours
    catalog.engine.dispose()


def test_api_app_ranks_labels_in_memory_like_sql(settings: Settings) -> None:
    """``create_app`` turns the postings on for the process's searcher; hits equal the SQL path's."""
    from video_inst.api.app import create_app
    from video_inst.search.searcher import shared_searcher

    rnd = random.Random(2)
    catalog = get_catalog(settings)
    with catalog.session() as s:
        video_id, shot_ids, _ = _video(s, 30)
        for i in range(120):
            names = rnd.sample(BIRD_NAMES, 2) + rnd.sample(OTHER_NAMES, 1)
            _add_track(s, video_id, shot_ids[i % 30], [(n, rnd.random()) for n in names])
    create_app(settings, ingest_mode="thread")
    served = shared_searcher(settings)
    assert served.label_postings is not None
    served._labels = LabelMatcher.load(sentence_model=False)
    with catalog.session() as s:
        assert served.label_postings.get(s, None, wait=True) is not None
    query = Query(text="birds", top_k=10)
    got = [(h.track_id, h.score) for h in served.search(query).hits]
    assert got and got == [(h.track_id, h.score) for h in _searcher(settings).search(query).hits]
    catalog.engine.dispose()
