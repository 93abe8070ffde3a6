"""Hits (or one video's tracks) as CSV: one row each, seconds and source timecode side by side.

The timecodes are the source timecode the API JSON, the page and the CLI show for the same
span (``media.timecode.span_timecodes``), with the rate they count at and the drop-frame flag,
so a row can be matched against an event. UTF-8, no byte-order mark, header row first.

Example::

    data = write_hits_csv(hits)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from video_inst.export.rates import SourceClock
from video_inst.export.selects import Select, cut
from video_inst.export.timeline import TrackRow
from video_inst.hits import Hit, VideoRef
from video_inst.media.timecode import video_span_timecodes

HIT_COLUMNS = (
    "rank",
    "video_id",
    "path",
    "shot_index",
    "start_s",
    "end_s",
    "start_tc",
    "end_tc",
    "keyframe_s",
    "keyframe_tc",
    "rate",
    "drop_frame",
    "x0",
    "y0",
    "x1",
    "y1",
    "score",
    "track_id",
    "labels",
    "handle_in",
    "handle_out",
)
TRACK_COLUMNS = (
    "track_id",
    "video_id",
    "path",
    "start_s",
    "end_s",
    "start_tc",
    "end_tc",
    "keyframe_s",
    "keyframe_tc",
    "rate",
    "drop_frame",
    "x0",
    "y0",
    "x1",
    "y1",
    "score",
    "labels",
)


def write_hits_csv(hits: Sequence[Hit]) -> bytes:
    """One row per hit in rank order (no handles)."""
    return write_selects_csv(cut(hits))


def write_selects_csv(selects: Sequence[Select]) -> bytes:
    """One row per select in the order given; ``rank`` is its place in the selection, start / end
    its range (with handles), ``handle_in`` / ``handle_out`` the handle frames applied.

    A hit without ``video`` facts still gets a row (seconds are enough for a spreadsheet); its
    timecode cells stay empty because its frame rate is unknown.
    """
    rows = []
    for select in selects:
        rank, hit = select.rank, select.hit
        tcs = _timecodes(hit.video, hit.start_s, hit.end_s, hit.keyframe_s)
        rows.append(
            {
                "rank": rank,
                "video_id": hit.video_id,
                "path": hit.path,
                "shot_index": hit.shot.index,
                "start_s": _num(hit.start_s),
                "end_s": _num(hit.end_s),
                **tcs,
                "keyframe_s": _num(hit.keyframe_s),
                **_box(hit.box),
                "score": _num(hit.score),
                "track_id": "" if hit.track_id is None else hit.track_id,
                "labels": _labels(hit.labels),
                "handle_in": select.handle_in,
                "handle_out": select.handle_out,
            }
        )
    return _write(HIT_COLUMNS, rows)


def write_tracks_csv(video: VideoRef, tracks: Sequence[TrackRow]) -> bytes:
    """One row per track of one video, in the order given."""
    rows = [
        {
            "track_id": row.track_id,
            "video_id": video.video_id,
            "path": video.path,
            "start_s": _num(row.start_s),
            "end_s": _num(row.end_s),
            **_timecodes(video, row.start_s, row.end_s, row.keyframe_s),
            "keyframe_s": _num(row.keyframe_s),
            **_box(row.box),
            "score": _num(row.score),
            "labels": _labels(row.labels),
        }
        for row in tracks
    ]
    return _write(TRACK_COLUMNS, rows)


def _timecodes(video: VideoRef | None, start_s: float, end_s: float, keyframe_s: float) -> dict[str, str]:
    """The span's source timecode, rate and drop-frame flag: ``media.timecode.video_span_timecodes``,
    the same cells the API JSON carries (``end_tc`` exclusive, like an EDL out point)."""
    if video is None:
        return {"start_tc": "", "end_tc": "", "keyframe_tc": "", "rate": "", "drop_frame": ""}
    SourceClock.from_video(video)  # a malformed start timecode is a named ExportError
    tcs = video_span_timecodes(video, start_s, end_s, keyframe_s)
    return {**tcs, "drop_frame": "1" if tcs["drop_frame"] else "0"}


def _box(box: Sequence[float]) -> dict[str, str]:
    values = list(box) + [None] * (4 - len(box))
    return {
        name: "" if v is None else _num(v)
        for name, v in zip(("x0", "y0", "x1", "y1"), values[:4], strict=True)
    }


def _labels(labels: Sequence[Sequence[Any]]) -> str:
    """ "dog:0.8300;cat:0.1000": label and probability pairs in one cell."""
    parts = []
    for item in labels:
        if not item:
            continue
        name = str(item[0])
        parts.append(f"{name}:{float(item[1]):.4f}" if len(item) > 1 else name)
    return ";".join(parts)


def _num(value: float) -> str:
    return f"{float(value):.6f}".rstrip("0").rstrip(".") if value == value else "nan"


def _write(columns: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
