"""probe(): containers, rates, rotation, timecode, VFR, and a named error for every bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from media_factory import render_audio_only, render_clip, render_undecodable, truncate_copy

from video_inst.errors import (
    CorruptVideoError,
    EmptyFileError,
    MissingFileError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
)
from video_inst.media.probe import is_variable_rate, probe

CONTAINERS = [
    # suffix, FFmpeg format name (part), codec
    ("mp4", "mp4", "h264"),
    ("mov", "mov", "h264"),
    ("mkv", "matroska", "h264"),
    ("webm", "webm", "vp8"),
    ("avi", "avi", "mpeg4"),
    ("mxf", "mxf", "mpeg2video"),
    ("ts", "mpegts", "mpeg2video"),
    ("gif", "gif", "gif"),
]


@pytest.mark.parametrize("suffix,fmt,codec", CONTAINERS)
def test_probe_reads_every_container(tmp_path: Path, suffix: str, fmt: str, codec: str) -> None:
    clip = render_clip(tmp_path / f"clip.{suffix}", size=(96, 64), n_frames=30, fps=Fraction(25))
    info = probe(clip)
    assert fmt in info.container
    assert info.codec == codec
    assert (info.width, info.height) == (96, 64)
    assert info.rotation == 0
    assert info.frame_rate == 25
    assert not info.variable_frame_rate
    assert info.duration_s == pytest.approx(30 / 25, abs=0.1)
    assert info.frame_count in (None, 30)
    # start_pts is the first decoded frame's PTS, in the stream's own time base
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        first = next(c.decode(stream))
        assert info.time_base == stream.time_base
        assert info.start_pts == first.pts


def test_probe_shared_clips_agree_with_pyav(shared_media: Path) -> None:
    clips = sorted(p for p in (shared_media / "clips").iterdir() if p.suffix in (".mp4", ".webm", ".gif"))
    assert len(clips) >= 10
    for path in clips:
        info = probe(path)
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            pts = sorted(p.pts for p in c.demux(s) if p.size and p.pts is not None)
        assert (info.width, info.height) == (s.codec_context.width, s.codec_context.height), path
        measured = (len(pts) - 1) / float((pts[-1] - pts[0]) * s.time_base)
        assert float(info.frame_rate) == pytest.approx(measured, rel=0.02), path
        assert not info.variable_frame_rate, path
        assert info.duration_s > 0


def test_gif_rate_time_base_and_frames(shared_media: Path) -> None:
    info = probe(shared_media / "clips" / "classroom.gif")
    assert info.container == "gif"
    assert info.time_base == Fraction(1, 100)
    # delays of 6 and 7 centiseconds are 15 fps rounded to the GIF's time base, not VFR
    assert info.frame_rate == 15
    assert not info.variable_frame_rate
    assert info.frame_count == 45


def test_ntsc_rate_is_exact_fraction(shared_media: Path) -> None:
    # FFmpeg's average_rate for this file is 54000/1801 (short last frame); the timestamps say 29.97
    assert probe(shared_media / "clips" / "stream-of-water.mp4").frame_rate == Fraction(30000, 1001)
    assert probe(shared_media / "clips" / "flower.mp4").frame_rate == Fraction(30000, 1001)


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("suffix", ["mp4", "mov"])
def test_display_matrix_rotation(tmp_path: Path, rotation: int, suffix: str) -> None:
    clip = render_clip(tmp_path / f"rot.{suffix}", size=(96, 64), n_frames=5, rotation=rotation)
    info = probe(clip)
    assert info.rotation == rotation
    expected = (64, 96) if rotation in (90, 270) else (96, 64)
    assert (info.width, info.height) == expected


def test_rotate_tag_without_display_matrix(tmp_path: Path) -> None:
    """Old files carry a `rotate` tag instead of a display matrix; Matroska keeps such tags."""
    path = tmp_path / "tag.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.metadata["rotate"] = "90"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame(96, 64, "yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (64, 96)


def test_variable_frame_rate_detected(tmp_path: Path) -> None:
    pts = [0, 40, 80, 100, 200, 210, 300, 333, 400, 500, 520, 600, 700, 710, 800]
    for suffix in ("mkv", "mp4"):
        info = probe(render_clip(tmp_path / f"vfr.{suffix}", pts=pts, time_base=Fraction(1, 1000)))
        assert info.variable_frame_rate, suffix
        assert 10 < float(info.frame_rate) < 25
    cfr = probe(render_clip(tmp_path / "cfr.mkv", n_frames=15, fps=25))
    assert not cfr.variable_frame_rate


def test_variable_rate_tolerates_time_base_rounding() -> None:
    # 29.97 fps in a 1/1000 time base: 33, 34, 33 ... is constant, rounded
    pts = [round(i * 1001 / 30) for i in range(100)]
    assert not is_variable_rate(pts)
    # one dropped frame in 100 does not make a stream variable
    assert not is_variable_rate([i * 40 for i in range(100) if i != 50])
    assert is_variable_rate([0, 40, 80, 100, 200, 210, 300, 333, 400, 500])


def test_mov_start_timecode_from_tmcd_track(tmp_path: Path) -> None:
    clip = render_clip(tmp_path / "tc.mov", start_timecode="01:00:00:00", n_frames=10)
    with av.open(str(clip)) as c:  # the mov muxer wrote a timecode (tmcd) data stream
        assert any(s.type == "data" and s.metadata.get("timecode") == "01:00:00:00" for s in c.streams)
    assert probe(clip).start_timecode == "01:00:00:00"


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "mxf"])
def test_start_timecode_other_containers(tmp_path: Path, suffix: str) -> None:
    clip = render_clip(tmp_path / f"tc.{suffix}", start_timecode="10:20:30:12", n_frames=10)
    assert probe(clip).start_timecode == "10:20:30:12"


def test_no_timecode_and_audio_flag(tmp_path: Path) -> None:
    info = probe(render_clip(tmp_path / "a.mp4", n_frames=10, audio=True))
    assert info.start_timecode is None
    assert info.has_audio


# --- bad input -------------------------------------------------------------------------


def _raises(cls: type[Exception], path: Path, words: str) -> None:
    with pytest.raises(cls) as err:
        probe(path)
    message = str(err.value)
    assert str(path) in message
    assert words in message.lower()


def test_missing_file(tmp_path: Path) -> None:
    _raises(MissingFileError, tmp_path / "nope.mp4", "not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _raises(EmptyFileError, path, "empty")


def test_text_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    _raises(NotAVideoError, path, "not a video")


@pytest.mark.parametrize("name", ["chelsea.png", "hummingbird.jpg", "cat.bmp"])
def test_still_image_is_not_a_video(shared_media: Path, name: str) -> None:
    _raises(NotAVideoError, shared_media / "images" / name, "still image")


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    _raises(NotAVideoError, tmp_path, "directory")


def test_audio_only_file(tmp_path: Path) -> None:
    _raises(NoVideoStreamError, render_audio_only(tmp_path / "tone.m4a"), "no video stream")


def test_codec_without_decoder(tmp_path: Path) -> None:
    _raises(UnsupportedCodecError, render_undecodable(tmp_path / "exotic.avi"), "no decoder")


def test_truncated_mp4_without_moov_is_corrupt(tmp_path: Path) -> None:
    # PyAV writes the moov atom at the end: cutting the file loses the whole index
    clip = render_clip(tmp_path / "full.mp4", n_frames=60)
    cut = truncate_copy(clip, tmp_path / "cut.mp4", 0.5)
    _raises(CorruptVideoError, cut, "mp4/mov")


def test_garbage_after_video_magic_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.mkv"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 2000)
    _raises(CorruptVideoError, path, "matroska")
