"""SMPTE timecode from seconds: drop-frame at 29.97 / 59.94, source start timecode, float safety."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st
from media_factory import render_clip

from video_inst.media.probe import probe
from video_inst.media.shots import ShotSettings, plan_shots
from video_inst.media.timecode import (
    frame_rate_str,
    frames_at,
    is_drop_frame,
    parse_rate,
    smpte_at,
    smpte_for,
    smpte_for_video,
    span_timecodes,
    timecode_rate,
)


def pts_of_frame(path: Path, index: int) -> tuple[int, Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for i, frame in enumerate(c.decode(stream)):
            if i == index:
                return frame.pts, Fraction(stream.time_base)
    raise AssertionError(f"no frame {index}")


@pytest.mark.parametrize(
    "rate,frame,expected",
    [(Fraction(30000, 1001), 1800, "00:01:00;02"), (Fraction(60000, 1001), 3600, "00:01:00;04")],
)
def test_drop_frame_on_rendered_clip(tmp_path: Path, rate: Fraction, frame: int, expected: str) -> None:
    clip = render_clip(tmp_path / "ntsc.mp4", fps=rate, n_frames=frame + 1, size=(32, 32))
    info = probe(clip)
    assert info.frame_rate == rate
    pts, time_base = pts_of_frame(clip.path, frame)
    assert smpte_for(info, float(pts * time_base)) == expected
    assert smpte_at(float(pts * time_base), (rate.numerator, rate.denominator)) == expected


def test_mov_start_timecode_counts_from_source(tmp_path: Path) -> None:
    clip = render_clip(tmp_path / "tc.mov", fps=25, n_frames=60, start_timecode="01:00:00:00")
    info = probe(clip)
    assert info.start_timecode == "01:00:00:00"
    plan = plan_shots(clip, info, ShotSettings())
    first = plan.keyframes[0]  # 0.2 s after the start: frame 5
    assert smpte_for(info, plan.shots[0].start_s) == "01:00:00:00"
    assert smpte_for(info, first.time_s) == "01:00:00:05"
    assert smpte_for(info, plan.keyframes[1].time_s) == "01:00:01:05"
    assert smpte_for(info, plan.shots[-1].end_s) == "01:00:02:10"


def test_catalog_columns_and_origin() -> None:
    # an MPEG-TS whose first frame sits at 1.4 s still starts at its start timecode
    row = SimpleNamespace(
        fps_num=25,
        fps_den=1,
        start_timecode="10:00:00:00",
        start_pts=126000,
        time_base_num=1,
        time_base_den=90000,
    )
    assert smpte_for_video(row, 1.4) == "10:00:00:00"
    assert smpte_for_video(row, 2.4) == "10:00:01:00"
    ref = SimpleNamespace(frame_rate_num=30000, frame_rate_den=1001, start_timecode=None)
    assert smpte_for_video(ref, 60.06) == "00:01:00;02"
    assert smpte_for_video(SimpleNamespace(fps_num=None, fps_den=None), 1.0) == ""


def test_drop_frame_rules() -> None:
    ntsc = Fraction(30000, 1001)
    assert is_drop_frame(ntsc) and is_drop_frame(Fraction(60000, 1001))
    assert not is_drop_frame(ntsc, "01:00:00:00")  # source written non-drop stays non-drop
    assert smpte_at(60.06, ntsc, "01:00:00:00") == "01:01:00:00"
    assert smpte_at(60.06, ntsc, "01:00:00;00") == "01:01:00;02"
    assert not is_drop_frame(Fraction(24000, 1001)) and not is_drop_frame(25)
    assert smpte_at(3600.0, Fraction(24000, 1001)) == "00:59:56:10"  # 23.976 counts 24-frame labels


def test_other_rates() -> None:
    assert smpte_at(1.0, 25) == "00:00:01:00"
    assert smpte_at(2.0, Fraction(25, 2)) == "00:00:02:00"  # 12.5 fps counts at 25 (frame n is label 2n)
    assert smpte_at(2.08, Fraction(25, 2)) == "00:00:02:02"
    assert smpte_at(11.7, 20) == "00:00:11:14"  # 20 fps counts 20-frame labels (issue 16: not 60, not 25)
    assert timecode_rate(Fraction(25, 2)) == 25 and timecode_rate(20) == 20
    assert smpte_at(1.0, Fraction(179, 6)) == "00:00:01:00"
    assert smpte_at(86400.0 + 0.5, 25) == "00:00:00:13"  # rolls over at 24 h
    assert smpte_at(-1.0, 25) == "00:00:00:00"


def test_rate_helpers() -> None:
    assert parse_rate(29.97) == Fraction(30000, 1001)
    assert parse_rate("2997/100") == Fraction(30000, 1001)
    assert parse_rate((25, 1)) == 25
    assert parse_rate("59.94") == Fraction(60000, 1001)
    assert frame_rate_str(Fraction(30000, 1001)) == "30000/1001"
    assert frame_rate_str(25.0) == "25"
    with pytest.raises(ValueError):
        parse_rate(0)
    with pytest.raises(ValueError, match="not a SMPTE timecode"):
        smpte_at(1.0, 25, "1 hour")


@given(
    n=st.integers(0, 10 * 3600 * 60),
    rate=st.sampled_from(["30000/1001", "60000/1001", "24000/1001", "25", "50"]),
)
def test_frames_at_survives_float_and_coarse_time_bases(n: int, rate: str) -> None:
    r = Fraction(rate)
    exact = n / r
    assert frames_at(float(exact), r) == n
    assert frames_at(float(Fraction(round(exact * 1000), 1000)), r) == n  # Matroska stores milliseconds


def test_span_timecodes_are_what_every_output_carries() -> None:
    ntsc = Fraction(30000, 1001)
    # 60.06 s is frame 1800 of 29.97 DF: minute 1 skips ;00 and ;01
    assert span_timecodes(ntsc, None, 60.06, 61.0, 60.5) == {
        "start_tc": "00:01:00;02",
        "end_tc": "00:01:01;00",
        "keyframe_tc": "00:01:00;15",
        "rate": "30000/1001",
        "drop_frame": True,
    }
    # a one-frame span still lasts a frame; the keyframe is clamped into it; start TC at 25 for 12.5
    assert span_timecodes(Fraction(25, 2), "01:00:00:00", 0.8, 0.8, 5.0) == {
        "start_tc": "01:00:00:20",
        "end_tc": "01:00:00:22",
        "keyframe_tc": "01:00:00:20",
        "rate": "25",
        "drop_frame": False,
    }
