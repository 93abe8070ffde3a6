"""Jobs: ingestion handed to Celery workers, bulk archives, progress rows and callbacks.

The library side of ``workers/``: the tasks only call these functions, and the CLI and
the API use them to queue work and to read progress. ``state`` owns the jobs table,
``pipeline`` the three steps of one video, ``archive`` the folder walk and its report,
``staging`` the files between steps, ``callback`` the POST when a job ends.

Example::

    from video_inst.jobs import enqueue_ingest, wait_jobs
    ids = enqueue_ingest(["/media/a.mp4"])
    print(wait_jobs(ids, timeout_s=600)[0]["status"])
"""

from __future__ import annotations

from video_inst.jobs.archive import ArchiveRun, report_of, run_archive, wait_archive
from video_inst.jobs.enqueue import enqueue_ingest, send_ingest, wait_jobs
from video_inst.jobs.pipeline import chunk_shots, ingest_in_process, result_of
from video_inst.jobs.state import get_job, list_jobs

__all__ = [
    "ArchiveRun",
    "chunk_shots",
    "enqueue_ingest",
    "get_job",
    "ingest_in_process",
    "list_jobs",
    "report_of",
    "result_of",
    "run_archive",
    "send_ingest",
    "wait_archive",
    "wait_jobs",
]
