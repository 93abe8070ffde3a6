"""Serve-time checks of the files the API sends: a source video, a thumbnail.

The media roots are checked at ingest, but a file can change after that (a symlink swapped
in, a file replaced). So every answer checks again, on the file it opens:

- the stored path is resolved (symlinks included) and must still lie under a media root
  (``media_roots`` plus the API's uploads folder); with no roots configured it must still
  resolve to the stored path itself (ingest stores the resolved path), so a symlink put in
  its place is refused;
- the opened file must be the ingested content: its size must equal ``videos.size_bytes``,
  and its SHA-256 (``media.hashing.content_hash``) must equal ``videos.content_hash``. The
  hash is computed once per (device, inode, size, mtime, ctime) of the opened file and then
  remembered by this process, so later requests (a player's many range requests) cost one
  ``fstat``;
- thumbnails must resolve inside the data directory's thumbnail folder; one that is gone is
  decoded again from its (checked) video and rewritten.

Errors name the problem, never the server's paths (:class:`ApiError` codes
``outside_media_roots`` 403, ``file_changed`` 409, ``missing_file`` 404).

Example::

    checks = SourceChecks()
    with checks.open(video, settings) as (fh, st):   # raises ApiError
        fh.read(1024)
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_mod
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from video_inst.api.errors import ApiError
from video_inst.config import Settings

log = logging.getLogger(__name__)

HASH_BLOCK = 4 * 1024 * 1024


def serve_roots(settings: Settings) -> list[Path]:
    """Folders a served source may lie in: the media roots and the API's uploads folder."""
    roots = [r.expanduser().resolve() for r in settings.media_roots]
    return [*roots, (settings.home / "uploads").resolve()] if roots else []


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _fd_path(fh: BinaryIO, fallback: Path) -> Path:
    """Where the opened file really is (Linux: /proc/self/fd), so a swap after resolving is seen."""
    link = Path(f"/proc/self/fd/{fh.fileno()}")
    try:
        return Path(os.readlink(link))
    except OSError:
        return fallback


def _hash_open_file(fh: BinaryIO, size: int) -> str:
    """``media.hashing.content_hash`` of an already opened file: SHA-256 of (size, content)."""
    digest = hashlib.sha256()
    digest.update(size.to_bytes(8, "little"))
    fh.seek(0)
    while True:
        block = fh.read(HASH_BLOCK)
        if not block:
            break
        digest.update(block)
    fh.seek(0)
    return digest.hexdigest()


class SourceChecks:
    """Checks and opens catalog videos' source files; remembers which file states hashed right."""

    def __init__(self) -> None:
        self._verified: dict[int, tuple[int, ...]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, video_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(video_id, threading.Lock())

    @contextmanager
    def open(self, video: Any, settings: Settings) -> Iterator[tuple[BinaryIO, os.stat_result]]:
        """The checked, opened source of ``video`` (a catalog row) and its ``fstat``; raises ApiError."""
        fh, st = self.open_file(video, settings)
        try:
            yield fh, st
        finally:
            fh.close()

    def open_file(self, video: Any, settings: Settings) -> tuple[BinaryIO, os.stat_result]:
        """As :meth:`open`, the caller closes the file (a streamed answer closes it at its end)."""
        video_id = int(video.id)
        stored = Path(video.path)
        try:
            resolved = stored.resolve(strict=True)
        except (OSError, RuntimeError):
            log.warning("video %s: source %s is gone", video_id, stored)
            raise ApiError(404, "missing_file", f"the source file of video {video_id} is gone") from None
        roots = serve_roots(settings)
        self._check_place(video_id, stored, resolved, roots)
        try:
            fh: BinaryIO = open(resolved, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except OSError:
            log.warning("video %s: source %s cannot be opened", video_id, resolved, exc_info=True)
            raise ApiError(
                404, "missing_file", f"the source file of video {video_id} cannot be read"
            ) from None
        try:
            st = os.fstat(fh.fileno())
            self._check_place(video_id, stored, _fd_path(fh, resolved), roots)
            if not stat_mod.S_ISREG(st.st_mode):
                raise ApiError(404, "missing_file", f"the source of video {video_id} is not a regular file")
            self._check_content(video, fh, st)
        except BaseException:
            fh.close()
            raise
        return fh, st

    @staticmethod
    def _check_place(video_id: int, stored: Path, resolved: Path, roots: list[Path]) -> None:
        inside = _under(resolved, roots) if roots else resolved == stored.expanduser().absolute()
        if not inside:
            log.warning(
                "video %s: stored path %s now resolves to %s, outside the media roots",
                video_id,
                stored,
                resolved,
            )
            where = "outside the media roots" if roots else "somewhere other than the ingested file"
            raise ApiError(
                403,
                "outside_media_roots",
                f"the source file of video {video_id} now resolves {where} (a symlink or a move); "
                "it is not served",
            )

    def _check_content(self, video: Any, fh: BinaryIO, st: os.stat_result) -> None:
        video_id = int(video.id)
        expected_size = int(video.size_bytes or 0)
        if expected_size and st.st_size != expected_size:
            raise self._changed(video_id, f"{st.st_size} bytes, {expected_size} when ingested")
        expected_hash = video.content_hash
        if not expected_hash:
            return
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock(video_id):
            if self._verified.get(video_id) == key:
                return
            if _hash_open_file(fh, st.st_size) != expected_hash:
                self._verified.pop(video_id, None)
                raise self._changed(video_id, "its content hash differs from the ingested one")
            self._verified[video_id] = key

    @staticmethod
    def _changed(video_id: int, why: str) -> ApiError:
        return ApiError(
            409,
            "file_changed",
            f"the source file of video {video_id} changed since it was ingested ({why}); it is not "
            "served: re-ingest it (`video-inst ingest --force`)",
        )


def thumbnail_path(settings: Settings, relative: str) -> Path | None:
    """The thumbnail file inside the thumbnail folder, or None when the stored name leaves it."""
    folder = settings.thumbnail_dir.resolve()
    path = (folder / relative).resolve()
    return path if folder in path.parents else None


def decode_keyframe(fh: BinaryIO, keyframe: Any, video: Any) -> np.ndarray | None:
    """The RGB picture of one catalog keyframe, decoded from the opened, checked source."""
    from video_inst.media.decode import decode_keyframes
    from video_inst.media.types import Keyframe

    wanted = Keyframe(
        shot_index=0, pts=int(keyframe.pts), time_s=float(keyframe.time_s), frame=int(keyframe.frame)
    )
    by_fd = Path(f"/proc/self/fd/{fh.fileno()}")  # the very file that was checked (Linux)
    source = by_fd if by_fd.exists() else _fd_path(fh, Path(video.path))
    for _, rgb in decode_keyframes(source, [wanted], rotation=int(video.rotation or 0), threads=1):
        return rgb
    return None
