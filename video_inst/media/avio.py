"""Opening a file with PyAV the same way everywhere, and turning FFmpeg failures into named errors.

probe, the shot plan and keyframe decoding all open files through here, so a text file,
a still image, an audio-only file or a missing decoder give the same named error with the
same message wherever they are met.

Example::

    with open_video(path, threads=0) as (container, stream):
        for frame in container.decode(stream):
            print(frame_pts(frame))
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.error
from av.container import InputContainer
from av.video.stream import VideoStream

from video_inst.errors import (
    CorruptVideoError,
    EmptyFileError,
    MediaError,
    MissingFileError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
)

log = logging.getLogger(__name__)

# FFmpeg demuxers that read one still picture (or a sequence of numbered files), not a video.
_STILL_IMAGE_FORMATS = {"image2", "image2pipe"}

# Leading bytes of container formats that hold video. A file that starts like one of these
# but that FFmpeg cannot open is a damaged video, not "not a video".
_VIDEO_MAGIC: list[tuple[int, bytes, str]] = [
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"wide", "MOV"),
    (4, b"free", "MP4/MOV"),
    (4, b"skip", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"\x06\x0e\x2b\x34", "MXF"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
]


def check_path(path: str | Path) -> Path:
    """Fail early, with the file named, for the cases FFmpeg would report confusingly."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{p}: file not found")
    if p.is_dir():
        raise NotAVideoError(f"{p}: is a directory, not a video file")
    try:
        size = p.stat().st_size
    except OSError as exc:  # pragma: no cover - races with deletion
        raise MissingFileError(f"{p}: cannot be read ({exc.strerror})") from exc
    if size == 0:
        raise EmptyFileError(f"{p}: file is empty (0 bytes)")
    return p


def sniff_video_container(path: Path) -> str | None:
    """Name of the video container the file's first bytes announce, or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    for offset, magic, name in _VIDEO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "AVI" and head[8:12] not in (b"AVI ", b"AVIX"):
                continue  # RIFF also holds WAV and WebP
            return name
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "MPEG-TS"
    return None


def _open_error(path: Path, exc: Exception) -> MediaError:
    """Map an av.open failure to 'damaged video' or 'not a video' by what the file looks like."""
    if isinstance(exc, PermissionError):
        return MediaError(f"{path}: cannot be read (permission denied)")
    if isinstance(exc, FileNotFoundError):
        return MissingFileError(f"{path}: file not found")
    kind = sniff_video_container(path)
    detail = getattr(exc, "strerror", None) or str(exc)
    if kind is not None:
        return CorruptVideoError(f"{path}: looks like {kind} but its header cannot be read ({detail})")
    return NotAVideoError(f"{path}: not a video file FFmpeg can read ({detail})")


def open_container(path: str | Path) -> InputContainer:
    """av.open with the named errors; the caller closes the container."""
    p = check_path(path)
    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise _open_error(p, exc) from exc


def pick_video_stream(container: InputContainer, path: str | Path) -> VideoStream:
    """The first real video stream (cover art in music files does not count), decodable here."""
    p = Path(path)
    fmt = container.format.name
    if fmt in _STILL_IMAGE_FORMATS or fmt.endswith("_pipe"):
        codec = container.streams.video[0].codec_context.name if container.streams.video else "?"
        raise NotAVideoError(f"{p}: is a still image ({codec}), not a video")
    candidates = [
        s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
    ]
    if not candidates:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(f"{p}: has no video stream (streams: {', '.join(kinds)})")
    stream = candidates[0]
    if stream.codec_context is None:
        raise UnsupportedCodecError(
            f"{p}: the video codec of stream #{stream.index} has no decoder in this FFmpeg build "
            f"(libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}); "
            "transcode the file or use an FFmpeg build with that decoder"
        )
    return stream


def configure_decoder(stream: VideoStream, threads: int = 0) -> None:
    """Frame + slice threading; threads=0 lets FFmpeg pick one per core."""
    ctx = stream.codec_context
    ctx.thread_type = "AUTO"
    ctx.thread_count = max(0, int(threads))


@contextmanager
def open_video(path: str | Path, *, threads: int = 0) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open a file and its video stream, ready to decode with threads; always closes."""
    container = open_container(path)
    try:
        stream = pick_video_stream(container, path)
        configure_decoder(stream, threads)
        yield container, stream
    finally:
        container.close()


def frame_pts(frame: av.VideoFrame) -> int | None:
    """The frame's presentation time in stream time base: its PTS, else its DTS.

    Some containers and raw streams carry only DTS. Both come from the packet the frame was
    decoded from, so they are the same whether decoding started at the beginning or after a
    seek: the shot plan and keyframe decoding agree on them. None when neither is known.
    """
    if frame.pts is not None:
        return int(frame.pts)
    if frame.dts is not None:
        return int(frame.dts)
    return None
