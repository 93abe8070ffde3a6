"""Catalog views: videos, their shots and tracks, one track, delete, and a video's tracks as a file.

Example::

    curl -s localhost:8000/videos/3/shots
    curl -s 'localhost:8000/videos/3/tracks/export?format=fcp7' -o tracks.xml
    curl -s -X DELETE -H 'Authorization: Bearer $TOKEN' localhost:8000/videos/3
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from video_inst.api.deps import ApiState, get_state, require_token, root_of
from video_inst.api.routes.search import _export_responses, attachment
from video_inst.api.schemas import (
    MAX_ID,
    DeletedOut,
    ExportFormat,
    ShotOut,
    TrackOut,
    VideoOut,
    error_responses,
)
from video_inst.api.serialise import box_list, shot_json, track_json, video_json, video_ref
from video_inst.catalog import repo
from video_inst.catalog.models import Keyframe, Shot, Track, TrackBox, Video
from video_inst.config import Settings, get_settings
from video_inst.errors import NotFoundError
from video_inst.spaces.active import active_tracks

router = APIRouter(tags=["catalog"])

VideoId = Annotated[int, Path(ge=1, le=MAX_ID, description="Catalog id of the video")]
TrackId = Annotated[int, Path(ge=1, le=MAX_ID, description="Catalog id of the track")]


def get_video(session: Session, video_id: int) -> Video:
    video = session.get(Video, video_id)
    if video is None:
        raise NotFoundError(f"no video {video_id} in the catalog")
    return video


@router.get("/videos", response_model=list[VideoOut])
def list_videos(
    request: Request,
    state: ApiState = Depends(get_state),
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[dict[str, Any]]:
    root = root_of(request)
    with state.catalog.session() as s:
        rows = s.scalars(select(Video).order_by(Video.id).limit(limit).offset(offset))
        return [video_json(v, root) for v in rows]


@router.get("/videos/{video_id}", response_model=VideoOut, responses=error_responses(404, 422))
def read_video(video_id: VideoId, request: Request, state: ApiState = Depends(get_state)) -> dict[str, Any]:
    with state.catalog.session() as s:
        video = get_video(s, video_id)
        counts = repo.counts(s, video_id=video.id, tracks=active_tracks(s, state.settings))
        return video_json(video, root_of(request), counts=counts)


@router.delete(
    "/videos/{video_id}",
    response_model=DeletedOut,
    dependencies=[Depends(require_token)],
    responses=error_responses(401, 404, 422),
)
def delete_video(video_id: VideoId, state: ApiState = Depends(get_state)) -> dict[str, int]:
    """Delete the video with its shots, tracks, vectors and thumbnails (the media file stays)."""
    from video_inst.ingest.pipeline import delete_video as delete

    with state.catalog.session() as s:
        get_video(s, video_id)
    return {"deleted": delete(video_id, settings=state.settings, catalog=state.catalog)}


@router.get("/videos/{video_id}/shots", response_model=list[ShotOut], responses=error_responses(404, 422))
def list_shots(
    video_id: VideoId, request: Request, state: ApiState = Depends(get_state)
) -> list[dict[str, Any]]:
    root = root_of(request)
    with state.catalog.session() as s:
        video = get_video(s, video_id)
        return [shot_json(video, shot, root) for shot in repo.list_shots(s, video_id=video.id)]


def _boxes_of(session: Session, track_ids: list[int]) -> dict[int, list[tuple[TrackBox, Keyframe]]]:
    out: dict[int, list[tuple[TrackBox, Keyframe]]] = {t: [] for t in track_ids}
    if not track_ids:
        return out
    rows = session.execute(
        select(TrackBox, Keyframe)
        .join(Keyframe, Keyframe.id == TrackBox.keyframe_id)
        .where(TrackBox.track_id.in_(track_ids))
        .order_by(Keyframe.time_s)
    )
    for box, keyframe in rows:
        out[box.track_id].append((box, keyframe))
    return out


def _tracks(session: Session, video_id: int, frames: bool, settings: Settings) -> list[tuple[Track, int]]:
    """The video's tracks in the DASR space that answers searches (one space at a time)."""
    query = (
        select(Track, Shot.index)
        .join(Shot, Shot.id == Track.shot_id)
        .where(Track.video_id == video_id, active_tracks(session, settings))
        .order_by(Track.start_s, Track.id)
    )
    if not frames:
        query = query.where(Track.is_frame.is_(False))
    return [(t, int(i)) for t, i in session.execute(query)]


@router.get("/videos/{video_id}/tracks", response_model=list[TrackOut], responses=error_responses(404, 422))
def list_tracks(
    video_id: VideoId,
    request: Request,
    state: ApiState = Depends(get_state),
    frames: Annotated[bool, Query(description="Include the whole-frame pseudo tracks")] = False,
) -> list[dict[str, Any]]:
    root = root_of(request)
    with state.catalog.session() as s:
        get_video(s, video_id)
        tracks = _tracks(s, video_id, frames, state.settings)
        boxes = _boxes_of(s, [t.id for t, _ in tracks])
        return [track_json(t, index, boxes[t.id], root) for t, index in tracks]


@router.get("/tracks/{track_id}", response_model=TrackOut, responses=error_responses(404, 422))
def read_track(track_id: TrackId, request: Request, state: ApiState = Depends(get_state)) -> dict[str, Any]:
    with state.catalog.session() as s:
        track = s.get(Track, track_id)
        if track is None:
            raise NotFoundError(f"no track {track_id} in the catalog")
        shot_index = s.scalar(select(Shot.index).where(Shot.id == track.shot_id))
        return track_json(track, int(shot_index or 0), _boxes_of(s, [track.id])[track.id], root_of(request))


def track_rows(session: Session, video_id: int, settings: Settings | None = None) -> list[Any]:
    """Every object track of a video (active DASR space) as export rows: span, best view, labels."""
    from video_inst.export import TrackRow

    tracks = _tracks(session, video_id, frames=False, settings=settings or get_settings())
    boxes = _boxes_of(session, [t.id for t, _ in tracks])
    rows = []
    for track, _ in tracks:
        views = boxes[track.id]
        best = next((v for v in views if v[1].id == track.best_keyframe_id), views[0] if views else None)
        rows.append(
            TrackRow(
                track_id=track.id,
                start_s=track.start_s,
                end_s=track.end_s,
                keyframe_s=best[1].time_s if best else track.start_s,
                box=box_list(best[0]) if best else [],
                labels=list(track.labels or []),
                score=float(track.score or 0.0),
            )
        )
    return rows


@router.get(
    "/videos/{video_id}/tracks/export",
    response_class=Response,
    responses={**_export_responses(), **error_responses(404, 422)},
    summary="A video's tracks as markers on one clip (OTIO, EDL, FCPXML, FCP7 XML or CSV)",
)
def export_tracks(
    video_id: VideoId,
    format: Annotated[ExportFormat, Query(description="File format")],
    state: ApiState = Depends(get_state),
) -> Response:
    from pathlib import Path as FsPath

    from video_inst.export import export_tracks as export

    with state.catalog.session() as s:
        video = get_video(s, video_id)
        ref = video_ref(video)
        rows = track_rows(s, video_id, state.settings)
    title = f"{FsPath(ref.path).stem} tracks"
    return attachment(export(ref, rows, format, title=title), format, title)
