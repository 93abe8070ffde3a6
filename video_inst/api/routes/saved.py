"""Saved searches: keep a query (feedback included) by name, run it again, see what new footage matched.

Example::

    curl -s -X POST 'localhost:8000/saved-searches?name=red%20kite' -H "Authorization: Bearer $TOKEN" \\
         -F image=@kite.jpg -F box=10,20,200,180 -F positives=42
    curl -s -X POST localhost:8000/saved-searches/red%20kite/search
    curl -s localhost:8000/saved-searches/red%20kite/matches
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from video_inst.api.deps import ApiState, get_state, require_token, root_of
from video_inst.api.redact import public_note
from video_inst.api.routes.search import read_search_body
from video_inst.api.schemas import SearchResponse, error_responses, search_body_openapi
from video_inst.api.serialise import search_json

router = APIRouter(tags=["saved searches"])

Ref = Annotated[str, Path(min_length=1, max_length=200, description="Id or name of the saved search")]


def _answer(result: Any, request: Request, state: ApiState) -> dict[str, Any]:
    answer = search_json(result, root_of(request))
    answer["notes"] = [public_note(n, state.settings) for n in answer["notes"]]
    return answer


@router.post(
    "/saved-searches",
    status_code=201,
    openapi_extra=search_body_openapi(),
    dependencies=[Depends(require_token)],
    responses=error_responses(400, 401, 404, 413, 415, 422, 503),
    summary="Run a query and keep it by name; it then watches newly ingested videos",
)
async def create_saved_search(
    request: Request,
    name: Annotated[
        str, Query(min_length=1, max_length=200, description="Name (an existing one is replaced)")
    ],
    threshold: Annotated[
        float | None, Query(allow_inf_nan=False, description="A new video's hit counts at or above it")
    ] = None,
    watch: Annotated[bool, Query(description="Check each newly ingested video")] = True,
    state: ApiState = Depends(get_state),
) -> JSONResponse:
    from video_inst.api.routes.search import query_of_body
    from video_inst.search.saved import save_search

    body = await read_search_body(request)

    def save() -> tuple[dict[str, Any], Any]:
        query = query_of_body(body, state)
        return save_search(
            query, name, settings=state.settings, catalog=state.catalog, threshold=threshold, watch=watch
        )

    saved, result = await run_in_threadpool(save)
    return JSONResponse({**saved, "result": _answer(result, request, state)}, status_code=201)


@router.get("/saved-searches", summary="Every saved search")
def list_saved_searches(state: ApiState = Depends(get_state)) -> list[dict[str, Any]]:
    from video_inst.search.saved import list_saved

    return list_saved(state.catalog)


@router.post(
    "/saved-searches/{ref}/search",
    response_model=SearchResponse,
    responses=error_responses(400, 404, 422, 503),
    summary="Run a saved search over the catalog now",
)
async def run_saved_search(
    ref: Ref,
    request: Request,
    top_k: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    state: ApiState = Depends(get_state),
) -> JSONResponse:
    from video_inst.search.saved import run_saved

    overrides: dict[str, Any] = {"offset": offset}
    if top_k is not None:
        overrides["top_k"] = top_k
    result = await run_in_threadpool(
        lambda: run_saved(ref, settings=state.settings, catalog=state.catalog, **overrides)
    )
    return JSONResponse(_answer(result, request, state))


@router.get(
    "/saved-searches/{ref}/matches",
    responses=error_responses(404, 422),
    summary="Newly ingested videos in which this saved search found its object, with the hits",
)
def saved_search_matches(ref: Ref, state: ApiState = Depends(get_state)) -> list[dict[str, Any]]:
    from video_inst.search.saved import matches_of

    return matches_of(ref, state.catalog)


@router.delete(
    "/saved-searches/{ref}",
    dependencies=[Depends(require_token)],
    responses=error_responses(401, 404, 422),
    summary="Forget a saved search and its matches",
)
def delete_saved_search(ref: Ref, state: ApiState = Depends(get_state)) -> dict[str, int]:
    from video_inst.search.saved import delete_saved

    return {"deleted": delete_saved(ref, state.catalog)}
