"""Selects: the hits an editor keeps, in the editor's order, cut to a range with handles.

Two steps, both plain functions of hits, so the API, the CLI and a script export the same frames:

- :func:`choose` keeps the picked hits (by track id, in the order given) or drops rejected ones;
  an id that is not a hit of the search is a named ``ExportError``.
- :func:`cut` turns each chosen hit into a :class:`Select`: its range is the detected span (the
  track) or the whole shot, widened by ``handles`` source frames at each end and clamped to the
  media's first and last frame, then put in rank or time order. Every format writes
  ``Select.hit`` (its ``start_s`` / ``end_s`` are the range's frames), so an EDL, an FCPXML and a
  CSV of one selection agree frame for frame (docs/EXPORT.md, "Selects").

Example::

    chosen = choose(result.hits, picks=[12, 7, 30])
    selects = cut(chosen, SelectOptions(handles=12, span="shot", order="time"))
    selects[0].hit.start_s, selects[0].handle_in   # the first frame as seconds, frames added
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from video_inst.export.errors import ExportError
from video_inst.hits import Hit, VideoRef
from video_inst.media.timecode import frame_at, parse_rate, video_span_timecodes

SpanMode = Literal["detected", "shot"]
Order = Literal["rank", "time"]
Layout = Literal["sequence", "markers"]
SPAN_MODES: tuple[str, ...] = ("detected", "shot")
ORDERS: tuple[str, ...] = ("rank", "time")
LAYOUTS: tuple[str, ...] = ("sequence", "markers")
#: Most handle frames at each end (an hour at 25 fps): more is a typo, not an edit.
MAX_HANDLES = 90_000
#: Most picked or rejected ids of one export.
MAX_SELECTED = 1000


@dataclass(frozen=True)
class SelectOptions:
    """How chosen hits become an edit: range, handles, order and layout.

    ``span``: ``detected`` (the track's span, what the search found) or ``shot`` (the whole shot).
    ``handles``: source frames added before and after, clamped to the media.
    ``order``: ``rank`` (the selection's order) or ``time`` (by source file path, then source time).
    ``layout``: ``sequence`` (a subclip per select, one after another) or ``markers`` (one clip per
    source file covering all of it, a ranged marker per select).
    """

    handles: int = 0
    span: SpanMode = "detected"
    order: Order = "rank"
    layout: Layout = "sequence"

    def __post_init__(self) -> None:
        if isinstance(self.handles, bool) or not isinstance(self.handles, int):
            raise ExportError(f"handles must be a whole number of frames, got {self.handles!r}")
        if not 0 <= self.handles <= MAX_HANDLES:
            raise ExportError(f"handles must be between 0 and {MAX_HANDLES} frames, got {self.handles}")
        for name, value, allowed in (
            ("span", self.span, SPAN_MODES),
            ("order", self.order, ORDERS),
            ("layout", self.layout, LAYOUTS),
        ):
            if value not in allowed:
                raise ExportError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class Select:
    """One kept hit as written: ``hit`` carries the range (start_s / end_s on its frames, timecodes
    of them); ``rank`` is its place in the selection (1 = first picked), whatever the output order."""

    rank: int
    hit: Hit
    first: int  # first frame of the range at the source rate
    end: int  # frame after the range (exclusive)
    handle_in: int  # handle frames actually added before (less than asked where the media starts)
    handle_out: int  # and after (less where the media ends)


def _ids(values: Iterable[int], what: str) -> list[int]:
    ids = [int(v) for v in values]
    if len(ids) > MAX_SELECTED:
        raise ExportError(f"at most {MAX_SELECTED} {what} ids per export, got {len(ids)}")
    seen: set[int] = set()
    for value in ids:
        if value in seen:
            raise ExportError(f"track {value} is {what} twice")
        seen.add(value)
    return ids


def choose(
    hits: Sequence[Hit],
    *,
    picks: Iterable[int] = (),
    rejects: Iterable[int] = (),
    page: tuple[int, int] | None = None,
) -> list[Hit]:
    """The hits to export, in the selection's rank order.

    ``picks`` (track ids): exactly those hits, in that order. Without picks: the hits (or the
    ``page`` = (offset, count) of them) in search order, less the ``rejects``. Every id must be a
    hit's ``track_id`` among ``hits``; a track both picked and rejected is refused.
    """
    picked, rejected = _ids(picks, "picked"), _ids(rejects, "rejected")
    both = sorted(set(picked) & set(rejected))
    if both:
        raise ExportError(f"track {both[0]} is both picked and rejected")
    by_id = {h.track_id: h for h in hits if h.track_id is not None}
    unknown = [t for t in picked + rejected if t not in by_id]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise ExportError(
            f"not a hit of this search: track {shown} (picks and rejects name the track_id of hits "
            f"among the search's first {len(hits)})"
        )
    if picked:
        return [by_id[t] for t in picked]
    pool = list(hits) if page is None else list(hits)[page[0] : page[0] + page[1]]
    gone = set(rejected)
    return [h for h in pool if h.track_id not in gone]


def media_frames(video: VideoRef) -> int:
    """Frames of the media: the decoded count, else its duration at its rate (at least 1)."""
    if video.frame_count:
        return int(video.frame_count)
    rate = parse_rate((video.frame_rate_num, video.frame_rate_den))
    return max(1, math.ceil(Fraction(video.duration_s) * rate - Fraction(1, 1000)))


def cut(hits: Sequence[Hit], options: SelectOptions | None = None) -> list[Select]:
    """Each hit's range (span mode, handles clamped to the media) in the options' order.

    Ranks follow ``hits`` (1 = first); a hit without ``video`` facts keeps its own times (no
    handles: its frame rate is unknown; the timeline formats refuse it anyway).
    """
    options = options or SelectOptions()
    selects = [_select(rank, hit, options) for rank, hit in enumerate(hits, start=1)]
    if options.order == "time":
        selects.sort(key=lambda s: (s.hit.path, s.hit.video_id, s.first, s.rank))
    return selects


def _select(rank: int, hit: Hit, options: SelectOptions) -> Select:
    shot = options.span == "shot"
    start_s, end_s = (hit.shot.start_s, hit.shot.end_s) if shot else (hit.start_s, hit.end_s)
    if hit.video is None:
        changed = (start_s, end_s) != (hit.start_s, hit.end_s)
        out = replace(hit, start_s=start_s, end_s=end_s) if changed else hit
        return Select(rank, out, 0, 0, 0, 0)
    rate = parse_rate((hit.video.frame_rate_num, hit.video.frame_rate_den))
    first = frame_at(start_s, rate)
    end = max(first + 1, frame_at(end_s, rate))  # exclusive, at least one frame (snap_span's rule)
    limit = max(media_frames(hit.video), end)  # never cut into the span itself
    new_first = max(0, first - options.handles)
    new_end = min(limit, end + options.handles)
    # Times that fall on the chosen frames; the hit's own times where a frame did not move, so
    # an export without handles writes exactly what the search answered.
    same_start = new_first == frame_at(hit.start_s, rate)
    new_start_s = hit.start_s if same_start else float(Fraction(new_first) / rate)
    same_end = new_end == max(frame_at(hit.start_s, rate) + 1, frame_at(hit.end_s, rate))
    new_end_s = hit.end_s if same_end else float(Fraction(new_end) / rate)
    out = hit
    if (new_start_s, new_end_s) != (hit.start_s, hit.end_s):
        out = replace(
            hit,
            start_s=new_start_s,
            end_s=new_end_s,
            **_timecodes(hit.video, new_start_s, new_end_s, hit.keyframe_s),
        )
    return Select(rank, out, new_first, new_end, first - new_first, new_end - end)


def _timecodes(video: VideoRef, start_s: float, end_s: float, keyframe_s: float) -> dict[str, object]:
    tcs = video_span_timecodes(video, start_s, end_s, keyframe_s)
    return {k: tcs[k] for k in ("start_tc", "end_tc", "keyframe_tc", "rate", "drop_frame")}
