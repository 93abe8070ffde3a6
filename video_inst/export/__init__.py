"""Search hits as files an editor drops on a timeline: OTIO, CMX3600 EDL, FCPXML, FCP7 XML, CSV.

One front door per kind of export; ``FORMATS`` maps each format name to (media type, extension)
for the API and CLI. Timeline formats are built once as an OpenTimelineIO timeline
(``timeline.build_timeline``) and written by OTIO's adapter plugins; CSV by the csv module.
Limits of each format: docs/EXPORT.md.

Example::

    data = export_hits(hits, "edl", title="red car")
    Path("red_car." + FORMATS["edl"][1]).write_bytes(data)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from video_inst.export.csv_writer import write_selects_csv, write_tracks_csv
from video_inst.export.errors import ExportError
from video_inst.export.selects import Select, SelectOptions, choose, cut
from video_inst.export.timeline import (
    DEFAULT_TITLE,
    NAMESPACE,
    TimelineOptions,
    TrackRow,
    build_selects_timeline,
    build_timeline,
    build_tracks_timeline,
    hit_videos,
)
from video_inst.export.writers import TIMELINE_FORMATS, ProjectRate
from video_inst.hits import Hit, VideoRef

#: format name -> (media type, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    **{name: (fmt.media_type, fmt.extension) for name, fmt in TIMELINE_FORMATS.items()},
    "csv": ("text/csv; charset=utf-8", "csv"),
}

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportFile",
    "ProjectRate",
    "Select",
    "SelectOptions",
    "choose",
    "cut",
    "export_file",
    "TimelineOptions",
    "TrackRow",
    "build_timeline",
    "build_tracks_timeline",
    "export_hits",
    "export_tracks",
]


def _check_format(fmt: str) -> str:
    name = (fmt or "").strip().lower()
    if name not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid formats: {', '.join(sorted(FORMATS))}")
    return name


@dataclass(frozen=True)
class ExportFile:
    """An export's bytes and the rate the file declares (what ``X-Project-Rate`` answers).

    ``rate`` is "25", "30000/1001", ...: the sequence rate of a timeline format (EDL and FCP7
    events, the FCPXML sequence format, the OTIO timeline metadata); ``None`` for CSV, whose rows
    each carry their source's timecode rate.
    """

    data: bytes
    rate: str | None
    drop_frame: bool | None


def export_file(
    hits: Sequence[Hit],
    fmt: str,
    *,
    title: str = DEFAULT_TITLE,
    project_rate: str | ProjectRate | None = None,
    selects: SelectOptions | None = None,
) -> ExportFile:
    """The file of ``hits`` (in rank order) in format ``fmt`` (a key of ``FORMATS``).

    ``selects`` (``SelectOptions``: handles, whole shot or detected span, rank or time order,
    a sequence of subclips or markers on source clips) cuts each hit to the range every format
    writes (``selects.cut``); pick or reject hits before with ``choose``.

    ``project_rate`` ("25", "29.97 DF", "30000/1001"; the API and CLI pass
    ``Settings.project_rate`` when none is asked for; without one, the rate most hits share
    conformed to one the format can declare: 12.5 -> 25, 20 -> 60) is the rate EDL / FCP7 events and
    the FCPXML sequence are written at (docs/EXPORT.md). Raises ``ExportError`` for an unknown
    format, a project rate the format cannot declare, or a hit that lacks the facts the format needs.
    """
    name = _check_format(fmt)
    project = project_rate if not isinstance(project_rate, str) else ProjectRate.parse(project_rate)
    chosen = cut(hits, selects)
    if name == "csv":
        return ExportFile(write_selects_csv(chosen), None, None)
    spec = TIMELINE_FORMATS[name]
    options = spec.options(hit_videos([s.hit for s in chosen]), project)
    layout = selects.layout if selects is not None else "sequence"
    timeline = build_selects_timeline(chosen, title, layout=layout, options=options)
    meta = dict(timeline.metadata[NAMESPACE])
    data = spec.write(timeline, options).encode("utf-8")
    return ExportFile(data, str(meta["rate"]), bool(meta["drop_frame"]))


def export_hits(
    hits: Sequence[Hit],
    fmt: str,
    *,
    title: str = DEFAULT_TITLE,
    project_rate: str | ProjectRate | None = None,
    selects: SelectOptions | None = None,
) -> bytes:
    """The file contents of :func:`export_file`."""
    return export_file(hits, fmt, title=title, project_rate=project_rate, selects=selects).data


def export_tracks(
    video: VideoRef, tracks: Sequence[TrackRow], fmt: str, *, title: str = DEFAULT_TITLE
) -> bytes:
    """One video with a marker per track (marked range = the track's span) in format ``fmt``."""
    name = _check_format(fmt)
    if name == "csv":
        return write_tracks_csv(video, tracks)
    spec = TIMELINE_FORMATS[name]
    options = spec.options([video], None)
    timeline = build_tracks_timeline(video, tracks, title, options=options)
    return spec.write(timeline, options).encode("utf-8")
