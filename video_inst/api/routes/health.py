"""``GET /health``: 200 when the catalog answers and every index file it expects is readable.

503 with the reason otherwise (a database that is down, an index file that is missing or
corrupt: ``video-inst index rebuild`` restores it from SQL). Cheap enough for a load
balancer to poll: one count and one small read per index file header.

Example::

    curl -s localhost:8000/health   # {"status": "ok", "videos": 4, "indexes": [...], "ingest": "thread"}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from video_inst.api.deps import ApiState, get_state
from video_inst.api.errors import error_response
from video_inst.api.schemas import HealthOut, error_responses

router = APIRouter(tags=["health"])


def check_health(state: ApiState) -> dict[str, Any]:
    """The health report; raises RuntimeError naming what is unreadable."""
    from video_inst.catalog.models import IndexState, Video
    from video_inst.vectors.index import read_header
    from video_inst.vectors.store import get_index_store

    try:
        with state.catalog.session() as s:
            videos = int(s.scalar(select(func.count()).select_from(Video)) or 0)
            indexes = [
                (int(space), str(kind), int(count or 0))
                for space, kind, count in s.execute(
                    select(IndexState.space_id, IndexState.kind, IndexState.count)
                )
            ]
    except Exception as exc:  # noqa: BLE001 - any database failure is the answer
        raise RuntimeError(f"catalog unreadable: {type(exc).__name__}: {exc}") from exc
    store = get_index_store(state.settings)
    out = []
    for space_id, kind, count in sorted(indexes):
        path = store.index_path(space_id, kind)
        if count:
            if not path.is_file():
                raise RuntimeError(f"index file {path} is missing; run `video-inst index rebuild`")
            try:
                read_header(path)
            except Exception as exc:  # noqa: BLE001
                raise RuntimeError(
                    f"index file {path} unreadable ({exc}); run `video-inst index rebuild`"
                ) from exc
        out.append({"space_id": space_id, "kind": kind, "vectors": count})
    return {"status": "ok", "videos": videos, "indexes": out, "ingest": state.ingest.mode}


@router.get("/health", response_model=HealthOut, responses=error_responses(503))
def health(state: ApiState = Depends(get_state)) -> Any:
    try:
        return check_health(state)
    except RuntimeError as exc:
        return error_response(503, "unhealthy", str(exc))
