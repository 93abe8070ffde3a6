"""Search hits (or one video's tracks) as ONE OpenTimelineIO timeline; every export format writes it.

A hit becomes a Clip on a single video track: its media reference points at the source file and
covers the whole source, starting at the source start timecode; its source range is the hit's
``[start_s, end_s)`` snapped to frames and read in the source's timecode; a Marker sits on the
keyframe with the box, track id, score and the full hit JSON (metadata namespace "video_inst").

Example::

    timeline = build_timeline(hits, "dog in the park")
    otio.adapters.write_to_string(timeline, adapter_name="otio_json")

Formats that cannot carry the canonical timeline as it is (one rate per EDL, FCP7 marker frames
relative to the media, ...) pass ``TimelineOptions``; ``video_inst.export.writers`` says which
and docs/EXPORT.md says why.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PureWindowsPath
from typing import Any, Literal

import opentimelineio as otio
from opentimelineio import opentime

from video_inst.export.errors import ExportError
from video_inst.export.rates import (
    DROP_FRAME_RATES,
    NTSC,
    TIMECODE_RATES,
    SourceClock,
    frame_at,
    parse_timecode,
    pick_rate,
    rate_text,
    round_half_up,
    snap_span,
)
from video_inst.export.selects import Select, media_frames
from video_inst.hits import Hit, VideoRef

NAMESPACE = "video_inst"
DEFAULT_TITLE = "video_inst search"
#: Rate of an export with no clip at all (nothing tells which rate the editor uses).
EMPTY_RATE = Fraction(25)
#: Marker colours by search mode; all of them are also Avid locator colours (EDL "* LOC:").
MODE_COLOURS = {
    "image": otio.schema.MarkerColor.CYAN,
    "text": otio.schema.MarkerColor.MAGENTA,
    "image+text": otio.schema.MarkerColor.BLUE,
    "labels": otio.schema.MarkerColor.YELLOW,
    "track": otio.schema.MarkerColor.CYAN,
}
TRACK_COLOUR = otio.schema.MarkerColor.YELLOW
OTHER_COLOUR = otio.schema.MarkerColor.WHITE
# FCPXML adapter 1.0 keys its frame-duration table by these float literals (see docs/EXPORT.md).
_FCPX_LITERALS = {24 * NTSC: 23.98, 30 * NTSC: 29.97, 60 * NTSC: 59.94}


@dataclass(frozen=True)
class TrackRow:
    """One track of a video, for the "a video's tracks" export: its span, keyframe box and labels."""

    track_id: int
    start_s: float
    end_s: float
    keyframe_s: float
    box: list[float]  # x0, y0, x1, y1 in source pixels at keyframe_s
    labels: list[list[Any]] = field(default_factory=list)  # [[label, prob], ...]
    score: float = 0.0


@dataclass(frozen=True)
class TimelineOptions:
    """How one format needs the timeline laid out; the defaults build the canonical OTIO timeline."""

    edit_rate: Fraction | None = (
        None  # one rate for every clip (EDL, FCP7); None: each clip at its media rate
    )
    drop_frame: bool | None = None  # with edit_rate: the timeline's timecode is drop-frame
    project_rate: Fraction | None = (
        None  # the sequence rate when clips keep their own (FCPXML; OTIO if declared)
    )
    project_drop: bool | None = None
    media_rates: tuple[Fraction, ...] | None = None  # rates a format can declare; others go through pick_rate
    ndf_label_rate: bool = False  # NDF timecode at 29.97/59.94 written as frame counts at 30/60 (EDL)
    fcpx_rate_literals: bool = False  # NTSC rates as the FCPXML adapter's table keys (23.98, 29.97, 59.94)
    marker_space: Literal["source", "media", "record"] = "source"
    conform_origin: Literal["timecode", "media"] = "timecode"  # what conformed frames are counted from
    record_start: str | None = None  # leading gap so the first event records at this timecode (EDL)
    global_start: str | None = "01:00:00:00"  # the timeline's start timecode (OTIO, FCP7)
    url_style: Literal["uri", "localhost", "path"] = "uri"
    safe_names: bool = False  # no "'" in names (the FCPXML adapter puts names into XPath queries)
    reels: bool = False  # CMX3600 reel names in clip metadata
    pad_empty: bool = False  # an empty track gets a zero-length gap (EDL and FCPXML writers need one item)
    hit_metadata: bool = (
        True  # the full hit JSON on each marker (only OTIO JSON writes it; it is the slow part)
    )


@dataclass
class _Mark:
    start_s: float
    end_s: float | None  # None: a one-frame marker
    name: str
    colour: str
    comment: str
    metadata: dict[str, Any]


@dataclass
class _ClipSpec:
    video: VideoRef
    start_s: float
    end_s: float
    name_hint: str
    metadata: dict[str, Any]
    marks: list[_Mark]


@dataclass(frozen=True)
class _Layout:
    """The resolved rates of one clip: media rate M (the file), edit rate E (the clip), the labels."""

    clock: SourceClock
    media_rate: Fraction
    edit_rate: Fraction
    drop_frame: bool


def build_timeline(
    hits: Sequence[Hit], title: str = DEFAULT_TITLE, *, options: TimelineOptions | None = None
) -> otio.schema.Timeline:
    """Hits in rank order as clips on one video track, each with a marker on its keyframe.

    One timeline feeds every format so that an EDL, an FCPXML and a CSV of the same search agree
    frame for frame.
    """
    options = options or TimelineOptions()
    specs = [_hit_spec(rank, hit, options.hit_metadata) for rank, hit in enumerate(hits, start=1)]
    return _build(specs, title, options)


def build_selects_timeline(
    selects: Sequence[Select],
    title: str = DEFAULT_TITLE,
    *,
    layout: str = "sequence",
    options: TimelineOptions | None = None,
) -> otio.schema.Timeline:
    """Selects (``selects.cut``) as one timeline, in the order given.

    ``sequence``: a subclip per select (its range with handles) with a marker on its keyframe, as
    :func:`build_timeline`. ``markers``: one clip per source file covering the whole media (files
    in order of their first select) with a ranged marker per select on its range; an editor then
    cuts from the source. Marker names keep the selection rank (``#2 ...``) in either order.
    """
    options = options or TimelineOptions()
    if layout == "markers":
        return _build(_marker_specs(selects, options.hit_metadata), title, options)
    specs = []
    for select in selects:
        spec = _hit_spec(select.rank, select.hit, options.hit_metadata)
        spec.metadata.update(_select_metadata(select))
        specs.append(spec)
    return _build(specs, title, options)


def build_tracks_timeline(
    video: VideoRef,
    tracks: Sequence[TrackRow],
    title: str = DEFAULT_TITLE,
    *,
    options: TimelineOptions | None = None,
) -> otio.schema.Timeline:
    """One clip covering the whole video with one marker per track (marked range = the track's span).

    Lets an editor scrub a whole source with every tracked object flagged where it appears.
    """
    marks = [_track_mark(video, row) for row in tracks]
    end_s = max([video.duration_s, *(row.end_s for row in tracks)])
    spec = _ClipSpec(
        video=video,
        start_s=0.0,
        end_s=end_s,
        name_hint=_basename(video.path),
        metadata={"video_id": video.video_id, "path": video.path, "tracks": len(tracks)},
        marks=marks,
    )
    return _build([spec], title, options or TimelineOptions())


def dominant_clock(videos: Sequence[VideoRef]) -> SourceClock | None:
    """The clock most videos share (ties: the first seen): one-rate formats write the export at it."""
    clocks = [SourceClock.from_video(v) for v in videos]
    if not clocks:
        return None
    counts = Counter((c.tc_rate, c.drop_frame) for c in clocks)
    best = max(counts.values())
    return next(c for c in clocks if counts[(c.tc_rate, c.drop_frame)] == best)


def hit_videos(hits: Sequence[Hit]) -> list[VideoRef]:
    """The VideoRef of every hit, or a named error for the first hit that lacks one."""
    return [_require_video(rank, hit) for rank, hit in enumerate(hits, start=1)]


# ---------------------------------------------------------------- specs from hits and tracks


def _require_video(rank: int, hit: Hit) -> VideoRef:
    if hit.video is None:
        raise ExportError(
            f"hit #{rank} (video_id {hit.video_id}, {hit.path}) has no video facts (frame rate, start "
            "timecode); search results must carry Hit.video to be exported"
        )
    return hit.video


def _hit_spec(rank: int, hit: Hit, with_json: bool = True) -> _ClipSpec:
    video = _require_video(rank, hit)
    _check_times(rank, hit)
    labels = _label_text(hit.labels)
    name = _one_line(f"#{rank} {hit.score:.2f}" + (f" {labels}" if labels else ""))
    mark = _Mark(
        start_s=hit.keyframe_s,
        end_s=None,
        name=name,
        colour=MODE_COLOURS.get(hit.mode, OTHER_COLOUR),
        comment=_box_comment(hit.box, hit.track_id, hit.score, hit.mode),
        metadata={"rank": rank, "hit": _jsonable(hit.to_json())} if with_json else {"rank": rank},
    )
    return _ClipSpec(
        video=video,
        start_s=hit.start_s,
        end_s=hit.end_s,
        name_hint=_basename(hit.path or video.path),
        metadata={"rank": rank, "video_id": hit.video_id, "path": hit.path, "shot_index": hit.shot.index},
        marks=[mark],
    )


def _select_metadata(select: Select) -> dict[str, Any]:
    return {"handle_in": select.handle_in, "handle_out": select.handle_out}


def _marker_specs(selects: Sequence[Select], with_json: bool) -> list[_ClipSpec]:
    """One whole-media clip per source file (in order of first select), a ranged marker per select."""
    specs: dict[int, _ClipSpec] = {}
    for select in selects:
        hit = select.hit
        video = _require_video(select.rank, hit)
        _check_times(select.rank, hit)
        spec = specs.get(video.video_id)
        if spec is None:
            end_s = max(float(Fraction(media_frames(video)) / SourceClock.from_video(video).rate), hit.end_s)
            spec = _ClipSpec(
                video=video,
                start_s=0.0,
                end_s=end_s,
                name_hint=_basename(hit.path or video.path),
                metadata={"video_id": video.video_id, "path": video.path, "selects": []},
                marks=[],
            )
            specs[video.video_id] = spec
        spec.metadata["selects"].append(select.rank)
        labels = _label_text(hit.labels)
        metadata: dict[str, Any] = {"rank": select.rank, **_select_metadata(select)}
        if with_json:
            metadata["hit"] = _jsonable(hit.to_json())
        spec.marks.append(
            _Mark(
                start_s=hit.start_s,
                end_s=hit.end_s,
                name=_one_line(f"#{select.rank} {hit.score:.2f}" + (f" {labels}" if labels else "")),
                colour=MODE_COLOURS.get(hit.mode, OTHER_COLOUR),
                comment=_box_comment(hit.box, hit.track_id, hit.score, hit.mode)
                + f" keyframe {hit.keyframe_tc or f'{hit.keyframe_s:.3f}s'}",
                metadata=metadata,
            )
        )
    for spec in specs.values():
        spec.marks.sort(key=lambda m: m.start_s)  # a clip's markers in source time (EDL LOC lines too)
    return list(specs.values())


def _check_times(rank: int, hit: Hit) -> None:
    for name in ("start_s", "end_s", "keyframe_s", "score"):
        if not math.isfinite(getattr(hit, name)):
            raise ExportError(f"hit #{rank} ({hit.path}) has a non-finite {name}")
    if hit.start_s < 0 or hit.end_s < 0:
        raise ExportError(f"hit #{rank} ({hit.path}) has a negative time: {hit.start_s}..{hit.end_s}")


def _track_mark(video: VideoRef, row: TrackRow) -> _Mark:
    labels = _label_text(row.labels)
    return _Mark(
        start_s=row.start_s,
        end_s=row.end_s,
        name=_one_line(f"track {row.track_id}" + (f" {labels}" if labels else "")),
        colour=TRACK_COLOUR,
        comment=_box_comment(row.box, row.track_id, row.score, "track") + f" keyframe_s {row.keyframe_s:.3f}",
        metadata={"track": _jsonable(row.__dict__), "video_id": video.video_id},
    )


def _label_text(labels: Sequence[Sequence[Any]], top: int = 3) -> str:
    return ", ".join(str(item[0]) for item in labels[:top] if item)


def _box_comment(box: Sequence[float], track_id: int | None, score: float, mode: str) -> str:
    coords = ",".join(f"{v:.0f}" for v in box) if box else "none"
    return f"box {coords} track {track_id if track_id is not None else '-'} score {score:.4f} mode {mode}"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _jsonable(data: Any) -> Any:
    """Plain JSON types only (numpy scalars from the search become floats): OTIO metadata needs them."""

    def default(obj: Any) -> Any:
        item = getattr(obj, "item", None)
        if callable(item):
            return item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(data, default=default))


# ---------------------------------------------------------------- layout


def _build(specs: Sequence[_ClipSpec], title: str, options: TimelineOptions) -> otio.schema.Timeline:
    title = _one_line(title) or DEFAULT_TITLE
    timeline = otio.schema.Timeline(name=title)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    layouts = [_layout(spec.video, options) for spec in specs]
    seq_rate, seq_drop = _sequence_rate(layouts, options)
    timeline.metadata[NAMESPACE] = {
        "rate": rate_text(seq_rate),
        "drop_frame": seq_drop,
        "clips": len(specs),
    }
    timeline.metadata["fcp_xml"] = {"timecode": {"displayformat": "DF" if seq_drop else "NDF"}}
    record = Fraction(0)  # record position in edit frames (only meaningful with one edit rate)
    if options.record_start:
        gap_frames = _tc_frames(options.record_start, seq_rate, seq_drop)
        track.append(otio.schema.Gap(duration=_rt(Fraction(gap_frames), seq_rate, seq_drop, options)))
        record = Fraction(gap_frames)
    elif options.global_start:
        start = _tc_frames(options.global_start, seq_rate, seq_drop)
        timeline.global_start_time = _rt(Fraction(start), seq_rate, seq_drop, options)
    reels = _reel_names(specs) if options.reels else {}
    for spec, layout in zip(specs, layouts, strict=True):
        clip, duration = _clip(spec, layout, options, record, reels)
        track.append(clip)
        record += duration
    if not specs and options.pad_empty:
        track.append(otio.schema.Gap(duration=_rt(Fraction(0), seq_rate, seq_drop, options)))
    return timeline


def _layout(video: VideoRef, options: TimelineOptions) -> _Layout:
    clock = SourceClock.from_video(video)
    media_rate = pick_rate(clock.rate, options.media_rates) if options.media_rates else clock.rate
    if options.edit_rate is not None:
        edit_rate = options.edit_rate
        drop = bool(options.drop_frame) and edit_rate in DROP_FRAME_RATES
    else:
        edit_rate = media_rate
        drop = clock.drop_frame and edit_rate in DROP_FRAME_RATES
    return _Layout(clock=clock, media_rate=media_rate, edit_rate=edit_rate, drop_frame=drop)


def _sequence_rate(layouts: Sequence[_Layout], options: TimelineOptions) -> tuple[Fraction, bool]:
    if options.project_rate is not None and options.edit_rate is None:
        return options.project_rate, bool(options.project_drop) and options.project_rate in DROP_FRAME_RATES
    if options.edit_rate is not None:
        return options.edit_rate, bool(options.drop_frame) and options.edit_rate in DROP_FRAME_RATES
    if not layouts:
        return EMPTY_RATE, False
    counts = Counter((lay.edit_rate, lay.drop_frame) for lay in layouts)
    best = max(counts.values())
    return next(
        (lay.edit_rate, lay.drop_frame) for lay in layouts if counts[(lay.edit_rate, lay.drop_frame)] == best
    )


def _tc_frames(text: str, rate: Fraction, drop: bool) -> int:
    """Frames of a timecode such as "01:00:00:00" at the timeline's rate (as a seconds count when
    the rate has no SMPTE timecode, e.g. 12.5)."""
    label = text[:8] + (";" if drop else ":") + text[9:]
    if rate in TIMECODE_RATES:
        return parse_timecode(label, rate)
    hh, mm, ss, ff = (int(part) for part in re.split("[:;]", label))
    return round_half_up((hh * 3600 + mm * 60 + ss) * rate) + ff


def _rt(value: Fraction, rate: Fraction, drop: bool, options: TimelineOptions) -> opentime.RationalTime:
    """A RationalTime as the target adapter reads it.

    Exact by default. ``ndf_label_rate``: NDF timecode at 29.97/59.94 is frame counts labelled at
    30/60, and the CMX adapter labels every time at the rate it is given, so those frames are
    stored at 30/60.
    """
    if options.ndf_label_rate and not drop and rate in {24 * NTSC, 30 * NTSC, 48 * NTSC, 60 * NTSC}:
        return opentime.RationalTime(float(value), float(round(rate)))
    return opentime.RationalTime(float(value), float(rate))


def _fcpx_duration(value: Fraction, rate: Fraction) -> opentime.RationalTime:
    """A clip duration the FCPXML adapter finds a frame duration for.

    The adapter looks the format up by ``clip.duration().rate`` and knows NTSC rates only as the
    literals 23.98 / 29.97 / 59.94, so the duration is stored at that literal with its value
    scaled to keep the seconds exact (the adapter writes seconds as a reduced fraction).
    """
    literal = _FCPX_LITERALS[rate]
    return opentime.RationalTime(float(value / rate) * literal, literal)


def _clip(
    spec: _ClipSpec,
    layout: _Layout,
    options: TimelineOptions,
    record: Fraction,
    reels: dict[str, str],
) -> tuple[otio.schema.Clip, Fraction]:
    clock, rate = layout.clock, layout.clock.rate
    first, count, _ = snap_span(spec.start_s, spec.end_s, spec.start_s, rate)
    conform = layout.edit_rate != rate

    def at(frames: Fraction | int, target: Fraction, *, snap: bool) -> Fraction:
        """Media frame index -> frames at ``target`` on the source's timecode axis.

        When conforming to another rate, frames snap on the timecode axis (an EDL's source
        timecode is whole frames) or from the media's first frame (FCP7 counts in points so).
        """
        origin = clock.start_seconds * target
        offset = Fraction(frames) / rate * target
        if not snap:
            return origin + offset
        if options.conform_origin == "media":
            return origin + round_half_up(offset)
        return Fraction(round_half_up(origin + offset))

    edit_rate, media_rate = layout.edit_rate, layout.media_rate
    start = at(first, edit_rate, snap=conform)
    duration = max(Fraction(1), at(first + count, edit_rate, snap=conform) - start)
    drop = layout.drop_frame

    def rt(value: Fraction, at_rate: Fraction) -> opentime.RationalTime:
        return _rt(value, at_rate, drop, options)

    media_start = at(0, media_rate, snap=media_rate != rate)
    media_frames = max(
        Fraction(math.ceil(Fraction(spec.video.duration_s) * media_rate - Fraction(1, 1000))),
        at(first + count, media_rate, snap=False) - media_start,
    )
    path = spec.video.path or ""
    reference = otio.schema.ExternalReference(
        target_url=_url(path, options.url_style),
        available_range=opentime.TimeRange(
            rt(media_start, media_rate), rt(Fraction(math.ceil(media_frames)), media_rate)
        ),
    )
    reference.name = _safe(_basename(path), options)
    reference.metadata["fcp_xml"] = {
        "timecode": {"displayformat": "DF" if clock.drop_frame and media_rate in DROP_FRAME_RATES else "NDF"}
    }
    if options.fcpx_rate_literals and edit_rate in _FCPX_LITERALS:
        # int(value) of a one-frame duration at the literal is 0, which the adapter writes as "0s"
        duration = max(duration, Fraction(2))
        clip_duration = _fcpx_duration(duration, edit_rate)
    else:
        clip_duration = rt(duration, edit_rate)
    clip = otio.schema.Clip(
        name=_safe(spec.name_hint, options),
        media_reference=reference,
        source_range=opentime.TimeRange(rt(start, edit_rate), clip_duration),
    )
    clip.metadata[NAMESPACE] = {
        **spec.metadata,
        "frame_rate": rate_text(rate),
        "start_timecode": spec.video.start_timecode,
        "drop_frame": clock.drop_frame,
        "source_in": clock.label(Fraction(first) / rate),
        "source_out": clock.label(Fraction(first + count) / rate),
    }
    if path in reels:
        clip.metadata["cmx_3600"] = {"reel": reels[path]}
    media_offset = media_start / media_rate * edit_rate  # the media's first frame, in edit frames
    for mark in spec.marks:
        kf = min(max(frame_at(mark.start_s, rate), first), first + count - 1)
        m_start = at(kf, edit_rate, snap=conform)
        if mark.end_s is None:
            m_duration = Fraction(1)
        else:
            m_end = min(max(frame_at(mark.end_s, rate), kf + 1), first + count)
            m_duration = max(Fraction(1), at(m_end, edit_rate, snap=conform) - m_start)
        if options.marker_space == "media":
            m_start -= media_offset
        elif options.marker_space == "record":
            m_start = record + (m_start - start)
        marker = otio.schema.Marker(
            name=mark.name,
            marked_range=opentime.TimeRange(rt(m_start, edit_rate), rt(m_duration, edit_rate)),
            color=mark.colour,
            comment=mark.comment,
        )
        marker.metadata[NAMESPACE] = {**mark.metadata, "timecode": clock.label(Fraction(kf) / rate)}
        marker.metadata["fcp_xml"] = {"comment": mark.comment}
        clip.markers.append(marker)
    return clip, duration


# ---------------------------------------------------------------- names and URLs


_WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")  # C:\ or C:/ or a UNC share


def _basename(path: str) -> str:
    if _WINDOWS_PATH.match(path):
        return PureWindowsPath(path).name
    return os.path.basename(path)


def _safe(name: str, options: TimelineOptions) -> str:
    name = _one_line(name)
    return name.replace("'", "\u2019") if options.safe_names else name


def _url(path: str, style: str) -> str:
    """The media's address as the format expects it: a file:// URL (percent-encoded) or the plain path."""
    if style == "path":
        return path
    if _WINDOWS_PATH.match(path):
        uri = PureWindowsPath(path).as_uri()
    else:
        uri = Path(os.path.abspath(path)).as_uri()
    if style == "localhost" and uri.startswith("file:///"):
        return "file://localhost" + uri[len("file://") :]
    return uri


def _reel_names(specs: Sequence[_ClipSpec], length: int = 8) -> dict[str, str]:
    """CMX3600 reel names: the file name reduced to [A-Za-z0-9_], at most 8 characters, unique per file.

    The adapter's own reduction keeps spaces, which splits an event line into too many fields.
    """
    reels: dict[str, str] = {}
    used: set[str] = set()
    for spec in specs:
        path = spec.video.path or ""
        if path in reels:
            continue
        stem = os.path.splitext(_basename(path))[0]
        base = re.sub(r"[^A-Za-z0-9_]", "", stem)[:length] or f"V{spec.video.video_id}"[:length]
        reel, n = base, 1
        while reel in used:
            n += 1
            suffix = str(n)
            reel = base[: length - len(suffix)] + suffix
        used.add(reel)
        reels[path] = reel
    return reels
