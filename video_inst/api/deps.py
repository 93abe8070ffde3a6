"""What every route gets injected: the app's settings and catalog, its mount point, the token check.

The app keeps one :class:`ApiState` on ``app.state.vi``; routes ask for it with
``Depends(get_state)`` instead of reading globals, so two apps with different settings
(tests) never share a catalog.

Example::

    @router.delete("/videos/{video_id}", dependencies=[Depends(require_token)])
    def delete(video_id: int, state: ApiState = Depends(get_state)) -> dict: ...
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from video_inst.api.errors import ApiError
from video_inst.api.files import SourceChecks
from video_inst.catalog.db import Catalog
from video_inst.config import Settings


@dataclass
class ApiState:
    settings: Settings
    catalog: Catalog
    ingest: Any  # video_inst.api.ingest_runner.IngestRunner
    files: SourceChecks = field(default_factory=SourceChecks)  # serve-time checks of source files


def get_state(request: Request) -> ApiState:
    return request.app.state.vi


def root_of(request: Request) -> str:
    """The app's mount point ("" or "/prefix"), for the URLs put into JSON."""
    return str(request.scope.get("root_path", "")).rstrip("/")


# Declares the bearer scheme in OpenAPI (Swagger UI's "Authorize"); the check itself is below,
# so a server without a token still takes requests without the header.
BEARER = HTTPBearer(auto_error=False, description="VIDEO_INST_API_TOKEN, when the server has one")


def require_token(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
) -> None:
    """Endpoints that change state need ``Authorization: Bearer <api_token>`` when a token is set."""
    token = request.app.state.vi.settings.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint changes state and needs 'Authorization: Bearer <token>' (VIDEO_INST_API_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "wrong API token", headers={"WWW-Authenticate": "Bearer"})
