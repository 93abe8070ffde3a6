"""Decode the planned keyframes as full-size RGB arrays, and write small JPEG thumbnails.

Keyframes are visited in presentation order. For each one the decoder either keeps going
(the target is ahead and no keyframe of the stream lies in between, so seeking would not save
work) or seeks to the nearest preceding keyframe; then it decodes up to the exact PTS, letting the
decoder drop non-reference frames on the way (nothing shows or uses them). A yielded array is
always the frame with exactly the PTS asked for.

Example::

    for kf, rgb in decode_keyframes("reel.mp4", plan.keyframes, rotation=info.rotation):
        write_thumbnail(rgb, thumbs / f"{kf.pts}.jpg")
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from video_inst.errors import CorruptVideoError
from video_inst.media.avio import configure_decoder, frame_pts, open_container, pick_video_stream
from video_inst.media.types import Keyframe

# Without a keyframe index (MPEG-TS, GIF...), decode forward rather than seek up to this far.
MAX_FORWARD_S = 4.0
# How far before a target to seek again when a seek lands past it (doubles each retry).
BACKOFF_START_S = 1.0
BACKOFF_TRIES = 5


def decode_keyframes(
    path: str | Path,
    keyframes: Sequence[Keyframe],
    *,
    rotation: int = 0,
    threads: int = 0,
) -> Iterator[tuple[Keyframe, np.ndarray]]:
    """Yield ``(keyframe, rgb)`` in presentation order; ``rgb`` is HxWx3 uint8, turned for display.

    ``rotation`` is :attr:`VideoInfo.rotation` (clockwise degrees), so arrays match the
    probed width and height. Raises CorruptVideoError when a planned PTS cannot be found.
    """
    if not keyframes:
        return
    cursor = _Cursor(Path(path), threads)
    try:
        for kf in sorted(keyframes, key=lambda k: k.pts):
            frame = cursor.frame_at(kf.pts)
            yield kf, rotate(cursor.rgb(frame), rotation)
    finally:
        cursor.close()


def decode_keyframes_ahead(
    path: str | Path,
    keyframes: Sequence[Keyframe],
    *,
    rotation: int = 0,
    threads: int = 0,
    depth: int = 4,
) -> Iterator[tuple[Keyframe, np.ndarray]]:
    """``decode_keyframes`` in a background thread, up to ``depth`` pictures ahead of the caller.

    Why: FFmpeg decodes (outside the GIL) while the caller runs the models on the previous
    keyframes, instead of the two waiting for each other (docs/INGEST.md). Same items, same
    order, same errors (raised in the caller's thread); closing the iterator stops the thread.
    """
    if not keyframes:
        return
    items: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for pair in decode_keyframes(path, keyframes, rotation=rotation, threads=threads):
                if not put(("item", pair)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put(("error", exc))
            return
        put(("end", None))

    worker = threading.Thread(target=produce, name="video-inst-keyframe-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded picture clockwise by ``rotation`` degrees (0, 90, 180, 270) for display."""
    quarter = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=-quarter)) if quarter else rgb


def write_thumbnail(rgb: np.ndarray, dest: Path, max_side: int = 320, quality: int = 85) -> Path:
    """Small JPEG for result lists; written to a temporary file and renamed, so never half-written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    fd, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=".jpg", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="JPEG", quality=quality)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


class _Cursor:
    """A decoder position in one file: decode forward, or seek when that is cheaper."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path = path
        self.threads = threads
        self.scaler = VideoReformatter()
        self._open()

    def _open(self) -> None:
        self.container = open_container(self.path)
        self.stream = pick_video_stream(self.container, self.path)
        configure_decoder(self.stream, self.threads)
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else Fraction(1, 90000)
        self.keyframe_ts = sorted(e.timestamp for e in self.stream.index_entries if e.is_keyframe)
        self.frames: Iterator[av.VideoFrame] | None = None
        self.target = 0
        self.last: av.VideoFrame | None = None
        self.last_pts: int | None = None

    def close(self) -> None:
        self.container.close()

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return self.scaler.reformat(frame, format="rgb24").to_ndarray()

    def frame_at(self, target: int) -> av.VideoFrame:
        """The decoded frame whose PTS is exactly ``target``."""
        if self.last_pts == target and self.last is not None:
            return self.last
        if self._should_seek(target):
            self._seek(target)
        frame = self._decode_to(target)
        backoff = max(1, round(BACKOFF_START_S / self.time_base))
        for attempt in range(BACKOFF_TRIES + 1):
            if frame is not None and frame_pts(frame) == target:
                return frame
            # The seek landed past the target (B-frames before a keyframe, coarse index): go earlier.
            if attempt < BACKOFF_TRIES:
                self._seek(target - backoff)
                backoff *= 2
            else:
                self._restart()
            frame = self._decode_to(target)
        if frame is not None and frame_pts(frame) == target:
            return frame
        got = "the end of the stream" if frame is None else f"pts {frame_pts(frame)}"
        raise CorruptVideoError(
            f"{self.path}: frame at pts {target} ({float(target * self.time_base):.3f} s) "
            f"not found when decoding again (got {got})"
        )

    def _should_seek(self, target: int) -> bool:
        if self.last_pts is None or target <= self.last_pts:
            return True
        if self.keyframe_ts:
            i = bisect_right(self.keyframe_ts, target) - 1
            return i >= 0 and self.keyframe_ts[i] > self.last_pts
        return float((target - self.last_pts) * self.time_base) > MAX_FORWARD_S

    def _seek(self, offset: int) -> None:
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.error.FFmpegError:
            self._restart()  # demuxers without seeking (some GIF, raw streams): start over
            return
        self.frames = None
        self.last = None
        self.last_pts = None

    def _restart(self) -> None:
        self.container.close()
        self._open()

    def _iter_frames(self) -> Iterator[av.VideoFrame]:
        ctx = self.stream.codec_context
        skipping = False
        for packet in self.container.demux(self.stream):
            # A non-reference frame before the target is never shown nor used by another frame:
            # let the decoder drop it. The target itself (pts == target) is always decoded.
            skip = packet.pts is not None and packet.pts < self.target
            if skip != skipping:
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            try:
                frames = self.stream.decode(packet)
            except av.error.FFmpegError:
                continue  # a damaged packet: the plan never points at frames it could not decode
            yield from frames

    def _decode_to(self, target: int) -> av.VideoFrame | None:
        """Decode forward to the first frame at or after ``target`` (None at end of stream)."""
        self.target = target
        if self.frames is None:
            self.frames = self._iter_frames()
        for frame in self.frames:
            pts = frame_pts(frame)
            if pts is None:
                continue
            self.last, self.last_pts = frame, pts
            if pts >= target:
                return frame
        self.frames = iter(())
        return None
