"""What the exporters add to the one timecode module (``video_inst.media.timecode``): NLE rates.

Frame snapping (``snap_span``) and source timecode labels come from ``media.timecode``, the
module the page, the CLI and the API use; here are only the rates timeline formats can
declare and ``pick_rate``, the rule that conforms a source to one of them. Everything is exact
(``fractions.Fraction``): a hit's seconds become a frame index once, with one rounding rule.

Example::

    >>> clock = SourceClock.from_values(30000, 1001, "01:00:00;00")
    >>> clock.label(frame_at(60.06, clock.rate) / clock.rate)
    '01:01:00;02'
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from opentimelineio import opentime

from video_inst.export.errors import ExportError
from video_inst.hits import VideoRef
from video_inst.media import timecode as tc
from video_inst.media.timecode import frame_at, round_half_up, snap_span

__all__ = [
    "DROP_FRAME_RATES",
    "NTSC",
    "TIMECODE_RATES",
    "SourceClock",
    "frame_at",
    "normalise_rate",
    "parse_timecode",
    "pick_rate",
    "rate_text",
    "round_half_up",
    "snap_span",
    "timecode",
]

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


@dataclass(frozen=True)
class SourceClock:
    """How a video counts time: its frame rate and the timecode of its first frame.

    A view of ``video_inst.media.timecode`` (the one timecode module): ``tc_rate`` is the
    source's timecode rate there (12.5 -> 25, 20 -> 20) and ``label`` is its ``smpte_at``, so an
    export's metadata and CSV read exactly what the page, the CLI and the API JSON say.
    """

    rate: Fraction  # the media's frame rate
    tc_rate: Fraction  # the rate its source timecode counts at (media.timecode.timecode_rate)
    drop_frame: bool
    start_tc_frames: int  # the start timecode as a frame count at tc_rate
    start_timecode: str | None = None

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
        tc_rate = tc.timecode_rate(rate)
        try:
            frames = tc.start_frames(rate, start_timecode)
        except ValueError as exc:
            raise ExportError(
                f"start timecode {start_timecode!r} is not a valid HH:MM:SS:FF (or HH:MM:SS;FF for "
                f"drop-frame) at {float(tc_rate):.3f} fps: {exc}"
            ) from None
        return cls(rate, tc_rate, tc.is_drop_frame(rate, start_timecode), frames, start_timecode or None)

    @property
    def start_seconds(self) -> Fraction:
        return Fraction(self.start_tc_frames) / self.tc_rate

    def label(self, seconds: Fraction | float) -> str:
        """The source timecode of a time given in seconds from the media's first frame."""
        return tc.smpte_at(Fraction(seconds), self.rate, self.start_timecode)


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
