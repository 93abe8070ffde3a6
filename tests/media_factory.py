"""Render small synthetic test videos with PyAV: any container/codec, rate, start timecode,
rotation, variable frame rate, and hard cuts at known frames.

For tests across the project: a clip with known shots, timestamps and metadata costs a few
hundred milliseconds and never touches the licensed media.

Example::

    from media_factory import render_clip  # tests/ is on sys.path under pytest

    clip = render_clip(tmp_path / "a.mov", fps=Fraction(30000, 1001), scenes=[40, 30],
                       start_timecode="01:00:00;00")
    info = probe(clip)            # RenderedClip is os.PathLike
    assert clip.scene_starts == (0, 40)
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from video_inst.media.types import VideoInfo

# Codec and pixel format used when only the container is named.
DEFAULT_CODECS = {
    "mp4": ("libx264", "yuv420p"),
    "mov": ("libx264", "yuv420p"),
    "mkv": ("libx264", "yuv420p"),
    "webm": ("libvpx", "yuv420p"),
    "avi": ("mpeg4", "yuv420p"),
    "mxf": ("mpeg2video", "yuv420p"),
    "ts": ("mpeg2video", "yuv420p"),
    "gif": ("gif", "rgb8"),
    "nut": ("ffv1", "yuv420p"),
}
_PIX_FMT = {"gif": "rgb8", "mjpeg": "yuvj420p", "ffv1": "yuv420p"}
_MUXERS = {"mkv": "matroska", "ts": "mpegts"}
# Scene hues, neighbours far apart on the colour wheel. Pure red is avoided on purpose: OpenCV
# hue wraps at red (179 -> 0) and PySceneDetect's content score measures it linearly, so coding
# noise on a flat saturated red reads as a huge change (see docs/MEDIA.md, known weaknesses).
_HUES = [0.58, 0.12, 0.33, 0.80, 0.47, 0.20, 0.68, 0.40, 0.90, 0.26]


@dataclass(frozen=True)
class RenderedClip:
    """A rendered file and what was put into it; usable wherever a path is."""

    path: Path
    n_frames: int
    fps: Fraction
    scene_starts: tuple[int, ...]  # first frame of each scene (hard cuts at all but the first)
    pts: tuple[int, ...] | None  # the PTS written, when set explicitly (VFR clips)
    time_base: Fraction | None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def video_info(path: str | Path, duration_s: float = 2.0, fps: int = 25) -> VideoInfo:
    """A probed-looking 640x360 H.264 VideoInfo for catalog tests that never decode the file."""
    return VideoInfo(
        path=Path(path),
        container="mp4",
        codec="h264",
        width=640,
        height=360,
        rotation=0,
        frame_rate=Fraction(fps),
        time_base=Fraction(1, 12800),
        start_pts=0,
        duration_s=float(duration_s),
        frame_count=round(fps * duration_s),
        start_timecode=None,
        variable_frame_rate=False,
    )


def scene_frame(scene: int, index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB picture ``index`` of scene ``scene``: its own colour and texture, a square moving slowly.

    Scenes differ strongly in hue, brightness and texture (so every detector sees the cut);
    consecutive frames of one scene differ by the 2-pixel motion of the square only.
    """
    width, height = size
    background, square_colour = _scene_background(scene, size)
    img = background.copy()
    side = max(4, min(width, height) // 4)
    span = max(1, width - side)
    x0 = (index * 2 + scene * 13) % (2 * span)
    x0 = x0 if x0 < span else 2 * span - x0  # back and forth, never a jump
    y0 = (height - side) // 2
    img[y0 : y0 + side, x0 : x0 + side] = square_colour
    return img


@lru_cache(maxsize=64)
def _scene_background(scene: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    hue = _HUES[scene % len(_HUES)]
    value = 0.45 + 0.5 * ((scene * 7) % 5) / 4
    base = np.array(colorsys.hsv_to_rgb(hue, 0.85, value)) * 255
    rng = np.random.default_rng(1000 + scene)
    cells = rng.integers(0, 2, size=(height // 8 + 1, width // 8 + 1))
    texture = np.kron(cells, np.ones((8, 8)))[:height, :width]
    xx = np.arange(width)[None, :]
    shade = 0.65 + 0.25 * texture + 0.1 * (xx / max(1, width - 1))
    img = np.clip(base[None, None, :] * shade[:, :, None], 0, 255).astype(np.uint8)
    img.setflags(write=False)
    return img, (255 - base).astype(np.uint8)


def render_clip(
    path: str | Path,
    *,
    codec: str | None = None,
    fps: Fraction | int = Fraction(25),
    size: tuple[int, int] = (160, 96),
    n_frames: int | None = None,
    container: str | None = None,
    start_timecode: str | None = None,
    rotation: int | None = None,
    scenes: Sequence[int] | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
    audio: bool = False,
    fade_frames: int = 0,
) -> RenderedClip:
    """Encode a synthetic clip and return what it contains.

    ``scenes`` lists scene lengths in frames (hard cuts between them); otherwise one scene of
    ``n_frames`` (default: one per ``pts``, else 50). ``container`` defaults to the file suffix.
    ``rotation`` is the clockwise display rotation written as a display matrix (what probe
    reports back).
    ``pts`` with ``time_base`` sets every frame's timestamp (variable frame rate).
    ``start_timecode`` goes into the container's ``timecode`` tag (a tmcd track in MOV/MP4).
    ``fade_frames`` turns every cut into a fade to black over the last frames of a scene and a
    fade from black over the first frames of the next (``scene_starts`` stay the scene starts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = (container or path.suffix.lstrip(".")).lower()
    default_codec, default_pix = DEFAULT_CODECS.get(kind, ("libx264", "yuv420p"))
    codec = codec or default_codec
    pix_fmt = pix_fmt or _PIX_FMT.get(codec, default_pix)
    fps = Fraction(fps)
    lengths = list(scenes) if scenes else [n_frames or (len(pts) if pts is not None else 50)]
    total = sum(lengths)
    if pts is not None and len(pts) != total:
        raise ValueError(f"pts has {len(pts)} entries for {total} frames")

    out = av.open(str(path), "w", format=_MUXERS.get(kind, kind if container else None))
    if start_timecode:
        out.metadata["timecode"] = start_timecode
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    opts = {"g": str(max(2, round(2 * fps)))}
    if codec == "libx264":
        opts.update(preset="veryfast", crf="23")
    if codec in ("libvpx", "libvpx-vp9"):
        opts.update(deadline="realtime", **{"cpu-used": "8"})
    if codec in ("mpeg2video", "mpeg4", "mjpeg"):
        stream.codec_context.bit_rate = 2_000_000
    opts.update(options or {})
    stream.options = opts
    if pts is not None:
        tb = time_base or Fraction(1, 1000)
        stream.codec_context.time_base = tb
        stream.time_base = tb
    if rotation:
        stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
    audio_stream = out.add_stream("aac", rate=48000, layout="mono") if audio else None

    index = 0
    for scene, length in enumerate(lengths):
        for i in range(length):
            picture = scene_frame(scene, i, size)
            gain = _fade_gain(i, length, fade_frames, first=scene == 0, last=scene == len(lengths) - 1)
            if gain < 1.0:
                picture = (picture * gain).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if pts is not None:
                frame.pts = int(pts[index])
                frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
            index += 1
    for packet in stream.encode():
        out.mux(packet)
    if audio_stream is not None:
        _write_tone(out, audio_stream, seconds=float(total / fps))
    out.close()

    starts, acc = [], 0
    for length in lengths:
        starts.append(acc)
        acc += length
    return RenderedClip(
        path=path,
        n_frames=total,
        fps=fps,
        scene_starts=tuple(starts),
        pts=tuple(int(p) for p in pts) if pts is not None else None,
        time_base=(time_base or Fraction(1, 1000)) if pts is not None else None,
    )


def _fade_gain(i: int, length: int, fade: int, *, first: bool, last: bool) -> float:
    """Brightness of frame ``i`` of a scene: ramps from black after a cut and to black before one."""
    if fade <= 0:
        return 1.0
    gain = 1.0
    if not first and i < fade:
        gain = min(gain, i / fade)
    if not last and i >= length - fade:
        gain = min(gain, (length - 1 - i) / fade)
    return gain


def render_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """A file with one AAC audio stream and no video (e.g. ``.m4a`` or ``.mp4``)."""
    path = Path(path)
    out = av.open(str(path), "w", format="mp4" if path.suffix in (".m4a", ".mp4") else None)
    stream = out.add_stream("aac", rate=48000, layout="mono")
    _write_tone(out, stream, seconds)
    out.close()
    return path


def _write_tone(out, stream, seconds: float) -> None:
    rate = 48000
    samples = int(seconds * rate)
    t = np.arange(samples) / rate
    wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, samples, 1024):
        chunk = wave[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def truncate_copy(src: str | Path, dest: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of a file's bytes: a download or copy cut off mid-way."""
    data = Path(src).read_bytes()
    dest = Path(dest)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def render_undecodable(path: str | Path, fourcc: bytes = b"AVS2") -> Path:
    """An AVI whose video stream is tagged with a codec this FFmpeg has no decoder for.

    Renders an MPEG-4 AVI and rewrites its FourCC (in the stream header and the bitmap
    header), which is what a file from an exotic camera looks like to a stock FFmpeg.
    """
    path = Path(path)
    render_clip(path, codec="mpeg4", container="avi", n_frames=10, size=(64, 48))
    data = path.read_bytes()
    if data.count(b"FMP4") < 1:
        raise RuntimeError("mpeg4 AVI without the FMP4 FourCC: the muxer changed")
    path.write_bytes(data.replace(b"FMP4", fourcc))
    return path
