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

from video_inst.export.csv_writer import write_hits_csv, write_tracks_csv
from video_inst.export.errors import ExportError
from video_inst.export.timeline import (
    DEFAULT_TITLE,
    TimelineOptions,
    TrackRow,
    build_timeline,
    build_tracks_timeline,
    hit_videos,
)
from video_inst.export.writers import TIMELINE_FORMATS
from video_inst.hits import Hit, VideoRef

#: format name -> (media type, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    **{name: (fmt.media_type, fmt.extension) for name, fmt in TIMELINE_FORMATS.items()},
    "csv": ("text/csv; charset=utf-8", "csv"),
}

__all__ = [
    "FORMATS",
    "ExportError",
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


def export_hits(hits: Sequence[Hit], fmt: str, *, title: str = DEFAULT_TITLE) -> bytes:
    """The file contents of ``hits`` (in rank order) in format ``fmt`` (a key of ``FORMATS``).

    Raises ``ExportError`` for an unknown format or a hit that lacks the facts the format needs.
    """
    name = _check_format(fmt)
    if name == "csv":
        return write_hits_csv(hits)
    spec = TIMELINE_FORMATS[name]
    options = spec.options(hit_videos(hits))
    timeline = build_timeline(hits, title, options=options)
    return spec.write(timeline, options).encode("utf-8")


def export_tracks(
    video: VideoRef, tracks: Sequence[TrackRow], fmt: str, *, title: str = DEFAULT_TITLE
) -> bytes:
    """One video with a marker per track (marked range = the track's span) in format ``fmt``."""
    name = _check_format(fmt)
    if name == "csv":
        return write_tracks_csv(video, tracks)
    spec = TIMELINE_FORMATS[name]
    options = spec.options([video])
    timeline = build_tracks_timeline(video, tracks, title, options=options)
    return spec.write(timeline, options).encode("utf-8")
