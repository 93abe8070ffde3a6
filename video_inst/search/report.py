"""An appearance report for a query: where, and for how long, the object is on screen.

The numbers come from track spans (a track's keyframes, each standing for the time up to
halfway to its neighbours in the shot, ``analysis.analyser.coverage_span``) of every track
scoring at or above the report's threshold: the query's ``min_score`` when given, else the
query's weak-score threshold, the one rule that marks its hits weak (``searcher.weak_rule``,
issue 16 item 4, docs/DASR.md). Per video: the shots holding such a track, the screen time (the
length of the union of the spans: two tracks of one moment count once), the first and the
last moment of appearance; overall: the sum of the videos' screen times.

Example::

    from video_inst.search.report import appearance_report
    from video_inst.search.searcher import Query
    report = appearance_report(Query(image=rgb, box=(200, 0, 500, 360)))
    for v in report.videos:
        print(v.path, v.shots, v.screen_time_s, v.first_s, v.last_s)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from video_inst.catalog.models import Shot, Video
from video_inst.config import Settings
from video_inst.errors import InvalidQueryError
from video_inst.search.searcher import Query, ScoredTracks, Searcher, TrackScore, WeakRule, shared_searcher

TIME_DECIMALS = 3
CSV_COLUMNS = ("video_id", "path", "shots", "screen_time_s", "first_s", "last_s", "first_tc", "last_tc")


@dataclass(frozen=True)
class Span:
    """A stretch of one shot where the object is on screen (merged track spans)."""

    shot: int  # shot index in its video
    start_s: float
    end_s: float
    score: float  # the best score of the tracks merged into it


@dataclass
class VideoAppearance:
    video_id: int
    path: str
    duration_s: float | None
    shots: list[int]  # shot indices, in time order
    screen_time_s: float  # length of the union of the spans
    first_s: float  # start of the first appearance
    last_s: float  # end of the last appearance
    first_tc: str = ""
    last_tc: str = ""
    spans: list[Span] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "shots": list(self.shots),
            "screen_time_s": self.screen_time_s,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "first_tc": self.first_tc,
            "last_tc": self.last_tc,
            "duration_s": self.duration_s,
            "spans": [
                {"shot": s.shot, "start_s": s.start_s, "end_s": s.end_s, "score": s.score} for s in self.spans
            ],
        }


@dataclass
class AppearanceReport:
    videos: list[VideoAppearance]  # by first appearance's video id order (catalog order)
    screen_time_s: float  # sum over the videos
    threshold: float  # tracks scoring at or above this were counted
    mode: str
    notes: list[str] = field(default_factory=list)
    spaces: dict[str, str] = field(default_factory=dict)
    weak_rule: WeakRule | None = None  # what set the threshold (None: the query's min_score did)

    def to_json(self) -> dict[str, Any]:
        return {
            "videos": [v.to_json() for v in self.videos],
            "screen_time_s": self.screen_time_s,
            "threshold": self.threshold,
            "weak_rule": self.weak_rule.to_json() if self.weak_rule else None,
            "mode": self.mode,
            "notes": list(self.notes),
            "spaces": dict(self.spaces),
        }

    def to_csv(self) -> str:
        """One row per video (shots space-separated), then an ``all`` row with the overall figure."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for v in self.videos:
            writer.writerow(
                [
                    v.video_id,
                    v.path,
                    " ".join(map(str, v.shots)),
                    f"{v.screen_time_s:.3f}",
                    f"{v.first_s:.3f}",
                    f"{v.last_s:.3f}",
                    v.first_tc,
                    v.last_tc,
                ]
            )
        shots = sum(len(v.shots) for v in self.videos)
        writer.writerow(["all", "", shots, f"{self.screen_time_s:.3f}", "", "", "", ""])
        return out.getvalue()


def merge_spans(tracks: Iterable[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """(start, end, score) intervals → their union as disjoint (start, end, best score), in time order.

    Touching intervals merge (a track ending where another starts is one appearance).
    """
    merged: list[list[float]] = []
    for start, end, score in sorted(tracks):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = max(merged[-1][2], score)
        else:
            merged.append([start, end, score])
    return [(a, b, s) for a, b, s in merged]


def report_threshold(query: Query, scored: ScoredTracks) -> float:
    """The query's ``min_score`` when given, else the query's weak-score threshold (``weak_rule``:
    the mode's measured floor, or a fraction of the query's best score when that is higher)."""
    if query.min_score is not None:
        return float(query.min_score)
    if scored.weak_below is not None:
        return float(scored.weak_below)
    raise InvalidQueryError(
        f"no score threshold is measured for {scored.mode} queries (docs/DASR.md): "
        "give min_score to say which hits count as appearances"
    )


def build_report(
    scored: ScoredTracks,
    threshold: float,
    shot_index: dict[int, int],
    videos: dict[int, tuple[str, float | None]],
    timecode: Any = None,
) -> AppearanceReport:
    """The report from scored tracks (pure: no catalog). ``shot_index``: shot id → index in its video;
    ``videos``: video id → (path, duration_s); ``timecode(video_id, seconds)`` → SMPTE text, optional."""
    by_video: dict[int, dict[int, list[TrackScore]]] = {}
    for t in scored.tracks:
        if t.score >= threshold:
            by_video.setdefault(t.video_id, {}).setdefault(t.shot_id, []).append(t)
    out = []
    for video_id in sorted(by_video):
        spans: list[Span] = []
        for shot_id, tracks in by_video[video_id].items():
            for a, b, s in merge_spans((t.start_s, t.end_s, t.score) for t in tracks):
                spans.append(Span(shot_index[shot_id], round(a, 6), round(b, 6), s))
        spans.sort(key=lambda s: (s.start_s, s.shot))
        # Shots never overlap, so the union over the video is the sum of each shot's union; a
        # merge across the whole video would join two shots' spans only where they touch.
        whole = merge_spans((s.start_s, s.end_s, s.score) for s in spans)
        path, duration = videos[video_id]
        first, last = whole[0][0], whole[-1][1]
        out.append(
            VideoAppearance(
                video_id=video_id,
                path=path,
                duration_s=duration,
                shots=sorted({s.shot for s in spans}),
                screen_time_s=round(sum(b - a for a, b, _ in whole), TIME_DECIMALS),
                first_s=round(first, TIME_DECIMALS),
                last_s=round(last, TIME_DECIMALS),
                first_tc=timecode(video_id, first) if timecode else "",
                last_tc=timecode(video_id, last) if timecode else "",
                spans=spans,
            )
        )
    notes = list(scored.notes)
    if scored.may_be_cut(threshold):
        notes.append(
            f"the index's {scored.fetch}th result per query vector still scored above the threshold "
            f"{threshold}: the report may miss tracks (raise min_score, or restrict video_ids)"
        )
    return AppearanceReport(
        videos=out,
        screen_time_s=round(sum(v.screen_time_s for v in out), TIME_DECIMALS),
        threshold=threshold,
        mode=scored.mode,
        notes=notes,
        spaces=dict(scored.spaces),
        weak_rule=scored.weak_rule if scored.weak_rule and scored.weak_rule.threshold == threshold else None,
    )


def appearance_report(
    query: Query, *, settings: Settings | None = None, searcher: Searcher | None = None
) -> AppearanceReport:
    """Run ``query`` over the catalog and report where its object appears (see the module docstring)."""
    searcher = searcher or shared_searcher(settings)
    scored = searcher.scored_tracks(query)
    threshold = report_threshold(query, scored)
    shot_ids = {t.shot_id for t in scored.tracks if t.score >= threshold}
    video_ids = {t.video_id for t in scored.tracks if t.score >= threshold}
    from video_inst.media.timecode import smpte_for_video

    with searcher.catalog.session() as s:
        shot_index: dict[int, int] = {}
        if shot_ids:
            shot_index = dict(s.execute(select(Shot.id, Shot.index).where(Shot.id.in_(shot_ids))).all())
        rows = list(s.scalars(select(Video).where(Video.id.in_(video_ids)))) if video_ids else []
        videos = {v.id: (v.path, v.duration_s) for v in rows}
        by_id = {v.id: v for v in rows}
        return build_report(
            scored,
            threshold,
            shot_index,
            videos,
            timecode=lambda video_id, seconds: smpte_for_video(by_id[video_id], seconds),
        )
