"""The media layer: probe a file, plan its shots in one decode pass, decode keyframes, timecode.

Names are re-exported lazily, so importing ``video_inst.media.types`` (as the catalog and the
API do) does not load PyAV, OpenCV or PySceneDetect.

Example::

    from video_inst.media import ShotSettings, decode_keyframes, plan_shots, probe

    info = probe("reel.mp4")
    plan = plan_shots("reel.mp4", info, ShotSettings())
    for kf, rgb in decode_keyframes("reel.mp4", plan.keyframes, rotation=info.rotation):
        ...
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Keyframe": "types",
    "Shot": "types",
    "ShotPlan": "types",
    "VideoInfo": "types",
    "ShotSettings": "shots",
    "plan_shots": "shots",
    "probe": "probe",
    "decode_keyframes": "decode",
    "write_thumbnail": "decode",
    "content_hash": "hashing",
    "smpte_at": "timecode",
    "smpte_for": "timecode",
    "smpte_for_video": "timecode",
    "frames_at": "timecode",
    "frame_rate_str": "timecode",
    "parse_rate": "timecode",
}

__all__ = [
    "Keyframe",
    "Shot",
    "ShotPlan",
    "ShotSettings",
    "VideoInfo",
    "content_hash",
    "decode_keyframes",
    "frame_rate_str",
    "frames_at",
    "parse_rate",
    "plan_shots",
    "probe",
    "smpte_at",
    "smpte_for",
    "smpte_for_video",
    "write_thumbnail",
]

if TYPE_CHECKING:
    from video_inst.media.decode import decode_keyframes, write_thumbnail
    from video_inst.media.hashing import content_hash
    from video_inst.media.probe import probe
    from video_inst.media.shots import ShotSettings, plan_shots
    from video_inst.media.timecode import (
        frame_rate_str,
        frames_at,
        parse_rate,
        smpte_at,
        smpte_for,
        smpte_for_video,
    )
    from video_inst.media.types import Keyframe, Shot, ShotPlan, VideoInfo


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'video_inst.media' has no attribute {name!r}")
    value = getattr(import_module(f"video_inst.media.{module}"), name)
    globals()[name] = value
    return value
