"""Analysis of decoded keyframes: DASR regions + labels, CLIP vectors, tracks; no SQL.

``VideoAnalysis`` is fed keyframes in time order (as ``decode_keyframes`` yields them),
runs the models in batches and links regions into tracks shot by shot;
:func:`analysis_data` hands the result on as plain data, which
:mod:`video_inst.ingest.store` writes in the caller's transaction. Models load once per process
(``get_analyser``); missing CLIP weights leave DASR and labels working and are
recorded per video.

Example::

    analysis = VideoAnalysis(get_analyser(settings), plan)
    for keyframe, rgb in decode_keyframes(path, plan.keyframes):
        analysis.add(keyframe, rgb)
    analysis.finish()
    with catalog.session() as s:
        data = [analysis_data(analysis)]
        _, spaces = store_analysis_data(s, data, video=video, keyframe_rows=rows, settings=settings)
    for space_id, kind in sorted(spaces):
        get_index_store(settings).sync(space_id, kind)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from video_inst.analysis.data import AnalysisData, SpaceRef, TrackData
from video_inst.config import Settings
from video_inst.media.types import Keyframe, Shot, ShotPlan, VideoInfo
from video_inst.models.loading import load_clip, load_dasr, models_loaded, shared_clip, shared_dasr
from video_inst.spaces.active import clip_space_name
from video_inst.tracks.linker import LinkParams, TrackDraft, TrackLinker

log = logging.getLogger(__name__)

CROP_SIDE = 224  # side of the crops kept for a track's CLIP embedding


@dataclass
class Analyser:
    """The loaded models of one process; shared by every video it ingests."""

    settings: Settings
    dasr: Any  # video_inst.models.dasr.DasrExtractor
    clip: Any | None  # video_inst.models.clip.ClipEmbedder, None when weights are missing
    clip_missing_reason: str | None = None
    link_params: LinkParams = field(default_factory=LinkParams)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)  # through logging: the CLI prints the message, not a source line


def build_analyser(settings: Settings, *, clip: Any | None = None, dasr: Any | None = None) -> Analyser:
    """An analyser with explicit models (tests pass a randomly initialised CLIP here)."""
    dasr = dasr or load_dasr(settings)
    reason = None
    if clip is None:
        clip, reason = load_clip(settings)
    return Analyser(settings=settings, dasr=dasr, clip=clip, clip_missing_reason=reason)


def prefetch_analyser(settings: Settings) -> None:
    """Start loading this process's models in a background thread; ``get_analyser`` waits for them.

    Why: importing torch and building the models takes seconds that the plan pass (FFmpeg
    threads, most of it outside the GIL) can overlap (docs/INGEST.md). A failure is not
    reported here: ``get_analyser`` tries again in the caller's thread and raises it there.
    """
    if models_loaded(settings):
        return

    def load() -> None:
        try:
            get_analyser(settings)
        except Exception:  # noqa: BLE001 - raised again, with its traceback, by the caller's own call
            log.debug("prefetching the analyser failed; the ingest will load it again", exc_info=True)

    threading.Thread(target=load, name="video-inst-model-load", daemon=True).start()


def get_analyser(settings: Settings) -> Analyser:
    """An analyser over this process's shared models (``models.loading``: loaded once, kept across videos).

    The analyser itself is a cheap bundle made per call, so it always carries the caller's
    settings (batch sizes, link parameters) while the models are the process's one copy.
    """
    dasr = shared_dasr(settings)
    clip, reason = shared_clip(settings)
    if clip is None:
        _warn_once(f"CLIP vectors will be missing (text search falls back to labels): {reason}")
    return Analyser(settings=settings, dasr=dasr, clip=clip, clip_missing_reason=reason)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's analysis threads (one pool per size, kept across videos like the models)."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="video-inst-analysis")
        return _POOLS[workers]


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_BUDGET: list[int] = []


def cpu_budget() -> int:
    """Threads the analysis may use: torch's thread count as this process first saw it.

    That is ``OMP_NUM_THREADS`` where set (a Celery worker of N processes sets it to
    ``cores // N`` for its children, ``workers/app.py``), else one per core; capped by the cores
    this process may run on. Read once, before ``_fit_torch_threads`` lowers it.
    """
    if not _BUDGET:
        import torch

        _BUDGET.append(max(1, min(cpu_cores(), torch.get_num_threads())))
    return _BUDGET[0]


def analysis_workers(settings: Settings) -> int:
    """How many keyframe batches run the models at once (``Settings.analysis_workers``).

    Why a setting and 1 by default: on the CPU, one torch thread per batch and one batch per
    core beat every core on one batch only on an oversubscribed machine (OpenMP threads
    spin-waiting: 1.9-4.4x there), and lost or tied on a quiet or moderately loaded one (0.50x,
    0.92x; docs/INGEST.md, ``scripts/bench_analysis_workers.py``). Results are the same either
    way: each batch is computed alone, in the same batches.
    """
    return max(1, settings.analysis_workers)


def _fit_torch_threads(workers: int) -> None:
    """Give each analysis worker ``cores // workers`` torch threads (process-wide, lowered only)."""
    if workers <= 1:
        return
    import torch

    share = max(1, cpu_budget() // workers)
    if torch.get_num_threads() > share:
        log.info("analysis: %d workers, torch threads %d -> %d", workers, torch.get_num_threads(), share)
        torch.set_num_threads(share)


@dataclass
class FinishedTrack:
    """A linked track with what storage needs; keyframes referenced by PTS until rows exist."""

    shot_index: int
    is_frame: bool
    draft: TrackDraft
    start_s: float
    end_s: float
    labels: list[tuple[str, float]]
    clip_vector: np.ndarray | None = None


def coverage_span(
    times: list[float], kf_times: list[float], shot_start: float, shot_end: float
) -> tuple[float, float]:
    """A keyframe stands for the time up to halfway to its neighbours within the shot."""
    first, last = times[0], times[-1]
    i, j = kf_times.index(first), kf_times.index(last)
    start = shot_start if i == 0 else (kf_times[i - 1] + first) / 2
    end = shot_end if j == len(kf_times) - 1 else (last + kf_times[j + 1]) / 2
    return start, end


class VideoAnalysis:
    """Per-video analysis state; see the module docstring for the call order."""

    def __init__(self, analyser: Analyser, plan: ShotPlan | None) -> None:
        """``plan=None``: shots arrive one by one through ``add_shot`` (``analyse_while_planning``)."""
        self.analyser = analyser
        self.plan = plan
        self.batch = max(1, analyser.settings.analysis_batch)
        self.workers = analysis_workers(analyser.settings)
        _fit_torch_threads(self.workers)
        # Batches whose models run in the pool, oldest first; linked in time order as they finish.
        self._inflight: deque[tuple[list[tuple[Keyframe, np.ndarray]], Future]] = deque()
        self.warnings: list[str] = []
        if analyser.clip is None and analyser.clip_missing_reason:
            self.warnings.append(
                f"CLIP vectors missing (no weights for {clip_space_name(analyser.settings)}); "
                "text search answers from labels until `video-inst reindex --space clip`"
            )
        self._pending: list[tuple[Keyframe, np.ndarray]] = []
        self._shot_index: int | None = None
        self._linker: TrackLinker | None = None
        self._frame_track: TrackDraft | None = None
        self._crops: dict[int, np.ndarray] = {}  # id(draft) -> crop at its best keyframe so far
        self._shot_kf_times: dict[int, list[float]] = {}
        self._shots: dict[int, Shot] = {s.index: s for s in plan.shots} if plan is not None else {}
        for k in plan.keyframes if plan is not None else ():
            self._shot_kf_times.setdefault(k.shot_index, []).append(k.time_s)
        self.frame_vectors: dict[int, np.ndarray] = {}  # keyframe pts -> CLIP frame vector
        self.tracks: list[FinishedTrack] = []
        self._spaces: list[tuple[int, str]] = []  # (space id, kind) written by store()
        self._categories = analyser.dasr.backbone.categories

    # --- feeding -----------------------------------------------------------------
    def add_shot(self, shot: Shot, keyframe_times: list[float]) -> None:
        """A shot of a plan still being made, before any keyframe of a later shot is added."""
        self._shots[shot.index] = shot
        self._shot_kf_times[shot.index] = list(keyframe_times)

    def add(self, keyframe: Keyframe, rgb: np.ndarray) -> None:
        self._pending.append((keyframe, rgb))
        if len(self._pending) >= self.batch:
            self._run_batch()

    def finish(self) -> None:
        self._run_batch()
        while self._inflight:
            self._link_oldest()
        self._close_shot()

    def _run_batch(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self.workers <= 1:
            self._link_batch(batch, self._run_models(batch))
            return
        self._inflight.append((batch, _pool(self.workers).submit(self._run_models, batch)))
        while len(self._inflight) > self.workers:  # keep every worker busy, hold few pictures
            self._link_oldest()

    def _link_oldest(self) -> None:
        batch, future = self._inflight.popleft()
        self._link_batch(batch, future.result())

    def _run_models(self, batch: list[tuple[Keyframe, np.ndarray]]) -> tuple[list[Any], list[Any] | None]:
        """DASR regions (and CLIP frame vectors) of one batch; safe to run in several threads."""
        frames = [rgb for _, rgb in batch]
        regions = self.analyser.dasr.extract(frames)
        vectors = self.analyser.clip.embed_images(frames) if self.analyser.clip is not None else None
        return regions, vectors

    def _link_batch(self, batch: list[tuple[Keyframe, np.ndarray]], result: tuple[list[Any], Any]) -> None:
        regions, vectors = result
        if vectors is not None:
            for (keyframe, _), vector in zip(batch, vectors):
                self.frame_vectors[keyframe.pts] = vector
        for (keyframe, rgb), frame_regions in zip(batch, regions):
            self._link(keyframe, rgb, frame_regions)

    def _link(self, keyframe: Keyframe, rgb: np.ndarray, regions: Any) -> None:
        if keyframe.shot_index != self._shot_index:
            self._close_shot()
            self._shot_index = keyframe.shot_index
            self._linker = TrackLinker(self.analyser.link_params)
            self._frame_track = TrackDraft()
        assert self._linker is not None and self._frame_track is not None
        is_frame = np.asarray(regions.is_frame, dtype=bool)
        objects = ~is_frame
        label_ids = np.asarray(regions.label_ids)
        label_probs = np.asarray(regions.label_probs)
        frame_rows = np.flatnonzero(is_frame)
        if len(frame_rows):
            r = int(frame_rows[0])
            self._frame_track.append(
                keyframe.pts,
                keyframe.time_s,
                regions.boxes[r],
                regions.scores[r],
                regions.vectors[r],
                (label_ids[r], label_probs[r]),
            )
        rows = np.flatnonzero(objects)
        if not len(rows):
            return
        assigned = self._linker.add(
            keyframe.pts,
            keyframe.time_s,
            regions.boxes[rows],
            regions.vectors[rows],
            regions.scores[rows],
            [(label_ids[r], label_probs[r]) for r in rows],
        )
        tracks = self._linker.finish()
        for local, track_no in enumerate(assigned):
            draft = tracks[track_no]
            if self.analyser.clip is not None and draft.best == len(draft.scores) - 1:
                self._crops[id(draft)] = crop_region(rgb, regions.boxes[int(rows[local])])

    def _close_shot(self) -> None:
        if self._shot_index is None or self._linker is None:
            return
        shot = self._shots[self._shot_index]
        kf_times = self._shot_kf_times.get(self._shot_index, [])
        drafts: list[tuple[bool, TrackDraft]] = [(False, d) for d in self._linker.finish()]
        if self._frame_track is not None and self._frame_track.keyframe_ids:
            drafts.insert(0, (True, self._frame_track))
        finished = []
        for is_frame, draft in drafts:
            start, end = coverage_span(draft.times, kf_times, shot.start_s, shot.end_s)
            finished.append(
                FinishedTrack(
                    shot_index=shot.index,
                    is_frame=is_frame,
                    draft=draft,
                    start_s=start,
                    end_s=end,
                    labels=self._mean_labels(draft.labels),
                )
            )
        if self.analyser.clip is not None:
            with_crops = [t for t in finished if not t.is_frame and id(t.draft) in self._crops]
            if with_crops:
                vectors = self.analyser.clip.embed_images([self._crops[id(t.draft)] for t in with_crops])
                for track, vector in zip(with_crops, vectors):
                    track.clip_vector = vector
            for track in finished:
                if track.is_frame:
                    members = [
                        self.frame_vectors[p] for p in track.draft.keyframe_ids if p in self.frame_vectors
                    ]
                    if members:
                        mean = np.mean(members, axis=0)
                        track.clip_vector = (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)
        self.tracks.extend(finished)
        self._crops.clear()
        self._shot_index = None
        self._linker = None
        self._frame_track = None

    def _mean_labels(
        self, per_keyframe: list[tuple[np.ndarray, np.ndarray]], k: int = 5
    ) -> list[tuple[str, float]]:
        """Average the top-k class probabilities over a track's keyframes; keep the best k."""
        totals: dict[int, float] = {}
        for ids, probs in per_keyframe:
            for class_id, prob in zip(np.asarray(ids).tolist(), np.asarray(probs).tolist()):
                totals[class_id] = totals.get(class_id, 0.0) + prob
        n = max(len(per_keyframe), 1)
        best = sorted(totals.items(), key=lambda item: -item[1])[:k]
        return [(self._categories[c], round(p / n, 4)) for c, p in best]

    @property
    def spaces(self) -> set[tuple[int, str]]:
        """(space id, kind) pairs written by ``ingest.store.store_analyses``: the indexes to sync."""
        return set(self._spaces)


@dataclass
class StreamedAnalysis:
    """What ``analyse_while_planning`` made: the plan, and the analysis unless the stream disagreed."""

    plan: ShotPlan
    analysis: VideoAnalysis | None
    agreed: bool  # the streamed shots and keyframes are exactly the plan's (else redo the analysis)


class _Stopped(Exception):
    """Raised inside the plan pass when the analysing side gave up."""


def analyse_while_planning(
    path: Any,
    info: VideoInfo,
    shot_settings: Any,
    analyser: Callable[[], Analyser] | None,
    *,
    on_keyframe: Callable[[Keyframe, np.ndarray], None] | None = None,
    progress: Callable[[float], None] | None = None,
    max_waiting_bytes: int = 256 << 20,
) -> StreamedAnalysis:
    """One decode pass: ``plan_shots`` in a thread hands each decided keyframe to the models here.

    Why: the keyframes are the plan pass's own decoded frames (no second decode) and the
    models run while FFmpeg decodes on (docs/INGEST.md). ``analyser`` is called at the first
    keyframe (so models still loading in ``prefetch_analyser``'s thread do not hold up the
    pass); None: only ``on_keyframe(keyframe, rgb)`` sees the pictures (thumbnails). Pictures
    waiting between the threads are held to ``max_waiting_bytes``. ``agreed`` False (never
    seen on the test media) means the stream and the final plan differ: the caller must
    analyse the plan again the two-pass way; nothing streamed may be kept.
    """
    from collections import deque

    from video_inst.media.shots import plan_shots

    items: deque[tuple[str, Any, Any]] = deque()
    cond = threading.Condition()
    state = {"bytes": 0, "stop": False}

    def put(kind: str, item: Any, rgb: Any) -> None:
        size = int(getattr(rgb, "nbytes", 0))
        with cond:
            while state["bytes"] and state["bytes"] + size > max_waiting_bytes and not state["stop"]:
                cond.wait()
            if state["stop"]:
                raise _Stopped()
            state["bytes"] += size
            items.append((kind, item, rgb))
            cond.notify_all()

    def produce() -> None:
        try:
            plan = plan_shots(path, info, shot_settings, progress=progress, keyframe_sink=put)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the analysing thread
            with contextlib.suppress(_Stopped):
                put("error", exc, None)
            return
        with contextlib.suppress(_Stopped):
            put("end", plan, None)

    def take() -> tuple[str, Any, Any]:
        with cond:
            while not items:
                cond.wait()
            kind, item, rgb = items.popleft()
            state["bytes"] -= int(getattr(rgb, "nbytes", 0))
            cond.notify_all()
            return kind, item, rgb

    analysis: VideoAnalysis | None = None
    worker = threading.Thread(target=produce, name="video-inst-plan-pass", daemon=True)
    worker.start()
    keyframes: list[Keyframe] = []
    shots: list[Shot] = []
    pending_times: list[float] = []
    try:
        while True:
            kind, item, rgb = take()
            if kind == "error":
                raise item
            if kind == "end":
                plan = item
                break
            if analyser is not None and analysis is None:
                analysis = VideoAnalysis(analyser(), None)
            if kind == "shot":
                shots.append(item)
                if analysis is not None:
                    analysis.add_shot(item, pending_times)
                pending_times = []
                continue
            keyframes.append(item)
            pending_times.append(item.time_s)
            if on_keyframe is not None:
                on_keyframe(item, rgb)
            if analysis is not None:
                analysis.add(item, rgb)
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        worker.join()
    agreed = keyframes == plan.keyframes and shots == plan.shots
    if not agreed:
        log.warning("%s: the streamed shot plan differs from the final one; analysing it again", path)
        return StreamedAnalysis(plan, None, False)
    if analyser is not None and analysis is None:  # a plan without keyframes cannot happen; be safe
        analysis = VideoAnalysis(analyser(), plan)
    if analysis is not None:
        analysis.plan = plan
        analysis.finish()
    return StreamedAnalysis(plan, analysis, True)


def analysis_data(analysis: VideoAnalysis) -> AnalysisData:
    """A finished analysis as plain data (what a chunk carries to the commit): no model, no session."""
    analyser = analysis.analyser
    dasr = analyser.dasr
    tracks = [
        TrackData(
            shot_index=t.shot_index,
            is_frame=t.is_frame,
            start_s=t.start_s,
            end_s=t.end_s,
            keyframe_pts=list(t.draft.keyframe_ids),
            scores=list(t.draft.scores),
            boxes=np.stack(t.draft.boxes).astype(np.float32),
            vectors=np.stack(t.draft.vectors).astype(np.float32),
            representative=t.draft.representative(),
            best=t.draft.best,
            labels=list(t.labels),
            clip_vector=t.clip_vector,
        )
        for t in analysis.tracks
    ]
    data = AnalysisData(
        dasr=SpaceRef(dasr.space_name, dasr.dim, {"backbone": dasr.backbone.model_id}), tracks=tracks
    )
    clip = analyser.clip
    if clip is not None:
        data.clip = SpaceRef(clip.space_name, clip.dim, {})
        data.frame_pts = list(analysis.frame_vectors)
        if data.frame_pts:
            data.frame_vectors = np.stack(list(analysis.frame_vectors.values())).astype(np.float32)
    elif analyser.clip_missing_reason:
        # Recorded so `video-inst reindex --space clip` knows which videos still need CLIP vectors.
        from video_inst.models.weights import open_clip_model_config  # not open_clip itself: seconds

        dim = int((open_clip_model_config(analyser.settings.clip_model) or {}).get("embed_dim", 0))
        if dim > 0:
            data.clip_missing = SpaceRef(clip_space_name(analyser.settings), dim, {})
            data.clip_missing_reason = analyser.clip_missing_reason
    return data


def crop_region(rgb: np.ndarray, box: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The region with a little context, downscaled so a shot's kept crops stay small."""
    from PIL import Image

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    x0, y0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    x1, y1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    crop = rgb[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    image = Image.fromarray(crop)
    image.thumbnail((CROP_SIDE * 2, CROP_SIDE * 2))
    return np.asarray(image)
