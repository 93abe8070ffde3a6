"""Label search in memory: per ImageNet class, the object tracks that carry it and their probs.

Why: a common word ("bird", 59 classes) matches ~1M of the 5M label rows at 1M tracks, and
SQL's GROUP BY over them takes 0.3-0.6 s (docs/API.md); the same sum over numpy postings is a
gather, one ``bincount`` and one ``argpartition``. A long-running process (``video-inst
serve``) builds the postings once per DASR space in a background thread and keeps using
them while the catalog's fingerprint is unchanged; until then, and in one-shot processes
(the CLI), ``search.searcher._by_labels`` ranks in SQL. Both give the same ranking: the score is
``sum(weight(label) * prob)`` per track, rounded to ``RANK_DECIMALS`` decimals, best first,
ties broken by track id (tests/test_search_labels.py compares the two on SQLite and
PostgreSQL). The rounding is what makes them agree: float sums of the same terms in another
order differ in the last bit (0.7875 vs 0.7875000000000001), which would reorder ties.

Example::

    postings = LabelPostings.build(session, space_id)
    postings.top({"tabby": 1.0, "tiger cat": 0.9}, k=200)   # [(track_id, score), ...]
"""

from __future__ import annotations

import itertools
import logging
import operator
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from video_inst.catalog.models import Label, Track
from video_inst.spaces.active import COVERAGE_FINGERPRINT, track_filter

log = logging.getLogger(__name__)

RANK_DECIMALS = 12  # far below any real difference of label scores, far above float64 rounding

# The spaces fingerprint (every ingest, re-index, delete, drop) plus the newest track and label:
# one more pair of primary-key lookups, so a re-ingest that reuses ids still shows.
FINGERPRINT = select(
    *(COVERAGE_FINGERPRINT.selected_columns),
    select(func.max(Track.id)).scalar_subquery(),
    select(func.max(Label.id)).scalar_subquery(),
)


def fingerprint(session: Session) -> tuple:
    """What changes whenever the label rows of the catalog can."""
    return tuple(session.execute(FINGERPRINT).one())


@dataclass(frozen=True)
class LabelPostings:
    """Per label name a slice of (dense track index, prob), track indexes ascending within it."""

    slices: Mapping[str, tuple[int, int]]
    index: np.ndarray  # int32, dense track index per posting
    prob: np.ndarray  # float64, as stored
    track_ids: np.ndarray  # int64, dense index -> track id (ascending)
    rows: int

    @classmethod
    def build(cls, session: Session, space_id: int | None) -> LabelPostings:
        """Read the object tracks of ``space_id`` and every label row of theirs (two index scans)."""
        track_ids = np.fromiter(
            session.scalars(
                select(Track.id).where(Track.is_frame.is_(False), track_filter(space_id)).order_by(Track.id)
            ),
            dtype=np.int64,
        )
        rows = session.execute(
            select(Label.label, Label.track_id, Label.prob).order_by(Label.label, Label.track_id),
            execution_options={"yield_per": 100_000},  # streamed: 5M rows at 1M tracks
        )
        slices: dict[str, tuple[int, int]] = {}
        kept_i: list[np.ndarray] = []
        kept_p: list[np.ndarray] = []
        start = 0
        for name, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            _, ids, probs = zip(*group, strict=True)
            t = np.asarray(ids, dtype=np.int64)
            p = np.asarray(probs, dtype=np.float64)
            pos = np.searchsorted(track_ids, t)
            ok = pos < len(track_ids)
            ok[ok] = track_ids[pos[ok]] == t[ok]
            kept_i.append(pos[ok].astype(np.int32))
            kept_p.append(p[ok])
            slices[name] = (start, start + int(ok.sum()))
            start += int(ok.sum())
        index = np.concatenate(kept_i) if kept_i else np.zeros(0, np.int32)
        prob = np.concatenate(kept_p) if kept_p else np.zeros(0, np.float64)
        return cls(slices=slices, index=index, prob=prob, track_ids=track_ids, rows=int(start))

    def top(self, weights: Mapping[str, float], k: int) -> list[tuple[int, float]]:
        """The ``k`` best tracks by sum(weight * prob), best first, ties by track id."""
        if k <= 0:
            return []
        idx_parts, val_parts = [], []
        for name in sorted(weights):
            if name in self.slices:
                a, b = self.slices[name]
                idx_parts.append(self.index[a:b])
                val_parts.append(np.float64(weights[name]) * self.prob[a:b])
        if not idx_parts:
            return []
        idx = np.concatenate(idx_parts)
        raw = np.bincount(idx, weights=np.concatenate(val_parts), minlength=len(self.track_ids))
        touched = np.zeros(len(self.track_ids), dtype=bool)
        touched[idx] = True
        candidates = np.flatnonzero(touched)
        if len(candidates) > k:
            # Rounding moves a score by under 1e-12, so every track of the rounded top k (ties at
            # the cut included) has a raw score within 1e-9 of the raw k-th: round only those.
            kth = np.partition(raw[candidates], len(candidates) - k)[len(candidates) - k]
            candidates = candidates[raw[candidates] >= kth - 1e-9]
        scores = np.round(raw[candidates], RANK_DECIMALS)
        order = np.lexsort((candidates, -scores))[:k]  # dense index order = track id order
        best, scores = candidates[order], scores[order]
        return [(int(t), float(s)) for t, s in zip(self.track_ids[best], scores, strict=True)]


class PostingsCache:
    """Postings per DASR space, built in a background thread, used only while still fresh.

    ``get`` never blocks on a build: it returns None (the caller ranks in SQL) until the
    postings for the current fingerprint are ready, and starts a build when none is running.
    """

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        self._session_factory = session_factory
        self._lock = threading.Lock()
        self._ready: dict[int | None, tuple[tuple, LabelPostings]] = {}
        self._building: dict[int | None, threading.Thread] = {}

    def get(self, session: Session, space_id: int | None, *, wait: bool = False) -> LabelPostings | None:
        """Fresh postings for ``space_id``, or None while they are being (re)built.

        ``wait``: block until a build finishes (tests, benchmarks), then answer.
        """
        current = fingerprint(session)
        with self._lock:
            hit = self._ready.get(space_id)
            if hit is not None and hit[0] == current:
                return hit[1]
            thread = self._building.get(space_id)
            if thread is None:
                thread = threading.Thread(target=self._build, args=(space_id,), daemon=True, name="postings")
                self._building[space_id] = thread
                thread.start()
        if not wait:
            return None
        thread.join()
        with self._lock:
            hit = self._ready.get(space_id)
        return hit[1] if hit is not None and hit[0] == current else None

    def _build(self, space_id: int | None) -> None:
        try:
            started = time.perf_counter()
            with self._session_factory() as s:
                # the fingerprint read before the rows: a change during the build makes it stale at once
                seen = fingerprint(s)
                postings = LabelPostings.build(s, space_id)
            with self._lock:
                self._ready[space_id] = (seen, postings)
            log.info(
                "label postings for space %s: %d tracks, %d label rows in %.1f s",
                space_id,
                len(postings.track_ids),
                postings.rows,
                time.perf_counter() - started,
            )
        except Exception:  # noqa: BLE001 - SQL answers meanwhile; the next search tries again
            log.warning("building label postings failed", exc_info=True)
        finally:
            with self._lock:
                self._building.pop(space_id, None)
