"""plan_shots with a keyframe sink: one decode pass hands over exactly the plan's keyframes and shots.

Real files decoded by PyAV: the shared edit (18 cuts, a dissolve), the licensed clips
(WebM, GIF, long single shots), and rendered clips with short shots, VFR timestamps,
rotation and shots shorter than the keyframe offset. Pictures are compared pixel for pixel
with ``decode_keyframes`` (the two-pass path they replace).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_factory import render_clip

from video_inst.media.decode import decode_keyframes
from video_inst.media.planning import StreamPlanner, build_plan
from video_inst.media.probe import probe
from video_inst.media.shots import ShotSettings, plan_shots


def streamed(path: Path, settings: ShotSettings) -> tuple[object, list, list, list]:
    info = probe(path)
    keyframes, pictures, shots, order = [], [], [], []

    def sink(kind: str, item: object, rgb: np.ndarray | None) -> None:
        order.append(kind)
        if kind == "keyframe":
            keyframes.append(item)
            pictures.append(rgb)
        else:
            shots.append(item)

    plan = plan_shots(path, info, settings, keyframe_sink=sink)
    # a keyframe comes after its previous shot's "shot" item (a consumer can close shots in order)
    closed, keys = 0, iter(keyframes)
    for kind in order:
        if kind == "shot":
            closed += 1
        else:
            assert next(keys).shot_index == closed
    return info, plan, list(zip(keyframes, pictures)), shots


def assert_same_as_two_passes(path: Path, settings: ShotSettings | None = None) -> None:
    settings = settings or ShotSettings()
    info, plan, got, shots = streamed(path, settings)
    assert plan == plan_shots(path, info, settings), "the sink must not change the plan"
    assert [k for k, _ in got] == plan.keyframes
    assert shots == plan.shots
    for (kf, rgb), (kf2, rgb2) in zip(got, decode_keyframes(path, plan.keyframes, rotation=info.rotation)):
        assert kf == kf2 and np.array_equal(rgb, rgb2), f"pts {kf.pts}: a different picture"
    shot_of = {k.pts: k.shot_index for k in plan.keyframes}
    assert all(shot_of[k.pts] == k.shot_index for k, _ in got)


@pytest.mark.parametrize(
    "name",
    [
        "edits/instance_test_edit.mp4",
        "clips/big_buck_bunny_0_30.webm",
        "clips/classroom.gif",
        "clips/stream-of-water.mp4",
        "clips/cockatoo.mp4",
    ],
)
def test_shared_media_streamed_exactly(shared_media: Path, name: str) -> None:
    assert_same_as_two_passes(shared_media / name)


def test_short_shots_and_dense_keyframes(tmp_path: Path) -> None:
    clip = render_clip(
        tmp_path / "s.mp4", scenes=[3, 12, 40, 11, 9, 30, 2, 25], options={"g": "12", "bf": "3"}
    )
    for settings in (
        ShotSettings(),
        ShotSettings(min_scene_len_s=0.0, keyframe_first_offset_s=0.5, keyframe_interval_s=0.3),
        ShotSettings(detector="content", min_scene_len_s=0.1),
    ):
        assert_same_as_two_passes(clip.path, settings)


def test_variable_frame_rate_and_rotation(tmp_path: Path) -> None:
    gaps = [40, 20, 60, 33, 47, 100, 10, 30] * 12
    pts = [sum(gaps[:i]) for i in range(len(gaps))]
    vfr = render_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), scenes=[30, 36, 30])
    assert_same_as_two_passes(vfr.path)
    turned = render_clip(tmp_path / "r.mp4", size=(96, 64), scenes=[20, 30], rotation=90)
    assert_same_as_two_passes(turned.path)


def test_planner_matches_build_plan_on_random_cut_lists() -> None:
    """The planner's decisions, fed frame by frame with cuts reported late, equal build_plan's."""
    rng = np.random.default_rng(3)
    tb = Fraction(1, 1000)
    for trial in range(300):
        n = int(rng.integers(1, 200))
        pts = np.cumsum(rng.integers(5, 80, n)).tolist()
        cuts = sorted(set(rng.integers(0, n + 1, int(rng.integers(0, 12))).tolist()))
        lag = int(rng.integers(0, 4))
        params = dict(
            min_len_s=float(rng.choice([0.0, 0.1, 0.4])),
            first_offset_s=float(rng.choice([0.0, 0.2, 0.5])),
            interval_s=float(rng.choice([0.05, 0.3, 1.0])),
        )
        end_pts = pts[-1] + 40
        expected = build_plan(pts, end_pts, tb, cuts, **params)
        planner = StreamPlanner(tb, lag=lag, **params)
        events = []
        low = 0
        for i, p in enumerate(pts):
            planner.add_frame(p)
            planner.add_cuts([c for c in cuts if c == i - lag])  # reported lag frames late
            new = planner.advance()
            # frames before the last lowest_needed() were let go: no later keyframe may need one
            assert all(k.frame >= low for kind, k in new if kind == "keyframe"), trial
            events += new
            low = planner.lowest_needed()
        planner.add_cuts([c for c in cuts if c > n - 1 - lag])  # the rest at the end (post_process)
        new = planner.finish(end_pts)
        assert all(k.frame >= low for kind, k in new if kind == "keyframe"), trial
        events += new
        assert [k for kind, k in events if kind == "keyframe"] == expected.keyframes, trial
        assert [s for kind, s in events if kind == "shot"] == expected.shots, trial


def test_decode_ahead_yields_the_same_and_raises_the_same(tmp_path: Path) -> None:
    from video_inst.errors import CorruptVideoError
    from video_inst.media.decode import decode_keyframes_ahead
    from video_inst.media.types import Keyframe

    clip = render_clip(tmp_path / "a.mp4", scenes=[25, 25, 25])
    info = probe(clip.path)
    plan = plan_shots(clip.path, info, ShotSettings())
    ahead = list(decode_keyframes_ahead(clip.path, plan.keyframes, depth=1))
    plain = list(decode_keyframes(clip.path, plan.keyframes))
    assert [k for k, _ in ahead] == [k for k, _ in plain]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ahead, plain))
    missing = [*plan.keyframes[:1], Keyframe(0, plan.keyframes[0].pts + 1, 0.0, 0)]
    with pytest.raises(CorruptVideoError):
        list(decode_keyframes_ahead(clip.path, missing))
    stopped = decode_keyframes_ahead(clip.path, plan.keyframes, depth=1)
    next(stopped)
    stopped.close()  # the background thread ends with the iterator
