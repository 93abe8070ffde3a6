"""Locks between processes that share a catalog: one ingest or commit of a given content at a time.

The CLI, the API's in-process jobs and the Celery commit step all take :func:`content_lock`
before they look for the content and write it, so two ingests of the same file never race
on ``videos.content_hash``: the second waits, then finds the first one's ``done`` row.
A file lock under ``$VIDEO_INST_HOME/locks`` on SQLite (one machine), a PostgreSQL advisory
lock otherwise (every machine that shares the database).

Example::

    with content_lock(catalog, settings, digest):
        ...  # look the content up, analyse, commit
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from video_inst.catalog.db import Catalog
from video_inst.config import Settings


def _pg_key(digest: str) -> int:
    return int.from_bytes(bytes.fromhex((digest or "0" * 16)[:16]), "big", signed=True)


@contextmanager
def content_lock(catalog: Catalog, settings: Settings, digest: str) -> Iterator[None]:
    """Hold the lock of this content (a hex digest; '' for empty files) for the block."""
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _pg_key(digest)})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _pg_key(digest)})
                conn.commit()
        return
    folder = settings.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{(digest or 'empty')[:16]}.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
