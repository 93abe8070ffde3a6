"""The shot plan: one threaded decode pass that finds shot boundaries and picks keyframes.

Every frame is decoded (its PTS is recorded: shots and keyframes are expressed in real
timestamps, never in counted frames), scaled down by FFmpeg's scaler to a small BGR image
and fed straight to PySceneDetect detectors. Damage in the middle of a file does not lose
what decoded before it: the plan is marked ``truncated`` with a warning saying where.

Example::

    info = probe("reel.mp4")
    plan = plan_shots("reel.mp4", info, ShotSettings.from_settings(get_settings()))
    for shot in plan.shots:
        print(shot.index, shot.start_s, shot.end_s)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.video.reformatter import Interpolation, VideoReformatter
from scenedetect import FrameTimecode

from video_inst.errors import CorruptVideoError
from video_inst.media.avio import frame_pts, open_video
from video_inst.media.decode import rotate
from video_inst.media.detectors import DETECTORS, FADE_DETECTOR, make_detector
from video_inst.media.planning import StreamPlanner, build_plan, end_of_last_frame
from video_inst.media.types import Keyframe, Shot, ShotPlan, VideoInfo

# ``keyframe_sink`` of plan_shots: ("keyframe", Keyframe, rgb) and ("shot", Shot, None), in plan order.
KeyframeSink = Callable[[str, "Keyframe | Shot", "Any"], None]

# Packets in a row that fail to decode before the rest of the file is given up as unreadable.
MAX_CONSECUTIVE_ERRORS = 50
# A file whose frames end this much before the container's declared length was cut short.
TRUNCATION_SLACK_S = 2.0
TRUNCATION_SLACK_SHARE = 0.05
# In a constant-rate stream, a jump in PTS longer than max(this many frames, 1 s) means frames
# were lost: the demuxer skipped over damaged data.
GAP_FRAMES = 10
MAX_GAP_WARNINGS = 3
# Seconds of wall time between two progress reports.
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class ShotSettings:
    """Everything that changes a shot plan; ``from_settings`` reads the operator's settings."""

    detector: str = "adaptive"
    threshold: float | None = None  # None: the detector's own default (see detectors.DETECTORS)
    min_scene_len_s: float = 0.4
    downscale_width: int = 256
    keyframe_first_offset_s: float = 0.2
    keyframe_interval_s: float = 1.0
    # Also run the fade-to-black detector beside the main one. Off: on the evaluation set it
    # changed nothing the adaptive detector did not already find (docs/MEDIA.md).
    detect_fades: bool = False
    threads: int = 0  # decoder threads, 0 = FFmpeg's choice

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown shot detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if self.downscale_width < 16:
            raise ValueError(f"shot_downscale_width must be at least 16, got {self.downscale_width}")
        if self.keyframe_interval_s <= 0:
            raise ValueError(f"keyframe_interval_s must be positive, got {self.keyframe_interval_s}")
        if self.min_scene_len_s < 0 or self.keyframe_first_offset_s < 0:
            raise ValueError("shot_min_len_s and keyframe_first_offset_s must not be negative")

    @classmethod
    def from_settings(cls, settings: Any) -> ShotSettings:
        """Build from :class:`video_inst.config.Settings` (fields ``shot_*``, ``keyframe_*``)."""
        return cls(
            detector=settings.shot_detector,
            threshold=settings.shot_threshold,
            min_scene_len_s=settings.shot_min_len_s,
            downscale_width=settings.shot_downscale_width,
            keyframe_first_offset_s=settings.keyframe_first_offset_s,
            keyframe_interval_s=settings.keyframe_interval_s,
            detect_fades=getattr(settings, "shot_detect_fades", False),
            threads=getattr(settings, "decode_threads", 0),
        )


def detection_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Even-sized small frame with the source's aspect; never upscaled."""
    w = min(target_width, width)
    w -= w % 2
    h = max(2, round(height * w / width / 2) * 2)
    return max(2, w), h


def plan_shots(
    path: str | Path,
    info: VideoInfo,
    settings: ShotSettings,
    progress: Callable[[float], None] | None = None,
    *,
    keyframe_sink: KeyframeSink | None = None,
) -> ShotPlan:
    """Decode every frame once, detect cuts, and return shots that tile the video plus keyframes.

    With ``keyframe_sink``, each keyframe is handed over during the pass as soon as it is
    decided (:class:`StreamPlanner`), as the full-size RGB picture ``decode_keyframes``
    would return for it (turned by ``info.rotation``), and each shot once it is closed: one
    decode pass instead of two. Only a few decoded frames are held at a time. The sink's
    items are right only where they agree with the returned plan (the caller checks).
    """
    p = Path(path)
    fps = info.frame_rate if info.frame_rate > 0 else Fraction(25)
    min_frames = round(settings.min_scene_len_s * fps)
    detectors = [make_detector(settings.detector, settings.threshold, min_frames)]
    if settings.detect_fades and settings.detector != FADE_DETECTOR:
        detectors.append(make_detector(FADE_DETECTOR, None, min_frames))

    pts: list[int] = []
    cuts: list[int] = []
    warnings: list[str] = []
    truncated = False
    last_duration: int | None = None
    skipped_order = 0
    failed_packets = 0
    first_failure_s: float | None = None
    gaps: list[tuple[float, float]] = []
    report = _Progress(progress, info)
    stream_plan: StreamPlanner | None = None
    held: dict[int, av.VideoFrame] = {}  # decoded frames that may still become keyframes
    if keyframe_sink is not None:
        stream_plan = StreamPlanner(
            info.time_base,  # replaced by the stream's own time base below
            min_len_s=settings.min_scene_len_s,
            first_offset_s=settings.keyframe_first_offset_s,
            interval_s=settings.keyframe_interval_s,
            lag=max(int(getattr(d, "event_buffer_length", 0) or 0) for d in detectors),
        )

    with open_video(p, threads=settings.threads) as (container, stream):
        time_base = Fraction(stream.time_base) if stream.time_base else info.time_base
        scaler = VideoReformatter()  # one scaler for the whole pass: FFmpeg caches its context
        width, height = detection_size(
            stream.codec_context.width or info.width,
            stream.codec_context.height or info.height,
            settings.downscale_width,
        )

        if stream_plan is not None:
            stream_plan.time_base = time_base
            rgb_scaler = VideoReformatter()

            def hand_over(events: list[tuple[str, object]]) -> None:
                for kind, item in events:
                    if kind == "keyframe":
                        frame = held[item.frame]  # type: ignore[attr-defined]
                        rgb = rotate(rgb_scaler.reformat(frame, format="rgb24").to_ndarray(), info.rotation)
                        keyframe_sink("keyframe", item, rgb)  # type: ignore[misc,arg-type]
                    else:
                        keyframe_sink("shot", item, None)  # type: ignore[misc,arg-type]
                low = stream_plan.lowest_needed()
                for index in [i for i in held if i < low]:
                    del held[index]

        frame_ticks = 1 / (fps * time_base) if time_base else Fraction(1)
        gap_ticks = max(GAP_FRAMES * frame_ticks, 1 / time_base if time_base else 1)

        def take(frame: av.VideoFrame) -> None:
            nonlocal last_duration, skipped_order
            t = frame_pts(frame)
            if t is None or (pts and t <= pts[-1]):
                skipped_order += 1  # no timestamp, or not after the previous one: cannot be placed
                return
            if pts and not info.variable_frame_rate and t - pts[-1] > gap_ticks:  # lost frames
                gaps.append((float(pts[-1] * time_base), float(t * time_base)))
            index = len(pts)
            pts.append(t)
            last_duration = frame.duration
            small = scaler.reformat(
                frame, width=width, height=height, format="bgr24", interpolation=Interpolation.AREA
            )
            image = small.to_ndarray()
            code = FrameTimecode(index, fps=fps)
            found = [c.frame_num for det in detectors for c in det.process_frame(code, image)]
            cuts.extend(found)
            if stream_plan is not None:
                held[index] = frame
                stream_plan.add_frame(t)
                stream_plan.add_cuts(sorted(found))
                hand_over(stream_plan.advance())
            report.at(float(t * time_base))

        consecutive = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                truncated = True
                warnings.append(f"reading stopped at {_where(pts, time_base)}: {exc}")
                break
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError as exc:
                failed_packets += 1
                consecutive += 1
                if first_failure_s is None and packet.pts is not None:
                    first_failure_s = float(packet.pts * time_base)
                if consecutive >= MAX_CONSECUTIVE_ERRORS:
                    truncated = True
                    warnings.append(f"decoding stopped at {_where(pts, time_base)}: {exc}")
                    break
                continue
            consecutive = 0 if frames else consecutive
            for frame in frames:
                take(frame)
        if not truncated:
            try:
                for frame in stream.decode(None):
                    take(frame)
            except av.error.FFmpegError:
                pass  # nothing left to flush from a damaged tail

        if pts:
            for det in detectors:
                found = [c.frame_num for c in det.post_process(FrameTimecode(len(pts) - 1, fps=fps))]
                cuts.extend(found)
                if stream_plan is not None:
                    stream_plan.add_cuts(sorted(found))

        if not pts:
            raise CorruptVideoError(f"{p}: no video frame could be decoded")
        fallback = round(1 / (fps * time_base)) if fps * time_base else 1
        end_pts = end_of_last_frame(pts, last_duration, fallback)
        if stream_plan is not None:
            hand_over(stream_plan.finish(end_pts))
            held.clear()

    if failed_packets:
        where = f"{first_failure_s:.3f} s" if first_failure_s is not None else "an unknown time"
        warnings.append(f"{failed_packets} packet(s) could not be decoded, the first near {where}")
    for start, end in gaps[:MAX_GAP_WARNINGS]:
        warnings.append(f"no frames between {start:.3f} s and {end:.3f} s: data missing or damaged")
    if len(gaps) > MAX_GAP_WARNINGS:
        warnings.append(f"{len(gaps) - MAX_GAP_WARNINGS} more gaps in the frame timestamps")
    if skipped_order:
        warnings.append(f"{skipped_order} frame(s) without a timestamp after the previous one were skipped")
    if not truncated and _cut_short(info, pts, end_pts, time_base):
        truncated = True
        warnings.append(
            f"frames end at {float(end_pts * time_base):.3f} s but the file declares "
            f"{info.duration_s:.3f} s"
            + (f" / {info.frame_count} frames" if info.frame_count else "")
            + f" ({len(pts)} decoded): the file looks truncated"
        )

    plan = build_plan(
        pts,
        end_pts,
        time_base,
        cuts,
        min_len_s=settings.min_scene_len_s,
        first_offset_s=settings.keyframe_first_offset_s,
        interval_s=settings.keyframe_interval_s,
        truncated=truncated,
        warnings=warnings,
    )
    report.done()
    return plan


def _where(pts: list[int], time_base: Fraction) -> str:
    if not pts:
        return "the start"
    return f"{float(pts[-1] * time_base):.3f} s (after frame {len(pts) - 1})"


def _cut_short(info: VideoInfo, pts: list[int], end_pts: int, time_base: Fraction) -> bool:
    """Whether fewer frames decoded than the container promised (a file cut off mid-way)."""
    if info.frame_count and len(pts) < info.frame_count * (1 - TRUNCATION_SLACK_SHARE) - 1:
        return True
    decoded_s = float((end_pts - pts[0]) * time_base)
    slack = max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_SHARE * info.duration_s)
    return info.duration_s > 0 and decoded_s < info.duration_s - slack


class _Progress:
    """Throttled fractions of the video decoded so far, for the job table and progress bars."""

    def __init__(self, callback: Callable[[float], None] | None, info: VideoInfo) -> None:
        self.callback = callback
        self.start_s = float(info.start_pts * info.time_base)
        self.duration_s = info.duration_s
        self.last_wall = 0.0
        self.last_value = 0.0

    def at(self, time_s: float) -> None:
        if self.callback is None or self.duration_s <= 0:
            return
        now = time.monotonic()
        if now - self.last_wall < PROGRESS_EVERY_S:
            return
        value = min(0.999, max(self.last_value, (time_s - self.start_s) / self.duration_s))
        self.last_wall, self.last_value = now, value
        self.callback(value)

    def done(self) -> None:
        if self.callback is not None:
            self.callback(1.0)
