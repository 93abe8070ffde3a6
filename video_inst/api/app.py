"""The FastAPI application: routes, the search page at ``/``, errors, limits, token and CORS.

``create_app(settings)`` builds a self-contained app (its own catalog and ingest runner),
so tests and ``video-inst serve`` get the same thing. OpenAPI is at ``/openapi.json``, the
interactive docs at ``/docs``. Reference: docs/API.md.

Example::

    import uvicorn
    from video_inst.api.app import create_app
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from video_inst.api.deps import ApiState
from video_inst.api.errors import install_error_handlers
from video_inst.api.ingest_runner import IngestRunner
from video_inst.api.limits import BodyLimit
from video_inst.api.routes import ROUTERS
from video_inst.catalog.db import get_catalog
from video_inst.config import Settings, get_settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """Find every shot that contains an object (an image and a box) or a described subject (text).

Hits are time ranges with a box at a keyframe; `/export` writes them as OTIO, CMX3600 EDL,
FCPXML, FCP7 XML or CSV. Endpoints that change state (`/ingest`, `/ingest/upload`,
`DELETE /videos/{id}`) need `Authorization: Bearer <token>` when the server has a token.
Errors are `{"error": {"code": .., "message": ..}}`.
"""


def warm_up(settings: Settings) -> None:
    """Load the search models (DASR, the label matcher) and the label postings now, not on the first queries.

    The postings (see :func:`use_label_postings`) take ~20 s at 1M tracks on a busy core.
    """
    import numpy as np

    from video_inst.search.searcher import Query, search, shared_searcher

    for query in (Query(image=np.zeros((64, 64, 3), dtype=np.uint8), top_k=1), Query(text="bird", top_k=1)):
        try:
            search(query, settings=settings)
        except Exception:  # noqa: BLE001 - a cold first query is all that is lost
            log.warning("search warm-up failed", exc_info=True)
    searcher = shared_searcher(settings)
    # CLIP (or the reason it is missing, for the notes of text searches): a text search loads
    # it only where the catalog holds CLIP vectors, a server should know either way.
    try:
        _ = searcher.clip
    except Exception:  # noqa: BLE001 - the first text search over CLIP vectors loads it instead
        log.warning("CLIP warm-up failed", exc_info=True)
    try:
        searcher.labels.ensure_model()  # the sentence model, for texts the label table lacks
    except Exception:  # noqa: BLE001 - the first such query loads it instead
        log.warning("label model warm-up failed", exc_info=True)
    if searcher.label_postings is not None:
        try:
            with searcher.catalog.session() as s:
                searcher.label_postings.get(s, searcher._active(s, "dasr").space_id, wait=True)
        except Exception:  # noqa: BLE001 - SQL ranks labels until a later build succeeds
            log.warning("label postings warm-up failed", exc_info=True)


def use_label_postings(settings: Settings) -> None:
    """Rank label queries in memory in this long-running process (video_inst/search/label_postings.py).

    The first label search starts the build in a background thread; SQL answers until it is done.
    """
    from video_inst.search.label_postings import PostingsCache
    from video_inst.search.searcher import shared_searcher

    searcher = shared_searcher(settings)
    if searcher.label_postings is None:
        searcher.label_postings = PostingsCache(searcher.catalog.session)


def document_errors(app: FastAPI, max_top_k: int) -> None:
    """OpenAPI as the app behaves: every 422 is the JSON error shape, SearchRequest and ExportRequest
    are components, top_k's maximum is this server's ``max_top_k``."""
    from video_inst.api.schemas import ExportRequest, SearchRequest, limit_top_k

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for model in (SearchRequest, ExportRequest):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            limit_top_k(body, max_top_k)
            components[model.__name__] = body
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request", "content": error}
                form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
                if "top_k" in form.get("schema", {}).get("properties", {}):
                    limit_top_k(form["schema"], max_top_k)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: Any) -> str:
    """Readable OpenAPI operation ids: the route function's name (``search``, ``list_videos``),
    not FastAPI's generated ``search_endpoint_search_post``."""
    name = route.name
    return name[: -len("_endpoint")] if name.endswith("_endpoint") else name


def create_app(
    settings: Settings | None = None, *, ingest_mode: str | None = None, warm: bool = False
) -> FastAPI:
    """The API over ``settings``' catalog; ``ingest_mode`` 'queue' | 'thread' (default: by broker).

    ``warm``: load the search models at startup, before the server accepts requests.
    """
    settings = settings or get_settings()
    settings.ensure_dirs()
    catalog = get_catalog(settings)
    runner = IngestRunner(settings, catalog, mode=ingest_mode)
    use_label_postings(settings)
    from video_inst.vectors.store import get_index_store

    store = get_index_store(settings)
    # A server repairs damaged indexes in the background and answers from SQL meanwhile.
    store.heal_in_background = True
    store.switch_in_background = True

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.heal_all_in_background()  # a kill between an ingest's commit and its sync, say
        if warm:
            # Before the first request is accepted: models then load once, never concurrently.
            await run_in_threadpool(warm_up, settings)
        yield
        runner.close()

    from importlib.metadata import PackageNotFoundError, version

    try:
        app_version = version("video_inst")
    except PackageNotFoundError:
        app_version = "0"
    # Swagger UI and ReDoc from files in the fastapi-offline wheel, not a CDN: /docs works offline.
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="video_inst",
        version=app_version,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.vi = ApiState(settings=settings, catalog=catalog, ingest=runner)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    document_errors(app, settings.max_top_k)

    # Added last = outermost: CORS headers go on every answer, 413s included.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb * 1024 * 1024)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Disposition", "Content-Range", "Accept-Ranges", "Content-Length"],
        )
    return app
