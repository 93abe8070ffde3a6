"""Plain data passed between the media steps (probe -> shot plan -> keyframe decode).

Times are kept as PTS in the stream's time base; seconds are derived from them and
never from counting frames (variable frame rate exists). Frame indices are the
ordinal of a frame in presentation order, counted from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path


@dataclass(frozen=True)
class VideoInfo:
    """What probing a file tells: enough to plan shots and to write timecode later."""

    path: Path
    container: str  # FFmpeg format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # video codec name, e.g. "h264"
    width: int  # display width, rotation applied
    height: int  # display height, rotation applied
    rotation: int  # degrees clockwise the frames must be turned for display (0, 90, 180, 270)
    frame_rate: Fraction  # nominal rate (average where the stream has no fixed rate)
    time_base: Fraction
    start_pts: int  # PTS of the first frame (stream start time)
    duration_s: float
    frame_count: int | None  # from the container when it says; None when unknown
    start_timecode: str | None  # "HH:MM:SS:FF" / "HH:MM:SS;FF" from stream or container tags
    variable_frame_rate: bool
    has_audio: bool = False


@dataclass(frozen=True)
class Shot:
    """One shot: [start, end) in PTS and seconds, [start_frame, end_frame] inclusive."""

    index: int
    start_pts: int
    end_pts: int  # PTS of the next shot's first frame, or the end of the video
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int  # inclusive


@dataclass(frozen=True)
class Keyframe:
    """A frame sampled for analysis; pts/time_s are exactly those PyAV reports for it."""

    shot_index: int
    pts: int
    time_s: float
    frame: int  # frame index in presentation order


@dataclass
class ShotPlan:
    """The result of one pass over a video: shots that tile it, keyframes inside each shot."""

    shots: list[Shot]
    keyframes: list[Keyframe]
    frame_count: int  # frames actually decoded
    end_pts: int  # PTS just past the last decoded frame
    truncated: bool = False  # decoding stopped early on an error; what decoded is kept
    warnings: list[str] = field(default_factory=list)
