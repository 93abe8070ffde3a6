"""Catalog rows → plain data, defined once for the CLI, the API, search hits and the exporters.

Why here: ``video-inst videos --json`` and ``GET /videos`` must show a video the same way,
and a search hit must describe its video's media exactly as an export of that video's
tracks does (``VideoRef``: frame rate, start timecode, size).

Example::

    row = video_row(video)   # {"video_id": 1, "path": ..., "frame_rate": "25/1", ...}
    ref = video_ref(video)   # VideoRef(video_id=1, frame_rate_num=25, frame_rate_den=1, ...)
"""

from __future__ import annotations

from typing import Any

from video_inst.hits import VideoRef


def frame_rate_text(num: int | None, den: int | None) -> str | None:
    """'num/den' as stored (exact), or None when the rate is unknown."""
    return f"{num}/{den}" if num and den else None


def video_row(video: Any) -> dict[str, Any]:
    """A ``videos`` row as JSON: what probing and ingest recorded about the file."""
    return {
        "video_id": video.id,
        "path": video.path,
        "status": video.status,
        "error": video.error,
        "content_hash": video.content_hash,
        "size_bytes": video.size_bytes,
        "container": video.container,
        "codec": video.codec,
        "width": video.width,
        "height": video.height,
        "frame_rate": frame_rate_text(video.fps_num, video.fps_den),
        "duration_s": video.duration_s,
        "frame_count": video.frame_count,
        "start_timecode": video.start_timecode,
        "variable_frame_rate": video.variable_frame_rate,
        "truncated": video.truncated,
        "warnings": list(video.warnings or []),
    }


def video_ref(video: Any) -> VideoRef:
    """What hits and exporters need of a video; an unknown rate writes timecode at 25 fps."""
    return VideoRef(
        video_id=video.id,
        path=video.path,
        frame_rate_num=video.fps_num or 25,
        frame_rate_den=video.fps_den or 1,
        start_timecode=video.start_timecode,
        duration_s=video.duration_s or 0.0,
        width=video.width or 0,
        height=video.height or 0,
        frame_count=video.frame_count or None,
    )
