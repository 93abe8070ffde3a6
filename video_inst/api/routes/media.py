"""Source media and thumbnails of catalog videos, for the page's player and hit list.

Only files the catalog names are served (a video id, a keyframe id), never a path from the
request. The media endpoint answers HTTP range requests (RFC 9110 §14): one range → 206
with ``Content-Range``; a range that starts past the end → 416 (JSON error); a Range header
it cannot use (malformed, several ranges, a stale ``If-Range``) → the whole file, 200.

Example::

    curl -s -H 'Range: bytes=0-1023' localhost:8000/videos/3/media -o head.bin   # 206
    curl -s localhost:8000/thumbnails/3/41.jpg -o kf.jpg
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from video_inst.api.deps import ApiState, get_state
from video_inst.api.errors import ApiError
from video_inst.api.routes.videos import VideoId, get_video
from video_inst.api.schemas import MAX_ID, error_responses
from video_inst.catalog.models import Keyframe
from video_inst.errors import MissingFileError, NotFoundError

router = APIRouter(tags=["media"])

CHUNK = 256 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end] (inclusive) of a single satisfiable byte range; None to send the whole file.

    Raises ApiError 416 when the range lies wholly past the end of the file.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match or (not match.group(1) and not match.group(2)):
        return None  # malformed or several ranges: ignore it (allowed by RFC 9110)
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None  # invalid range: ignore
        if start >= size:
            raise _unsatisfiable(size)
        return start, end
    suffix = int(last)  # "bytes=-N": the last N bytes
    if suffix == 0 or size == 0:
        raise _unsatisfiable(size)
    return max(size - suffix, 0), size - 1


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "range_not_satisfiable",
        f"the requested range starts past the end of the {size}-byte file",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _read(path: FsPath, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as src:
        src.seek(start)
        left = length
        while left > 0:
            data = src.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def media_type(path: FsPath) -> str:
    suffix = path.suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@router.get(
    "/videos/{video_id}/media",
    response_class=Response,
    responses={
        200: {"description": "The whole source file", "content": {"video/mp4": {}}},
        206: {"description": "The requested byte range", "content": {"video/mp4": {}}},
        **error_responses(404, 416, 422),
    },
    summary="The source file of a catalog video, with HTTP range requests (for an HTML5 <video>)",
)
def video_media(video_id: VideoId, request: Request, state: ApiState = Depends(get_state)) -> Response:
    with state.catalog.session() as s:
        path = FsPath(get_video(s, video_id).path)
    try:
        stat = path.stat()
    except OSError:
        raise MissingFileError(f"the source file of video {video_id} is gone: {path}") from None
    if not path.is_file():
        raise MissingFileError(f"the source of video {video_id} is not a file: {path}")
    size = stat.st_size
    etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Cache-Control": "private, max-age=3600",
    }
    if_range = request.headers.get("if-range")
    wanted = request.headers.get("range") if if_range in (None, etag, headers["Last-Modified"]) else None
    span = parse_range(wanted, size)
    kind = media_type(path)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_read(path, 0, size), media_type=kind, headers=headers)
    start, end = span
    length = end - start + 1
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(_read(path, start, length), status_code=206, media_type=kind, headers=headers)


@router.get(
    "/thumbnails/{video_id}/{keyframe_id}.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404, 422)},
    summary="JPEG of a keyframe (hits carry this URL as thumbnail_url)",
)
def thumbnail(
    video_id: VideoId,
    keyframe_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    state: ApiState = Depends(get_state),
) -> FileResponse:
    with state.catalog.session() as s:
        keyframe = s.get(Keyframe, keyframe_id)
        if keyframe is None or keyframe.video_id != video_id:
            raise NotFoundError(f"no keyframe {keyframe_id} of video {video_id}")
        relative = keyframe.thumbnail
    if not relative:
        raise NotFoundError(f"keyframe {keyframe_id} has no thumbnail")
    folder = state.settings.thumbnail_dir.resolve()
    path = (folder / relative).resolve()
    if folder not in path.parents or not path.is_file():
        raise NotFoundError(f"the thumbnail of keyframe {keyframe_id} is missing; re-ingest video {video_id}")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
