"""The answer of every search: plain data shared by the CLI, the API and the exporters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ShotRef:
    index: int
    start_s: float
    end_s: float
    start_tc: str
    end_tc: str


@dataclass(frozen=True)
class VideoRef:
    """What an exporter needs to write timecode for a video's media."""

    video_id: int
    path: str
    frame_rate_num: int
    frame_rate_den: int
    start_timecode: str | None  # source start timecode, "HH:MM:SS:FF" or with ';' when drop-frame
    duration_s: float
    width: int
    height: int
    frame_count: int | None = None  # frames decoded at ingest (the media's last frame + 1); None: unknown


@dataclass
class Hit:
    """One matching shot: the span of the matching track inside it and a box at ``keyframe_s``."""

    video_id: int
    path: str
    shot: ShotRef
    start_s: float
    end_s: float
    keyframe_s: float
    box: list[float]  # x0, y0, x1, y1 in source pixels at keyframe_s
    score: float
    track_id: int | None
    mode: str = "image"  # image|text|image+text|labels|track
    labels: list[list[Any]] = field(default_factory=list)  # [[label, prob], ...]
    keyframe_id: int | None = None
    video: VideoRef | None = None
    weak: bool = False  # scored under the mode's measured threshold (search.weak_threshold)
    # The span's source timecode (media.timecode.span_timecodes): the same labels in every output.
    start_tc: str = ""
    end_tc: str = ""  # exclusive, like an EDL out point
    keyframe_tc: str = ""
    rate: str = ""  # the rate the timecode counts at: "25", "30000/1001" (12.5 fps sources: "25")
    drop_frame: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("video", None)
        return data
