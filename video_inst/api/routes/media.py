"""Source media and thumbnails of catalog videos, for the page's player and hit list.

Only files the catalog names are served (a video id, a keyframe id), never a path from the
request, and each is checked again where it is served (``api/files.py``): a source must still
lie under a media root and be the ingested content; a thumbnail must lie in the data
directory, and one that is gone is decoded again from its video.

The media endpoint answers HTTP range requests (RFC 9110 §14): one range → 206
with ``Content-Range``; a range that starts past the end → 416 (JSON error); a Range header
it cannot use (malformed, several ranges, a stale ``If-Range``) → the whole file, 200.

Example::

    curl -s -H 'Range: bytes=0-1023' localhost:8000/videos/3/media -o head.bin   # 206
    curl -s localhost:8000/thumbnails/3/41.jpg -o kf.jpg
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path as FsPath
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from video_inst.api.deps import ApiState, get_state
from video_inst.api.errors import ApiError
from video_inst.api.files import decode_keyframe, thumbnail_path
from video_inst.api.routes.videos import VideoId, get_video
from video_inst.api.schemas import MAX_ID, error_responses
from video_inst.catalog.models import Keyframe
from video_inst.errors import NotFoundError, VideoInstError

log = logging.getLogger(__name__)

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


def _read(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """The bytes of an opened (checked) file; closes it at the end or when the client goes away."""
    try:
        fh.seek(start)
        left = length
        while left > 0:
            data = fh.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data
    finally:
        fh.close()


def media_type(path: FsPath) -> str:
    suffix = path.suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@router.get(
    "/videos/{video_id}/media",
    response_class=Response,
    responses={
        200: {"description": "The whole source file", "content": {"video/mp4": {}}},
        206: {"description": "The requested byte range", "content": {"video/mp4": {}}},
        **error_responses(403, 404, 409, 416, 422),
    },
    summary="The source file of a catalog video, with HTTP range requests (for an HTML5 <video>)",
)
def video_media(video_id: VideoId, request: Request, state: ApiState = Depends(get_state)) -> Response:
    """Served only while it still lies under a media root and is the ingested content (api/files.py)."""
    with state.catalog.session() as s:
        video = get_video(s, video_id)
        s.expunge(video)
    fh, stat = state.files.open_file(video, state.settings)
    try:
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
    except BaseException:
        fh.close()
        raise
    kind = media_type(FsPath(video.path))
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_read(fh, 0, size), media_type=kind, headers=headers)
    start, end = span
    length = end - start + 1
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(_read(fh, start, length), status_code=206, media_type=kind, headers=headers)


@router.get(
    "/thumbnails/{video_id}/{keyframe_id}.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(403, 404, 409, 422, 503)},
    summary="JPEG of a keyframe (hits carry this URL as thumbnail_url); a missing one is decoded again",
)
def thumbnail(
    video_id: VideoId,
    keyframe_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    state: ApiState = Depends(get_state),
) -> FileResponse:
    """The stored JPEG, kept inside the thumbnail folder; when it is gone, the keyframe is decoded
    again from the video (checked as ``/videos/{id}/media`` checks it) and the JPEG rewritten."""
    with state.catalog.session() as s:
        keyframe = s.get(Keyframe, keyframe_id)
        if keyframe is None or keyframe.video_id != video_id:
            raise NotFoundError(f"no keyframe {keyframe_id} of video {video_id}")
        video = get_video(s, video_id)
        s.expunge(keyframe)
        s.expunge(video)
    from video_inst.ingest.pipeline import thumbnail_relpath
    from video_inst.media.decode import write_thumbnail

    relative = keyframe.thumbnail or thumbnail_relpath(video.content_hash or "", int(keyframe.pts))
    path = thumbnail_path(state.settings, relative)
    if path is None:
        raise ApiError(
            403,
            "outside_data_dir",
            f"the thumbnail of keyframe {keyframe_id} lies outside the data directory",
        )
    if not path.is_file():
        try:
            with state.files.open(video, state.settings) as (fh, _):
                rgb = decode_keyframe(fh, keyframe, video)
        except ApiError as exc:
            raise ApiError(
                exc.status_code,
                exc.code,
                f"the thumbnail of keyframe {keyframe_id} is missing and cannot be made again: {exc.message}",
            ) from None
        except VideoInstError as exc:
            log.warning("thumbnail of keyframe %s: decode failed: %s", keyframe_id, exc.message)
            raise ApiError(
                404,
                "missing_file",
                f"the thumbnail of keyframe {keyframe_id} is missing and its frame cannot be decoded",
            ) from None
        if rgb is None:
            raise ApiError(404, "missing_file", f"the thumbnail of keyframe {keyframe_id} is missing")
        try:
            write_thumbnail(rgb, path, state.settings.thumbnail_max_side, state.settings.thumbnail_quality)
        except OSError:
            log.warning("thumbnail of keyframe %s: cannot write %s", keyframe_id, path, exc_info=True)
            raise ApiError(
                503,
                "unavailable",
                f"the thumbnail of keyframe {keyframe_id} is missing and cannot be written again "
                "(the data directory is not writable)",
            ) from None
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
