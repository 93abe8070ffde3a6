"""One FAISS index over (id, vector) pairs: inner product on L2-normalised vectors, ids = ``vectors.id``.

The index is declared by a FAISS factory string (``"Flat"``, ``"SQfp16"``, ``"HNSW32"``,
``"IVF1024,PQ64"``). ``"Flat"`` and ``"SQfp16"`` are exact: every vector the store adds comes
from SQL, where it is already float16 (``codec.py``), so float16 codes hold it exactly and
give Flat's ids and scores at half the bytes; ``"SQfp16"`` is what :func:`choose_factory`
picks below ``exact_index_max`` (``EXACT_FACTORY``). Approximate indexes fetch ``k * oversample`` candidates
and re-rank them with the exact stored vectors through a ``fetch(ids) -> vectors`` callable,
so their scores are the same cosine similarities the exact index would give.

Ids: IVF indexes keep our ids themselves (and remove them natively); every other index is
wrapped in ``IndexIDMap2``. HNSW cannot remove: removed ids go to a tombstone set that is
filtered out during the graph search, and :meth:`VectorIndex.needs_compaction` tells the owner
when to rebuild.

Files are written to a temporary file beside the target, fsynced, then ``os.replace``d: a
crash mid-save leaves the previous file intact. Example::

    index = VectorIndex(512, "Flat")
    index.add(np.array([10, 11]), vectors)           # (2, 512)
    scores, ids = index.search(query, k=5)           # ids are 10 / 11, -1 past the end
    index.save(Path("index/1-track.faiss"))
    same = VectorIndex.load(Path("index/1-track.faiss"))
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import uuid
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np

from video_inst.config import Settings, get_settings
from video_inst.vectors.codec import as_matrix, l2n
from video_inst.vectors.errors import CorruptIndexError, InvalidVectorsError, VectorIndexError
from video_inst.vectors.rerank import RerankCopy, collect_unused

FILE_MAGIC = b"VIFAISS1"
FILE_FORMAT = 2  # 2: a CRC32 trailer over tombstones + FAISS bytes (format 1 files load unchecked)
TRAILER_MAGIC = b"VIFAISSE"
_TRAILER = struct.Struct("<QI")  # payload length, CRC32 of the payload

# The exact index of the store: float16 codes, exact on stored (float16) vectors, half of "Flat".
EXACT_FACTORY = "SQfp16"

# fetch(ids) -> float32 (len(ids), dim); rows of ids it no longer knows are NaN.
Fetch = Callable[[np.ndarray], np.ndarray]
# An array of allowed ids, a FAISS id selector, or a vectorised predicate ids -> bool mask.
Allowed = np.ndarray | Sequence[int] | faiss.IDSelector | Callable[[np.ndarray], np.ndarray]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _id_array(ids: np.ndarray | Sequence[int], what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidVectorsError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidVectorsError(f"{what} must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and int(arr.min()) < 0:
        raise InvalidVectorsError(f"{what} must be >= 0 (FAISS uses -1 for 'no result')")
    return np.ascontiguousarray(arr)


def _selector_batch(ids: np.ndarray) -> faiss.IDSelector:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))


def _no_polysemous(index: faiss.Index) -> None:
    """Skip polysemous PQ training: minutes of annealing for a Hamming filter we never use."""
    inner = _innermost(index)
    ivf = faiss.try_extract_index_ivf(index)
    for part in (inner, faiss.downcast_index(ivf) if ivf is not None else None):
        if part is not None and hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False


def _innermost(index: faiss.Index) -> faiss.Index:
    """The index doing the work, under pre-transforms (PCA, OPQ) and id maps."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform | faiss.IndexIDMap | faiss.IndexIDMap2):
        index = faiss.downcast_index(index.index)
    return index


_HALF_SLACK = 2.0**-10  # a float16 row stored as is must be this close to unit length


def _half_rows(x: np.ndarray) -> np.ndarray:
    """What a float16 exact index stores: rows already float16 and unit (stored vectors) as they
    are, so the codes hold them exactly; any other row L2-normalised and rounded to float16."""
    rounded = x.astype(np.float16).astype(np.float32)
    norms = np.linalg.norm(rounded, axis=1)
    keep = (rounded == x).all(axis=1) & ((np.abs(norms - 1) <= _HALF_SLACK) | (norms == 0))
    if keep.all():
        return x
    out = x.copy()
    out[~keep] = l2n(x[~keep]).astype(np.float16).astype(np.float32)
    return out


class _Norms:
    """Norms of the rows of a float16 exact index, by id (sorted arrays: 12 B a vector)."""

    def __init__(self, ids: np.ndarray, norms: np.ndarray) -> None:
        order = np.argsort(ids)
        self.ids = np.ascontiguousarray(ids[order], dtype=np.int64)
        self.norms = np.ascontiguousarray(norms[order], dtype=np.float32)
        self._bounds: tuple[float, float] | None = None

    @classmethod
    def of(cls, index: faiss.IndexIDMap2, chunk: int = 16_384) -> _Norms:
        """From the codes themselves (a loaded file), a chunk at a time."""
        stored = int(index.ntotal)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        inner = faiss.downcast_index(index.index)
        norms = np.empty(stored, dtype=np.float32)
        for start in range(0, stored, chunk):
            size = min(chunk, stored - start)
            norms[start : start + size] = np.linalg.norm(inner.reconstruct_n(start, size), axis=1)
        return cls(ids, norms)

    def add(self, ids: np.ndarray, rows: np.ndarray) -> None:
        fresh = _Norms(ids, np.linalg.norm(rows, axis=1))
        self.__init__(np.concatenate([self.ids, fresh.ids]), np.concatenate([self.norms, fresh.norms]))

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, ids)
        self.ids, self.norms, self._bounds = self.ids[keep], self.norms[keep], None

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Norms of these ids (1 where an id is -1 or unknown; never 0, so a division is safe)."""
        if not len(self.ids):
            return np.ones(ids.shape, dtype=np.float32)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        found = self.ids[pos] == ids
        return np.where(found, np.maximum(self.norms[pos], np.float32(1e-12)), np.float32(1.0))

    def bounds(self) -> tuple[float, float]:
        """(smallest, largest) norm of a non-zero row: how far a raw ranking can be off."""
        if self._bounds is None:
            live = self.norms[self.norms > 0]
            self._bounds = (float(live.min()), float(live.max())) if len(live) else (1.0, 1.0)
        return self._bounds


class VectorIndex:
    """A FAISS index whose ids are our row ids; see the module docstring for the contract."""

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        *,
        oversample: int | None = None,
        ef_search: int = 256,
        nprobe: int | None = None,
        exact_subset_max: int = 20_000,
    ) -> None:
        if not isinstance(dim, int) or dim <= 0:
            raise VectorIndexError(f"dimension must be a positive integer, got {dim!r}")
        if not isinstance(factory, str) or not factory.strip():
            raise VectorIndexError(f"factory must be a FAISS index factory string, got {factory!r}")
        factory = factory.strip()
        faiss_factory, _, copy_spec = (part.strip() for part in factory.partition("|"))
        if factory.upper().startswith("IDMAP"):
            raise VectorIndexError(
                f"factory {factory!r}: leave out IDMap, ids are mapped by VectorIndex itself"
            )
        try:
            base = faiss.index_factory(dim, faiss_factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise VectorIndexError(f"bad FAISS factory string {factory!r}: {_first_line(err)}") from err
        _no_polysemous(base)
        # "<faiss factory>|PCA256,fp16": candidates re-ranked by a compact on-disk copy (rerank.py).
        self.copy: RerankCopy | None = RerankCopy(dim, copy_spec) if copy_spec else None
        self.dim = dim
        self.factory = factory
        self.generation = 0
        self.max_id = -1
        self.meta: dict[str, Any] = {}
        self._tombstones: set[int] = set()
        self._tomb_sel: tuple[faiss.IDSelector, ...] | None = None
        self.set_tuning(
            oversample=oversample, ef_search=ef_search, nprobe=nprobe, exact_subset_max=exact_subset_max
        )
        if faiss.try_extract_index_ivf(base) is not None:
            self._index = base
        else:
            self._index = faiss.IndexIDMap2(base)
        self._classify()

    # ------------------------------------------------------------------ shape
    def set_tuning(
        self,
        *,
        oversample: int | None = None,
        ef_search: int = 256,
        nprobe: int | None = None,
        exact_subset_max: int = 20_000,
    ) -> None:
        """Search-time knobs; they are not stored in the file, so a reader may choose its own.

        ``oversample`` None: 10 for PQ-coded indexes, 4 for the others (HNSW keeps exact vectors).
        """
        if (
            (oversample is not None and oversample < 1)
            or ef_search < 1
            or (nprobe is not None and nprobe < 1)
            or exact_subset_max < 0
        ):
            raise VectorIndexError("oversample, ef_search and nprobe must be >= 1, exact_subset_max >= 0")
        self._oversample = oversample
        self.ef_search = int(ef_search)
        self.nprobe = nprobe
        self.exact_subset_max = int(exact_subset_max)

    def _classify(self) -> None:
        inner = _innermost(self._index)
        self._ivf = faiss.try_extract_index_ivf(self._index)
        self._native_ids = self._ivf is not None
        self._hnsw = isinstance(inner, faiss.IndexHNSW)
        self._pq_bytes = int(inner.pq.M) if hasattr(inner, "pq") else 0
        # FAISS takes id selectors (and per-search parameters) for these; others are filtered after.
        self._selectors = (
            self._hnsw
            or self._ivf is not None
            or isinstance(inner, faiss.IndexFlat | faiss.IndexScalarQuantizer)
        )
        self.uses_tombstones = isinstance(inner, faiss.IndexHNSW | faiss.IndexNSG)
        # float16 codes are exact on float16 values, which is all the store ever adds (codec.py)
        half = isinstance(inner, faiss.IndexScalarQuantizer) and (
            inner.sq.qtype == faiss.ScalarQuantizer.QT_fp16
        )
        self.exact = (isinstance(inner, faiss.IndexFlat) or half) and not isinstance(
            self._index, faiss.IndexPreTransform
        )
        self._half = half and self.exact and isinstance(self._index, faiss.IndexIDMap2)
        self._norms: _Norms | None = None  # of the float16 rows, by id (built on first search)

    @property
    def oversample(self) -> int:
        """Candidates fetched per result for re-ranking: 4, or 10 for PQ codes of under 64 bytes.

        Each candidate is a stored-vector read from SQL. A PQ distance sums one error per
        sub-quantizer, so codes of few bytes rank coarsely and need a deeper re-rank; at the
        product's sizes (dim/8 bytes: 160 for DASR Lite0, 64 for CLIP ViT-B) IVF-PQ re-ranked
        x3-x5 kept 99.7-99.9% of the exact top 200 and all of the top 20 on real region vectors
        (``scripts/eval_rerank.py``, docs/API.md), where x10 read 2.5x the rows for the rest.
        """
        if self._oversample is not None:
            return int(self._oversample)
        return 10 if 0 < self._pq_bytes < 64 else 4

    @property
    def approximate(self) -> bool:
        return not self.exact

    @property
    def ntotal(self) -> int:
        """Live vectors: what a search can return."""
        return int(self._index.ntotal) - len(self._tombstones)

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained) and (self.copy is None or self.copy.is_trained)

    def needs_compaction(self, max_ratio: float = 0.2) -> bool:
        """True when removed-but-still-stored vectors exceed ``max_ratio`` of the index (HNSW)."""
        stored = int(self._index.ntotal)
        return stored > 0 and len(self._tombstones) > max_ratio * stored

    def ids(self) -> np.ndarray:
        """Sorted live ids, read from the index itself (so it can be compared with SQL)."""
        if self._native_ids:
            invlists = self._ivf.invlists
            parts = []
            for list_no in range(self._ivf.nlist):
                size = invlists.list_size(list_no)
                if size:
                    ptr = invlists.get_ids(list_no)
                    parts.append(faiss.rev_swig_ptr(ptr, size).copy())
                    invlists.release_ids(list_no, ptr)
            raw = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        else:
            raw = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._tombstones:
            raw = raw[~np.isin(raw, self._tomb_array())]
        return np.sort(raw)

    # ---------------------------------------------------------------- writing
    def train(self, vectors: np.ndarray) -> None:
        """Train an IVF / PQ index on a sample; a no-op for indexes that need none."""
        if self.is_trained:
            return
        x = l2n(as_matrix(vectors, self.dim))
        if self.copy is not None and not self.copy.is_trained:
            self.copy.train(x)
        if self._index.is_trained:
            return
        try:
            self._index.train(x)
        except RuntimeError as err:
            raise VectorIndexError(
                f"cannot train {self.factory!r} on {len(x)} vectors: {_first_line(err)}"
            ) from err

    def add(self, ids: np.ndarray | Sequence[int], vectors: np.ndarray, *, check: bool = True) -> None:
        """Add vectors under their row ids; an untrained index trains on this batch first.

        ``check=False`` skips the (O(n)) test that the ids are not in the index yet; only
        for callers that know it, such as a rebuild into an empty index.
        """
        ids = _id_array(ids)
        x = as_matrix(vectors, self.dim)
        if len(ids) != len(x):
            raise InvalidVectorsError(f"{len(ids)} ids for {len(x)} vectors")
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids):
            raise VectorIndexError("duplicate ids in one add() call")
        if self._tombstones and np.isin(ids, self._tomb_array()).any():
            self.compact()  # a removed id comes back: drop the old graph node first
        if check and self._index.ntotal:
            present = ids[np.isin(ids, self.ids())]
            if len(present):
                raise VectorIndexError(f"ids already in the index: {present[:10].tolist()}")
        x = _half_rows(x) if self._half else l2n(x)
        if not self.is_trained:
            self.train(x)
        try:
            self._index.add_with_ids(x, ids)
        except RuntimeError as err:
            raise VectorIndexError(f"cannot add to {self.factory!r}: {_first_line(err)}") from err
        if self.copy is not None:
            self.copy.add(ids, x)
        if self._norms is not None:
            self._norms.add(ids, x)
        self.max_id = max(self.max_id, int(ids.max()))

    def remove(self, ids: np.ndarray | Sequence[int]) -> int:
        """Remove ids (unknown ones are ignored); returns how many live vectors went away."""
        ids = np.unique(_id_array(ids))
        if not len(ids) or not self.ntotal:
            return 0
        live = ids[np.isin(ids, self.ids())]
        if not len(live):
            return 0
        if self.uses_tombstones:
            self._tombstones.update(int(i) for i in live)
            self._tomb_sel = None
            return len(live)
        removed = int(self._index.remove_ids(_selector_batch(live)))
        if self._norms is not None:
            self._norms.remove(live)
        return removed

    def compact(self) -> None:
        """Rebuild an HNSW index without its tombstones, from the vectors it stores itself."""
        if not self._tombstones:
            return
        stored = int(self._index.ntotal)
        all_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vecs = self._index.index.reconstruct_n(0, stored) if stored else np.zeros((0, self.dim), np.float32)
        keep = ~np.isin(all_ids, self._tomb_array())
        fresh = VectorIndex(self.dim, self.factory)
        self._index = fresh._index  # a re-rank copy keeps its rows: the same ids come back
        self._classify()
        self._tombstones = set()
        self._tomb_sel = None
        if keep.any():
            self._index.add_with_ids(l2n(vecs[keep]), all_ids[keep])

    # ---------------------------------------------------------------- search
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: Allowed | None = None,
        fetch: Fetch | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores (Q, k) float32, ids (Q, k) int64), -1 / -inf past the end.

        ``allowed``: an array of ids (searched with a FAISS id selector, or exactly over the
        fetched vectors when it is small and the index is approximate), a ready FAISS
        ``IDSelector`` (e.g. ``IDSelectorRange``), or a predicate over an id array (applied after
        the search, widening the candidate list until k pass).
        ``fetch``: exact stored vectors; given it, approximate results are re-ranked exactly.
        """
        q = l2n(as_matrix(queries, self.dim))
        if not isinstance(k, int | np.integer) or k < 1:
            raise VectorIndexError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        n_q = len(q)
        if n_q == 0 or self.ntotal == 0:
            return _empty(n_q, k)
        filters: list[Callable[[np.ndarray], np.ndarray]] = []
        allowed_sel: faiss.IDSelector | None = None
        keep_alive: list[Any] = []
        if allowed is not None:
            if isinstance(allowed, faiss.IDSelector):
                if not self._selectors:
                    raise VectorIndexError(
                        f"{self.factory!r} takes no FAISS id selector; pass ids or a predicate"
                    )
                allowed_sel = allowed
            elif callable(allowed):
                filters.append(allowed)
            else:
                allowed_ids = np.unique(_id_array(allowed, "allowed ids"))
                if self._tombstones:
                    allowed_ids = allowed_ids[~np.isin(allowed_ids, self._tomb_array())]
                if not len(allowed_ids):
                    return _empty(n_q, k)
                if self.approximate and fetch is not None and len(allowed_ids) <= self.exact_subset_max:
                    return _exact_over(q, k, allowed_ids, fetch)
                if self._selectors:
                    allowed_sel = _selector_batch(allowed_ids)
                    keep_alive.append(allowed_sel)
                else:
                    filters.append(lambda ids: np.isin(ids, allowed_ids))
        if self._tombstones and not self._selectors:
            dead = self._tomb_array()
            filters.append(lambda ids: ~np.isin(ids, dead))
        rerank = self.approximate and (fetch is not None or self.copy is not None)
        want = min(k * self.oversample, max(self.ntotal, k)) if rerank else k
        sel = self._combine(allowed_sel, keep_alive) if self._selectors else None
        stored = int(self._index.ntotal)
        kk = want
        while True:
            scores, ids = self._raw_search(q, kk, sel)
            if not filters:
                break
            ok = ids >= 0
            for keep in filters:
                ok &= np.asarray(keep(ids.ravel()), dtype=bool).reshape(ids.shape)
            ids = np.where(ok, ids, -1)
            scores = np.where(ok, scores, -np.inf).astype(np.float32)
            if (ok.sum(axis=1) >= want).all() or kk >= stored:
                break
            kk = min(kk * 4, stored)
        if self.copy is not None and self.approximate:
            return self._rerank_by_copy(q, k, ids, fetch)
        if rerank:
            return _rerank(q, k, ids, fetch)
        return _top_k(scores, ids, k)

    def _rerank_by_copy(
        self, q: np.ndarray, k: int, cand: np.ndarray, fetch: Fetch | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Order the candidates by the compact copy; with ``fetch``, exact scores for the k kept.

        The copy picks the final set (k reads from SQL instead of k * oversample), then the
        winners get exact cosines so scores stay what the Flat index would give.
        """
        approx = self.copy.scores(q, cand)  # type: ignore[union-attr]
        s_top, i_top = _top_k(approx, np.where(np.isfinite(approx), cand, -1), k)
        if fetch is None:
            return s_top, i_top
        return _rerank(q, k, i_top, fetch)

    def _tomb_array(self) -> np.ndarray:
        return np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones))

    def _combine(
        self, allowed_sel: faiss.IDSelector | None, keep_alive: list[Any]
    ) -> faiss.IDSelector | None:
        """The selector a FAISS search gets: allowed ids AND NOT tombstones."""
        if self._tombstones and self._tomb_sel is None:
            batch = _selector_batch(self._tomb_array())
            self._tomb_sel = (faiss.IDSelectorNot(batch), batch)
        tomb = self._tomb_sel[0] if self._tombstones and self._tomb_sel else None
        if allowed_sel is not None and tomb is not None:
            both = faiss.IDSelectorAnd(allowed_sel, tomb)
            keep_alive.append(both)
            return both
        return allowed_sel if allowed_sel is not None else tomb

    def _raw_search(
        self, q: np.ndarray, kk: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._half:
            return self._half_search(q, kk, sel)
        return self._faiss_search(q, kk, sel)

    def _half_search(
        self, q: np.ndarray, kk: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat's exact top kk from the float16 rows: raw inner products divided by each row's norm.

        Flat holds ``l2n(row)`` in float32; float16 codes hold the row itself (within 2^-10 of
        unit length), so q . row / |row| is Flat's score. Ranking by the raw product may differ
        from it only within that margin: a wider raw list is re-scored, and widened until no row
        left out could beat the kk-th score (its raw product is at most the last one fetched).
        """
        if self._norms is None:
            self._norms = _Norms.of(self._index)
        stored = int(self._index.ntotal)
        wide = min(stored, max(2 * kk, kk + 32))
        while True:
            raw, ids = self._faiss_search(q, wide, sel)
            norms = self._norms.get(ids)
            scores = np.where(ids >= 0, raw / norms, -np.inf).astype(np.float32)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
            top_s, top_i = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
            if wide >= stored:
                return top_s, top_i
            last = raw[:, -1]
            lo, hi = self._norms.bounds()
            bound = np.where(last >= 0, last / lo, last / hi)
            done = (ids[:, -1] < 0) | (top_s[:, kk - 1] >= bound)
            if done.all():
                return top_s, top_i
            wide = min(stored, wide * 4)

    def _faiss_search(
        self, q: np.ndarray, kk: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._hnsw:
            params: faiss.SearchParameters | None = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, kk)
        elif self._ivf is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = min(self._ivf.nlist, self.nprobe or default_nprobe(self._ivf.nlist))
        elif self._selectors:
            params = faiss.SearchParameters()
        else:
            params = None
        if sel is not None and params is not None:
            params.sel = sel
        try:
            scores, ids = self._index.search(q, kk, params=params)
        except RuntimeError as err:
            raise VectorIndexError(f"search in {self.factory!r} failed: {_first_line(err)}") from err
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids.astype(np.int64)

    # ------------------------------------------------------------------ files
    def save(self, path: Path | str) -> None:
        """Write atomically: temp file in the same folder, fsync, ``os.replace``, fsync the folder."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        header = {
            "format": FILE_FORMAT,
            "factory": self.factory,
            "dim": self.dim,
            "metric": "inner_product",
            "ntotal": self.ntotal,
            "tombstones": len(self._tombstones),
            "max_id": self.max_id,
            "generation": self.generation,
            "meta": self.meta,
        }
        previous: dict[str, Any] | None = None
        if self.copy is not None and self.copy.is_trained:
            # Segments first: the index file that names them appears only once they are on disk.
            with_copy = self.copy.save(path)
            header["rerank"] = with_copy
            try:
                previous = read_header(path).get("rerank") if path.exists() else None
            except CorruptIndexError:
                previous = None
        ids = self.ids()
        # The ids' count, max and sum: a reader compares them with SQL without loading the index.
        header["ids"] = [len(ids), int(ids[-1]) if len(ids) else -1, int(ids.sum()) if len(ids) else 0]
        raw = json.dumps(header, sort_keys=True).encode()
        try:
            with open(tmp, "wb") as out:
                out.write(FILE_MAGIC + struct.pack("<I", len(raw)) + raw)
                payload = _Summed(out.write)
                payload(np.array(sorted(self._tombstones), dtype="<i8").tobytes())
                writer = faiss.PyCallbackIOWriter(payload)
                faiss.write_index(self._index, writer)
                del writer
                out.write(TRAILER_MAGIC + _TRAILER.pack(payload.size, payload.crc))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        if self.copy is not None and header.get("rerank"):
            # Keep what this and the previous file name: a reader may still be opening the old one.
            collect_unused(path, [header["rerank"]] + ([previous] if previous else []))

    @classmethod
    def load(cls, path: Path | str, **tuning: Any) -> VectorIndex:
        """Read a file written by :meth:`save`; unreadable, truncated or garbled: CorruptIndexError.

        Format 2 files end in a CRC32 of everything after the header, checked while reading
        (one pass, no second copy): a flipped byte inside the vectors, which FAISS itself
        would read without complaint, is caught here.
        """
        path = Path(path)
        with open(path, "rb") as src:
            header = _read_header(src, path)
            payload = _Summed(src.read)
            n_tomb = int(header.get("tombstones", 0))
            tomb_raw = payload(8 * n_tomb)
            if len(tomb_raw) != 8 * n_tomb:
                raise CorruptIndexError(f"{path.name}: truncated (tombstones)")
            try:
                faiss_index = faiss.read_index(faiss.PyCallbackIOReader(payload))
            except RuntimeError as err:
                raise CorruptIndexError(
                    f"{path.name}: FAISS cannot read the index: {_first_line(err)}"
                ) from err
            if header.get("format") == FILE_FORMAT:
                tail = src.read(len(TRAILER_MAGIC) + _TRAILER.size + 1)
                if len(tail) != len(TRAILER_MAGIC) + _TRAILER.size or not tail.startswith(TRAILER_MAGIC):
                    raise CorruptIndexError(
                        f"{path.name}: truncated or extended (no checksum trailer at the end)"
                    )
                size, crc = _TRAILER.unpack(tail[len(TRAILER_MAGIC) :])
                if (size, crc) != (payload.size, payload.crc):
                    raise CorruptIndexError(
                        f"{path.name}: checksum mismatch (changed or damaged after it was written)"
                    )
        if faiss_index.d != header.get("dim"):
            raise CorruptIndexError(
                f"{path.name}: header says dim {header.get('dim')}, index has {faiss_index.d}"
            )
        self = cls.__new__(cls)
        self.dim = int(header["dim"])
        self.factory = str(header["factory"])
        self.generation = int(header.get("generation", 0))
        self.max_id = int(header.get("max_id", -1))
        self.meta = dict(header.get("meta") or {})
        self._tombstones = set(np.frombuffer(tomb_raw, dtype="<i8").tolist())
        self._tomb_sel = None
        self._index = faiss_index
        copy_spec = self.factory.partition("|")[2].strip()
        self.copy = (
            RerankCopy.load(path, self.dim, header["rerank"])
            if header.get("rerank")
            else RerankCopy(self.dim, copy_spec)
            if copy_spec
            else None
        )
        self.set_tuning(**tuning)
        self._classify()
        return self


def read_header(path: Path | str) -> dict[str, Any]:
    """The JSON header of an index file (factory, dim, generation, max_id, meta) without the index."""
    path = Path(path)
    with open(path, "rb") as src:
        return _read_header(src, path)


class _Summed:
    """A read or write callable that keeps the length and CRC32 of the bytes passing through."""

    def __init__(self, io: Callable[[Any], Any]) -> None:
        self._io = io
        self.size = 0
        self.crc = 0

    def __call__(self, arg: Any) -> Any:
        if isinstance(arg, int):  # a read of ``arg`` bytes
            data = self._io(arg)
        else:  # a write
            data = arg
            self._io(arg)
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)
        return data if isinstance(arg, int) else len(data)


def _read_header(src: BinaryIO, path: Path) -> dict[str, Any]:
    # Messages name the file, not its folder: they reach HTTP clients as 503 texts.
    head = src.read(len(FILE_MAGIC) + 4)
    if len(head) < len(FILE_MAGIC) + 4 or not head.startswith(FILE_MAGIC):
        raise CorruptIndexError(f"{path.name}: not a video_inst index file")
    (size,) = struct.unpack("<I", head[len(FILE_MAGIC) :])
    raw = src.read(size)
    try:
        header = json.loads(raw)
    except ValueError as err:
        raise CorruptIndexError(f"{path.name}: unreadable header") from err
    if not isinstance(header, dict) or header.get("format") not in (1, FILE_FORMAT):
        raise CorruptIndexError(f"{path.name}: unknown index file format {header!r:.80}")
    return header


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------- ranking helpers
def _empty(n_q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_q, k), -np.inf, dtype=np.float32), np.full((n_q, k), -1, dtype=np.int64)


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row, ties broken by smaller id so results are deterministic."""
    n_q = len(ids)
    out_s, out_i = _empty(n_q, k)
    for row in range(n_q):
        ok = ids[row] >= 0
        s, i = scores[row][ok], ids[row][ok]
        order = np.lexsort((i, -s))[:k]
        out_s[row, : len(order)] = s[order]
        out_i[row, : len(order)] = i[order]
    return out_s, out_i


def _fetch_checked(fetch: Fetch, ids: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids found, their L2-normalised vectors): ids the fetcher no longer knows (NaN rows) drop out."""
    vecs = np.asarray(fetch(ids), dtype=np.float32)
    if vecs.shape != (len(ids), dim):
        raise VectorIndexError(f"fetch returned shape {vecs.shape} for {len(ids)} ids of dimension {dim}")
    found = ~np.isnan(vecs).any(axis=1)
    return ids[found], l2n(vecs[found]) if found.any() else np.zeros((0, dim), np.float32)


def _rerank(q: np.ndarray, k: int, cand: np.ndarray, fetch: Fetch) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores for the approximate candidates, from the stored vectors."""
    uniq = np.unique(cand[cand >= 0])
    if not len(uniq):
        return _empty(len(q), k)
    known, vecs = _fetch_checked(fetch, uniq, q.shape[1])
    pos = np.searchsorted(known, cand)
    pos = np.clip(pos, 0, max(len(known) - 1, 0))
    hit = (cand >= 0) & (len(known) > 0)
    if len(known):
        hit &= known[pos] == cand
    scores = np.full(cand.shape, -np.inf, dtype=np.float32)
    if hit.any():
        rows, cols = np.nonzero(hit)
        scores[rows, cols] = np.einsum("ij,ij->i", q[rows], vecs[pos[rows, cols]])
    return _top_k(scores, np.where(hit, cand, -1), k)


def _exact_over(q: np.ndarray, k: int, allowed: np.ndarray, fetch: Fetch) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over a small allowed set: exact, and immune to ANN misses inside a tiny subset."""
    known, vecs = _fetch_checked(fetch, allowed, q.shape[1])
    if not len(known):
        return _empty(len(q), k)
    scores = q @ vecs.T
    return _top_k(scores.astype(np.float32), np.broadcast_to(known, scores.shape), k)


# ------------------------------------------------------------ factory helpers
def default_nprobe(nlist: int) -> int:
    """Lists probed per query: enough that re-ranking has good candidates (1/8 of them, 16..256)."""
    return int(min(nlist, max(16, min(256, nlist // 8))))


def ivf_nlist(n: int) -> int:
    """IVF lists for n vectors: ~4·sqrt(n) rounded to a power of two, at most n/39 (k-means needs that)."""
    target = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1)))
    cap = 2 ** int(math.log2(max(n // 39, 1)))
    return int(max(1, min(target, cap, 65536)))


def pq_m(dim: int) -> int:
    """PQ sub-quantizers: ~8 dimensions each (64 bytes a vector at 512-d); must divide dim."""
    for m in range(max(dim // 8, 1), 0, -1):
        if dim % m == 0:
            return m
    return 1


def compact_factory(n: int, dim: int) -> str:
    """OPQ rotation to <= 256 dims, IVF, PQ codes of <= 64 B, re-ranked by a PCA float16 copy.

    At 1280-d: ``OPQ64_256,IVF<nlist>,PQ64|PCA<r>,fp16``: 64 B of codes + 8 B of id a vector
    in RAM, the copy on disk (memory-mapped). Chosen from ``scripts/bench_scale.py`` on real
    DASR vectors (docs/VECTORS.md "Compact indexes").
    """
    reduced = min(dim, 256)
    m = pq_m(reduced) if reduced < 256 else 64
    while reduced % m:
        m -= 1
    rerank = min(dim, COPY_DIMS)
    return f"OPQ{m}_{reduced},IVF{ivf_nlist(n)},PQ{m}|PCA{rerank},fp16"


COPY_DIMS = 248  # PCA dims of the re-rank copy: 496 B of float16 + 8 B of id <= 512 B a vector


def choose_factory(n: int, dim: int, settings: Settings | None = None) -> str:
    """Exact ``EXACT_FACTORY`` up to ``settings.exact_index_max`` vectors, then a compact index by default.

    The exact index costs 2 B a dimension a vector (float16 codes, the stored vectors exactly)
    and scans all of them per query; past the threshold
    ``approx_index`` decides: ``compact`` (default, 72 B a vector in RAM), ``ivfpq``, or
    ``hnsw``, which holds full floats and so is taken only while :func:`estimate_bytes` says it
    fits ``settings.index_ram_max``; past that the compact index is chosen instead.
    """
    settings = settings or get_settings()
    if n <= settings.exact_index_max or n < 1000:  # below ~1000 vectors approximation buys nothing
        return EXACT_FACTORY
    if settings.approx_index == "hnsw" and estimate_bytes("HNSW32", n, dim) <= settings.index_ram_max:
        return "HNSW32"
    if settings.approx_index == "ivfpq":
        return f"IVF{ivf_nlist(n)},PQ{pq_m(dim)}"
    return compact_factory(n, dim)


def estimate_bytes(factory: str, n: int, dim: int) -> int:
    """Memory of an index of n vectors, from the factory string (like faiss.contrib.factory_tools).

    Codes from ``get_code_size``, plus ids (8 B), the IndexIDMap2 reverse map (~48 B), HNSW
    levels, IVF centroids and PQ codebooks. An estimate to plan memory, within ~20%.
    """
    from faiss.contrib.factory_tools import get_code_size

    factory = factory.partition("|")[0].strip()  # a re-rank copy lives on disk (memory-mapped)
    try:
        code = int(get_code_size(dim, factory))
    except RuntimeError as err:
        raise VectorIndexError(f"cannot estimate the size of {factory!r}: {err}") from err
    per_vector = float(code)
    fixed = 0
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf:
        per_vector += 8  # ids stored in the inverted lists
        fixed += int(ivf.group(1)) * dim * 4  # coarse centroids
    else:
        per_vector += 8 + 48  # IndexIDMap2: id_map + unordered_map rev_map
    pq = re.search(r"PQ(\d+)(?:x(\d+))?", factory)
    opq = re.match(r"OPQ(\d+)(?:_(\d+))?,", factory)
    inner_dim = int(opq.group(2) or dim) if opq else dim
    if opq:
        fixed += dim * inner_dim * 4  # rotation matrix
    if ivf:
        fixed += int(ivf.group(1)) * (inner_dim - dim) * 4
    if pq:
        fixed += (2 ** int(pq.group(2) or 8)) * inner_dim * 4  # PQ codebooks
    if "HNSW" in factory:
        per_vector += 4 + 8 + 4  # levels, offsets, upper-level links (amortised)
    return int(fixed + n * per_vector)
