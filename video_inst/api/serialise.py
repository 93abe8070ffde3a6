"""Catalog rows and hits → the JSON the API answers (shapes documented in ``schemas``).

URLs are made relative to the app's mount point (``root_path``), so the same JSON works
behind a reverse proxy and for the page.

Example::

    body = search_json(result, root="")   # {"hits": [...], "mode": .., "notes": [..], "videos": {..}}
"""

from __future__ import annotations

from typing import Any

from video_inst.catalog.models import Keyframe, Shot, Track, TrackBox, Video
from video_inst.catalog.rows import video_ref as video_ref  # re-exported: the API's serialisers in one place
from video_inst.catalog.rows import video_row
from video_inst.hits import Hit, VideoRef


def thumbnail_url(root: str, video_id: int, keyframe_id: int | None) -> str | None:
    return f"{root}/thumbnails/{video_id}/{keyframe_id}.jpg" if keyframe_id is not None else None


def media_url(root: str, video_id: int) -> str:
    return f"{root}/videos/{video_id}/media"


def hit_json(hit: Hit, root: str) -> dict[str, Any]:
    data = hit.to_json()
    data["thumbnail_url"] = thumbnail_url(root, hit.video_id, hit.keyframe_id)
    return data


def hit_video_json(ref: VideoRef, root: str) -> dict[str, Any]:
    return {
        "video_id": ref.video_id,
        "path": ref.path,
        "duration_s": ref.duration_s,
        "width": ref.width,
        "height": ref.height,
        "frame_rate": f"{ref.frame_rate_num}/{ref.frame_rate_den}",
        "start_timecode": ref.start_timecode,
        "media_url": media_url(root, ref.video_id),
    }


def search_json(result: Any, root: str) -> dict[str, Any]:
    """A ``SearchResult`` as the ``POST /search`` answer."""
    videos: dict[str, Any] = {}
    for hit in result.hits:
        if hit.video is not None and str(hit.video_id) not in videos:
            videos[str(hit.video_id)] = hit_video_json(hit.video, root)
    return {
        "hits": [hit_json(h, root) for h in result.hits],
        "mode": result.mode,
        "notes": list(result.notes),
        "spaces": dict(getattr(result, "spaces", {})),
        "videos": videos,
        "weak_below": getattr(result, "weak_below", None),
        "weak_rule": rule.to_json() if (rule := getattr(result, "weak_rule", None)) else None,
    }


def video_json(video: Video, root: str, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The CLI's video row (``catalog.rows.video_row``) plus the media URL and, on the detail, counts."""
    return {**video_row(video), "media_url": media_url(root, video.id), "counts": counts}


def shot_json(video: Video, shot: Shot, root: str) -> dict[str, Any]:
    from video_inst.media.timecode import smpte_for_video

    return {
        "index": shot.index,
        "start_s": shot.start_s,
        "end_s": shot.end_s,
        "start_frame": shot.start_frame,
        "end_frame": shot.end_frame,
        "start_tc": smpte_for_video(video, shot.start_s),
        "end_tc": smpte_for_video(video, shot.end_s),
        "keyframes": [keyframe_json(k, root) for k in shot.keyframes],
    }


def keyframe_json(keyframe: Keyframe, root: str) -> dict[str, Any]:
    return {
        "keyframe_id": keyframe.id,
        "time_s": keyframe.time_s,
        "frame": keyframe.frame,
        "thumbnail_url": thumbnail_url(root, keyframe.video_id, keyframe.id) if keyframe.thumbnail else None,
    }


def box_list(box: TrackBox) -> list[float]:
    return [round(box.x0, 2), round(box.y0, 2), round(box.x1, 2), round(box.y1, 2)]


def track_json(
    track: Track, shot_index: int, boxes: list[tuple[TrackBox, Keyframe]], root: str
) -> dict[str, Any]:
    return {
        "track_id": track.id,
        "video_id": track.video_id,
        "shot_index": shot_index,
        "is_frame": bool(track.is_frame),
        "start_s": track.start_s,
        "end_s": track.end_s,
        "score": float(track.score or 0.0),
        "labels": list(track.labels or []),
        "best_keyframe_id": track.best_keyframe_id,
        "boxes": [
            {
                "keyframe_id": kf.id,
                "time_s": kf.time_s,
                "box": box_list(box),
                "score": float(box.score or 0.0),
                "thumbnail_url": thumbnail_url(root, track.video_id, kf.id) if kf.thumbnail else None,
            }
            for box, kf in boxes
        ],
    }
