"""Probe a video file: container, codec, display size, rational frame rate, time base, start
timecode, variable frame rate — without decoding more than the first frame.

Every container FFmpeg reads works (MP4, MOV, MKV, WebM, AVI, MXF, MPEG-TS, animated GIF...).
Bad input raises the named errors of :mod:`video_inst.errors` with the file in the message.

Example::

    >>> info = probe("clip.mov")
    >>> info.frame_rate, info.start_timecode, info.rotation
    (Fraction(30000, 1001), '01:00:00;00', 90)
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import av.error

from video_inst.errors import CorruptVideoError
from video_inst.media.avio import frame_pts, open_container, pick_video_stream
from video_inst.media.types import VideoInfo

# Packets demuxed (not decoded) to measure the frame rate and decide VFR: a few seconds.
SAMPLE_PACKETS = 120
# Packets fed to the decoder while waiting for the first frame before calling the file broken.
FIRST_FRAME_PACKETS = 64
# Share of frame intervals allowed off the typical one (beyond time-base rounding) for CFR:
# a dropped or doubled frame now and then does not make a stream variable.
VFR_IRREGULAR_SHARE = 0.02

_TIMECODE_RE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;.,]\d{2,3}$")
# Nominal rates an encoder means when its timestamps say 29.97... or 23.976...
_STANDARD_RATES = [
    Fraction(24000, 1001),
    Fraction(30000, 1001),
    Fraction(48000, 1001),
    Fraction(60000, 1001),
    Fraction(120000, 1001),
]


def probe(path: str | Path) -> VideoInfo:
    """Read what the rest of the pipeline needs to know about a video, or raise a named error."""
    p = Path(path)
    container = open_container(p)
    try:
        stream = pick_video_stream(container, p)
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        sample, first = _sample(container, stream, p)

        rotation = _rotation(first, stream.metadata)
        width = stream.codec_context.width or first.width
        height = stream.codec_context.height or first.height
        if rotation in (90, 270):
            width, height = height, width

        variable = is_variable_rate(sample)
        rate = _frame_rate(stream, sample, time_base, variable)

        first_pts = frame_pts(first)
        if first_pts is None:
            first_pts = stream.start_time if stream.start_time is not None else 0

        frame_count = stream.frames or _tagged_frame_count(stream.metadata)
        return VideoInfo(
            path=p,
            container=container.format.name,
            codec=stream.codec_context.name,
            width=int(width),
            height=int(height),
            rotation=rotation,
            frame_rate=rate,
            time_base=time_base,
            start_pts=int(first_pts),
            duration_s=_duration_s(container, stream, time_base, frame_count, rate),
            frame_count=int(frame_count) if frame_count else None,
            start_timecode=find_start_timecode(container),
            variable_frame_rate=variable,
            has_audio=any(s.type == "audio" for s in container.streams),
        )
    finally:
        container.close()


def _sample(container, stream, path: Path) -> tuple[list[int], av.VideoFrame]:
    """Demux the first packets (their PTS measure the rate) and decode the first frame."""
    pts: list[int] = []
    first: av.VideoFrame | None = None
    fed = 0
    whole_stream = True
    try:
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                pts.append(int(packet.pts))
            if first is None and fed < FIRST_FRAME_PACKETS:
                fed += 1
                try:
                    frames = stream.decode(packet)
                except av.error.FFmpegError:
                    frames = []  # a damaged leading packet; a later one may decode
                if frames:
                    first = frames[0]
            if len(pts) >= SAMPLE_PACKETS and (first is not None or fed >= FIRST_FRAME_PACKETS):
                whole_stream = False
                break
        if first is None:
            frames = stream.decode(None)
            first = frames[0] if frames else None
    except av.error.FFmpegError as exc:
        if first is None:
            raise CorruptVideoError(f"{path}: the video stream cannot be read ({exc})") from exc
    if first is None:
        raise CorruptVideoError(f"{path}: no video frame could be decoded")
    return (sorted(pts) if whole_stream else complete_prefix(pts)), first


def complete_prefix(decode_order_pts: list[int], reorder_depth: int = 16) -> list[int]:
    """Sorted PTS of a partial sample, cut where B-frame reordering may still leave holes.

    Packets come in decode order, so the last few can run ahead of frames not demuxed yet;
    a hole there would skew both the measured rate and the VFR decision.
    """
    tail_min = min(decode_order_pts[-reorder_depth:])
    return sorted(p for p in decode_order_pts if p <= tail_min)


def is_variable_rate(sorted_pts: list[int]) -> bool:
    """True when frame intervals differ by more than time-base rounding (one tick) often enough.

    Decided on a bounded sample of packet timestamps, so a long file costs no more than a short one.
    """
    deltas = [b - a for a, b in zip(sorted_pts, sorted_pts[1:]) if b > a]
    if len(deltas) < 2:
        return False
    typical = sorted(deltas)[len(deltas) // 2]
    tolerance = max(1, typical // 200)
    irregular = sum(1 for d in deltas if abs(d - typical) > tolerance)
    return irregular > VFR_IRREGULAR_SHARE * len(deltas)


def _measured_rate(sorted_pts: list[int], time_base: Fraction) -> Fraction | None:
    distinct = sorted(set(sorted_pts))
    if len(distinct) < 2:
        return None
    span = (distinct[-1] - distinct[0]) * time_base
    return Fraction(len(distinct) - 1) / span if span > 0 else None


def _frame_rate(stream, sample: list[int], time_base: Fraction, variable: bool) -> Fraction:
    """The nominal rate: the container's own figure when the timestamps agree with it.

    FFmpeg's average_rate can be skewed by a short last frame (54000/1801 for a 29.97 clip)
    and base_rate can be a time-base artefact on VFR files, so each is checked against the
    rate measured on the sampled timestamps and the first one within 0.5 % wins.
    """
    measured = _measured_rate(sample, time_base)
    candidates = [Fraction(r) for r in (stream.guessed_rate, stream.base_rate, stream.average_rate) if r]
    if measured is None:
        return candidates[0] if candidates else Fraction(25)
    if variable:
        avg = Fraction(stream.average_rate) if stream.average_rate else None
        if avg and abs(avg - measured) <= measured * Fraction(5, 100):
            return avg
        return measured.limit_denominator(1001)
    for rate in candidates + _STANDARD_RATES:
        if abs(rate - measured) <= measured * Fraction(5, 1000):
            return rate
    integral = Fraction(round(measured))
    if integral and abs(integral - measured) <= measured * Fraction(5, 1000):
        return integral
    return measured.limit_denominator(1001)


def _rotation(first: av.VideoFrame, metadata: dict[str, str]) -> int:
    """Clockwise degrees for display: the display matrix on decoded frames, else a `rotate` tag."""
    ccw = first.rotation or 0
    if ccw:
        return int(round(-ccw / 90.0)) * 90 % 360
    tag = _get_ci(metadata, "rotate")
    if tag:
        try:
            return int(round(float(tag) / 90.0)) * 90 % 360
        except ValueError:
            return 0
    return 0


def _duration_s(container, stream, time_base: Fraction, frame_count, rate: Fraction) -> float:
    if stream.duration:
        return float(stream.duration * time_base)
    if container.duration:
        return container.duration / av.time_base
    if frame_count and rate:
        return float(frame_count / rate)
    return 0.0


def _get_ci(metadata: dict[str, str], key: str) -> str | None:
    """Tag lookup ignoring case and language suffixes (Matroska writes TIMECODE, NUMBER_OF_FRAMES-eng)."""
    key = key.lower()
    for k, v in metadata.items():
        base = k.lower().split("-")[0]
        if base == key and v:
            return v.strip()
    return None


def _tagged_frame_count(metadata: dict[str, str]) -> int | None:
    value = _get_ci(metadata, "number_of_frames")
    return int(value) if value and value.isdigit() else None


def find_start_timecode(container) -> str | None:
    """Source start timecode: video stream tag, container tag, then a tmcd/data stream tag."""
    streams = list(container.streams)
    ordered = [s for s in streams if s.type == "video"]
    sources = [s.metadata for s in ordered] + [container.metadata]
    sources += [s.metadata for s in streams if s.type != "video"]
    for metadata in sources:
        value = _get_ci(metadata, "timecode")
        if value and _TIMECODE_RE.match(value):
            return value
    return None
