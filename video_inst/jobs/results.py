"""What a job's row says to the outside: an ingest's public result, an archive's report.

Plain functions of the jobs rows (``state``), shared by the pipeline, the archive walk, the
callback body, the CLI and the API, so none of them imports another to describe a job.
"""

from __future__ import annotations

from typing import Any

from video_inst.catalog.db import Catalog
from video_inst.jobs import state


def result_of(job: dict[str, Any]) -> dict[str, Any]:
    """The public result of ``video_inst.ingest`` (also in the callback body)."""
    counts = job["counts"]
    status = job["status"]
    if status == "done":
        status = counts.get("outcome", "done")
    return {
        "job_id": job["job_id"],
        "video_id": job["video_id"],
        "status": status,
        "path": job["path"],
        "shots": int(counts.get("shots", 0)),
        "keyframes": int(counts.get("keyframes", 0)),
        "tracks": int(counts.get("tracks", 0)),
        "error": job["error"],
        "warnings": list(counts.get("warnings", [])),
        "watch": list(counts.get("watch", [])),  # saved searches that found their object (with hits)
    }


def report_of(catalog: Catalog, job_id: str) -> dict[str, Any]:
    """The archive's outcome so far: counts, and every failed file with its reason."""
    parent = state.require_job(catalog, job_id)
    children = state.list_jobs(catalog, parent_id=job_id, limit=None)
    ingested = [c for c in children if c["status"] == "done" and c["counts"].get("outcome") != "skipped"]
    skipped_late = [c for c in children if c["status"] == "done" and c["counts"].get("outcome") == "skipped"]
    failed = [c for c in children if c["status"] == "failed"]
    pending = [c for c in children if c["status"] in state.ACTIVE]
    counts = parent["counts"]
    return {
        "job_id": job_id,
        "root": parent["path"],
        "status": parent["status"],
        "walk_done": bool(counts.get("walk_done")),
        "files": int(counts.get("files", 0)),
        "ingested": len(ingested),
        "skipped": int(counts.get("skipped", 0)) + len(skipped_late),
        "failed": len(failed),
        "pending": len(pending),
        "ingested_paths": sorted(c["path"] for c in ingested),
        "failures": sorted(
            ({"path": c["path"], "error": c["error"], "job_id": c["job_id"]} for c in failed),
            key=lambda f: f["path"],
        ),
    }
