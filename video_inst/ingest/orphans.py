"""Files with no catalog row: thumbnails of an ingest killed before its commit, staging of dead jobs.

Thumbnails are written while a video is analysed, before the one transaction that stores
its keyframes; a process killed in between leaves them behind. They are collected by the
next ingest of that content (which knows its own folder, ``thumbnails/<digest[:16]>/``) and
by ``video-inst index check --repair`` (every folder). An ingest holds a shared lock on
``thumbnails/.writers/<digest[:16]>.lock`` from its first thumbnail to its commit, and the
repair skips folders whose lock it cannot take exclusively, so it never deletes the
thumbnails of an ingest still under way; files younger than ``grace_s`` are kept too (the
chunks of a queued job are analysed in separate tasks that hold no lock between them).

Staging folders (``staging/<job_id>/``) belong to a job: one whose job row is missing or has
ended (done / failed) is an orphan; a queued or running job keeps its folder.

Example::

    with writing_thumbnails(settings, digest):
        ...  # write thumbnails, commit the keyframes
        collect_thumbnails(catalog, settings, [digest[:16]], locked=True)
    report = find_orphans(catalog, settings)   # OrphanReport(thumbnails=[...], staging=[...])
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from video_inst.catalog.db import Catalog
from video_inst.catalog.jobs import active_job_ids
from video_inst.catalog.models import Keyframe
from video_inst.config import Settings

_JPEG = "*.jpg"


@dataclass
class OrphanReport:
    """Files with no catalog row (found, or removed when ``removed`` is set)."""

    thumbnails: list[Path] = field(default_factory=list)
    staging: list[Path] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # thumbnail folders an ingest is writing now
    removed: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "thumbnails": len(self.thumbnails),
            "staging": len(self.staging),
            "busy": len(self.busy),
            "removed": self.removed,
        }


def _lock_file(settings: Settings, prefix: str) -> Path:
    folder = settings.thumbnail_dir / ".writers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{prefix}.lock"


@contextmanager
def writing_thumbnails(settings: Settings, digest: str) -> Iterator[None]:
    """Held (shared) by an ingest while this content's thumbnails have no catalog row yet."""
    with open(_lock_file(settings, digest[:16] or "empty"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _exclusive(settings: Settings, prefix: str) -> Iterator[bool]:
    """True when no ingest writes this folder now (and none can start until the block ends)."""
    with open(_lock_file(settings, prefix), "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _referenced(catalog: Catalog, prefix: str) -> set[str]:
    with catalog.session() as s:
        return set(s.scalars(select(Keyframe.thumbnail).where(Keyframe.thumbnail.like(f"{prefix}/%"))))


def _folder_orphans(catalog: Catalog, settings: Settings, prefix: str, grace_s: float) -> list[Path]:
    folder = settings.thumbnail_dir / prefix
    if not folder.is_dir():
        return []
    known = _referenced(catalog, prefix)
    cutoff = time.time() - grace_s
    out = []
    for path in sorted(folder.glob(_JPEG)):
        if f"{prefix}/{path.name}" in known:
            continue
        try:
            if grace_s and path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        out.append(path)
    return out


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        with suppress(OSError):
            path.parent.rmdir()  # only when it became empty


def collect_thumbnails(
    catalog: Catalog,
    settings: Settings,
    prefixes: Sequence[str] | None = None,
    *,
    grace_s: float = 0.0,
    locked: bool = False,
    remove: bool = True,
) -> OrphanReport:
    """Thumbnails no keyframe row names, in the given folders (all by default); removed unless told not.

    ``locked``: the caller holds :func:`writing_thumbnails` for these folders (an ingest after
    its commit); otherwise a folder is only touched when no ingest is writing it.
    """
    root = settings.thumbnail_dir
    if prefixes is None:
        folders = root.iterdir() if root.is_dir() else iter(())
        prefixes = sorted(p.name for p in folders if p.is_dir() and not p.name.startswith("."))
    report = OrphanReport(removed=remove)
    for prefix in prefixes:
        if locked:
            found = _folder_orphans(catalog, settings, prefix, grace_s)
        else:
            with _exclusive(settings, prefix) as free:
                if not free:
                    report.busy.append(prefix)
                    continue
                found = _folder_orphans(catalog, settings, prefix, grace_s)
                if remove:
                    _remove(found)
        if locked and remove:
            _remove(found)
        report.thumbnails += found
    return report


def collect_staging(catalog: Catalog, settings: Settings, *, remove: bool = True) -> list[Path]:
    """Staging folders of jobs that are gone or ended; removed unless told not."""
    root = settings.staging_root
    if not root.is_dir():
        return []
    folders = [p for p in sorted(root.iterdir()) if p.is_dir()]
    if not folders:
        return []
    active = active_job_ids(catalog)
    orphans = [p for p in folders if p.name not in active]
    if remove:
        for path in orphans:
            shutil.rmtree(path, ignore_errors=True)
    return orphans


def find_orphans(
    catalog: Catalog, settings: Settings, *, remove: bool = False, grace_s: float = 3600.0
) -> OrphanReport:
    """Every orphan of the data directory (``index check``), removed with ``remove`` (``--repair``)."""
    report = collect_thumbnails(catalog, settings, grace_s=grace_s, remove=remove)
    report.staging = collect_staging(catalog, settings, remove=remove)
    return report
