"""A request-body size limit (``Settings.max_upload_mb``) as plain ASGI middleware.

A declared ``Content-Length`` over the limit is refused before a byte is read; a body sent
without one (chunked) is counted as it arrives and refused once it passes the limit, so a
client can never make the server spool more than the limit.

Example::

    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb * 1024 * 1024)
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from video_inst.api.errors import ApiError, error_body


def _too_large(limit: int) -> ApiError:
    mb = limit / (1024 * 1024)
    return ApiError(413, "too_large", f"request body larger than the limit of {mb:g} MB (max_upload_mb)")


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 and the JSON error shape."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_error(send, _too_large(self.max_bytes))
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as exc:  # raised outside any handler (e.g. while streaming a form)
            if started:
                raise
            await _send_error(send, exc)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, exc: ApiError) -> None:
    body = json.dumps(error_body(exc.code, exc.message)).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
