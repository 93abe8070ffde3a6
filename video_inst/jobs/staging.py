"""Files that carry a video's plan and chunk results from one task to the next.

``$VIDEO_INST_HOME/staging/<job_id>/plan.pkl`` and ``chunk-0003.pkl``: written atomically
(temporary file + ``os.replace``), so a task killed half-way leaves nothing half-written
and a re-delivered task finds either nothing or a complete file it can reuse. The
commit task reads them and removes the folder. Workers on several machines must share
this folder (``VIDEO_INST_STAGING_DIR`` on shared storage), as they share thumbnails.

These are pickles written by this project's own workers; the folder must not be
writable by anyone else.

Example::

    save(plan_path(settings, job_id), planned)
    planned = load(plan_path(settings, job_id))
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from video_inst.config import Settings
from video_inst.errors import TransientError


def staging_root(settings: Settings) -> Path:
    return settings.staging_root


def job_dir(settings: Settings, job_id: str) -> Path:
    return staging_root(settings) / job_id


def plan_path(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / "plan.pkl"


def chunk_path(settings: Settings, job_id: str, index: int) -> Path:
    return job_dir(settings, job_id) / f"chunk-{index:04d}.pkl"


def save(path: Path, obj: Any) -> None:
    """Write ``obj`` so that readers see the old state or the whole new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> Any:
    """A staged object; a missing file is transient (another machine's disk, or not written yet)."""
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except FileNotFoundError:
        raise TransientError(
            f"{path}: staged result not found; workers on several machines need a shared "
            "VIDEO_INST_STAGING_DIR"
        ) from None


def chunks_done(settings: Settings, job_id: str) -> int:
    folder = job_dir(settings, job_id)
    return len(list(folder.glob("chunk-*.pkl"))) if folder.is_dir() else 0


def remove(settings: Settings, job_id: str) -> None:
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
