"""SMPTE timecode at the edges (API, exports): seconds → "HH:MM:SS:FF", drop-frame at 29.97/59.94.

Inside video_inst time is PTS and seconds; a timecode is only a label computed at the end,
honouring the source's start timecode. Works from a :class:`VideoInfo` or from the catalog's
plain columns (fps_num, fps_den, start_timecode, start_pts × time base): ``smpte_for_video``.

Example::

    >>> smpte_at(60.06, Fraction(30000, 1001))
    '00:01:00;02'
    >>> smpte_at(1.0, (25, 1), "01:00:00:00")
    '01:00:01:00'
    >>> smpte_at(11.7, 20)  # a 20 fps source counts 20-frame labels
    '00:00:11:14'
    >>> smpte_at(2.08, Fraction(25, 2))  # 12.5 fps counts at 25: frame 26 is label 52
    '00:00:02:02'
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from typing import Any

from timecode import Timecode

from video_inst.media.types import VideoInfo

RateLike = Fraction | int | float | str | tuple[int, int]

_TC_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")
# NTSC rates: timecode counts real frames and labels them with the 24/30/48/60 frame grid.
_NTSC = {
    Fraction(24000, 1001): "23.976",
    Fraction(30000, 1001): "29.97",
    Fraction(48000, 1001): "47.952",
    Fraction(60000, 1001): "59.94",
    Fraction(120000, 1001): "119.88",
}
_DROP_FRAME_RATES = {"29.97", "59.94"}


def parse_rate(rate: RateLike) -> Fraction:
    """A frame rate as an exact Fraction from a Fraction, number, "30000/1001" / "29.97", or (num, den).

    Cached: a page of search hits asks for ~40 timecodes of a few videos, and the Fraction
    arithmetic here was most of their cost (docs/API.md).
    """
    try:
        return _parse_rate_cached(rate)
    except TypeError:  # unhashable input: parse it uncached (and let it fail with its own message)
        return _parse_rate(rate)


def _parse_rate(rate: RateLike) -> Fraction:
    if isinstance(rate, tuple):
        num, den = rate
        value = Fraction(int(num), int(den))
    elif isinstance(rate, str):
        value = Fraction(rate.strip()) if "/" in rate else Fraction(rate.strip()).limit_denominator(1001)
    else:
        value = Fraction(rate).limit_denominator(1001) if isinstance(rate, float) else Fraction(rate)
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {rate!r}")
    return _snap_ntsc(value)


_parse_rate_cached = functools.lru_cache(maxsize=4096)(_parse_rate)


def _snap_ntsc(rate: Fraction) -> Fraction:
    """29.97 given as a float or 2997/100 means 30000/1001."""
    for ntsc in _NTSC:
        if rate != ntsc and abs(rate - ntsc) < Fraction(1, 200):
            return ntsc
    return rate


def frame_rate_str(rate: RateLike) -> str:
    """Canonical text for a rate: "25", "30000/1001"; what exports and the API print."""
    value = parse_rate(rate)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def timecode_base(rate: RateLike) -> tuple[str, Fraction]:
    """The timecode library's rate name and the rate the source timecode counts frames at.

    NTSC rates count real frames (30000/1001 per second, labelled on a 30-frame grid); a
    whole-number rate counts at itself (20 fps labels 00..19). A fractional rate counts at its
    smallest whole multiple up to 8x, so every source frame is exactly k timecode frames
    (12.5 fps -> 25: frame n is label 2n); any other rate is labelled on the nearest
    whole-number grid by time (179/6 -> 30). This is the one timecode rate of a source:
    page, CLI, API JSON, CSV and the OTIO clip metadata all label at it (docs/EXPORT.md).
    """
    value = parse_rate(rate)
    return _timecode_base(value)


@functools.lru_cache(maxsize=1024)
def _timecode_base(value: Fraction) -> tuple[str, Fraction]:
    if value in _NTSC:
        return _NTSC[value], value
    if value.denominator == 1:
        return str(value.numerator), value
    for k in range(2, 9):
        multiple = value * k
        if multiple.denominator == 1:
            return str(multiple.numerator), multiple
    base = max(1, math.floor(value + Fraction(1, 2)))
    return str(base), Fraction(base)


def timecode_rate(rate: RateLike) -> Fraction:
    """The rate a source's timecode counts at (see :func:`timecode_base`): 12.5 -> 25, 20 -> 20."""
    return timecode_base(rate)[1]


def round_half_up(value: Fraction) -> int:
    """Nearest integer, halves up: one deterministic rule instead of Python's banker's rounding."""
    return math.floor(value + Fraction(1, 2))


def frame_at(seconds: float | Fraction, rate: RateLike) -> int:
    """The frame (at ``rate`` itself, not its timecode rate) a time falls on: the nearest frame.

    Hit times come from frame PTS, so they sit on a frame up to float error; rounding to the
    nearest frame returns that frame.
    """
    return round_half_up(Fraction(seconds) * parse_rate(rate))


def snap_span(start_s: float, end_s: float, keyframe_s: float, rate: RateLike) -> tuple[int, int, int]:
    """(first frame, frame count, keyframe frame) of a span at the source rate: the one snapping
    every output shares (the API JSON, the page, the CLI, CSV and every export format).

    The end is exclusive; a span is at least one frame; the keyframe is clamped into the span.
    """
    first = frame_at(start_s, rate)
    count = max(1, frame_at(end_s, rate) - first)
    key = min(max(frame_at(keyframe_s, rate), first), first + count - 1)
    return first, count, key


def span_timecodes(
    rate: RateLike, start_timecode: str | None, start_s: float, end_s: float, keyframe_s: float
) -> dict[str, Any]:
    """The source timecode of a hit or track span: what every output of it carries.

    Returns ``{"start_tc", "end_tc", "keyframe_tc", "rate", "drop_frame"}``: the span snapped
    to source frames (:func:`snap_span`; ``end_tc`` is exclusive, like an EDL out point),
    labelled at the source's timecode rate ``rate`` ("25", "30000/1001"; 12.5 fps -> "25")
    with its drop-frame mode. Times are seconds from the first frame.

    Example::

        >>> span_timecodes(Fraction(30000, 1001), None, 60.06, 61.0, 60.5)["start_tc"]
        '00:01:00;02'
    """
    value = parse_rate(rate)
    first, count, key = snap_span(start_s, end_s, keyframe_s, value)

    def label(frame: int) -> str:
        return smpte_at(Fraction(frame) / value, value, start_timecode)

    return {
        "start_tc": label(first),
        "end_tc": label(first + count),
        "keyframe_tc": label(key),
        "rate": frame_rate_str(timecode_rate(value)),
        "drop_frame": is_drop_frame(value, start_timecode),
    }


def video_span_timecodes(video: Any, start_s: float, end_s: float, keyframe_s: float) -> dict[str, Any]:
    """:func:`span_timecodes` of a ``VideoRef`` (``frame_rate_num/den``, ``start_timecode``)."""
    return span_timecodes(
        (int(video.frame_rate_num), int(video.frame_rate_den)),
        video.start_timecode,
        start_s,
        end_s,
        keyframe_s,
    )


def start_frames(rate: RateLike, start_timecode: str | None) -> int:
    """A start timecode as a frame count at the source's timecode rate (0 without one).

    Raises ``ValueError`` for a malformed or out-of-range timecode.
    """
    if not start_timecode:
        return 0
    name, count_rate = timecode_base(rate)
    drop = is_drop_frame(rate, start_timecode)
    text = _normalise(start_timecode, drop)
    hh, mm, ss, ff = (int(part) for part in re.split("[:;]", text))
    if mm > 59 or ss > 59 or ff >= math.ceil(count_rate):
        raise ValueError(f"start timecode {start_timecode!r} is out of range at {float(count_rate):.3f} fps")
    return int(Timecode(name, text, force_non_drop_frame=not drop).frames) - 1


def label_frames(frames: int, rate: RateLike, drop_frame: bool) -> str:
    """SMPTE label of a frame count at a source's timecode rate (';' before the frames when DF)."""
    name, _ = timecode_base(rate)
    drop = drop_frame and name in _DROP_FRAME_RATES
    return str(Timecode(name, frames=max(0, frames) + 1, force_non_drop_frame=not drop))


def frames_at(time_s: float, rate: RateLike) -> int:
    """Frame number (from 0) of a time on the timecode grid, robust to float error.

    Rounds to the nearest frame: times come from PTS, which coarse time bases (1/1000 in
    Matroska) store a fraction of a frame early or late.
    """
    _, count_rate = timecode_base(rate)
    return max(0, round_half_up(Fraction(time_s).limit_denominator(10**9) * count_rate))


def is_drop_frame(rate: RateLike, start_timecode: str | None = None) -> bool:
    """Drop-frame at 29.97 and 59.94 unless the source timecode is written non-drop.

    The separator before the frames says which: ':' is non-drop, ';' (or '.' / ',' where a
    semicolon cannot be written) is drop-frame.
    """
    name, _ = timecode_base(rate)
    if name not in _DROP_FRAME_RATES:
        return False
    if start_timecode:
        match = _TC_RE.match(start_timecode.strip())
        if match and match.group(4) == ":":
            return False
    return True


def smpte_at(
    time_s: float,
    rate: RateLike,
    start_timecode: str | None = None,
    *,
    origin_s: float = 0.0,
) -> str:
    """Timecode of the frame shown at ``time_s``, counting from ``start_timecode`` at ``origin_s``.

    ``origin_s`` is the time of the first frame (start PTS × time base): a file whose first
    frame sits at 1.4 s (MPEG-TS) still starts at its start timecode. Cached: search hits ask
    for the same shot boundaries again and again, and each costs exact Fraction arithmetic.
    """
    try:
        return _smpte_at_cached(time_s, rate, start_timecode, origin_s)
    except TypeError:  # an unhashable rate: computed uncached (or failing with its own message)
        return _smpte_at(time_s, rate, start_timecode, origin_s)


def _smpte_at(time_s: float, rate: RateLike, start_timecode: str | None, origin_s: float) -> str:
    name, _ = timecode_base(rate)
    drop = is_drop_frame(rate, start_timecode)
    offset = frames_at(max(0.0, time_s - origin_s), rate)
    start_frames = 0
    if start_timecode:
        start = _normalise(start_timecode, drop)
        start_frames = Timecode(name, start, force_non_drop_frame=not drop).frames - 1
    tc = Timecode(name, frames=start_frames + offset + 1, force_non_drop_frame=not drop)
    return str(tc)


_smpte_at_cached = functools.lru_cache(maxsize=65536)(_smpte_at)


def smpte_for(info: VideoInfo, time_s: float) -> str:
    """Timecode of a time in a probed video (its rate, start timecode and first-frame time)."""
    return smpte_at(
        time_s,
        info.frame_rate,
        info.start_timecode,
        origin_s=float(info.start_pts * info.time_base),
    )


def smpte_for_video(video: Any, time_s: float) -> str:
    """Timecode from whatever describes a video: a VideoInfo, a catalog ``videos`` row, a VideoRef.

    Reads ``frame_rate`` or ``fps_num``/``fps_den`` (or ``frame_rate_num``/``frame_rate_den``),
    ``start_timecode`` and, where present, ``start_pts`` with ``time_base_num``/``time_base_den``
    (the time of the first frame). Returns "" when the video has no known frame rate.
    """
    if isinstance(video, VideoInfo):
        return smpte_for(video, time_s)
    num = getattr(video, "fps_num", None) or getattr(video, "frame_rate_num", None)
    den = getattr(video, "fps_den", None) or getattr(video, "frame_rate_den", None)
    if not num or not den:
        return ""
    origin_s = 0.0
    tb_num, tb_den = getattr(video, "time_base_num", None), getattr(video, "time_base_den", None)
    start_pts = getattr(video, "start_pts", None)
    if start_pts and tb_num and tb_den:
        origin_s = float(Fraction(int(start_pts) * int(tb_num), int(tb_den)))
    return smpte_at(time_s, (int(num), int(den)), getattr(video, "start_timecode", None), origin_s=origin_s)


def _normalise(value: str, drop: bool) -> str:
    match = _TC_RE.match(value.strip())
    if not match:
        raise ValueError(f"not a SMPTE timecode: {value!r} (expected HH:MM:SS:FF or HH:MM:SS;FF)")
    hh, mm, ss, _, ff = match.groups()
    return f"{int(hh):02d}:{mm}:{ss}{';' if drop else ':'}{int(ff):02d}"
