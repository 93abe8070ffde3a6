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


class StreamPlanner:
    """The decisions of :func:`build_plan`, taken while the plan pass runs instead of after it.

    Why: the keyframes a plan selects can then be taken from the pass's own decoded frames
    (no second decode) and analysed while decoding goes on (docs/INGEST.md). Fed every
    frame's PTS and the detectors' cuts; ``lag`` is how many frames behind the newest one a
    detector may still report a cut (PySceneDetect's ``event_buffer_length``). A cut is
    decided once no later frame can change ``clean_cuts``' verdict on it, a shot once both
    its cuts are, and a keyframe once the frames around its target are known and its shot
    certainly lasts past it. Every decision equals ``build_plan``'s over the whole pass (the
    caller compares both at the end and must not trust the stream where they differ).
    """

    def __init__(
        self, time_base: Fraction, *, min_len_s: float, first_offset_s: float, interval_s: float, lag: int
    ) -> None:
        self.time_base = time_base
        self.min_len_s, self.first_offset_s = min_len_s, first_offset_s
        self.step = max(interval_s, 1e-6)
        self.lag = max(0, lag)
        self.pts: list[int] = []
        self.times: list[float] = []
        self._raw: list[int] = []  # reported cuts not decided yet, ascending
        self._last_raw = -1
        self._last_start = 0.0  # time of the last kept cut (clean_cuts' ``last_start``)
        self._start = 0  # first frame of the open shot
        self._target: float | None = None  # next keyframe target of the open shot
        self._picked: list[int] = []
        self.shots: list[Shot] = []
        self.broken = False  # a cut arrived out of order: the caller must fall back

    def add_frame(self, pts: int) -> None:
        self.pts.append(pts)
        self.times.append(float(pts * self.time_base))
        if len(self.pts) == 1:
            self._last_start = self.times[0]
            self._target = self.times[0] + self.first_offset_s

    def add_cuts(self, cuts: Iterable[int]) -> None:
        for c in cuts:
            if c <= self._last_raw:
                self.broken = self.broken or c < self._last_raw
                continue
            self._last_raw = c
            self._raw.append(c)

    def lowest_needed(self) -> int:
        """The first frame index that may still become a keyframe; older frames can be let go."""
        n = len(self.times)
        low = n - self.lag
        if self._raw:
            low = min(low, self._raw[0])
        if not self._picked:
            low = min(low, self._start)  # a shot shorter than the offset takes its middle frame
        elif self._target is not None:
            low = min(low, bisect_left(self.times, self._target, self._start, n) - 1)
        return max(self._start, low)

    def advance(self) -> list[tuple[str, object]]:
        """Decisions the frames so far allow: ("keyframe", Keyframe) and ("shot", Shot), in plan order."""
        events: list[tuple[str, object]] = []
        n = len(self.times)
        if not n:
            return events
        while self._raw:
            c = self._raw[0]
            if c >= n:
                break  # a cut at the end of the pass (post_process): decided in ``finish``
            if c <= 0 or self.times[c] - self._last_start < self.min_len_s:
                self._raw.pop(0)  # dropped, whatever comes later
                continue
            if self.times[n - 1] - self.times[c] < self.min_len_s:
                break  # kept only if the video lasts min_len_s past it: not known yet
            self._raw.pop(0)
            self._close(c, self.pts[c], events)
            self._last_start = self.times[c]
        frontier = min(self._raw[0] if self._raw else n, n - self.lag)  # no cut can come before it
        if frontier - 1 >= self._start:
            self._pick_until(self.times[frontier - 1], frontier - 1, events)
        return events

    def finish(self, end_pts: int) -> list[tuple[str, object]]:
        """The remaining decisions once the pass is over and the end of the last frame is known."""
        events = self.advance()
        n = len(self.times)
        end_s = float(end_pts * self.time_base)
        for c in self._raw:
            if c <= 0 or c >= n or self.times[c] - self._last_start < self.min_len_s:
                continue
            if end_s - self.times[c] < self.min_len_s:
                continue
            self._close(c, self.pts[c], events)
            self._last_start = self.times[c]
        self._raw = []
        if n:
            self._close(n, end_pts, events)
        return events

    def _pick_until(self, limit_s: float, last: int, events: list[tuple[str, object]]) -> None:
        """Keyframe targets of the open shot up to ``limit_s`` (frames up to ``last`` are in it)."""
        a, times = self._start, self.times
        while self._target is not None and self._target <= limit_s:
            target = self._target
            i = bisect_left(times, target, a, last + 1)
            if i > last or (i > a and target - times[i - 1] <= times[i] - target):
                i -= 1
            if not self._picked or i > self._picked[-1]:
                self._picked.append(i)
                events.append(("keyframe", Keyframe(len(self.shots), self.pts[i], times[i], i)))
            self._target = target + self.step

    def _close(self, end: int, end_pts: int, events: list[tuple[str, object]]) -> None:
        """Close the open shot at frame ``end`` (exclusive) ending at ``end_pts``; open the next."""
        a, b = self._start, end - 1
        shot = Shot(
            index=len(self.shots),
            start_pts=self.pts[a],
            end_pts=end_pts,
            start_s=float(self.pts[a] * self.time_base),
            end_s=float(end_pts * self.time_base),
            start_frame=a,
            end_frame=b,
        )
        if not self._picked and self._target is not None and self._target >= shot.end_s:
            i = (a + b) // 2
            events.append(("keyframe", Keyframe(shot.index, self.pts[i], self.times[i], i)))
        else:
            self._pick_until_end(shot, events)
        events.append(("shot", shot))
        self.shots.append(shot)
        self._start = end
        self._picked = []
        self._target = self.times[end] + self.first_offset_s if end < len(self.times) else None

    def _pick_until_end(self, shot: Shot, events: list[tuple[str, object]]) -> None:
        a, b, times = shot.start_frame, shot.end_frame, self.times
        while self._target is not None and self._target < shot.end_s:
            target = self._target
            i = bisect_left(times, target, a, b + 1)
            if i > b or (i > a and target - times[i - 1] <= times[i] - target):
                i -= 1
            if not self._picked or i > self._picked[-1]:
                self._picked.append(i)
                events.append(("keyframe", Keyframe(shot.index, self.pts[i], times[i], i)))
            self._target = target + self.step
