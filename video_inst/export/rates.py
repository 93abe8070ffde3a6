"""Frame rates, frame snapping and source timecode for the exporters.

Everything here is exact (``fractions.Fraction``): a hit's seconds become a frame index once,
with one rounding rule, and every format reads that same frame.

Example::

    >>> clock = SourceClock.from_values(30000, 1001, "01:00:00;00")
    >>> clock.label(frame_at(60.06, clock.rate) / clock.rate)
    '01:01:00;02'
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from opentimelineio import opentime

from video_inst.export.errors import ExportError
from video_inst.hits import VideoRef

NTSC = Fraction(1000, 1001)

#: The rates SMPTE timecode (and OpenTimelineIO's timecode functions) can count in.
TIMECODE_RATES: tuple[Fraction, ...] = (
    24 * NTSC,
    Fraction(24),
    Fraction(25),
    30 * NTSC,
    Fraction(30),
    48 * NTSC,
    Fraction(48),
    Fraction(50),
    60 * NTSC,
    Fraction(60),
)
#: Rates whose timecode may be drop-frame (29.97 and 59.94).
DROP_FRAME_RATES: frozenset[Fraction] = frozenset({30 * NTSC, 60 * NTSC})

_TC = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})\s*$")


def normalise_rate(num: int, den: int) -> Fraction:
    """The frame rate as an exact fraction, with rounded NTSC rates (2997/100) snapped to n*1000/1001.

    Containers store 29.97 both as 30000/1001 and as 2997/100; both must read the same timecode.
    """
    if den <= 0 or num <= 0:
        raise ExportError(f"frame rate {num}/{den} is not a positive rate; the video's probe data is wrong")
    rate = Fraction(num, den)
    for known in TIMECODE_RATES:
        if abs(rate - known) <= known * Fraction(1, 10_000):
            return known
    return rate


def pick_rate(rate: Fraction, allowed: Sequence[Fraction]) -> Fraction:
    """The rate among ``allowed`` that a format writes for media running at ``rate``.

    Rule (documented in docs/EXPORT.md): the rate itself when allowed; else the smallest whole
    multiple that is allowed (12.5 -> 25, 15 -> 30: every source frame is exactly k frames);
    else the largest whole divisor that is allowed (120 -> 60, 119.88 -> 59.94: frames are
    quantised); else the nearest allowed rate.
    """
    if rate in allowed:
        return rate
    for k in range(2, 9):
        if rate * k in allowed:
            return rate * k
    for k in range(2, 9):
        if rate / k in allowed:
            return rate / k
    return min(allowed, key=lambda a: (abs(a - rate), -a))


def round_half_up(value: Fraction) -> int:
    """Nearest integer, halves up: one deterministic rule instead of Python's banker's rounding."""
    return math.floor(value + Fraction(1, 2))


def frame_at(seconds: float | Fraction, rate: Fraction) -> int:
    """The frame a time (seconds from the first frame) falls on: the nearest frame.

    Hit times come from frame PTS, so they sit on a frame up to float error; rounding to the
    nearest frame returns that frame (the one whose PTS is at/after the time, within half a frame).
    """
    return round_half_up(Fraction(seconds) * rate)


def snap_span(start_s: float, end_s: float, keyframe_s: float, rate: Fraction) -> tuple[int, int, int]:
    """(first frame, frame count, keyframe frame) of a span: the one snapping every format shares.

    The end is exclusive; a span is at least one frame; the keyframe is clamped into the span.
    """
    first = frame_at(start_s, rate)
    count = max(1, frame_at(end_s, rate) - first)
    key = min(max(frame_at(keyframe_s, rate), first), first + count - 1)
    return first, count, key


@dataclass(frozen=True)
class SourceClock:
    """How a video counts time: its frame rate and the timecode of its first frame."""

    rate: Fraction  # the media's frame rate
    tc_rate: Fraction  # the SMPTE rate its timecode counts in (rate, or pick_rate(rate) when rate has no TC)
    drop_frame: bool
    start_tc_frames: int  # the start timecode as a frame count at tc_rate

    @classmethod
    def from_video(cls, video: VideoRef) -> SourceClock:
        return _clock(video.frame_rate_num, video.frame_rate_den, video.start_timecode)

    @classmethod
    def from_values(cls, num: int, den: int, start_timecode: str | None) -> SourceClock:
        """Parse the start timecode; ';' (or ',' / '.') before the frames means drop-frame.

        Without a start timecode the media starts at 00:00:00:00 and 29.97 / 59.94 count
        drop-frame (the broadcast convention OpenTimelineIO infers from the rate).
        """
        rate = normalise_rate(num, den)
        tc_rate = pick_rate(rate, TIMECODE_RATES)
        if not start_timecode:
            return cls(rate, tc_rate, tc_rate in DROP_FRAME_RATES, 0)
        match = _TC.match(start_timecode)
        if not match:
            raise ExportError(
                f"start timecode {start_timecode!r} is not HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)"
            )
        hh, mm, ss, sep, ff = match.groups()
        drop = sep != ":" and tc_rate in DROP_FRAME_RATES
        nominal = math.ceil(tc_rate)
        if int(mm) > 59 or int(ss) > 59 or int(ff) >= nominal:
            raise ExportError(
                f"start timecode {start_timecode!r} is out of range at {float(tc_rate):.3f} fps"
            )
        text = f"{int(hh):02d}:{mm}:{ss}{';' if drop else ':'}{int(ff):02d}"
        frames = opentime.from_timecode(text, float(tc_rate)).value
        return cls(rate, tc_rate, drop, int(round(frames)))

    @property
    def start_seconds(self) -> Fraction:
        return Fraction(self.start_tc_frames) / self.tc_rate

    def label(self, seconds: Fraction | float) -> str:
        """The source timecode of a time given in seconds from the media's first frame."""
        frame = self.start_tc_frames + frame_at(seconds, self.tc_rate)
        return timecode(frame, self.tc_rate, self.drop_frame)


@functools.lru_cache(maxsize=1024)
def _clock(num: int, den: int, start_timecode: str | None) -> SourceClock:
    """Clocks are parsed once per (rate, start timecode): an export of many hits shares a few videos."""
    return SourceClock.from_values(num, den, start_timecode)


def timecode(frame: int, rate: Fraction, drop_frame: bool) -> str:
    """SMPTE label of a frame count at a timecode rate (';' before the frames when drop-frame)."""
    return opentime.to_timecode(opentime.RationalTime(frame, float(rate)), float(rate), drop_frame)


def parse_timecode(text: str, rate: Fraction) -> int:
    """Frame count of a SMPTE label at ``rate`` (drop-frame when the label uses ';')."""
    return int(round(opentime.from_timecode(text, float(rate)).value))


def rate_text(rate: Fraction) -> str:
    """A rate as people write it in metadata: '25', '30000/1001'."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"
