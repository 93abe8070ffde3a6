"""``GET /health``: 200 when the catalog answers and every index can answer searches.

``status`` is ``ok``, or ``degraded`` while a missing, corrupt or lagging index is rebuilt
from SQL in the background (each index says ``state`` and ``problem``; searches answer from
SQL meanwhile). 503 with the reason when the database is down or an index can neither be
searched nor repaired. Cheap enough for a load balancer to poll once the indexes are loaded.

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
    """The health report; raises RuntimeError naming what is unreadable or cannot answer.

    Each index is checked as a search would check it (checksum and ids against SQL on load;
    loaded indexes stay cached, so a poll costs a stat and a query per index): a damaged one
    starts its repair in the background and is reported ``healing`` with the problem, and
    the status is ``degraded`` while searches answer from SQL meanwhile.
    """
    from video_inst.catalog.models import Video
    from video_inst.vectors.store import get_index_store

    try:
        with state.catalog.session() as s:
            videos = int(s.scalar(select(func.count()).select_from(Video)) or 0)
        store = get_index_store(state.settings)
        reports = [store.health(space_id, kind) for space_id, kind in store.known_indexes()]
    except Exception as exc:  # noqa: BLE001 - any database failure is the answer
        raise RuntimeError(f"catalog unreadable: {type(exc).__name__}: {exc}") from exc
    out = []
    for r in reports:
        if r.state == "damaged" or (r.state == "healing" and r.vectors > store.exact_fallback_max):
            raise RuntimeError(
                f"index {r.space_id}-{r.kind} cannot answer ({r.state}): {r.problem}; "
                "`video-inst index check --repair` rebuilds it from SQL"
            )
        out.append(
            {
                "space_id": r.space_id,
                "kind": r.kind,
                "vectors": r.vectors,
                "state": r.state,
                "problem": r.problem,
            }
        )
    status = "ok" if all(r.state == "ok" for r in reports) else "degraded"
    return {"status": status, "videos": videos, "indexes": out, "ingest": state.ingest.mode}


@router.get("/health", response_model=HealthOut, responses=error_responses(503))
def health(state: ApiState = Depends(get_state)) -> Any:
    try:
        return check_health(state)
    except RuntimeError as exc:
        return error_response(503, "unhealthy", str(exc))
