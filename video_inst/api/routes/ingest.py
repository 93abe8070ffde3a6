"""Ingest (a path under the media roots, or an upload) answered with a job; the jobs themselves.

Both ingest endpoints change state and need the bearer token when ``api_token`` is set.
They answer 202 with the job row at once; ``GET /jobs/{id}`` shows its progress.

Example::

    curl -s -X POST localhost:8000/ingest -H 'content-type: application/json' \\
         -H "Authorization: Bearer $TOKEN" -d '{"path": "/media/clips/a.mp4"}'
    curl -s -X POST localhost:8000/ingest/upload -H "Authorization: Bearer $TOKEN" -F file=@a.mp4
    curl -s localhost:8000/jobs/6f1c...
"""

from __future__ import annotations

import shutil
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from video_inst.api.deps import ApiState, get_state, require_token
from video_inst.api.errors import ApiError
from video_inst.api.schemas import IngestRequest, JobOut, error_responses

router = APIRouter(tags=["ingest"])

JobStatus = Annotated[str | None, Query(pattern="^(queued|running|done|failed)$")]


@router.post(
    "/ingest",
    response_model=JobOut,
    status_code=202,
    dependencies=[Depends(require_token)],
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    summary="Ingest a file under the media roots; answers the job",
)
def ingest(body: IngestRequest, state: ApiState = Depends(get_state)) -> dict[str, Any]:
    return state.ingest.start(
        FsPath(body.path), force=body.force, analyse=body.analyse, callback_url=body.callback_url
    )


@router.post(
    "/ingest/upload",
    response_model=JobOut,
    status_code=202,
    dependencies=[Depends(require_token)],
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "force": {"type": "boolean"},
                            "analyse": {"type": "boolean"},
                        },
                    }
                }
            },
        }
    },
    summary="Upload a video (saved under $VIDEO_INST_HOME/uploads) and ingest it; answers the job",
)
async def ingest_upload(request: Request, state: ApiState = Depends(get_state)) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "upload the video as multipart/form-data, field 'file'")
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "the form needs a file part named 'file'")
        flags = {
            name: _flag(form.get(name), name, default)
            for name, default in (("force", False), ("analyse", True))
        }
        saved = await run_in_threadpool(state.ingest.save_upload, upload.file, upload.filename)
    finally:
        await form.close()
    try:
        return await run_in_threadpool(state.ingest.start, saved, upload=True, **flags)
    except Exception:
        shutil.rmtree(saved.parent, ignore_errors=True)  # nothing will ever read this copy
        raise


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ApiError(422, "invalid_request", f"{name}: expected true or false, got {value!r}")


@router.get("/jobs", response_model=list[JobOut], summary="Recent jobs, newest first")
def list_jobs(
    state: ApiState = Depends(get_state),
    status: JobStatus = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    from video_inst.jobs.state import list_jobs as job_rows

    return job_rows(state.catalog, status=[status] if status else None, limit=limit)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404, 422))
def read_job(
    job_id: Annotated[str, Path(min_length=1, max_length=64)], state: ApiState = Depends(get_state)
) -> dict[str, Any]:
    from video_inst.jobs.state import require_job

    return require_job(state.catalog, job_id)
