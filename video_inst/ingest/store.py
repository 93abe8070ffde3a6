"""Writes a video's analysed chunks (plain ``AnalysisData``) into the catalog, in the caller's transaction.

Tracks, their boxes and labels, DASR region / track vectors (and every whitened copy of
that DASR space), CLIP frame / track vectors, and the ``video_spaces`` marks. It needs
no model: the chunk names the spaces that made it, so a commit worker never loads one.

Example::

    with catalog.session() as s:
        tracks, spaces = store_analysis_data(s, analyses, video=video, keyframe_rows=rows, settings=settings)
    for space_id, kind in sorted(spaces):
        get_index_store(settings).sync(space_id, kind)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from video_inst.analysis.data import AnalysisData, TrackData
from video_inst.catalog import repo
from video_inst.config import Settings


def store_analysis_data(
    session: Any,
    analyses: Sequence[AnalysisData],
    *,
    video: Any,
    keyframe_rows: dict[int, Any],
    settings: Settings,
) -> tuple[int, set[tuple[int, str]]]:
    """(tracks stored, the (space id, kind) indexes to sync after the commit)."""
    from video_inst.catalog.models import Label, Track, TrackBox
    from video_inst.spaces.whitened import add_whitened_vectors
    from video_inst.vectors.store import get_index_store

    if not analyses:
        return 0, set()
    store = get_index_store(settings)
    first = analyses[0]
    dasr_space = store.ensure_space(
        session, name=first.dasr.name, family="dasr", dim=first.dasr.dim, params=first.dasr.params
    )
    shots = {s.index: s for s in video.shots}
    finished = [t for a in analyses for t in a.tracks]
    rows = [
        Track(
            video_id=video.id,
            shot_id=shots[t.shot_index].id,
            is_frame=t.is_frame,
            start_s=t.start_s,
            end_s=t.end_s,
            space_id=dasr_space.id,
            best_keyframe_id=keyframe_rows[t.keyframe_pts[t.best]].id,
            score=float(max(t.scores)),
            labels=[[name, prob] for name, prob in t.labels],
        )
        for t in finished
    ]
    session.add_all(rows)
    session.flush()
    track_rows: list[tuple[TrackData, Any, list[Any]]] = []
    for t, row in zip(finished, rows):
        boxes = [
            TrackBox(
                track_id=row.id,
                keyframe_id=keyframe_rows[pts].id,
                x0=float(b[0]),
                y0=float(b[1]),
                x1=float(b[2]),
                y1=float(b[3]),
                score=s,
            )
            for pts, b, s in zip(t.keyframe_pts, t.boxes, t.scores)
        ]
        session.add_all(boxes)
        session.add_all(
            [Label(track_id=row.id, rank=r, label=name, prob=prob) for r, (name, prob) in enumerate(t.labels)]
        )
        track_rows.append((t, row, boxes))
    session.flush()
    spaces: set[tuple[int, str]] = set()
    by_kind: dict[str, tuple[list[int], np.ndarray]] = {}
    if track_rows:
        if settings.region_vectors in ("best", "mean"):
            # One vector per track, under its best view's box: the views of a track are near copies
            # of each other in the region index (scripts/eval_region_density.py, docs/VECTORS.md).
            box_ids = [boxes[t.best].id for t, _, boxes in track_rows]
            mean = settings.region_vectors == "mean"
            box_vecs = np.stack([t.representative if mean else t.vectors[t.best] for t, _, _ in track_rows])
        else:
            box_ids = [b.id for _, _, boxes in track_rows for b in boxes]
            box_vecs = np.concatenate([t.vectors for t, _, _ in track_rows])
        store.add_vectors(session, dasr_space, "region", box_ids, [video.id] * len(box_ids), box_vecs)
        track_vecs = np.stack([t.representative for t, _, _ in track_rows])
        track_ids = [row.id for _, row, _ in track_rows]
        store.add_vectors(session, dasr_space, "track", track_ids, [video.id] * len(track_ids), track_vecs)
        spaces |= {(dasr_space.id, "region"), (dasr_space.id, "track")}
        by_kind = {"region": (box_ids, box_vecs), "track": (track_ids, track_vecs)}
    repo.mark_video_space(session, video_id=video.id, space_id=dasr_space.id, status="done")
    spaces |= add_whitened_vectors(session, store, dasr_space, video.id, by_kind)  # docs/VECTORS.md
    if first.clip is not None:
        clip_space = store.ensure_space(
            session, name=first.clip.name, family="clip", dim=first.clip.dim, params=first.clip.params
        )
        # A DASR re-index of a video CLIP already covers adds only the new tracks' vectors:
        # frame vectors belong to keyframes, which a re-index keeps.
        had_frames = repo.video_space_status(session, video_id=video.id, space_id=clip_space.id) == "done"
        frames: dict[int, np.ndarray] = {}
        if not had_frames:
            for a in analyses:
                if a.frame_vectors is not None:
                    frames.update(zip(a.frame_pts, a.frame_vectors))
        if frames:
            frame_ids = [keyframe_rows[p].id for p in frames]
            store.add_vectors(
                session,
                clip_space,
                "frame",
                frame_ids,
                [video.id] * len(frame_ids),
                np.stack(list(frames.values())),
            )
            spaces.add((clip_space.id, "frame"))
        with_vec = [(row.id, t.clip_vector) for t, row, _ in track_rows if t.clip_vector is not None]
        if with_vec:
            store.add_vectors(
                session,
                clip_space,
                "track",
                [i for i, _ in with_vec],
                [video.id] * len(with_vec),
                np.stack([v for _, v in with_vec]),
            )
            spaces.add((clip_space.id, "track"))
        repo.mark_video_space(session, video_id=video.id, space_id=clip_space.id, status="done")
    elif first.clip_missing is not None:
        # Recorded so `video-inst reindex --space clip` knows which videos still need CLIP vectors.
        missing = first.clip_missing
        clip_space = store.ensure_space(
            session, name=missing.name, family="clip", dim=missing.dim, params=missing.params
        )
        if repo.video_space_status(session, video_id=video.id, space_id=clip_space.id) != "done":
            repo.mark_video_space(
                session,
                video_id=video.id,
                space_id=clip_space.id,
                status="missing",
                note=first.clip_missing_reason,
            )
    return len(track_rows), spaces


def store_analyses(
    session: Any, analyses: Sequence[Any], *, video: Any, keyframe_rows: dict[int, Any]
) -> int:
    """Write live ``VideoAnalysis`` chunks (re-indexing runs them in process) in the caller's transaction."""
    from video_inst.analysis.analyser import analysis_data

    if not analyses:
        return 0
    tracks, spaces = store_analysis_data(
        session,
        [analysis_data(a) for a in analyses],
        video=video,
        keyframe_rows=keyframe_rows,
        settings=analyses[0].analyser.settings,
    )
    for a in analyses:
        a._spaces = sorted(spaces)
    return tracks
