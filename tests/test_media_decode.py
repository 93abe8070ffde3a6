"""decode_keyframes(): every yielded picture is exactly the frame at the PTS asked for."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_factory import render_clip
from PIL import Image

from video_inst.errors import CorruptVideoError
from video_inst.media.decode import decode_keyframes, rotate, write_thumbnail
from video_inst.media.probe import probe
from video_inst.media.shots import ShotSettings, plan_shots
from video_inst.media.types import Keyframe


def reference_frames(path: Path, wanted: set[int] | None = None) -> tuple[dict[int, np.ndarray], list[int]]:
    """Frames decoded from the start, by PTS: the ground truth a seek must reproduce.

    Returns the pictures of the ``wanted`` PTS (all when None) and every frame's PTS in order.
    """
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        frames = {}
        order = []
        for f in c.decode(stream):
            if wanted is None or f.pts in wanted:
                frames[f.pts] = f.to_ndarray(format="rgb24")
            order.append(f.pts)
    return frames, order


def keyframes_for(order: list[int], picks: list[int]) -> list[Keyframe]:
    return [Keyframe(shot_index=0, pts=order[i], time_s=0.0, frame=i) for i in picks]


def assert_exact(
    path: Path, keyframes: list[Keyframe], rotation: int = 0
) -> list[tuple[Keyframe, np.ndarray]]:
    """Decode with video_inst and compare every picture with the reference decode, pixel for pixel."""
    truth, _ = reference_frames(path, {k.pts for k in keyframes})
    got = list(decode_keyframes(path, keyframes, rotation=rotation))
    assert [k.pts for k, _ in got] == sorted(k.pts for k in keyframes), "presentation order"
    for kf, rgb in got:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert np.array_equal(rgb, rotate(truth[kf.pts], rotation)), f"pts {kf.pts}: a different frame"
    return got


@pytest.mark.parametrize(
    "name", ["edits/instance_test_edit.mp4", "clips/big_buck_bunny_0_30.webm", "clips/classroom.gif"]
)
def test_planned_keyframes_decode_exactly(shared_media: Path, name: str) -> None:
    path = shared_media / name
    info = probe(path)
    plan = plan_shots(path, info, ShotSettings())
    got = assert_exact(path, plan.keyframes, rotation=info.rotation)
    assert len(got) == len(plan.keyframes)
    for _, rgb in got:
        assert rgb.shape == (info.height, info.width, 3)


def test_every_frame_of_a_b_frame_clip_in_random_order(tmp_path: Path) -> None:
    """Targets just before keyframes (B-frames) and far apart (seeks) all land exactly."""
    clip = render_clip(tmp_path / "b.mp4", scenes=[30, 30, 30], options={"g": "12", "bf": "3"})
    _, order = reference_frames(clip.path, set())
    picks = list(range(len(order)))
    random.Random(7).shuffle(picks)
    assert_exact(clip.path, keyframes_for(order, picks[:60]))


@pytest.mark.parametrize("suffix", ["mkv", "ts", "avi", "mxf", "webm", "gif"])
def test_containers_sparse_targets(tmp_path: Path, suffix: str) -> None:
    clip = render_clip(tmp_path / f"c.{suffix}", n_frames=120, size=(96, 64), options={"g": "25"})
    _, order = reference_frames(clip.path, set())
    assert_exact(clip.path, keyframes_for(order, [3, 4, 30, 31, 70, 119, 0, 55]))


def test_variable_frame_rate(tmp_path: Path) -> None:
    gaps = [40, 20, 60, 33, 47, 100, 10, 30] * 6
    pts = [sum(gaps[:i]) for i in range(len(gaps))]
    clip = render_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), options={"g": "10"})
    assert_exact(clip.path, keyframes_for(pts, [1, 9, 10, 11, 25, 40, 47]))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_matches_probed_size(tmp_path: Path, rotation: int) -> None:
    clip = render_clip(tmp_path / "r.mp4", size=(96, 64), n_frames=10, rotation=rotation)
    info = probe(clip)
    _, order = reference_frames(clip.path, set())
    for _, rgb in assert_exact(clip.path, keyframes_for(order, [0, 5]), rotation=info.rotation):
        assert rgb.shape == (info.height, info.width, 3)


def test_rotate_turns_clockwise() -> None:
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = 255  # top-left marker
    assert rotate(a, 90)[0, -1].tolist() == [255, 255, 255]  # clockwise: top-left goes top-right
    assert rotate(a, 180)[-1, -1].tolist() == [255, 255, 255]
    assert rotate(a, 270)[-1, 0].tolist() == [255, 255, 255]
    assert rotate(a, 0) is a


def test_repeated_and_duplicate_targets(tmp_path: Path) -> None:
    clip = render_clip(tmp_path / "d.mp4", n_frames=40)
    _, order = reference_frames(clip.path, set())
    kfs = keyframes_for(order, [10, 10, 39, 0])
    got = list(decode_keyframes(clip, kfs))
    assert [k.frame for k, _ in got] == [0, 10, 10, 39]
    assert np.array_equal(got[1][1], got[2][1])


def test_unknown_pts_is_a_named_error(tmp_path: Path) -> None:
    clip = render_clip(tmp_path / "u.mp4", n_frames=20)
    _, order = reference_frames(clip.path, set())
    missing = Keyframe(shot_index=0, pts=order[5] + 1, time_s=0.0, frame=5)
    with pytest.raises(CorruptVideoError, match="not found") as err:
        list(decode_keyframes(clip, [missing]))
    assert str(clip.path) in str(err.value)


def test_no_keyframes_opens_nothing(tmp_path: Path) -> None:
    assert list(decode_keyframes(tmp_path / "does-not-exist.mp4", [])) == []


def test_write_thumbnail(tmp_path: Path) -> None:
    rgb = np.zeros((360, 640, 3), np.uint8)
    rgb[:, :320] = (200, 30, 30)
    dest = tmp_path / "thumbs" / "7" / "1024.jpg"
    assert write_thumbnail(rgb, dest, max_side=160) == dest
    with Image.open(dest) as im:
        assert im.format == "JPEG" and im.size == (160, 90)
        left = np.asarray(im)[45, 40]
        assert left[0] > 150 and left[1] < 80
    assert sorted(p.name for p in dest.parent.iterdir()) == ["1024.jpg"]  # no temporary left behind
    write_thumbnail(rgb[:100, :50], dest)  # replaced in place; small images are not enlarged
    with Image.open(dest) as im:
        assert im.size == (50, 100)
