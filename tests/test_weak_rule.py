"""The weak-score rule (issue 16 item 4): one threshold per query that marks hits weak and that the
appearance report counts by. Pure arithmetic here; the catalog-backed checks (hits marked by it,
the report counting exactly the tracks at or above it) are in tests/test_search_feedback.py and
tests/test_report.py.
"""

from __future__ import annotations

import pytest

from video_inst.config import Settings
from video_inst.search.report import build_report, report_threshold
from video_inst.search.searcher import Query, ScoredTracks, TrackScore, WeakRule, weak_rule


def _settings(**update: object) -> Settings:
    return Settings(database_url=None).model_copy(update=update)


def test_the_default_rule_is_the_one_chosen_on_tuning() -> None:
    settings = Settings(database_url=None)
    # scripts/eval_trust.py, docs/DASR.md: the best TUNING F1 of max(floor, relative x best)
    assert (settings.weak_score_dasr, settings.weak_relative_dasr) == (0.45, 0.525)
    rule = weak_rule("image", settings, best=0.915823)  # the cockatoo crop's best match on the edit
    assert rule is not None and rule.threshold == 0.480807


def test_the_relative_part_raises_the_floor_only_when_higher() -> None:
    settings = _settings(weak_score_dasr=0.375, weak_relative_dasr=0.6)
    high = weak_rule("image", settings, best=0.95)
    assert high == WeakRule(threshold=0.57, floor=0.375, relative=0.6, best=0.95)
    low = weak_rule("image", settings, best=0.5)  # 0.6 x 0.5 = 0.3 < the floor: the floor holds
    assert low is not None and low.threshold == 0.375 and low.best == 0.5
    for mode in ("track", "feedback", "image+track"):  # every DASR cosine ranking
        rule = weak_rule(mode, settings, best=0.9)
        assert rule is not None and rule.threshold == 0.54
    assert weak_rule("image", settings, best=None) == WeakRule(threshold=0.375, floor=0.375)


def test_labels_keep_their_floor_and_unmeasured_modes_mark_nothing() -> None:
    settings = _settings(weak_score_labels=0.667, weak_relative_dasr=0.6)
    labels = weak_rule("labels", settings, best=2.0)
    assert labels == WeakRule(threshold=0.667, floor=0.667)  # label sums: no relative part measured
    assert weak_rule("text", settings, best=0.3) is None
    assert weak_rule("image+text", settings, best=0.03) is None
    off = _settings(weak_score_dasr=None, weak_relative_dasr=0.6)
    assert weak_rule("image", off, best=0.9) is None  # no floor: no rule at all
    alone = weak_rule("image", _settings(weak_score_dasr=0.375, weak_relative_dasr=None), best=0.95)
    assert alone is not None and alone.threshold == 0.375 and alone.relative is None


def test_why_names_what_set_the_threshold() -> None:
    relative = WeakRule(threshold=0.57, floor=0.375, relative=0.6, best=0.95)
    assert "0.6 x this query's best match (0.95)" in relative.why() and "0.57" in relative.why()
    floor = WeakRule(threshold=0.375, floor=0.375, relative=0.6, best=0.5)
    assert "under 0.375" in floor.why() and "best match" not in floor.why()
    assert relative.to_json() == {
        "threshold": 0.57,
        "floor": 0.375,
        "relative": 0.6,
        "best": 0.95,
        "why": relative.why(),
    }


def test_the_report_counts_by_the_same_rule() -> None:
    rule = WeakRule(threshold=0.57, floor=0.375, relative=0.6, best=0.95)
    tracks = [
        TrackScore(1, video_id=1, shot_id=10, start_s=0.0, end_s=2.0, score=0.95),
        TrackScore(2, video_id=1, shot_id=11, start_s=3.0, end_s=4.0, score=0.57),  # at it: counted
        TrackScore(3, video_id=1, shot_id=12, start_s=5.0, end_s=6.0, score=0.5),  # above the floor only
    ]
    scored = ScoredTracks(tracks=tracks, mode="image", weak_below=0.57, weak_rule=rule, fetch=100)
    threshold = report_threshold(Query(text="x"), scored)
    report = build_report(scored, threshold, {10: 0, 11: 1, 12: 2}, {1: ("/m/a.mp4", 9.0)})
    assert threshold == 0.57 and report.videos[0].shots == [0, 1] and report.screen_time_s == 3.0
    assert report.to_json()["weak_rule"] == rule.to_json()
    given = report_threshold(Query(text="x", min_score=0.45), scored)
    by_min = build_report(scored, given, {10: 0, 11: 1, 12: 2}, {1: ("/m/a.mp4", 9.0)})
    assert by_min.videos[0].shots == [0, 1, 2] and by_min.to_json()["weak_rule"] is None


@pytest.mark.parametrize("best", [0.0, 0.4, 0.625, 1.0])
def test_a_hit_is_weak_exactly_under_the_threshold(best: float) -> None:
    rule = weak_rule("image", _settings(weak_score_dasr=0.375, weak_relative_dasr=0.6), best=best)
    assert rule is not None
    assert rule.threshold == max(0.375, round(0.6 * best, 6))
