"""How the API starts an ingest: queued for Celery workers, or run in a thread of this process.

``queue`` (a broker is configured): ``video_inst.jobs.enqueue_ingest`` writes the job row
and sends the task; workers do the rest. ``thread`` (the embedded default, no workers):
the job row is written here and ``video_inst.jobs.ingest_in_process`` runs it on one
background thread, one video at a time (ingest is CPU-bound; searches keep answering).
Either way the caller gets the job row at once and polls ``GET /jobs/{id}``.

Uploads are saved under ``$VIDEO_INST_HOME/uploads/<random>/<name>``; that folder counts
as a media root for them (workers in ``queue`` mode must list it in their media roots).

Example::

    runner = IngestRunner(settings, catalog, mode="thread")
    job = runner.start(Path("/media/a.mp4"))      # {"job_id": .., "status": "queued", ...}
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from video_inst.catalog.db import Catalog
from video_inst.config import Settings
from video_inst.errors import VideoInstError

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def default_mode(settings: Settings) -> str:
    """Workers exist only where a broker was configured; otherwise ingest here."""
    return "queue" if settings.broker_url else "thread"


def safe_filename(name: str | None) -> str:
    """A client's file name reduced to a harmless base name (no folders, no dot files)."""
    base = Path((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" .") or "upload"
    return base[-200:]


class IngestRunner:
    """Starts ingest jobs for the API; :meth:`start` returns the job row as JSON."""

    def __init__(self, settings: Settings, catalog: Catalog, *, mode: str | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.mode = mode or default_mode(settings)
        if self.mode not in ("queue", "thread"):
            raise ValueError(f"ingest mode must be 'queue' or 'thread', not {self.mode!r}")
        self.upload_dir = settings.home / "uploads"
        # Files the API saved itself may be ingested even when no media root covers them.
        self.upload_settings = settings.model_copy(
            update={"media_roots": [*settings.media_roots, self.upload_dir]}
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if self.mode == "thread":
            from video_inst.jobs.state import fail_dead_jobs

            # Jobs of an earlier server on this data dir that was killed: failed, staging removed.
            for job_id in fail_dead_jobs(catalog, settings):
                log.warning("ingest job %s: its server process is gone; marked failed", job_id)

    # --- the one switch between queue and thread ---------------------------------------------
    def start(
        self,
        path: Path,
        *,
        force: bool = False,
        analyse: bool = True,
        callback_url: str | None = None,
        upload: bool = False,
    ) -> dict[str, Any]:
        """Check the path (media roots, a regular file), create the job, hand it on; returns the job JSON."""
        from video_inst.ingest.pipeline import validate_path
        from video_inst.jobs import state

        settings = self.upload_settings if upload else self.settings
        resolved = validate_path(path, settings, required=True)  # the ingest's own rule, answered at once
        if self.mode == "queue":
            from video_inst.jobs import enqueue_ingest

            (job_id,) = enqueue_ingest(
                [resolved],
                force=force,
                analyse=analyse,
                callback_url=callback_url,
                settings=settings,
                catalog=self.catalog,
            )
        else:
            if callback_url:
                from video_inst.jobs.callback import valid_callback_url

                if not valid_callback_url(callback_url):
                    raise VideoInstError(f"{callback_url}: a callback URL must be http(s)://host[:port]/path")
            job_id = state.create_job(
                self.catalog,
                kind="ingest",
                path=str(resolved),
                callback_url=callback_url,
                counts={"analyse": analyse, "force": force},
                owned=True,
            )
            self._executor().submit(self._run, job_id, resolved, settings, force, analyse, upload)
        return state.require_job(self.catalog, job_id)

    def save_upload(self, source: BinaryIO, filename: str | None) -> Path:
        """Copy an uploaded file under the uploads folder (a fresh folder each, keeping its name)."""
        self.catalog.check_writable()  # a read-only or full catalog: a named error, no copy left behind
        folder = self.upload_dir / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / safe_filename(filename)
        with open(dest, "wb") as out:
            shutil.copyfileobj(source, out, length=1024 * 1024)
        return dest

    # --- thread mode ---------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vi-ingest")
            return self._pool

    def _run(
        self, job_id: str, path: Path, settings: Settings, force: bool, analyse: bool, upload: bool
    ) -> None:
        from video_inst.jobs import ingest_in_process

        try:
            result = ingest_in_process(
                job_id, path, settings=settings, catalog=self.catalog, force=force, analyse=analyse
            )
        except Exception:  # noqa: BLE001 - ingest_in_process ends the job itself; never kill the thread
            log.exception("ingest job %s crashed", job_id)
            return
        if upload and result.get("status") == "skipped":
            # The content is already in the catalog under another path: drop the copy. (A failed
            # upload stays, so its video row's path still names the file the error is about.)
            shutil.rmtree(path.parent, ignore_errors=True)

    def close(self) -> None:
        """Stop taking work; a running ingest finishes, queued ones stay 'queued' in the catalog."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
