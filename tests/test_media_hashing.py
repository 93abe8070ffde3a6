"""content_hash(): the same bytes give the same identity wherever they are; any change a new one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from video_inst.errors import EmptyFileError, MissingFileError
from video_inst.media import hashing
from video_inst.media.hashing import content_hash


def test_identity_follows_content_not_path(tmp_path: Path, edit_clip: Path) -> None:
    copy = tmp_path / "renamed.bin"
    copy.write_bytes(edit_clip.read_bytes())
    assert content_hash(copy) == content_hash(edit_clip)
    assert len(content_hash(copy)) == 64
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1  # one bit in the middle of the file
    copy.write_bytes(bytes(data))
    assert content_hash(copy) != content_hash(edit_clip)


def test_is_sha256_of_size_and_content_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "BLOCK_SIZE", 1000)  # many blocks and a partial last one
    data = os.urandom(4567)
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(len(data).to_bytes(8, "little") + data).hexdigest()
    assert content_hash(path) == expected
    (tmp_path / "y.bin").write_bytes(data + b"\0")  # a longer file never shares a digest by padding
    assert content_hash(tmp_path / "y.bin") != expected


def test_named_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        content_hash(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EmptyFileError, match="empty"):
        content_hash(tmp_path / "empty.mp4")
