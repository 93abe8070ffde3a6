"""Every API error as JSON ``{"error": {"code": .., "message": ..}}`` with its HTTP status.

Library errors carry a ``code`` (video_inst.errors); :data:`STATUS_BY_CODE` is the one
place that turns a code into a status. Errors only HTTP knows about (a missing token, a
body too large, a range past the end of a file) are :class:`ApiError`.

Example::

    raise ApiError(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'")
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from video_inst.errors import VideoInstError

log = logging.getLogger(__name__)

#: error code of video_inst.errors (and its subclasses elsewhere) -> HTTP status
STATUS_BY_CODE: dict[str, int] = {
    "invalid_query": 422,
    "invalid_export": 422,
    "invalid_vectors": 422,
    "not_found": 404,
    "missing_file": 404,
    "not_an_image": 415,
    "image_too_large": 413,
    "media_error": 415,
    "empty_file": 415,
    "not_a_video": 415,
    "no_video_stream": 415,
    "unsupported_codec": 415,
    "corrupt_video": 415,
    "outside_media_roots": 403,
    "model_space_mismatch": 409,
    "weights_missing": 503,
    "transient": 503,
    "corrupt_index": 503,
    "index_unavailable": 503,
    "vector_index": 503,
    "catalog_unwritable": 503,
    "catalog_read_only": 503,
    "catalog_full": 507,
}

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    503: "unavailable",
    507: "insufficient_storage",
}


class ApiError(StarletteHTTPException):
    """An HTTP-level error with a code; an HTTPException so FastAPI's body parsing passes it through."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def status_for(exc: VideoInstError) -> int:
    """The status of a library error: by its code, else 400 (the caller's input was refused)."""
    return STATUS_BY_CODE.get(exc.code, 400)


def _where(loc: tuple[Any, ...]) -> str:
    """The field's dotted name without the request part it came from (a field may be called 'path')."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in _SOURCES else loc)]
    return ".".join(parts) or str(loc[0] if loc else "request")


_SOURCES = ("body", "query", "path", "header", "form", "cookie")
NO_NUL = r"^[^\x00]*$"  # schemas.py: text fields refuse NUL bytes (PostgreSQL cannot store them)


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == NO_NUL:
        return "contains a NUL byte"
    return str(error.get("msg", "invalid"))


def validation_message(errors: list[dict[str, Any]]) -> tuple[int, str, str]:
    """(status, code, message) of pydantic errors: malformed JSON is 400, the rest 422."""
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "")
        return 400, "malformed_json", f"the request body is not valid JSON: {reason}".rstrip(": ")
    parts = [f"{_where(tuple(e.get('loc', ())))}: {_message(e)}" for e in errors[:5]]
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return 422, "invalid_request", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """One handler per family of exception; every one answers the same JSON shape."""

    @app.exception_handler(VideoInstError)
    async def _library(request: Request, exc: VideoInstError) -> JSONResponse:
        from video_inst.api.redact import public_message

        message = public_message(exc.code, exc.message, request.app.state.vi.settings)
        return error_response(status_for(exc), exc.code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _CODE_BY_STATUS.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else code
        if exc.status_code == 404 and not isinstance(exc, ApiError):
            message = "no such endpoint (see /docs)"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = validation_message(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
