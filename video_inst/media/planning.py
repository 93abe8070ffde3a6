"""Turn the PTS of every decoded frame plus detected cut frames into shots and keyframes.

Pure functions, no decoding: the shot plan's decode pass records PTS and cut indices and
hands them here. Shots tile the video exactly ([start_pts, end_pts) with each end the next
start); keyframes are frames that really exist, so their PTS can be decoded again later.

Example::

    >>> plan = build_plan([0, 512, 1024, 1536], 2048, Fraction(1, 12800), cuts=[2],
    ...                   min_len_s=0.0, first_offset_s=0.2, interval_s=1.0)
    >>> [(s.start_frame, s.end_frame) for s in plan.shots]
    [(0, 1), (2, 3)]
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from fractions import Fraction

from video_inst.media.types import Keyframe, Shot, ShotPlan


def end_of_last_frame(pts: Sequence[int], last_duration: int | None, fallback: int) -> int:
    """PTS just past the last frame: its own duration, else the typical frame interval."""
    if not pts:
        return 0
    if last_duration and last_duration > 0:
        return pts[-1] + last_duration
    if len(pts) >= 2:
        deltas = sorted(b - a for a, b in zip(pts, pts[1:]))
        return pts[-1] + deltas[len(deltas) // 2]
    return pts[-1] + max(1, fallback)


def clean_cuts(cuts: Iterable[int], times: Sequence[float], end_s: float, min_len_s: float) -> list[int]:
    """Sorted cut indices with every shot at least ``min_len_s`` long, measured on real PTS.

    Detectors count frames; on variable-rate video only timestamps say how long a shot is.
    A cut too close to the previous kept one (or to the start or end) is dropped, which merges
    the short piece into its neighbour.
    """
    n = len(times)
    kept: list[int] = []
    last_start = times[0] if n else 0.0
    for c in sorted(set(cuts)):
        if c <= 0 or c >= n:
            continue
        if times[c] - last_start < min_len_s or end_s - times[c] < min_len_s:
            continue
        kept.append(c)
        last_start = times[c]
    return kept


def shots_from_cuts(pts: Sequence[int], end_pts: int, time_base: Fraction, cuts: Sequence[int]) -> list[Shot]:
    """Shots that tile [pts[0], end_pts): each ends where the next starts."""
    starts = [0, *cuts]
    shots = []
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else len(pts)
        s_pts, e_pts = pts[a], (pts[b] if b < len(pts) else end_pts)
        shots.append(
            Shot(
                index=i,
                start_pts=s_pts,
                end_pts=e_pts,
                start_s=float(s_pts * time_base),
                end_s=float(e_pts * time_base),
                start_frame=a,
                end_frame=b - 1,
            )
        )
    return shots


def keyframe_indices(
    times: Sequence[float], shot: Shot, first_offset_s: float, interval_s: float
) -> list[int]:
    """Frames to analyse in one shot: ``first_offset_s`` after the cut, then every ``interval_s``.

    The offset keeps the first sample clear of the cut's blur and compression burst; a shot
    shorter than the offset gets its middle frame. Each target snaps to the nearest frame of
    the shot, so a sample is always a frame that exists.
    """
    a, b = shot.start_frame, shot.end_frame
    target = shot.start_s + first_offset_s
    if target >= shot.end_s:
        return [(a + b) // 2]
    picked: list[int] = []
    step = max(interval_s, 1e-6)
    while target < shot.end_s:
        i = bisect_left(times, target, a, b + 1)
        if i > b or (i > a and target - times[i - 1] <= times[i] - target):
            i -= 1
        if not picked or i > picked[-1]:
            picked.append(i)
        target += step
    return picked


def build_plan(
    pts: Sequence[int],
    end_pts: int,
    time_base: Fraction,
    cuts: Iterable[int],
    *,
    min_len_s: float,
    first_offset_s: float,
    interval_s: float,
    truncated: bool = False,
    warnings: Sequence[str] = (),
) -> ShotPlan:
    """Shots and keyframes from the recorded PTS of every frame (strictly increasing)."""
    if not pts:
        raise ValueError("no frames to plan")
    times = [float(p * time_base) for p in pts]
    end_s = float(end_pts * time_base)
    kept = clean_cuts(cuts, times, end_s, min_len_s)
    shots = shots_from_cuts(pts, end_pts, time_base, kept)
    keyframes = [
        Keyframe(shot_index=shot.index, pts=pts[i], time_s=times[i], frame=i)
        for shot in shots
        for i in keyframe_indices(times, shot, first_offset_s, interval_s)
    ]
    return ShotPlan(
        shots=shots,
        keyframes=keyframes,
        frame_count=len(pts),
        end_pts=end_pts,
        truncated=truncated,
        warnings=list(warnings),
    )
