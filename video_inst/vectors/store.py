"""All FAISS indexes of a data directory, one per (model space, kind), derived from the SQL ``vectors``.

The file side only: every SQL statement it needs is a method of ``vectors.rows.VectorRows``
(``self.rows``); ``ensure_space`` / ``add_vectors`` / ``delete_*`` here delegate to it and add
the file-side parts (the SQLite id floor, the dimension cache).

SQL is the source of truth: :meth:`IndexStore.add_vectors` writes rows in the caller's
transaction; after the commit, :meth:`IndexStore.sync` brings ``root/<space_id>-<kind>.faiss``
in line (adds what SQL has and the index lacks, removes the rest), saves it atomically and
bumps ``index_state.generation``. Readers in any process reload when the generation or the
file changes. One writer per index at a time: ``fcntl.flock`` on ``root/<space_id>-<kind>.lock``.

Example::

    store = IndexStore(settings.index_dir, catalog)
    with catalog.session() as s:
        space = store.ensure_space(s, "clip:ViT-B-32:laion2b_s34b_b79k", "clip", 512, {})
        store.add_vectors(s, space, "frame", keyframe_ids, video_ids, vectors)
    store.sync(space.id, "frame")
    hits = store.search(space.id, "frame", query_vector, k=20)[0]   # [(vector id, score), ...]

Ids on SQLite: SQLite hands a deleted row's id to the next insert when that row had the
highest id, and an index that still holds the old vector under that id would never notice.
So on SQLite :meth:`add_vectors` assigns ids itself, above every id any sync of that index has
seen (``root/<space_id>-<kind>.floor``); PostgreSQL sequences never reuse ids.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.config import Settings, get_settings
from video_inst.errors import InvalidQueryError, NotFoundError, TransientError
from video_inst.vectors.codec import as_matrix, l2n
from video_inst.vectors.errors import (
    CorruptIndexError,
    IndexUnavailableError,
    VectorIndexError,
)
from video_inst.vectors.index import EXACT_FACTORY, VectorIndex, _fsync_dir, choose_factory, read_header
from video_inst.vectors.rows import KINDS, VectorRows, check_kind

if TYPE_CHECKING:  # types only: every statement goes through vectors.rows (tool.importlinter)
    from sqlalchemy.orm import Session

    from video_inst.catalog.models import ModelSpace

log = logging.getLogger(__name__)

# (model family, kind) whose vectors the product keeps in SQL only: nothing searches them through
# FAISS. A DASR track vector (the mean of its views) is read by id, for "more like this" and
# relevance feedback, which then search the region index; an index of them was 1/3 of the index
# bytes for nothing (docs/VECTORS.md, "Disk per hour"). CLIP track vectors are searched by text.
SQL_ONLY_KINDS = frozenset({("dasr", "track")})


@dataclass(frozen=True)
class SyncReport:
    """What one sync or rebuild did, for logs and the CLI."""

    space_id: int
    kind: str
    added: int
    removed: int
    rebuilt: bool
    changed: bool
    generation: int
    count: int
    factory: str
    seconds: float


class Consistency(NamedTuple):
    """SQL against the index: ids SQL has that the index lacks (missing) and the reverse (extra)."""

    sql_count: int
    index_count: int
    missing: list[int]
    extra: list[int]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra


@dataclass(frozen=True)
class IndexHealth:
    """One index as ``/health`` reports it: ok, healing (rebuilt in the background) or damaged."""

    space_id: int
    kind: str
    state: str  # ok | healing | damaged
    vectors: int  # SQL's count: what the index holds once healed
    problem: str | None = None


class _Damaged(Exception):
    """Internal: the index file is missing, corrupt or disagrees with SQL (the message says which)."""


@dataclass
class _Loaded:
    index: VectorIndex
    stat: tuple[int, int, int]
    sql_generation: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: float = field(default_factory=time.monotonic)  # last agreement with SQL (servers recheck)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _family(factory: str) -> str:
    up = factory.upper()
    if "HNSW" in up:
        return "hnsw"
    if "IVF" in up:
        return "compact" if "|" in up else "ivf"
    return "flat" if up in ("FLAT", EXACT_FACTORY.upper()) else up


class IndexStore:
    """The indexes under ``root``, kept in line with the catalog; safe to share between threads."""

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        settings: Settings | None = None,
        *,
        oversample: int | None = None,
        ef_search: int = 256,
        nprobe: int | None = None,
        exact_subset_max: int = 20_000,
        lock_timeout_s: float = 600.0,
        batch_size: int = 20_000,
        train_max: int = 200_000,
        exact_fallback_max: int = 50_000,
        sql_only: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    ) -> None:
        """``sql_only``: (family, kind) pairs with no index file (``SQL_ONLY_KINDS`` in the product)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog
        self.rows = VectorRows(catalog)  # every SQL statement of the indexes goes through this
        self.settings = settings or get_settings()
        self.tuning: dict[str, Any] = {
            "oversample": oversample,
            "ef_search": ef_search,
            "nprobe": nprobe,
            "exact_subset_max": exact_subset_max,
        }
        self.lock_timeout_s = lock_timeout_s
        self.batch_size = batch_size
        self.train_max = train_max
        self._loaded: dict[tuple[int, str], _Loaded] = {}
        self._cache_lock = threading.Lock()
        self._dims: dict[int, int] = {}
        self.sql_only = frozenset(sql_only)
        self._families: dict[int, str | None] = {}
        # Self-heal (docs/VECTORS.md "Damage and self-heal"): a one-shot process repairs a damaged
        # index before it answers; a server sets heal_in_background and answers meanwhile by an
        # exact search over SQL (up to exact_fallback_max vectors) or IndexUnavailableError.
        self.heal_in_background = False
        self.exact_fallback_max = exact_fallback_max
        self._heal_lock = threading.Lock()
        self._healing: dict[tuple[int, str], threading.Thread] = {}
        self._problems: dict[tuple[int, str], str] = {}
        self.recheck_s = 30.0  # a server compares its loaded indexes with SQL this often
        self._opened = False  # check_files has run (on the first search of this store)
        # Index type switches (Flat -> compact as the catalog grows, IVF retrains): built without
        # the writer lock while the old index keeps answering; in a thread when this is set.
        self.switch_in_background = False
        self._switching: dict[tuple[int, str], threading.Thread] = {}

    # ------------------------------------------------------------------ paths
    def index_path(self, space_id: int, kind: str) -> Path:
        return self.root / f"{int(space_id)}-{kind}.faiss"

    def _lock_path(self, space_id: int, kind: str, what: str = "lock") -> Path:
        return self.root / f"{int(space_id)}-{kind}.{what}"

    # ------------------------------------------------------------ SQL writes
    # Through ``self.rows`` (vectors/rows.py), in the caller's transaction; the file side adds the
    # SQLite id floor (module docstring) and the dimension cache.
    def ensure_space(
        self, session: Session, name: str, family: str, dim: int, params: dict[str, Any] | None = None
    ) -> ModelSpace:
        """The model space row called ``name``, created on first use (``VectorRows.ensure_space``)."""
        space = self.rows.ensure_space(session, name, family, dim, params)
        self._dims[int(space.id)] = int(space.dim)
        return space

    def add_vectors(
        self,
        session: Session,
        space: ModelSpace,
        kind: str,
        owner_ids: Sequence[int] | np.ndarray,
        video_ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
    ) -> list[int]:
        """Store vectors (L2-normalised, float16) in the caller's transaction; returns their row ids.

        Idempotent per (space, kind, owner): an identical vector keeps its row and id, a changed
        one replaces the row (new id, so a sync sees the change). Sync after the commit.
        """
        return self.rows.add_vectors(
            session, space, kind, owner_ids, video_ids, vectors, sqlite_ids=self._insert_sqlite
        )

    def _insert_sqlite(
        self, session: Session, space_id: int, kind: str, stale: list[int], rows: list[dict[str, Any]]
    ) -> list[int]:
        """Insert with ids above every id this index ever saw, so no id is reused (see module doc)."""
        # A write statement first: it takes SQLite's write lock, so max(id) cannot move under us,
        # and locks are always taken in one order (SQL, then the file) so two writers never deadlock.
        self.rows.delete_ids(session, stale or [-1])
        with self._flock(self._lock_path(space_id, kind, "idlock")):
            floor = max(self.rows.max_id(session), max(stale, default=0), self._read_floor(space_id, kind))
            ids = list(range(floor + 1, floor + 1 + len(rows)))
            self.rows.insert_with_ids(session, rows, ids)
        return ids

    def delete_owners(self, session: Session, space_id: int, kind: str, owner_ids: Sequence[int]) -> int:
        """Remove the vectors of some owners (e.g. tracks merged away); sync afterwards."""
        return self.rows.delete_owners(session, space_id, kind, owner_ids)

    def delete_video(self, session: Session, video_id: int) -> list[tuple[int, str]]:
        """Remove a video's vector rows; returns the (space id, kind) indexes the caller must sync."""
        return self.rows.delete_video(session, video_id)

    # ------------------------------------------------------------- SQL reads
    def _space_dim(self, space_id: int) -> int:
        dim = self._dims.get(int(space_id))
        if dim is None:
            dim = self.rows.space_dim(space_id)
            if dim is None:
                raise NotFoundError(f"no model space {space_id} in the catalog")
            self._dims[int(space_id)] = dim
        return dim

    def indexed(self, space_id: int, kind: str) -> bool:
        """False for a (family, kind) kept in SQL only: it has no index file, searches scan SQL."""
        if not self.sql_only:
            return True
        if int(space_id) not in self._families:
            self._families[int(space_id)] = self.rows.space_family(space_id)
        return (self._families[int(space_id)], kind) not in self.sql_only

    def _drop_file(self, space_id: int, kind: str, started: float) -> SyncReport:
        """A SQL-only index: no file (one an older version wrote is removed); SQL's count reported."""
        path = self.index_path(space_id, kind)
        with self._flock(self._lock_path(space_id, kind)):
            existed = path.exists()
            path.unlink(missing_ok=True)
            self._forget(space_id, kind)
        if existed:
            _fsync_dir(self.root)
        return SyncReport(
            space_id=space_id,
            kind=kind,
            added=0,
            removed=0,
            rebuilt=False,
            changed=existed,
            generation=self._state(space_id, kind)[0],
            count=self.sql_count(space_id, kind),
            factory="sql",
            seconds=round(time.perf_counter() - started, 4),
        )

    def _sql_ids(self, space_id: int, kind: str) -> np.ndarray:
        return self.rows.ids(space_id, kind)

    def vectors_for(
        self,
        ids: Sequence[int] | np.ndarray,
        *,
        space_id: int | None = None,
        kind: str | None = None,
        missing: str = "raise",
    ) -> np.ndarray:
        """Exact stored vectors (float32, rows in the order of ``ids``), in batched queries.

        ``missing="raise"``: an unknown id (or one outside the given space / kind) raises
        NotFoundError; ``missing="nan"``: its row is NaN, which re-ranking drops.
        """
        if missing not in ("raise", "nan"):
            raise InvalidQueryError(f"missing must be 'raise' or 'nan', got {missing!r}")
        dim = self._space_dim(space_id) if space_id is not None else None
        return self.rows.vectors_for(ids, space_id=space_id, kind=kind, missing=missing, dim=dim)

    def _iter_vectors(
        self, space_id: int, kind: str, dim: int, ids: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) batches of the given ids: fetched by id, or (many ids) streamed and filtered."""
        if not len(ids):
            return
        if len(ids) <= 50_000:
            for start in range(0, len(ids), self.batch_size):
                part = ids[start : start + self.batch_size]
                vecs = self.vectors_for(part, space_id=space_id, kind=kind, missing="nan")
                ok = ~np.isnan(vecs).any(axis=1)
                yield part[ok], vecs[ok]
            return
        for batch_ids, vecs in self.rows.stream(space_id, kind, dim, self.batch_size, ordered=True):
            keep = np.isin(batch_ids, ids)
            batch_ids, vecs = batch_ids[keep], vecs[keep]
            if len(batch_ids):
                yield batch_ids, vecs

    def _ids_for_videos(self, space_id: int, kind: str, video_ids: Sequence[int]) -> np.ndarray:
        """Vector ids of some videos in one index: the allowed set of a filtered search."""
        return self.rows.ids_for_videos(space_id, kind, video_ids)

    def _state(self, space_id: int, kind: str) -> tuple[int, str | None]:
        return self.rows.state(space_id, kind)

    # ------------------------------------------------------------------ locks
    @contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        """An exclusive lock between processes (and threads: each call opens its own descriptor)."""
        deadline = time.monotonic() + self.lock_timeout_s
        with open(path, "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"{path.name}: another writer has held this index lock "
                            f"for more than {self.lock_timeout_s:.0f} s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read_floor(self, space_id: int, kind: str) -> int:
        """Highest id any sync of this index has seen (file written by syncs, else the index header)."""
        floor = -1
        with suppress(FileNotFoundError, ValueError):
            floor = int(self._lock_path(space_id, kind, "floor").read_text().strip() or -1)
        with suppress(FileNotFoundError, CorruptIndexError):
            floor = max(floor, int(read_header(self.index_path(space_id, kind)).get("max_id", -1)))
        return floor

    def _snapshot_ids(self, space_id: int, kind: str) -> np.ndarray:
        """SQL ids of an index, with the id floor raised past them before any insert can intervene."""
        with self._flock(self._lock_path(space_id, kind, "idlock")):
            ids = self._sql_ids(space_id, kind)
            floor = max(self._read_floor(space_id, kind), int(ids[-1]) if len(ids) else -1)
            path = self._lock_path(space_id, kind, "floor")
            tmp = path.with_suffix(f".floor.{os.getpid()}.tmp")
            with open(tmp, "w") as out:
                out.write(str(floor))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        return ids

    # --------------------------------------------------------------- writers
    def sync(self, space_id: int, kind: str) -> SyncReport:
        """Bring the index file in line with SQL, incrementally; rebuild when the index type must change.

        Call it after the transaction that wrote the vectors has committed.
        """
        check_kind(kind)
        started = time.perf_counter()
        dim = self._space_dim(space_id)
        if not self.indexed(space_id, kind):
            return self._drop_file(space_id, kind, started)
        with self._flock(self._lock_path(space_id, kind)):
            index = self._writable(space_id, kind, dim)
            sql_ids = self._snapshot_ids(space_id, kind)
            target = self._target_factory(index, len(sql_ids), dim)
            if index is None or index.needs_compaction():
                return self._rebuild_locked(
                    space_id, kind, dim, sql_ids, target, pinned=False, started=started
                )
            switch = target != index.factory
            present = index.ids()
            to_add = np.setdiff1d(sql_ids, present, assume_unique=True)
            to_remove = np.setdiff1d(present, sql_ids, assume_unique=True)
            generation, _ = self._state(space_id, kind)
            if not len(to_add) and not len(to_remove) and generation == index.generation:
                report = self._report(space_id, kind, index, started, changed=False)
            else:
                cached = self._loaded.get((space_id, kind))
                try:
                    lock = cached.lock if cached is not None and cached.index is index else threading.Lock()
                    with lock:
                        removed = index.remove(to_remove)
                        added = 0
                        for ids, vecs in self._iter_vectors(space_id, kind, dim, to_add):
                            index.add(ids, vecs, check=False)
                            added += len(ids)
                        if index.needs_compaction():
                            index.compact()
                except BaseException:
                    self._forget(space_id, kind)
                    raise
                self._publish(space_id, kind, index)
                report = self._report(space_id, kind, index, started, added=added, removed=removed)
        if switch:  # after the writer lock: the switch builds without it
            switched = self._start_switch(space_id, kind, dim, target, started)
            return switched or report
        return report

    def _start_switch(
        self, space_id: int, kind: str, dim: int, factory: str, started: float
    ) -> SyncReport | None:
        """Move an index to another type: a fresh build that readers see only once published.

        The new index is trained and filled from SQL without the writer lock (other syncs and
        every search carry on with the current index), then caught up with SQL under the lock
        and published. In a daemon thread when ``switch_in_background`` (servers), else now.
        """
        key = (space_id, kind)
        with self._heal_lock:
            thread = self._switching.get(key)
            if thread is not None and thread.is_alive():
                return
            if not self.switch_in_background:
                thread = None
            else:
                thread = threading.Thread(
                    target=self._switch,
                    args=(space_id, kind, dim, factory, started),
                    name=f"switch-{space_id}-{kind}",
                    daemon=True,
                )
                self._switching[key] = thread
        if thread is None:
            return self._switch(space_id, kind, dim, factory, started)
        thread.start()
        return None

    def _switch(self, space_id: int, kind: str, dim: int, factory: str, started: float) -> SyncReport | None:
        try:
            sql_ids = self._snapshot_ids(space_id, kind)
            index = self._build(space_id, kind, dim, sql_ids, factory)
            with self._flock(self._lock_path(space_id, kind)):
                now = self._snapshot_ids(space_id, kind)
                current = self._writable(space_id, kind, dim)
                if current is not None and current.factory == factory:
                    return None  # another process switched meanwhile
                present = index.ids()
                index.remove(np.setdiff1d(present, now, assume_unique=True))
                for ids, vecs in self._iter_vectors(
                    space_id, kind, dim, np.setdiff1d(now, present, assume_unique=True)
                ):
                    index.add(ids, vecs, check=False)
                index.meta.update({"built_n": int(len(now)), "pinned": False})
                self._publish(space_id, kind, index)
            report = self._report(space_id, kind, index, started, added=index.ntotal, rebuilt=True)
            log.warning(
                "index %s switched to %s: %d vectors in %.1f s",
                self.index_path(space_id, kind).name,
                factory,
                index.ntotal,
                time.perf_counter() - started,
            )
            return report
        except Exception:  # noqa: BLE001 - the current index keeps answering; the next sync retries
            if not self.switch_in_background:
                raise
            log.exception("switching %s to %s failed", self.index_path(space_id, kind).name, factory)
            return None

    def wait_switched(self, timeout: float | None = None) -> bool:
        """Wait for background index switches; True when none is left running."""
        with self._heal_lock:
            threads = list(self._switching.values())
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def rebuild(self, space_id: int, kind: str, factory: str | None = None) -> SyncReport:
        """A fresh index from every SQL row; ``factory`` None picks one, a given one is kept by syncs."""
        check_kind(kind)
        started = time.perf_counter()
        dim = self._space_dim(space_id)
        if not self.indexed(space_id, kind):
            return self._drop_file(space_id, kind, started)
        with self._flock(self._lock_path(space_id, kind)):
            sql_ids = self._snapshot_ids(space_id, kind)
            target = factory or choose_factory(len(sql_ids), dim, self.settings)
            return self._rebuild_locked(
                space_id, kind, dim, sql_ids, target, pinned=factory is not None, started=started
            )

    def _rebuild_locked(
        self,
        space_id: int,
        kind: str,
        dim: int,
        sql_ids: np.ndarray,
        factory: str,
        *,
        pinned: bool,
        started: float,
    ) -> SyncReport:
        index = self._build(space_id, kind, dim, sql_ids, factory)
        index.meta.update({"built_n": int(len(sql_ids)), "pinned": pinned})
        self._publish(space_id, kind, index)
        return self._report(space_id, kind, index, started, added=index.ntotal, rebuilt=True)

    def _build(self, space_id: int, kind: str, dim: int, sql_ids: np.ndarray, factory: str) -> VectorIndex:
        """A new index of ``factory`` over these ids: trained on a sample of at most train_max."""
        index = VectorIndex(dim, factory, **self.tuning)
        if not index.is_trained and len(sql_ids):
            rng = np.random.default_rng(len(sql_ids))
            sample = sql_ids if len(sql_ids) <= self.train_max else rng.choice(sql_ids, self.train_max, False)
            vecs = self.vectors_for(np.sort(sample), space_id=space_id, kind=kind, missing="nan")
            index.train(vecs[~np.isnan(vecs).any(axis=1)])
        for ids, vecs in self._iter_vectors(space_id, kind, dim, sql_ids):
            index.add(ids, vecs, check=False)
        return index

    @staticmethod
    def _report(
        space_id: int,
        kind: str,
        index: VectorIndex,
        started: float,
        *,
        added: int = 0,
        removed: int = 0,
        rebuilt: bool = False,
        changed: bool = True,
    ) -> SyncReport:
        return SyncReport(
            space_id=space_id,
            kind=kind,
            added=added,
            removed=removed,
            rebuilt=rebuilt,
            changed=changed,
            generation=index.generation,
            count=index.ntotal,
            factory=index.factory,
            seconds=round(time.perf_counter() - started, 4),
        )

    def _writable(self, space_id: int, kind: str, dim: int) -> VectorIndex | None:
        """The current index to update: the cached one when it is what is on disk, else the file."""
        path = self.index_path(space_id, kind)
        stat = _stat(path)
        if stat is None:
            return None
        cached = self._loaded.get((space_id, kind))
        if cached is not None and cached.stat == stat:
            return cached.index
        try:
            index = VectorIndex.load(path, **self.tuning)
        except CorruptIndexError as err:
            log.warning("rebuilding %s: %s", path.name, err.message)
            return None
        return index if index.dim == dim else None

    def _target_factory(self, index: VectorIndex | None, n: int, dim: int) -> str:
        """The factory a sync keeps or moves to; hysteresis so an index does not flip back and forth."""
        want = choose_factory(n, dim, self.settings)
        if index is None:
            return want
        current = index.factory
        have, wish = _family(current), _family(want)
        if index.meta.get("pinned"):
            return current
        if have == "flat":
            return want  # exact until n passes exact_index_max
        if n < self.settings.exact_index_max // 2:
            return EXACT_FACTORY  # shrunk well below the threshold
        if wish == "flat":
            return current  # inside the hysteresis band
        if have != wish:
            return want  # settings moved between HNSW and IVF-PQ
        built = int(index.meta.get("built_n") or 0)
        if have in ("ivf", "compact") and built and not built / 4 <= n <= built * 4:
            return want  # IVF lists sized for a very different n
        return current

    def _publish(self, space_id: int, kind: str, index: VectorIndex) -> None:
        """Save atomically, then tell readers: generation + 1 in SQL, never moving backwards."""
        generation, _ = self._state(space_id, kind)
        index.generation = max(generation, index.generation) + 1
        index.meta.update({"space_id": int(space_id), "kind": kind})
        path = self.index_path(space_id, kind)
        index.save(path)
        self.rows.publish(space_id, kind, index.generation, index.factory, index.ntotal)
        stat = _stat(path)
        with self._cache_lock:
            cached = self._loaded.get((space_id, kind))
            if stat is not None:
                # The same object keeps its lock: a search holding it must not see a sync mutate it.
                lock = cached.lock if cached is not None and cached.index is index else threading.Lock()
                self._loaded[(space_id, kind)] = _Loaded(index, stat, index.generation, lock)

    def sync_all(self) -> list[SyncReport]:
        """Sync every index that SQL or the data dir knows about."""
        return [self.sync(space_id, kind) for space_id, kind in self.known_indexes()]

    def rebuild_all(self) -> list[tuple[int, str, int]]:
        """Rebuild every index from SQL: (space id, kind, vectors) each."""
        out = []
        for space_id, kind in self.known_indexes():
            report = self.rebuild(space_id, kind)
            out.append((space_id, kind, report.count))
        return out

    def known_indexes(self) -> list[tuple[int, str]]:
        """(space id, kind) of every index with rows in SQL, a state row or a file."""
        pairs, spaces = self.rows.known_indexes()
        for path in self.root.glob("*-*.faiss"):
            head, _, kind = path.stem.partition("-")
            if head.isdigit() and kind in KINDS:
                pairs.add((int(head), kind))
        return sorted(p for p in pairs if p[0] in spaces and p[1] in KINDS and self.indexed(*p))

    # --------------------------------------------------------------- readers
    def _sql_fingerprint(self, space_id: int, kind: str) -> tuple[int, int, int]:
        """(count, max, sum) of SQL's ids for an index: one aggregate over the (space, kind) index."""
        return self.rows.fingerprint(space_id, kind)

    def sql_count(self, space_id: int, kind: str) -> int:
        """How many vectors SQL holds for an index (what the index holds once in line)."""
        return self._sql_fingerprint(space_id, kind)[0]

    @staticmethod
    def _index_fingerprint(index: VectorIndex) -> tuple[int, int, int]:
        ids = index.ids()
        return (len(ids), int(ids[-1]) if len(ids) else -1, int(ids.sum()) if len(ids) else 0)

    def _current(self, space_id: int, kind: str, *, heal: bool = True) -> _Loaded | None:
        """The loaded index, reloaded when another process synced (new generation or file).

        Every (re)load is checked: the file's checksum (VectorIndex.load) and its ids' count,
        max and sum against SQL. ``heal``: a missing, corrupt or disagreeing index is synced
        from SQL here (one-shot process) or in a background thread (``heal_in_background``,
        then _Damaged tells the caller to answer otherwise). Without ``heal`` a corrupt file
        raises CorruptIndexError and nothing is compared (``check_consistency`` compares).
        """
        key = (space_id, kind)
        if heal and not self._opened:
            self._opened = True
            self.check_files()
        if heal and self.heal_in_background:
            with self._heal_lock:
                thread = self._healing.get(key)
                if thread is not None and thread.is_alive():
                    raise _Damaged(self._problems.get(key, "being rebuilt"))
        path = self.index_path(space_id, kind)
        generation, _ = self._state(space_id, kind)
        stat = _stat(path)
        problem = None
        with self._cache_lock:
            cached = self._loaded.get(key)
            fresh = cached is not None and cached.stat == stat and cached.sql_generation == generation
        if fresh and not (heal and self.heal_in_background and self._recheck_due(cached)):  # type: ignore[arg-type]
            return cached
        if fresh:
            # A server's loaded index against SQL every recheck_s: a process killed between its
            # commit and its sync moved SQL without touching the file or the generation.
            sql = self._sql_fingerprint(space_id, kind)
            with cached.lock:  # type: ignore[union-attr]  # an in-place sync may be mutating it
                have = self._index_fingerprint(cached.index)  # type: ignore[union-attr]
            if sql == have:
                cached.checked = time.monotonic()  # type: ignore[union-attr]
                return cached
            problem = f"{path.name}: holds {cached.index.ntotal} vectors, SQL {sql[0]} (ids differ)"  # type: ignore[union-attr]
            self._start_heal(space_id, kind, problem)
            raise _Damaged(problem)
        with self._cache_lock:
            self._loaded.pop(key, None)
            index = None
            if stat is not None:
                try:
                    index = VectorIndex.load(path, **self.tuning)
                except CorruptIndexError as err:
                    if not heal:
                        raise
                    problem = err.message
            if heal and problem is None:
                sql = self._sql_fingerprint(space_id, kind)
                have = self._index_fingerprint(index) if index is not None else (0, -1, 0)
                if sql != have:
                    problem = (
                        f"{path.name}: missing while SQL holds {sql[0]} vectors"
                        if index is None
                        else f"{path.name}: holds {have[0]} vectors, SQL {sql[0]} (ids differ)"
                    )
            if problem is None:
                if index is None:
                    return None
                loaded = _Loaded(index, stat, generation)  # type: ignore[arg-type]
                self._loaded[key] = loaded
                return loaded
        if self.heal_in_background:
            self._start_heal(space_id, kind, problem)
            raise _Damaged(problem)
        log.warning("repairing %s before answering: %s", path.name, problem)
        self.sync(space_id, kind)
        return self._current(space_id, kind, heal=False)

    def _header_problem(self, space_id: int, kind: str) -> str | None:
        """What an index file's header says against SQL (count, max, sum of ids), without loading it."""
        path = self.index_path(space_id, kind)
        sql = self._sql_fingerprint(space_id, kind)
        try:
            have = tuple(read_header(path).get("ids") or ()) or None
        except FileNotFoundError:
            return f"{path.name}: missing while SQL holds {sql[0]} vectors" if sql[0] else None
        except CorruptIndexError as err:
            return err.message
        if have is not None and have != sql:  # format 1 headers carry no ids: checked on load
            return f"{path.name}: holds {have[0]} vectors, SQL {sql[0]}"
        return None

    def check_files(self) -> list[tuple[int, str, str]]:
        """Every index's file header against SQL, without loading any; repairs what disagrees.

        Run once when a process first searches: a process killed between an ingest's commit and
        its sync left SQL ahead of indexes that this search may not touch. Each disagreeing
        index is synced now (one-shot) or in the background (server); returns what was found.
        """
        found = []
        for space_id, kind in self.known_indexes():
            problem = self._header_problem(space_id, kind)
            if problem is not None:
                found.append((space_id, kind, problem))
        for space_id, kind, problem in found:
            self.repair(space_id, kind, problem)
        return found

    def repair(self, space_id: int, kind: str, problem: str) -> None:
        """Sync an index found wrong: now (one-shot process) or in the background (server)."""
        if self.heal_in_background:
            self._start_heal(space_id, kind, problem)
        else:
            log.warning("repairing %s: %s", self.index_path(space_id, kind).name, problem)
            self.sync(space_id, kind)

    def repair_if_behind(self, space_id: int, kind: str) -> str | None:
        """A skipped re-ingest's check: the file header against SQL (no load); repaired when wrong."""
        if not self.indexed(space_id, kind):
            return None
        problem = self._header_problem(space_id, kind)
        if problem is not None:
            self.repair(space_id, kind, problem)
        return problem

    def _recheck_due(self, loaded: _Loaded) -> bool:
        return time.monotonic() - loaded.checked > self.recheck_s

    def _start_heal(self, space_id: int, kind: str, problem: str) -> None:
        """Sync this index from SQL in a daemon thread, once at a time per index."""
        key = (space_id, kind)
        with self._heal_lock:
            self._problems[key] = problem
            thread = self._healing.get(key)
            if thread is not None and thread.is_alive():
                return
            log.warning("repairing %s in the background: %s", self.index_path(space_id, kind).name, problem)
            thread = threading.Thread(
                target=self._heal, args=key, name=f"heal-{space_id}-{kind}", daemon=True
            )
            self._healing[key] = thread
            thread.start()

    def _heal(self, space_id: int, kind: str) -> None:
        key = (space_id, kind)
        try:
            report = self.sync(space_id, kind)
        except Exception as exc:  # noqa: BLE001 - kept as the index's problem for /health and searches
            log.exception("repair of %s failed", self.index_path(space_id, kind).name)
            with self._heal_lock:
                self._problems[key] = f"{self._problems.get(key)}; repair failed: {exc}"
            return
        log.warning(
            "repaired %s: %d vectors (%d added, %d removed%s)",
            self.index_path(space_id, kind).name,
            report.count,
            report.added,
            report.removed,
            ", rebuilt" if report.rebuilt else "",
        )
        with self._heal_lock:
            self._problems.pop(key, None)

    def wait_healed(self, timeout: float | None = None) -> bool:
        """Wait for the background repairs under way; True when none is left running."""
        with self._heal_lock:
            threads = list(self._healing.values())
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def health(self, space_id: int, kind: str) -> IndexHealth:
        """What ``/health`` reports for one index; checks it as a search would (starting a repair)."""
        key = (space_id, kind)
        if not self.indexed(space_id, kind):
            return IndexHealth(space_id, kind, "ok", self.sql_count(space_id, kind))
        try:
            loaded = self._current(space_id, kind)
        except _Damaged as damaged:
            with self._heal_lock:
                thread = self._healing.get(key)
                state = "healing" if thread is not None and thread.is_alive() else "damaged"
                problem = self._problems.get(key, str(damaged))
            return IndexHealth(space_id, kind, state, self._sql_fingerprint(space_id, kind)[0], problem)
        # In line with SQL when loaded (checked then): its count, without a query per poll.
        return IndexHealth(space_id, kind, "ok", loaded.index.ntotal if loaded is not None else 0)

    def heal_all_in_background(self) -> threading.Thread:
        """Check every index once (a server's start): damaged ones start their repair."""

        def run() -> None:
            try:
                for space_id, kind in self.known_indexes():
                    self.health(space_id, kind)
            except Exception:  # noqa: BLE001 - the next search or /health checks again
                log.exception("index check at start failed")

        thread = threading.Thread(target=run, name="index-check", daemon=True)
        thread.start()
        return thread

    def _stream_vectors(
        self, space_id: int, kind: str, dim: int, allowed: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) batches of an index: one streamed scan, or the allowed ids fetched by id."""
        if allowed is not None:
            yield from self._iter_vectors(space_id, kind, dim, np.asarray(allowed, dtype=np.int64))
            return
        yield from self.rows.stream(space_id, kind, dim, self.batch_size)

    def _exact_from_sql(
        self,
        space_id: int,
        kind: str,
        q: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        problem: str | None,
    ) -> list[list[tuple[int, float]]]:
        """While an index is repaired (or for a SQL-only kind, ``problem`` None): the exact answer
        over SQL's vectors, or a named 503 when there are too many."""
        n = len(allowed) if allowed is not None else self.sql_count(space_id, kind)
        if n > self.exact_fallback_max and problem is None:
            raise IndexUnavailableError(
                f"the {kind} vectors of model space {space_id} are kept in SQL only (not indexed); "
                f"{n} of them are too many to search exactly (limit {self.exact_fallback_max})"
            )
        if n > self.exact_fallback_max:
            raise IndexUnavailableError(
                f"the {kind} index of model space {space_id} is being rebuilt from the catalog "
                f"({problem}); its {n} vectors are too many to search exactly meanwhile "
                f"(limit {self.exact_fallback_max}), retry in a while"
            )
        dim = self._space_dim(space_id)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for part_ids, vecs in self._stream_vectors(space_id, kind, dim, allowed):
            scores = q @ l2n(vecs).T
            best_s = np.concatenate([best_s, scores], axis=1)
            best_i = np.concatenate([best_i, np.broadcast_to(part_ids, scores.shape)], axis=1)
            if best_s.shape[1] > k:
                keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_s = np.take_along_axis(best_s, keep, axis=1)
                best_i = np.take_along_axis(best_i, keep, axis=1)
        out = []
        for row_s, row_i in zip(best_s, best_i):
            order = np.lexsort((row_i, -row_s))[:k]
            out.append([(int(row_i[j]), float(row_s[j])) for j in order])
        return out

    def _forget(self, space_id: int, kind: str) -> None:
        with self._cache_lock:
            self._loaded.pop((space_id, kind), None)

    def drop_cache(self) -> None:
        """Forget every loaded index (memory back; the next search reloads)."""
        with self._cache_lock:
            self._loaded.clear()

    def search(
        self,
        space_id: int,
        kind: str,
        queries: np.ndarray,
        k: int,
        video_ids: Sequence[int] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to k (vector id, cosine score) pairs, best first; only rows SQL still has.

        ``video_ids``: only vectors of those videos. Approximate indexes are re-ranked with the
        exact vectors from SQL.
        """
        check_kind(kind)
        dim = self._space_dim(space_id)
        q = as_matrix(queries, dim)
        if not isinstance(k, int | np.integer) or int(k) < 1:
            raise InvalidQueryError(f"k must be a positive integer, got {k!r}")
        empty: list[list[tuple[int, float]]] = [[] for _ in range(len(q))]
        if not len(q):
            return empty
        allowed = None
        if video_ids is not None:
            allowed = self._ids_for_videos(space_id, kind, video_ids)
            if not len(allowed):
                return empty
        if not self.indexed(space_id, kind):
            return self._exact_from_sql(space_id, kind, l2n(q), int(k), allowed, None)
        try:
            loaded = self._current(space_id, kind)
        except _Damaged as damaged:
            return self._exact_from_sql(space_id, kind, l2n(q), int(k), allowed, str(damaged))
        if loaded is None:
            return empty

        def fetch(ids: np.ndarray) -> np.ndarray:
            return self.vectors_for(ids, space_id=space_id, kind=kind, missing="nan")

        with loaded.lock:
            index = loaded.index
            scores, ids = index.search(q, int(k), allowed=allowed, fetch=fetch)
        if index.exact:
            ids = self._drop_stale(space_id, kind, ids)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
            for row_ids, row_scores in zip(ids, scores)
        ]

    def _drop_stale(self, space_id: int, kind: str, ids: np.ndarray) -> np.ndarray:
        """Ids deleted in SQL but not yet synced out of the index become -1."""
        uniq = np.unique(ids[ids >= 0])
        if not len(uniq):
            return ids
        alive = self.rows.alive(space_id, kind, uniq)
        if len(alive) == len(uniq):
            return ids
        return np.where(np.isin(ids, np.fromiter(alive, dtype=np.int64, count=len(alive))), ids, -1)

    def check_consistency(self, space_id: int, kind: str) -> Consistency:
        """SQL ids against the index file as it is now (readers' view)."""
        check_kind(kind)
        sql_ids = self._sql_ids(space_id, kind)
        if not self.indexed(space_id, kind):  # no index to disagree with
            return Consistency(len(sql_ids), 0, [], [])
        loaded = self._current(space_id, kind, heal=False)
        index_ids = loaded.index.ids() if loaded is not None else np.zeros(0, dtype=np.int64)
        missing = np.setdiff1d(sql_ids, index_ids, assume_unique=True)
        extra = np.setdiff1d(index_ids, sql_ids, assume_unique=True)
        return Consistency(len(sql_ids), len(index_ids), missing.tolist(), extra.tolist())


_STORES: dict[tuple[str, str], IndexStore] = {}
_STORES_LOCK = threading.Lock()


def get_index_store(settings: Settings | None = None) -> IndexStore:
    """The process-wide store of the current settings' data dir (indexes stay loaded between calls)."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    key = (str(settings.index_dir), settings.resolved_database_url)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = IndexStore(
                settings.index_dir,
                get_catalog(settings),
                settings,
                oversample=settings.search_oversample,
                sql_only=SQL_ONLY_KINDS,
            )
    return store


__all__ = [
    "KINDS",
    "SQL_ONLY_KINDS",
    "Consistency",
    "IndexHealth",
    "IndexStore",
    "SyncReport",
    "VectorIndexError",
    "get_index_store",
]
