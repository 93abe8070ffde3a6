"""``POST /search``, ``/report`` and ``/export``: one query body (JSON, or multipart with an image).

The body is read here rather than by FastAPI because the same endpoint takes JSON and
multipart; both are validated by ``schemas.SearchRequest``. The search itself (model,
FAISS, SQL) runs in the threadpool through ``video_inst.search.searcher.search``, whose shared
``Searcher`` loads the models once per process.

Example::

    curl -s localhost:8000/search -H 'content-type: application/json' -d '{"text": "bird", "top_k": 5}'
    curl -s localhost:8000/search -F image=@query.jpg -F box=10,20,200,180
    curl -s 'localhost:8000/export?format=edl' -F image=@query.jpg -o hits.edl
    curl -s 'localhost:8000/report?format=csv' -F image=@query.jpg -F box=10,20,200,180
    curl -s localhost:8000/search/prepare -F image=@query.jpg   # before dragging boxes on it
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request
from fastapi import UploadFile as UploadParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from video_inst.api.deps import ApiState, get_state, root_of
from video_inst.api.errors import ApiError
from video_inst.api.ingest_runner import safe_filename
from video_inst.api.redact import public_note
from video_inst.api.schemas import (
    ExportFormat,
    ExportRequest,
    PreparedImageOut,
    ReportResponse,
    SearchRequest,
    SearchResponse,
    error_responses,
    search_body_openapi,
)
from video_inst.api.serialise import media_url, search_json

router = APIRouter(tags=["search"])

_LIST_FIELDS = ("video_ids", "positives", "negatives", "picks", "rejects")
MAX_EXEMPLARS = 32  # image parts of one multipart query (Query.validate's limit)
# fields of one form: positives and negatives may come as one field per track id (1000 each)
MAX_FORM_FIELDS = 2100


class SearchBody:
    """A parsed search body: the validated fields, and the query image bytes and box text if any.

    ``more``: further (bytes, name, box text) exemplars of the same object (multipart: the second
    and later ``image`` parts, each with the ``box`` field of the same position; "" = whole image).
    """

    def __init__(
        self,
        fields: SearchRequest,
        image: bytes | None,
        image_name: str | None,
        box: str | None,
        more: list[tuple[bytes, str | None, str | None]] | None = None,
    ):
        self.fields = fields
        self.image = image
        self.image_name = image_name
        self.box = box
        self.more = more or []


def _validated(data: Any, model: type[SearchRequest] = SearchRequest) -> SearchRequest:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _field_names(model: type[SearchRequest]) -> list[str]:
    """The body's field names as clients write them (``as``, not ``layout``)."""
    return [info.alias or name for name, info in model.model_fields.items()]


async def read_search_body(request: Request, model: type[SearchRequest] = SearchRequest) -> SearchBody:
    """JSON → ``model`` (SearchRequest, or ExportRequest for ``/export``); multipart / urlencoded →
    the same fields plus ``image`` and ``box``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request, model)
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the query as application/json or multipart/form-data, not {ctype}",
        )
    raw = await request.body()
    if not raw.strip():
        raise ApiError(422, "invalid_request", 'empty body: send a JSON object such as {"text": "bird"}')
    try:
        fields = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return SearchBody(fields, None, None, None)


async def _read_form(request: Request, model: type[SearchRequest] = SearchRequest) -> SearchBody:
    form = await request.form(max_files=MAX_EXEMPLARS, max_fields=MAX_FORM_FIELDS)
    names = _field_names(model)
    unknown = sorted(set(form.keys()) - set(names) - {"image", "box"})
    if unknown:
        raise ApiError(422, "invalid_request", f"unknown form fields: {', '.join(unknown)}")
    images: list[tuple[bytes, str | None]] = []
    for upload in form.getlist("image"):
        if isinstance(upload, UploadFile):
            data = await upload.read()
            if not data and not upload.filename:
                continue  # an empty file input of an HTML form: no image
            images.append((data, safe_filename(upload.filename) if upload.filename else None))
        elif isinstance(upload, str) and upload:
            raise ApiError(422, "invalid_request", "image must be a file part (multipart), not a text field")
    boxes = [b if isinstance(b, str) and b.strip() else None for b in form.getlist("box")]
    if len(boxes) > max(len(images), 1):
        raise ApiError(422, "invalid_request", f"{len(boxes)} box fields for {len(images)} images")
    boxes += [None] * (len(images) - len(boxes))
    image, image_name = images[0] if images else (None, None)
    data: dict[str, Any] = {}
    for name in names:
        values = [v for v in form.getlist(name) if isinstance(v, str) and v.strip() != ""]
        if not values:
            continue
        if name in _LIST_FIELDS:
            data[name] = [p.strip() for v in values for p in v.split(",") if p.strip()]
        elif name == "time_range":
            data[name] = [p.strip() for p in values[0].split(",")] if len(values) == 1 else values
        else:
            data[name] = values[0]
    more = [(data_, name_, box_) for (data_, name_), box_ in zip(images[1:], boxes[1:])]
    box_text = boxes[0] if boxes else None
    await form.close()
    return SearchBody(_validated(data, model), image, image_name, box_text, more)


def query_of_body(body: SearchBody, state: ApiState) -> Any:
    """Decode the image(s) and build the Query (blocking: call in the threadpool)."""
    from video_inst.media.images import load_image, parse_box

    image = load_image(body.image, name=body.image_name) if body.image is not None else None
    exemplars = [(load_image(data, name=name), parse_box(box)) for data, name, box in body.more]
    return body.fields.to_query(
        image=image, box=parse_box(body.box), settings=state.settings, exemplars=exemplars
    )


def run_query(body: SearchBody, state: ApiState) -> Any:
    """Build the Query and search (blocking: call in the threadpool)."""
    from video_inst.search.searcher import search

    return search(query_of_body(body, state), settings=state.settings)


@router.post(
    "/search",
    response_model=SearchResponse,
    openapi_extra=search_body_openapi(),
    responses=error_responses(400, 404, 413, 415, 422, 503),
    summary="Find the shots that contain an object (image + box), a subject (text) or a track",
)
async def search_endpoint(request: Request, state: ApiState = Depends(get_state)) -> JSONResponse:
    body = await read_search_body(request)
    started = time.perf_counter()
    result = await run_in_threadpool(run_query, body, state)
    searched = time.perf_counter()
    answer = search_json(result, root_of(request))
    answer["notes"] = [public_note(n, state.settings) for n in answer["notes"]]
    response = JSONResponse(answer)
    # Where the time went, for browsers' dev tools and scripts/bench_api.py (W3C Server-Timing).
    search_ms, serialise_ms = (searched - started) * 1000, (time.perf_counter() - searched) * 1000
    response.headers["Server-Timing"] = f"search;dur={search_ms:.1f}, serialise;dur={serialise_ms:.1f}"
    return response


def run_report(body: SearchBody, state: ApiState) -> Any:
    """Build the Query and report its appearances (blocking: call in the threadpool)."""
    from video_inst.search.report import appearance_report

    return appearance_report(query_of_body(body, state), settings=state.settings)


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    accept = request.headers.get("accept", "")
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "text/csv" in types and "application/json" not in types[: types.index("text/csv")]


@router.post(
    "/report",
    response_model=ReportResponse,
    openapi_extra=search_body_openapi(),
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error_responses(400, 404, 413, 415, 422, 503),
    },
    summary="Where a query's object appears: per video the shots, screen time, first and last appearance",
)
async def report_endpoint(
    request: Request,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="json or csv (default: by the Accept header, else json)"),
    ] = None,
    state: ApiState = Depends(get_state),
) -> Response:
    """The same body as ``/search`` (``top_k``, ``offset`` and ``hide_weak`` are not used): every
    track scoring at or above ``min_score``, or else the measured weak-score threshold of the
    query's mode, counts; screen time is the union of their spans (docs/API.md)."""
    body = await read_search_body(request)
    report = await run_in_threadpool(run_report, body, state)
    if _wants_csv(request, format):
        return Response(
            report.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="report.csv"'},
        )
    answer = report.to_json()
    answer["notes"] = [public_note(n, state.settings) for n in answer["notes"]]
    root = root_of(request)
    for video in answer["videos"]:
        video["media_url"] = media_url(root, video["video_id"])
    return JSONResponse(answer)


def prepare_image(data: bytes, name: str | None, state: ApiState) -> PreparedImageOut:
    """Decode the image and compute its feature map into the searcher's cache (blocking)."""
    from video_inst.media.images import load_image
    from video_inst.search.searcher import shared_searcher

    image = load_image(data, name=name)
    space, status = shared_searcher(state.settings).prepare_image(image)
    return PreparedImageOut(width=image.shape[1], height=image.shape[0], space=space, feature_map=status)


@router.post(
    "/search/prepare",
    response_model=PreparedImageOut,
    responses=error_responses(400, 413, 415, 422, 503),
    summary="Run the network over a query image now, so crop searches on it skip that step",
)
async def prepare_endpoint(
    image: Annotated[UploadParam, File(description="The query photo or frame boxes will be drawn on.")],
    state: ApiState = Depends(get_state),
) -> PreparedImageOut:
    """The search page calls this when an image is dropped: the backbone's forward pass, most of a
    crop search on a CPU, then runs while the editor drags a box; ``/search`` with the same image
    pools the box from the kept feature map (``VIDEO_INST_SEARCH_FEATURE_CACHE``)."""
    data = await image.read()
    name = safe_filename(image.filename) if image.filename else None
    return await run_in_threadpool(prepare_image, data, name, state)


def _export_responses() -> dict[int | str, dict[str, Any]]:
    """The 200 of the export endpoints: one media type per format (OTIO JSON is a JSON object)."""
    from video_inst.export import FORMATS

    types = {
        media_type: {"schema": {"type": "object"} if "json" in media_type else {"type": "string"}}
        for media_type, _ in FORMATS.values()
    }
    return {200: {"description": "The file, as an attachment", "content": types}}


def attachment(
    data: bytes, fmt: str, stem: str, rate: str | None = None, drop: bool | None = None
) -> Response:
    """The export file with its media type, a download file name and the rate it declares.

    ``X-Project-Rate`` ("25", "30000/1001") and ``X-Drop-Frame`` ("1" / "0") name the rate the
    file's timeline is written at (absent for CSV, whose rows each name their rate).
    """
    from video_inst.export import FORMATS

    media_type, extension = FORMATS[fmt]
    name = safe_filename(stem).replace(" ", "_") or "video_inst"
    headers = {"Content-Disposition": f'attachment; filename="{name}.{extension}"'}
    if rate:
        headers["X-Project-Rate"] = rate
        headers["X-Drop-Frame"] = "1" if drop else "0"
    return Response(data, media_type=media_type, headers=headers)


def run_export_query(body: SearchBody, state: ApiState) -> Any:
    """The hits an export writes: the search's, or its picked / unrejected ones (blocking)."""
    from video_inst.search.selection import selected_hits

    fields = body.fields
    assert isinstance(fields, ExportRequest)
    hits, _ = selected_hits(
        query_of_body(body, state), picks=fields.picks, rejects=fields.rejects, settings=state.settings
    )
    return hits


@router.post(
    "/export",
    response_class=Response,
    openapi_extra=search_body_openapi("ExportRequest"),
    responses={**_export_responses(), **error_responses(400, 404, 413, 415, 422, 503)},
    summary="The hits of a search (or the selects picked from them) as an OTIO, EDL, FCPXML, FCP7 XML "
    "or CSV file",
)
async def export_endpoint(
    request: Request,
    format: Annotated[ExportFormat, Query(description="File format")],
    title: Annotated[str | None, Query(max_length=200, description="Timeline name")] = None,
    project_rate: Annotated[
        str | None,
        Query(
            max_length=32,
            description="The rate EDL / FCP7 events and the FCPXML sequence are written at (25, 29.97, "
            "29.97 NDF, 30000/1001); default VIDEO_INST_PROJECT_RATE, else the rate most hits share "
            "(12.5 -> 25, 20 -> 60). Answered in the X-Project-Rate header.",
        ),
    ] = None,
    state: ApiState = Depends(get_state),
) -> Response:
    """The body is the ``/search`` body plus the selection: ``picks`` / ``rejects`` (track ids),
    ``handles`` (frames), ``span`` (detected | shot), ``order`` (rank | time) and ``as``
    (sequence | markers); docs/EXPORT.md, "Selects"."""
    from video_inst.export import ProjectRate, export_file

    # a bad rate is a 422 before the search runs
    project = ProjectRate.parse(project_rate or state.settings.project_rate)
    body = await read_search_body(request, ExportRequest)
    fields = body.fields
    assert isinstance(fields, ExportRequest)
    options = fields.select_options()
    hits = await run_in_threadpool(run_export_query, body, state)
    name = _printable(title or "") or _default_title(body)
    file = await run_in_threadpool(
        lambda: export_file(hits, format, title=name, project_rate=project, selects=options)
    )
    return attachment(file.data, format, name, file.rate, file.drop_frame)


def _printable(text: str) -> str:
    """Timeline names go into XML and EDL headers: no control characters."""
    return "".join(c for c in text if c.isprintable()).strip()


def _default_title(body: SearchBody) -> str:
    parts = []
    if body.image is not None:
        parts.append(body.image_name or "image")
    if body.fields.text:
        parts.append(_printable(body.fields.text)[:60])
    if body.fields.track_id is not None:
        parts.append(f"like track {body.fields.track_id}")
    return " + ".join(parts) or "video_inst search"
