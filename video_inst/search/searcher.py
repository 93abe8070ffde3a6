"""Query → ranked shots. One function serves the CLI and the HTTP API.

Modes:
- ``image``: a crop (image + optional box) pooled by DASR exactly like database regions,
  searched against region vectors; hits of one track collapse into one, then one per shot.
- ``track``: "more like this", a stored track's DASR vector as the query.
- ``text``: CLIP text vector against CLIP track and frame vectors, merged per shot.
- ``labels``: text answered from ImageNet labels when no CLIP vectors exist.
- ``image+text``: reciprocal-rank fusion of the image and the text rankings.

Each family answers from one model space, chosen by ``spaces.active.active_space`` (the configured
model's space once it covers every video, an older complete one while a re-index runs);
tracks of other DASR spaces never appear, and ``SearchResult.spaces`` names the spaces used.

Example::

    from video_inst.search.searcher import Query, search
    result = search(Query(image=rgb, box=(10, 20, 200, 180), top_k=10))
    for hit in result.hits:
        print(hit.video_id, hit.shot.index, hit.score)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Numeric, cast, func, literal, select, union_all
from sqlalchemy.orm import Session

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import Keyframe, Label, ModelSpace, Shot, Track, TrackBox, Vector, Video
from video_inst.catalog.rows import video_ref
from video_inst.config import Settings, get_settings
from video_inst.errors import InvalidQueryError, NotFoundError, VideoInstError
from video_inst.hits import Hit, ShotRef
from video_inst.search.label_postings import RANK_DECIMALS, PostingsCache
from video_inst.spaces.active import SpaceChoice, active_space, track_filter

RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
SCORE_DECIMALS = 6
# Index results per query vector an appearance report counts (Searcher.scored_tracks).
REPORT_FETCH = 10_000


def shown_score(score: float) -> float:
    """The score a hit shows; ``min_score`` filters on this same value, so a hit shown at
    0.5 passes ``min_score=0.5`` even when its unrounded score was 0.4999996."""
    return round(float(score), SCORE_DECIMALS)


@dataclass
class Query:
    image: np.ndarray | None = None  # RGB uint8
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in query-image pixels
    text: str | None = None
    track_id: int | None = None
    top_k: int = 20
    min_score: float | None = None
    video_ids: list[int] | None = None
    label: str | None = None
    time_range: tuple[float, float] | None = None
    offset: int = 0
    # More views of the same object (multi-exemplar): each (image, box or None) is embedded like
    # ``image`` and a region keeps its best score over all of them.
    exemplars: list[tuple[np.ndarray, tuple[float, float, float, float] | None]] = field(default_factory=list)
    # Relevance feedback: track ids an editor marked right / wrong (Rocchio, docs/DASR.md).
    positives: list[int] = field(default_factory=list)
    negatives: list[int] = field(default_factory=list)
    hide_weak: bool = False  # drop hits below the query's weak threshold (weak_rule) instead of marking them
    # Stored DASR query vectors (a saved search) and the model space they were embedded in.
    vectors: list[np.ndarray] = field(default_factory=list)
    vectors_space: str | None = None

    def has_dasr_query(self) -> bool:
        return bool(self.image is not None or self.exemplars or self.positives or self.vectors)

    def validate(self, settings: Settings) -> None:
        if not self.has_dasr_query() and not (self.text and self.text.strip()) and self.track_id is None:
            raise InvalidQueryError("a query needs an image, a text, a track id or hits marked right")
        if self.box is not None and self.image is None:
            raise InvalidQueryError("a box needs an image to cut it from")
        if set(self.positives) & set(self.negatives):
            raise InvalidQueryError("a track cannot be marked both right and wrong")
        if len(self.positives) + len(self.negatives) > 1000 or len(self.exemplars) > 32:
            raise InvalidQueryError("at most 1000 marked tracks and 32 exemplar images per query")
        if not 1 <= self.top_k <= settings.max_top_k:
            raise InvalidQueryError(f"top_k must be between 1 and {settings.max_top_k}")
        if self.offset < 0:
            raise InvalidQueryError("offset must be >= 0")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            h, w = self.image.shape[:2]  # type: ignore[union-attr]
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise InvalidQueryError(
                    f"box {list(self.box)} is not inside the {w}x{h} image with x0<x1, y0<y1"
                )
        if self.time_range is not None and self.time_range[0] > self.time_range[1]:
            raise InvalidQueryError("time_range start is after its end")


def weak_threshold(mode: str, settings: Settings) -> float | None:
    """The score below which a hit of ``mode`` is "weak": most hits on shots without the object
    score under it (measured on distractor shots, scripts/eval_feedback.py, docs/DASR.md).

    DASR cosines (image, track, saved vectors) share one threshold, label sums another; CLIP
    text and fused (RRF) scores have none measured, so no hit of theirs is marked.
    """
    if mode in DASR_MODES:
        return settings.weak_score_dasr
    if mode == "labels":
        return settings.weak_score_labels
    return None


DASR_MODES = ("image", "track", "image+track", "feedback")


@dataclass(frozen=True)
class WeakRule:
    """The score a query's hits are held to, and what set it: the one rule that marks hits weak
    and that the appearance report counts by (issue 16 item 4, docs/DASR.md)."""

    threshold: float  # hits scoring under this are weak; report tracks at or above it count
    floor: float  # the mode's measured absolute threshold (weak_threshold)
    relative: float | None = None  # the fraction of the query's best score that also counts
    best: float | None = None  # the query's best track score

    def why(self) -> str:
        """Why a hit under the threshold is weak, in an editor's words."""
        if self.relative is not None and self.best is not None and self.threshold > self.floor:
            return (
                f"scores under {self.threshold:g}: {self.relative:g} x this query's best match "
                f"({self.best:g}); hits that far below the best were mostly other shots (docs/DASR.md)"
            )
        return (
            f"scores under {self.floor:g}, where most hits on shots without the object score "
            "(measured on distractor shots, docs/DASR.md)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "floor": self.floor,
            "relative": self.relative,
            "best": self.best,
            "why": self.why(),
        }


def weak_rule(mode: str, settings: Settings, best: float | None) -> WeakRule | None:
    """The query's weak-score rule: the mode's measured threshold, raised for DASR modes to
    ``weak_relative_dasr`` x the query's best track score when that is higher (a hit far under
    the query's own best match is rarely the object: chosen on the hard protocol's TUNING split,
    scripts/eval_trust.py). None where no threshold is measured (CLIP text, fused rankings)."""
    floor = weak_threshold(mode, settings)
    if floor is None:
        return None
    relative = settings.weak_relative_dasr if mode in DASR_MODES else None
    if relative is None or best is None:
        return WeakRule(threshold=floor, floor=floor)
    best = shown_score(best)
    return WeakRule(
        threshold=max(floor, shown_score(relative * best)), floor=floor, relative=relative, best=best
    )


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str
    notes: list[str] = field(default_factory=list)
    spaces: dict[str, str] = field(default_factory=dict)  # family -> model space that answered
    weak_below: float | None = None  # the threshold that marked hits weak (None: none for this mode)
    weak_rule: WeakRule | None = None  # what set weak_below (floor, relative part, best score)
    query_vectors: list[np.ndarray] = field(
        default_factory=list
    )  # the DASR vectors searched (saved searches)

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": [h.to_json() for h in self.hits],
            "mode": self.mode,
            "notes": self.notes,
            "spaces": self.spaces,
            "weak_below": self.weak_below,
            "weak_rule": self.weak_rule.to_json() if self.weak_rule else None,
        }


@dataclass(frozen=True)
class TrackScore:
    """One scored track of :meth:`Searcher.scored_tracks`: where it is and its shown score."""

    track_id: int
    video_id: int
    shot_id: int
    start_s: float
    end_s: float
    score: float


@dataclass
class ScoredTracks:
    """Every track a query scores (filters applied, no per-shot collapse), best first."""

    tracks: list[TrackScore]
    mode: str
    notes: list[str] = field(default_factory=list)
    spaces: dict[str, str] = field(default_factory=dict)
    weak_below: float | None = None  # the query's weak-score threshold (weak_rule)
    weak_rule: WeakRule | None = None
    lowest_fetched: float | None = None  # the lowest score the index returned (before filters)
    fetch: int = 0  # index results asked for per query vector

    def may_be_cut(self, threshold: float) -> bool:
        """True when the index's last result still scored at or above ``threshold``: more tracks
        above it may exist beyond the ``fetch`` asked for."""
        return self.lowest_fetched is not None and self.lowest_fetched >= threshold and self.fetch > 0


@dataclass
class _Candidate:
    """A scored track (with the view that matched) before it becomes a Hit."""

    track_id: int
    score: float
    box_id: int | None = None  # the matching view; None = the track's best view
    keyframe_id: int | None = None  # a frame hit


@dataclass
class _Ranked:
    """What ``Searcher._rank`` found: scored candidates and how the query was answered."""

    candidates: list[_Candidate]
    mode: str
    notes: list[str]
    spaces: dict[str, str]
    rule: WeakRule | None
    dasr_space: int | None
    vectors: list[np.ndarray]

    @property
    def threshold(self) -> float | None:
        return self.rule.threshold if self.rule else None

    def note_whitened(self, session: Session) -> None:
        if session.info.get("dasr_whitened"):
            self.spaces["dasr"] = session.info["dasr_whitened"]  # a whitened copy of the DASR space answered


def _owners(session: Session, vector_ids: Iterable[int]) -> dict[int, int]:
    ids = list(vector_ids)
    if not ids:
        return {}
    rows = session.execute(select(Vector.id, Vector.owner_id).where(Vector.id.in_(ids)))
    return {vid: owner for vid, owner in rows}


def _region_candidates(session: Session, hits: list[tuple[int, float]]) -> list[_Candidate]:
    """Region-vector hits → best view per track."""
    owners = _owners(session, (v for v, _ in hits))
    box_ids = list(set(owners.values()))
    track_of = (
        dict(session.execute(select(TrackBox.id, TrackBox.track_id).where(TrackBox.id.in_(box_ids))).all())
        if box_ids
        else {}
    )
    best: dict[int, _Candidate] = {}
    for vector_id, score in hits:
        box_id = owners.get(vector_id)
        track_id = track_of.get(box_id) if box_id is not None else None
        if track_id is None:
            continue  # index briefly ahead of SQL (a delete in flight): skip, never invent
        if track_id not in best or score > best[track_id].score:
            best[track_id] = _Candidate(track_id=track_id, score=float(score), box_id=box_id)
    return list(best.values())


class Searcher:
    """Holds the models and index store a process searches with (loaded lazily, once)."""

    def __init__(
        self,
        settings: Settings | None = None,
        catalog: Catalog | None = None,
        *,
        dasr: Any | None = None,
        clip: Any | None = None,
    ) -> None:
        """``dasr`` / ``clip`` override the models the settings name (tests pass random CLIP)."""
        self.settings = settings or get_settings()
        self.catalog = catalog or get_catalog(self.settings)
        self._dasr: Any = dasr
        self._clip: Any = clip
        self._clip_reason: str | None = None
        self._clip_loaded = clip is not None
        self._labels: Any = None
        # The label matcher's lazy load: the API searches from a thread pool, and two first
        # requests must not each load it (the models' own cache is models.loading's).
        self._load_lock = threading.Lock()
        # In-memory label ranking (search/label_postings.py): the API sets it, the CLI ranks in SQL.
        self.label_postings: PostingsCache | None = None

    # --- lazily loaded parts ---------------------------------------------------------
    @property
    def store(self) -> Any:
        from video_inst.vectors.store import get_index_store

        return get_index_store(self.settings)

    @property
    def dasr(self) -> Any:
        """The configured DASR extractor: the one passed in, else the process's shared one."""
        if self._dasr is None:
            from video_inst.models.loading import shared_dasr

            self._dasr = shared_dasr(self.settings)
        return self._dasr

    @property
    def clip(self) -> Any:
        """The configured CLIP embedder (None when its weights are missing), shared like DASR."""
        if not self._clip_loaded:
            from video_inst.models.loading import shared_clip

            self._clip, self._clip_reason = shared_clip(self.settings)
            self._clip_loaded = True
        return self._clip

    @property
    def labels(self) -> Any:
        if self._labels is None:
            with self._load_lock:
                if self._labels is None:
                    from video_inst.models.labels import LabelMatcher

                    self._labels = LabelMatcher.load(self.settings, lazy=True)
        return self._labels

    # --- the front door ----------------------------------------------------------------
    def search(self, query: Query) -> SearchResult:
        query.validate(self.settings)
        want = query.offset + query.top_k
        fetch = min(max(want * 10, 100), 10_000)
        with self.catalog.session() as s:
            ranked = self._rank(s, query, fetch)
            hits = self._to_hits(
                s, ranked.candidates, query, ranked.mode, ranked.dasr_space, ranked.threshold
            )
            ranked.note_whitened(s)
        return SearchResult(
            hits=hits[query.offset : want],
            mode=ranked.mode,
            notes=ranked.notes,
            spaces=ranked.spaces,
            weak_below=ranked.threshold,
            weak_rule=ranked.rule,
            query_vectors=ranked.vectors,
        )

    def scored_tracks(self, query: Query, *, fetch: int = REPORT_FETCH) -> ScoredTracks:
        """Every track the query scores (up to ``fetch`` index results per query vector), with
        the search's filters applied but no per-shot collapse, best first: what an appearance
        report (``search/report.py``) counts. ``top_k``, ``offset`` and ``hide_weak`` are not used."""
        query.validate(self.settings)
        with self.catalog.session() as s:
            ranked = self._rank(s, query, fetch)
            passing = self._passing(s, ranked.candidates, query, ranked.dasr_space)
            ranked.note_whitened(s)
        rows = [
            TrackScore(
                track.id, track.video_id, track.shot_id, track.start_s, track.end_s, shown_score(c.score)
            )
            for c, track in passing
        ]
        return ScoredTracks(
            tracks=rows,
            mode=ranked.mode,
            notes=ranked.notes,
            spaces=ranked.spaces,
            weak_below=ranked.threshold,
            weak_rule=ranked.rule,
            lowest_fetched=min((c.score for c in ranked.candidates), default=None),
            fetch=fetch,
        )

    def _rank(self, s: Session, query: Query, fetch: int) -> _Ranked:
        """The query's scored candidates (tracks, before filters), its mode, notes and spaces."""
        notes: list[str] = []
        used: dict[str, str] = {}
        dasr = self._active(s, "dasr")
        if dasr.space_id is not None:
            used["dasr"] = dasr.name  # type: ignore[assignment]
            if dasr.note:
                notes.append(dasr.note)
        rankings: list[tuple[str, list[_Candidate]]] = []
        feedback = _Feedback.load(s, query, dasr) if (query.positives or query.negatives) else None
        vectors: list[np.ndarray] = []
        if query.track_id is not None:
            rankings.append(("track", self._by_track(s, query, fetch, dasr, feedback, vectors)))
        if (
            query.image is not None
            or query.exemplars
            or query.vectors
            or (query.positives and query.track_id is None)
        ):
            mode = "image" if (query.image is not None or query.exemplars) else "feedback"
            rankings.append((mode, self._by_image(s, query, fetch, dasr, feedback, vectors)))
        if query.text and query.text.strip():
            mode, candidates = self._by_text(s, query, fetch, notes, dasr, used)
            rankings.append((mode, candidates))
        if len(rankings) == 1:
            mode, candidates = rankings[0]
        else:
            mode = "+".join(m for m, _ in rankings)
            candidates = _rrf_by_shot(s, [c for _, c in rankings])
        if feedback is not None and feedback.negatives:
            candidates = [c for c in candidates if c.track_id not in feedback.negatives]
        return _Ranked(
            candidates=candidates,
            mode=mode,
            notes=notes,
            spaces=used,
            # The query's best track (before the search's filters): the same in a search and
            # in its report, whatever the page size, so both hold hits to one threshold.
            rule=weak_rule(mode, self.settings, max((c.score for c in candidates), default=None)),
            dasr_space=dasr.space_id,
            vectors=vectors,
        )

    def prepare_image(self, image: np.ndarray) -> tuple[str | None, str]:
        """Compute a query image's feature map ahead of its crop searches: (space name, status).

        The model is the one crop searches would use now (the answering DASR space's);
        status is ``DasrExtractor.prepare_query``'s ("computed", "cached", "off").
        """
        with self.catalog.session() as s:
            dasr = self._active(s, "dasr")
        model = self._model(dasr) if dasr.space_id is not None else self.dasr
        return (dasr.name if dasr.space_id is not None else model.space_name), model.prepare_query(image)

    # --- model spaces ----------------------------------------------------------------------
    def _active(self, session: Session, family: str) -> SpaceChoice:
        """The space of ``family`` that answers now; an explicitly passed model names the configured one."""
        explicit = self._dasr if family == "dasr" else (self._clip if self._clip_loaded else None)
        configured = explicit.space_name if explicit is not None else None
        return active_space(session, family, self.settings, configured)

    def _model(self, choice: SpaceChoice) -> Any:
        """The model that embeds queries into ``choice``'s space (an older one is rebuilt by name)."""
        if choice.name == choice.configured:
            return self.dasr if choice.family == "dasr" else self.clip
        from video_inst.models.loading import shared_space_model

        return shared_space_model(choice.name, self.settings)  # type: ignore[arg-type]

    # --- rankings ------------------------------------------------------------------------
    def _search_space(
        self, session: Session, space: SpaceChoice, kind: str, vector: np.ndarray, k: int, query: Query
    ) -> list[tuple[int, float]]:
        if space.space_id is None:
            return []
        space_id = space.space_id
        if space.family == "dasr" and self.settings.dasr_whitening != "off":
            from video_inst.spaces.whitened import route_query

            base = session.get(ModelSpace, space.space_id)
            routed, vector = route_query(session, base, vector, self.settings.dasr_whitening)
            if routed.id != base.id:
                session.info["dasr_whitened"] = routed.name
            space_id = routed.id
        return self.store.search(space_id, kind, vector[None, :], k, video_ids=query.video_ids)[0]

    def _query_vectors(self, query: Query, dasr: SpaceChoice) -> list[np.ndarray]:
        """Every DASR vector of the query: each image / exemplar at every query scale, or stored ones."""
        if query.vectors:
            if query.vectors_space is not None and query.vectors_space != dasr.name:
                raise InvalidQueryError(
                    f"these query vectors were made in model space {query.vectors_space}; "
                    f"crop searches answer from {dasr.name} now (save the search again)"
                )
            return [np.asarray(v, dtype=np.float32) for v in query.vectors]
        model = self._model(dasr)
        views = ([(query.image, query.box)] if query.image is not None else []) + list(query.exemplars)
        sides = self.settings.search_query_sides
        out: list[np.ndarray] = []
        for image, box in views:
            out.append(model.embed_query(image, box))
            if sides and hasattr(model, "embed_query_sides"):
                # the query at other scales too; each region keeps its best score (docs/DASR.md)
                out.extend(model.embed_query_sides(image, box, sides))
        return out

    def _by_image(
        self,
        session: Session,
        query: Query,
        k: int,
        dasr: SpaceChoice,
        feedback: _Feedback | None = None,
        searched: list[np.ndarray] | None = None,
    ) -> list[_Candidate]:
        if dasr.space_id is None:
            return []
        vectors = self._query_vectors(query, dasr)
        if feedback is not None:
            vectors = feedback.apply(vectors, self.settings)
        if searched is not None:
            searched.extend(vectors)
        best: dict[int, float] = {}
        for vector in vectors:
            for vid, score in self._search_space(session, dasr, "region", vector, k, query):
                best[vid] = max(best.get(vid, -1.0), score)
        hits = sorted(best.items(), key=lambda h: -h[1])[:k]
        return _region_candidates(session, hits)

    def _by_track(
        self,
        session: Session,
        query: Query,
        k: int,
        dasr: SpaceChoice,
        feedback: _Feedback | None = None,
        searched: list[np.ndarray] | None = None,
    ) -> list[_Candidate]:
        track = session.get(Track, query.track_id)
        if track is None:
            raise NotFoundError(f"no track {query.track_id}")
        vectors = _track_vectors(session, [track.id], dasr)
        if track.id not in vectors:
            raise NotFoundError(
                f"track {track.id} has no vector in model space {dasr.name or dasr.configured}"
            )
        vector = vectors[track.id]
        if feedback is not None:
            vector = feedback.apply([vector], self.settings)[0]
        if searched is not None:
            searched.append(vector)
        hits = self._search_space(session, dasr, "region", vector, k + 50, query)
        return [c for c in _region_candidates(session, hits) if c.track_id != track.id]

    def _by_text(
        self,
        session: Session,
        query: Query,
        k: int,
        notes: list[str],
        dasr: SpaceChoice,
        used: dict[str, str],
    ) -> tuple[str, list[_Candidate]]:
        space = self._active(session, "clip")
        if space.space_id is None and not self._clip_loaded:
            # No CLIP vectors to search: loading the model (seconds of imports in a one-shot CLI
            # process) would only tell whether its weights exist. A server has loaded it already.
            notes.append(
                "no CLIP vectors in the catalog: answered from labels (`video-inst reindex --space clip` "
                "adds them, or names the CLIP weights file it lacks)"
            )
            return "labels", self._by_labels(session, query.text or "", k, dasr)
        clip = self.clip if space.space_id is None or not space.fallback else None
        if space.space_id is not None and space.fallback:
            try:
                clip = self._model(space)
            except VideoInstError as exc:
                notes.append(
                    f"model space {space.name} cannot embed text here ({exc.message}): labels answered"
                )
                return "labels", self._by_labels(session, query.text or "", k, dasr)
        if clip is not None and space.space_id is not None:
            used["clip"] = space.name  # type: ignore[assignment]
            if space.note:
                notes.append(space.note)
            vector = clip.embed_texts([query.text])[0]
            track_hits = self._search_space(session, space, "track", vector, k, query)
            frame_hits = self._search_space(session, space, "frame", vector, k, query)
            owners = _owners(session, [v for v, _ in track_hits + frame_hits])
            candidates = [
                _Candidate(track_id=owners[v], score=float(sc)) for v, sc in track_hits if v in owners
            ]
            candidates += self._frame_candidates(
                session, [(owners[v], sc) for v, sc in frame_hits if v in owners], dasr
            )
            return "text", candidates
        if clip is None:
            notes.append(f"no CLIP weights, answered from labels: {self._clip_reason}")
        else:
            notes.append(
                "no CLIP vectors in the catalog yet (run `video-inst reindex --space clip`): "
                "answered from labels"
            )
        return "labels", self._by_labels(session, query.text or "", k, dasr)

    def _frame_candidates(
        self, session: Session, keyframe_hits: list[tuple[int, float]], dasr: SpaceChoice
    ) -> list[_Candidate]:
        """A CLIP frame hit stands for the shot's whole-frame track, at that keyframe."""
        if not keyframe_hits:
            return []
        kf_ids = [k for k, _ in keyframe_hits]
        rows = session.execute(
            select(TrackBox.keyframe_id, TrackBox.id, TrackBox.track_id)
            .join(Track, Track.id == TrackBox.track_id)
            .where(TrackBox.keyframe_id.in_(kf_ids), Track.is_frame.is_(True), _in_space(dasr))
        )
        by_kf = {kf: (box_id, track_id) for kf, box_id, track_id in rows}
        return [
            _Candidate(track_id=by_kf[kf][1], score=float(score), box_id=by_kf[kf][0])
            for kf, score in keyframe_hits
            if kf in by_kf
        ]

    def _by_labels(self, session: Session, text: str, k: int, dasr: SpaceChoice) -> list[_Candidate]:
        """Top ``k`` object tracks by sum(weight(label) * prob), aggregated and limited in SQL.

        Why in SQL: a common word matches hundreds of thousands of label rows; only the
        top ``k`` tracks come back. Frame tracks and tracks of other DASR spaces are dropped
        after the limit (a join before it would cost a row lookup per label row); if that
        leaves fewer than ``k``, the limit grows until it does or the matches run out.
        """
        from video_inst.models.labels import label_names

        weights = dict(self.labels.match(text))
        if not weights:
            return []
        names = dict(zip(label_names(weights), weights.values()))
        if self.label_postings is not None:
            postings = self.label_postings.get(session, dasr.space_id)
            if postings is not None:  # fresh for this catalog; None while (re)building: SQL answers
                return [_Candidate(track_id=t, score=s) for t, s in postings.top(names, k)]
        # The weights as a joined table: one lookup per class, not a CASE of every class per row
        # (2.6 s instead of 6.4 s for "bird": 59 classes, 988k rows, SQLite, docs/API.md).
        parts = [
            select(literal(name).label("label"), literal(float(w)).label("weight"))
            for name, w in names.items()
        ]
        table = (union_all(*parts) if len(parts) > 1 else parts[0]).cte("query_labels")
        # Rounded (as the postings do): sums of the same terms in another order then rank alike.
        score = func.round(cast(func.sum(table.c.weight * Label.prob), Numeric), RANK_DECIMALS).label("score")
        ranked = (
            select(Label.track_id, score)
            .join(table, table.c.label == Label.label)
            .group_by(Label.track_id)
            .order_by(score.desc(), Label.track_id)
        )
        limit, checked, frames = k + 16, 0, set[int]()
        while True:
            rows = session.execute(ranked.limit(limit)).all()
            for start in range(checked, len(rows), 10_000):  # bounded IN lists (SQLite's variable limit)
                ids = [t for t, _ in rows[start : start + 10_000]]
                frames.update(
                    session.scalars(
                        select(Track.id).where(Track.id.in_(ids), Track.is_frame.is_(True) | ~_in_space(dasr))
                    )
                )
            checked = len(rows)
            objects = [(t, s) for t, s in rows if t not in frames]
            if len(objects) >= k or len(rows) < limit:
                return [_Candidate(track_id=t, score=float(s)) for t, s in objects[:k]]
            limit *= 4

    # --- candidates → hits ----------------------------------------------------------------
    def _to_hits(
        self,
        session: Session,
        candidates: list[_Candidate],
        query: Query,
        mode: str,
        dasr_space: int | None,
        threshold: float | None = None,
    ) -> list[Hit]:
        if not candidates:
            return []
        best_per_shot: dict[int, _Candidate] = {}
        for c, track in self._passing(session, candidates, query, dasr_space):
            if query.hide_weak and threshold is not None and shown_score(c.score) < threshold:
                continue
            best_per_shot.setdefault(track.shot_id, c)
        ranked = sorted(best_per_shot.values(), key=lambda c: -c.score)
        # Only the page asked for becomes Hits: hydrating every fetched shot (up to 10x more)
        # was a third of a crop search at 1M tracks (docs/API.md).
        page = ranked[: query.offset + query.top_k]
        rows = session.scalars(select(Track).where(Track.id.in_([c.track_id for c in page])))
        hits = self._hydrate(session, page, {t.id: t for t in rows}, mode)
        if threshold is not None:
            for hit in hits:
                hit.weak = hit.score < threshold
        return hits

    def _passing(
        self, session: Session, candidates: list[_Candidate], query: Query, dasr_space: int | None
    ) -> list[tuple[_Candidate, Any]]:
        """(candidate, track columns) that pass the query's filters, best score first."""
        if not candidates:
            return []
        track_ids = list({c.track_id for c in candidates})
        label_filter = None
        if query.label:
            from video_inst.models.labels import label_class_ids, label_names

            label_filter = set(label_names(label_class_ids(query.label)))
        # The columns the filters and the per-shot collapse need, for every candidate (up to 10x
        # the page); whole rows only for the page's hits (``_hydrate``).
        columns = [Track.id, Track.video_id, Track.shot_id, Track.start_s, Track.end_s, Track.space_id]
        if label_filter is not None:
            columns.append(Track.labels)
        tracks = {t.id: t for t in session.execute(select(*columns).where(Track.id.in_(track_ids)))}
        out = []
        for c in sorted(candidates, key=lambda c: -c.score):
            track = tracks.get(c.track_id)
            if track is None or track.space_id not in (None, dasr_space):
                continue  # gone, or a track of another DASR space (never mix two backbones' tracks)
            if query.min_score is not None and shown_score(c.score) < query.min_score:
                continue
            if query.video_ids and track.video_id not in query.video_ids:
                continue
            if query.time_range and (
                track.end_s <= query.time_range[0] or track.start_s >= query.time_range[1]
            ):
                continue
            if label_filter is not None and not ({name for name, _ in track.labels} & label_filter):
                continue
            out.append((c, track))
        return out

    def _hydrate(
        self, session: Session, ranked: list[_Candidate], tracks: dict[int, Track], mode: str
    ) -> list[Hit]:
        from video_inst.media.timecode import smpte_for_video, video_span_timecodes

        shot_ids = {tracks[c.track_id].shot_id for c in ranked}
        shots = {s.id: s for s in session.scalars(select(Shot).where(Shot.id.in_(shot_ids)))}
        videos = {
            v.id: v
            for v in session.scalars(select(Video).where(Video.id.in_({s.video_id for s in shots.values()})))
        }
        box_ids = [c.box_id for c in ranked if c.box_id is not None]
        boxes = (
            {b.id: b for b in session.scalars(select(TrackBox).where(TrackBox.id.in_(box_ids)))}
            if box_ids
            else {}
        )
        # Tracks matched without a particular view show their best keyframe's box.
        need_best = [tracks[c.track_id] for c in ranked if c.box_id is None]
        best_boxes: dict[int, TrackBox] = {}
        if need_best:
            for b in session.scalars(
                select(TrackBox).where(TrackBox.track_id.in_([t.id for t in need_best]))
            ):
                t = tracks[b.track_id]
                if b.keyframe_id == t.best_keyframe_id or b.track_id not in best_boxes:
                    best_boxes[b.track_id] = b
        kf_ids = {b.keyframe_id for b in list(boxes.values()) + list(best_boxes.values())}
        kf_time = (
            dict(session.execute(select(Keyframe.id, Keyframe.time_s).where(Keyframe.id.in_(kf_ids))).all())
            if kf_ids
            else {}
        )
        hits = []
        for c in ranked:
            track = tracks[c.track_id]
            shot = shots[track.shot_id]
            video = videos[shot.video_id]
            box = boxes.get(c.box_id) if c.box_id is not None else best_boxes.get(track.id)
            ref = video_ref(video)
            keyframe_s = kf_time.get(box.keyframe_id, track.start_s) if box else track.start_s
            hits.append(
                Hit(
                    video_id=video.id,
                    path=video.path,
                    shot=ShotRef(
                        index=shot.index,
                        start_s=shot.start_s,
                        end_s=shot.end_s,
                        start_tc=smpte_for_video(video, shot.start_s),
                        end_tc=smpte_for_video(video, shot.end_s),
                    ),
                    start_s=track.start_s,
                    end_s=track.end_s,
                    keyframe_s=keyframe_s,
                    box=[round(box.x0, 2), round(box.y0, 2), round(box.x1, 2), round(box.y1, 2)]
                    if box
                    else [],
                    score=shown_score(c.score),
                    track_id=track.id,
                    mode=mode,
                    labels=track.labels,
                    keyframe_id=box.keyframe_id if box else None,
                    video=ref,
                    **video_span_timecodes(ref, track.start_s, track.end_s, keyframe_s),
                )
            )
        return hits


def _track_vectors(session: Session, track_ids: list[int], dasr: SpaceChoice) -> dict[int, np.ndarray]:
    """The DASR track vectors (``kind == "track"``) of these tracks in the answering space."""
    if dasr.space_id is None or not track_ids:
        return {}
    from video_inst.vectors.codec import decode

    rows = session.execute(
        select(Vector.owner_id, Vector.data).where(
            Vector.space_id == dasr.space_id, Vector.kind == "track", Vector.owner_id.in_(track_ids)
        )
    ).all()
    if not rows:
        return {}
    vectors = decode([d for _, d in rows], dasr.dim)
    return {owner: vectors[i] for i, (owner, _) in enumerate(rows)}


@dataclass
class _Feedback:
    """Tracks marked right / wrong, as vectors of the answering DASR space (Rocchio 1971)."""

    positives: dict[int, np.ndarray]
    negatives: dict[int, np.ndarray]

    @classmethod
    def load(cls, session: Session, query: Query, dasr: SpaceChoice) -> _Feedback:
        found = _track_vectors(session, list(query.positives) + list(query.negatives), dasr)
        missing = [t for t in list(query.positives) + list(query.negatives) if t not in found]
        if missing:
            raise NotFoundError(
                f"marked tracks without a vector in model space {dasr.name or dasr.configured}: "
                + ", ".join(map(str, missing[:10]))
            )
        return cls(
            positives={t: found[t] for t in query.positives}, negatives={t: found[t] for t in query.negatives}
        )

    def apply(self, vectors: list[np.ndarray], settings: Settings) -> list[np.ndarray]:
        """q' = a q + b mean(right) - c mean(wrong), L2-normalised, for each query vector.

        Without a query vector (hits marked right only) the query is the marked ones' centroid.
        """
        shift = np.zeros(0, dtype=np.float32)
        if self.positives:
            shift = settings.feedback_beta * np.mean(list(self.positives.values()), axis=0)
        if self.negatives:
            neg = settings.feedback_gamma * np.mean(list(self.negatives.values()), axis=0)
            shift = shift - neg if shift.size else -neg
        if not shift.size:
            return vectors
        base = vectors or [np.zeros_like(shift)]
        out = []
        for v in base:
            q = settings.feedback_alpha * np.asarray(v, dtype=np.float32) + shift
            norm = float(np.linalg.norm(q))
            out.append((q / norm if norm > 0 else q).astype(np.float32))
        return out


def _rrf_by_shot(session: Session, rankings: list[list[_Candidate]]) -> list[_Candidate]:
    """Reciprocal-rank fusion of shot rankings (Cormack et al. 2009).

    Each ranking is first collapsed to one candidate per shot; a shot's fused score is
    the sum of 1 / (k + rank) over the rankings it appears in, and it shows the track
    (and view) of the first ranking that found it.
    """
    track_ids = {c.track_id for ranking in rankings for c in ranking}
    shot_of = (
        dict(session.execute(select(Track.id, Track.shot_id).where(Track.id.in_(track_ids))).all())
        if track_ids
        else {}
    )
    fused: dict[int, _Candidate] = {}
    for ranking in rankings:
        seen: set[int] = set()
        for c in sorted(ranking, key=lambda c: -c.score):
            shot_id = shot_of.get(c.track_id)
            if shot_id is None or shot_id in seen:
                continue
            seen.add(shot_id)
            entry = fused.setdefault(shot_id, _Candidate(track_id=c.track_id, score=0.0, box_id=c.box_id))
            entry.score += 1.0 / (RRF_K + len(seen))
    return list(fused.values())


def _in_space(dasr: SpaceChoice) -> Any:
    return track_filter(dasr.space_id)


_SEARCHERS: dict[str, Searcher] = {}
_SEARCHERS_LOCK = threading.Lock()


def shared_searcher(settings: Settings | None = None) -> Searcher:
    """The process's ``Searcher`` for these settings (models load once)."""
    settings = settings or get_settings()
    key = settings.model_dump_json()
    with _SEARCHERS_LOCK:
        searcher = _SEARCHERS.get(key)
        if searcher is None:
            searcher = _SEARCHERS[key] = Searcher(settings)
    return searcher


def search(query: Query, *, settings: Settings | None = None) -> SearchResult:
    """Search with the process's shared ``Searcher`` (models load once)."""
    return shared_searcher(settings).search(query)
