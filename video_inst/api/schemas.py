"""Pydantic request and response models of the HTTP API: the OpenAPI schema clients read.

Requests are validated here (types, ranges, unknown fields) before anything reaches the
library; responses are documented here and built as plain dicts by ``serialise``.

Example::

    SearchRequest.model_validate({"text": "bird", "top_k": 5}).to_query(image=None, box=None, settings=s)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from video_inst.api.errors import NO_NUL
from video_inst.config import Settings
from video_inst.export.selects import MAX_HANDLES, MAX_SELECTED

MAX_ID = 2**53 - 1  # ids the API takes: exact in JSON and JavaScript; larger ones are refused (422)
MAX_OFFSET = 1_000_000

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]  # PostgreSQL cannot store NUL
ExportFormat = Literal["otio", "edl", "fcpxml", "fcp7", "csv"]


# A query needs something to search with (Query.validate says so too); the schema tells clients.
NEEDS_TEXT: dict[str, Any] = {
    "required": ["text"],
    "properties": {"text": {"type": "string", "pattern": r"\S"}},
}
NEEDS_TRACK: dict[str, Any] = {"required": ["track_id"], "properties": {"track_id": {"type": "integer"}}}
NEEDS_POSITIVES: dict[str, Any] = {"required": ["positives"], "properties": {"positives": {"minItems": 1}}}


class SearchRequest(BaseModel):
    """The query fields shared by ``POST /search`` and ``POST /export`` (JSON or multipart)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"anyOf": [NEEDS_TEXT, NEEDS_TRACK, NEEDS_POSITIVES]}
    )

    text: Text | None = Field(None, description="Described subject, e.g. 'a red umbrella'.")
    track_id: Id | None = Field(None, description="More like this: a stored track as the query.")
    top_k: int | None = Field(None, ge=1, description="Shots to return (default: default_top_k).")
    min_score: Finite | None = None
    video_ids: list[Id] | None = Field(None, max_length=10_000, description="Only these videos.")
    label: Text | None = Field(None, description="Only tracks carrying this label, e.g. 'bird'.")
    time_range: tuple[Finite, Finite] | None = Field(None, description="[start_s, end_s] in each video.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Skip this many shots (paging).")
    positives: list[Id] = Field(
        default_factory=list,
        max_length=1000,
        description="Relevance feedback: track ids of hits marked right.",
    )
    negatives: list[Id] = Field(
        default_factory=list,
        max_length=1000,
        description="Track ids of hits marked wrong (never shown again).",
    )
    hide_weak: bool = Field(
        False, description="Drop hits under the measured threshold instead of marking them weak."
    )

    def to_query(
        self, *, image: np.ndarray | None, box: Any, settings: Settings, exemplars: list[Any] | None = None
    ) -> Any:
        from video_inst.search.searcher import Query

        return Query(
            exemplars=list(exemplars or []),
            positives=list(self.positives),
            negatives=list(self.negatives),
            hide_weak=self.hide_weak,
            image=image,
            box=box,
            text=self.text,
            track_id=self.track_id,
            top_k=self.top_k or settings.default_top_k,
            min_score=self.min_score,
            video_ids=self.video_ids or None,
            label=self.label,
            time_range=self.time_range,
            offset=self.offset,
        )


class ExportRequest(SearchRequest):
    """``POST /export``: the search body plus the selection (selects, docs/EXPORT.md).

    Without ``picks`` or ``rejects`` the search's page is exported as it is answered.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"anyOf": [NEEDS_TEXT, NEEDS_TRACK, NEEDS_POSITIVES]},
    )

    picks: list[Id] = Field(
        default_factory=list,
        max_length=MAX_SELECTED,
        description="Export only these hits (their track_id), in this order: the selects' rank order. "
        "Looked up among the query's first max_top_k hits, so picks from any page count.",
    )
    rejects: list[Id] = Field(
        default_factory=list,
        max_length=MAX_SELECTED,
        description="Without picks: export the page less these hits (track_id).",
    )
    handles: int = Field(
        0,
        ge=0,
        le=MAX_HANDLES,
        description="Source frames added before and after each range, clamped to the media.",
    )
    span: Literal["detected", "shot"] = Field(
        "detected", description="The range of a hit: the detected span (its track) or the whole shot."
    )
    order: Literal["rank", "time"] = Field(
        "rank", description="rank: the selection's order; time: by source file, then source time."
    )
    layout: Literal["sequence", "markers"] = Field(
        "sequence",
        alias="as",
        description="sequence: a subclip per hit, one after another; markers: one clip per source file "
        "with a ranged marker per hit.",
    )

    def select_options(self) -> Any:
        from video_inst.export import SelectOptions

        return SelectOptions(handles=self.handles, span=self.span, order=self.order, layout=self.layout)


def search_form_schema() -> dict[str, Any]:
    """The multipart form of ``/search`` and ``/export`` (an image, a box and the same fields)."""
    ints = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "Query photo or frame."},
            "box": {"type": "string", "description": "x0,y0,x1,y1 in image pixels (default: whole image)."},
            "text": {"type": "string", "maxLength": 2000},
            "track_id": ints,
            "top_k": {"type": "integer", "minimum": 1},
            "min_score": {"type": "number"},
            "video_ids": {"type": "array", "items": ints, "description": "Repeat the field, or '1,2,3'."},
            "label": {"type": "string", "maxLength": 2000},
            "time_range": {"type": "string", "description": "start_s,end_s"},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "positives": {"type": "array", "items": ints, "description": "Repeat the field, or '1,2,3'."},
            "negatives": {"type": "array", "items": ints, "description": "Repeat the field, or '1,2,3'."},
            "hide_weak": {"type": "boolean"},
        },
        "additionalProperties": False,
        "anyOf": [{"required": ["image"]}, NEEDS_TEXT, NEEDS_TRACK, NEEDS_POSITIVES],
    }


def export_form_schema() -> dict[str, Any]:
    """The multipart form of ``/export``: the search form plus the selection fields."""
    schema = search_form_schema()
    ints = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    schema["properties"].update(
        {
            "picks": {"type": "array", "items": ints, "description": "Repeat the field, or '12,7,30'."},
            "rejects": {"type": "array", "items": ints, "description": "Repeat the field, or '12,7'."},
            "handles": {"type": "integer", "minimum": 0, "maximum": MAX_HANDLES},
            "span": {"type": "string", "enum": ["detected", "shot"]},
            "order": {"type": "string", "enum": ["rank", "time"]},
            "as": {"type": "string", "enum": ["sequence", "markers"]},
        }
    )
    return schema


def limit_top_k(schema: dict[str, Any], max_top_k: int) -> None:
    """Put the server's ``max_top_k`` into the top_k of a search body schema (JSON or form)."""
    top_k = schema.get("properties", {}).get("top_k", {})
    for branch in [top_k, *top_k.get("anyOf", [])]:
        if branch.get("type") == "integer":
            branch["maximum"] = max_top_k


def search_body_openapi(model: str = "SearchRequest") -> dict[str, Any]:
    """``openapi_extra`` of the endpoints that read a search body themselves (JSON or multipart);
    ``model="ExportRequest"`` for ``/export`` (the search body plus the selection)."""
    form = export_form_schema() if model == "ExportRequest" else search_form_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}},
                "multipart/form-data": {"schema": form},
            },
        }
    }


class ShotRefOut(BaseModel):
    index: int
    start_s: float
    end_s: float
    start_tc: str
    end_tc: str


class HitOut(BaseModel):
    """A hit as in the CLI JSON, plus where its thumbnail is."""

    video_id: int
    path: str
    shot: ShotRefOut
    start_s: float
    end_s: float
    keyframe_s: float
    box: list[float] = Field(description="x0, y0, x1, y1 in source pixels at keyframe_s ([] if none)")
    score: float
    track_id: int | None
    mode: str
    labels: list[list[Any]] = Field(description="[[label, probability], ...]")
    keyframe_id: int | None
    weak: bool = Field(False, description="Scored under weak_below: most hits on shots without the object do")
    start_tc: str = Field(
        "",
        description="Source timecode of the span's first frame (every export writes this frame)",
    )
    end_tc: str = Field(
        "", description="Source timecode just after the span's last frame (exclusive, like an EDL out)"
    )
    keyframe_tc: str = Field("", description="Source timecode of the keyframe the box is on")
    rate: str = Field(
        "", description='The rate the timecodes count at: "25", "30000/1001" (12.5 fps sources: "25")'
    )
    drop_frame: bool = Field(False, description="The timecodes are drop-frame (';' before the frames)")
    thumbnail_url: str | None = Field(description="JPEG of the keyframe (None when the hit has none)")


class HitVideoOut(BaseModel):
    """What the page needs to draw a video's timeline and play it."""

    video_id: int
    path: str
    duration_s: float
    width: int
    height: int
    frame_rate: str
    start_timecode: str | None
    media_url: str


class WeakRuleOut(BaseModel):
    """Why hits under ``threshold`` are weak (issue 16 item 4, docs/DASR.md)."""

    threshold: float = Field(description="Hits scoring under this are weak")
    floor: float = Field(description="The mode's absolute threshold, measured on distractor shots")
    relative: float | None = Field(
        description="The fraction of the query's best score that also counts (None: the floor alone)"
    )
    best: float | None = Field(description="The query's best track score")
    why: str = Field(description="The reason, in words, that the page shows on a weak hit")


class SearchResponse(BaseModel):
    hits: list[HitOut]
    mode: str = Field(description="image | text | labels | track | image+text ...")
    notes: list[str]
    spaces: dict[str, str] = Field(
        default_factory=dict, description="Model space that answered, per family (dasr, clip)"
    )
    videos: dict[str, HitVideoOut] = Field(description="The videos of the hits, by video id.")
    weak_below: float | None = Field(
        None,
        description="Hits scoring under this are weak (weak_rule says why; None: no threshold)",
    )
    weak_rule: WeakRuleOut | None = Field(None, description="What set weak_below (None: no threshold)")


class ReportSpanOut(BaseModel):
    shot: int = Field(description="Shot index in its video")
    start_s: float
    end_s: float
    score: float = Field(description="Best score of the tracks merged into this span")


class ReportVideoOut(BaseModel):
    video_id: int
    path: str
    shots: list[int] = Field(description="Indices of the shots where the object appears, in time order")
    screen_time_s: float = Field(description="Length of the union of the counted tracks' spans")
    first_s: float = Field(description="Start of the first appearance")
    last_s: float = Field(description="End of the last appearance")
    first_tc: str = Field(description="first_s as source timecode")
    last_tc: str = Field(description="last_s as source timecode")
    duration_s: float | None
    spans: list[ReportSpanOut] = Field(description="The appearances, merged per shot, in time order")
    media_url: str


class ReportResponse(BaseModel):
    videos: list[ReportVideoOut]
    screen_time_s: float = Field(description="Sum of the videos' screen times")
    threshold: float = Field(
        description="Tracks scoring at or above this were counted: min_score, else the query's weak threshold"
    )
    weak_rule: WeakRuleOut | None = Field(
        None, description="What set the threshold when min_score did not (the search's weak rule)"
    )
    mode: str
    notes: list[str]
    spaces: dict[str, str] = Field(default_factory=dict)


class KeyframeOut(BaseModel):
    keyframe_id: int
    time_s: float
    frame: int
    thumbnail_url: str | None


class ShotOut(BaseModel):
    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    start_tc: str
    end_tc: str
    keyframes: list[KeyframeOut]


class VideoOut(BaseModel):
    video_id: int
    path: str
    status: str
    error: str | None
    content_hash: str | None
    size_bytes: int | None
    container: str | None
    codec: str | None
    width: int | None
    height: int | None
    frame_rate: str | None
    duration_s: float | None
    frame_count: int | None
    start_timecode: str | None
    variable_frame_rate: bool | None
    truncated: bool | None
    warnings: list[Any]
    media_url: str
    counts: dict[str, int] | None = Field(None, description="shots, keyframes, tracks, vectors (detail only)")


class TrackBoxOut(BaseModel):
    keyframe_id: int
    time_s: float
    box: list[float]
    score: float
    thumbnail_url: str | None


class TrackOut(BaseModel):
    track_id: int
    video_id: int
    shot_index: int
    is_frame: bool
    start_s: float
    end_s: float
    score: float
    labels: list[list[Any]]
    best_keyframe_id: int | None
    boxes: list[TrackBoxOut]


class JobOut(BaseModel):
    job_id: str
    kind: str
    status: str
    path: str | None
    video_id: int | None
    parent_id: str | None
    progress: float
    counts: dict[str, Any]
    error: str | None
    callback_url: str | None
    task_id: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)] = Field(
        description="A file under the configured media roots."
    )
    force: bool = Field(False, description="Ingest again even if this content is in the catalog.")
    analyse: bool = Field(True, description="False: shots and keyframes only.")
    callback_url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        None, description="POSTed the job JSON when the job ends."
    )


class DeletedOut(BaseModel):
    deleted: int


class IndexHealth(BaseModel):
    space_id: int
    kind: str
    vectors: int
    state: str = Field("ok", description="'ok', 'healing' (rebuilt from SQL in the background) or 'damaged'")
    problem: str | None = Field(None, description="What was found wrong (missing, corrupt, ids differ)")


class HealthOut(BaseModel):
    status: str
    videos: int
    indexes: list[IndexHealth]
    ingest: str = Field(description="'queue' (Celery workers) or 'thread' (in this process)")


class PreparedImageOut(BaseModel):
    width: int = Field(description="Query image width in pixels (boxes are given in these pixels).")
    height: int
    space: str | None = Field(description="The DASR model space crop searches answer from now.")
    feature_map: str = Field(
        description="'computed' (the network ran), 'cached' (it had run for this image) or 'off' "
        "(the server keeps no feature maps: VIDEO_INST_SEARCH_FEATURE_CACHE=0)."
    )


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the error statuses it documents, all with the JSON error shape."""
    return {status: {"model": ErrorOut} for status in statuses}
