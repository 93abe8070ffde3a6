"""The SQL side of vectors: model-space rows, vector rows and index state, and nothing of FAISS.

``vectors.store.IndexStore`` (the FAISS files) reads and writes the catalog only through a
:class:`VectorRows`: which ids an index must hold, their stored vectors, the published
generation of each index. Writes take the caller's session (they belong to its transaction);
reads open their own. No file is touched here: the id floor that keeps SQLite from reusing an
id (docs/VECTORS.md) is the file side's, and reaches :meth:`VectorRows.add_vectors` as a
callback.

Example::

    rows = VectorRows(catalog)
    with catalog.session() as s:
        space = rows.ensure_space(s, "clip:ViT-B-32:laion2b_s34b_b79k", "clip", 512, {})
        rows.add_vectors(s, space, "frame", keyframe_ids, video_ids, vectors)
    ids = rows.ids(space.id, "frame")     # sorted int64 array
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import IndexState, ModelSpace, Vector
from video_inst.errors import InvalidQueryError, ModelSpaceMismatchError, NotFoundError
from video_inst.vectors.codec import as_matrix, blob_dim, decode, encode, l2n
from video_inst.vectors.errors import InvalidVectorsError
from video_inst.vectors.index import _id_array

KINDS = ("track", "frame", "region")
_CHUNK = 900  # ids per IN (...) list: under SQLite's variable limit, short enough for PostgreSQL plans

# (session, space id, kind, stale row ids, rows to insert) -> the ids the rows get (SQLite only)
SqliteIds = Callable[[Session, int, str, list[int], list[dict[str, Any]]], list[int]]


def chunks(values: np.ndarray, size: int = _CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield [int(v) for v in values[start : start + size]]


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidQueryError(f"vector kind must be one of {', '.join(KINDS)}, got {kind!r}")


class VectorRows:
    """The catalog's ``model_spaces``, ``vectors`` and ``index_state`` rows, for one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # ------------------------------------------------------------ writes (caller's transaction)
    def ensure_space(
        self, session: Session, name: str, family: str, dim: int, params: dict[str, Any] | None = None
    ) -> ModelSpace:
        """The model space row called ``name``, created on first use.

        A name already used with another dim, family or params raises ModelSpaceMismatchError:
        two models must never share one space (their vectors are not comparable).
        """
        params = json.loads(json.dumps(params or {}))  # as the JSON column will give it back
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise InvalidVectorsError(f"model space name must be 1-255 characters, got {name!r}")
        if not isinstance(family, str) or not family or len(family) > 16:
            raise InvalidVectorsError(f"model family must be 1-16 characters, got {family!r}")
        if not isinstance(dim, int | np.integer) or int(dim) <= 0:
            raise InvalidVectorsError(
                f"model space {name!r}: dimension must be a positive integer, got {dim!r}"
            )
        space = session.scalar(select(ModelSpace).where(ModelSpace.name == name))
        if space is None:
            space = ModelSpace(name=name, family=family, dim=int(dim), params=params)
            session.add(space)
            session.flush()
        elif (space.dim, space.family, dict(space.params or {})) != (int(dim), family, params):
            raise ModelSpaceMismatchError(
                f"model space {name!r} exists with family={space.family} dim={space.dim} "
                f"params={space.params}, not family={family} dim={dim} params={params}; "
                "a changed model needs a new space name"
            )
        return space

    def add_vectors(
        self,
        session: Session,
        space: ModelSpace,
        kind: str,
        owner_ids: Sequence[int] | np.ndarray,
        video_ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        sqlite_ids: SqliteIds,
    ) -> list[int]:
        """Store vectors (L2-normalised, float16, sparse where smaller) in the caller's transaction.

        Returns their row ids.

        Idempotent per (space, kind, owner): an identical vector keeps its row and id, a changed
        one replaces the row (new id, so a sync sees the change). On SQLite ``sqlite_ids``
        deletes the stale rows and picks the new ids (the file side's id floor).
        """
        check_kind(kind)
        owners = _id_array(owner_ids, "owner ids")
        videos = _id_array(video_ids, "video ids")
        x = as_matrix(vectors, int(space.dim))
        if not (len(owners) == len(videos) == len(x)):
            raise InvalidVectorsError(f"{len(owners)} owner ids, {len(videos)} video ids, {len(x)} vectors")
        if len(np.unique(owners)) != len(owners):
            raise InvalidVectorsError("the same owner id appears twice in one add_vectors call")
        if not len(owners):
            return []
        blobs = encode(l2n(x))
        space_id = int(space.id)
        existing: dict[int, tuple[int, int, bytes]] = {}
        for chunk in chunks(owners):
            rows = session.execute(
                select(Vector.owner_id, Vector.id, Vector.video_id, Vector.data).where(
                    Vector.space_id == space_id, Vector.kind == kind, Vector.owner_id.in_(chunk)
                )
            )
            existing.update({int(o): (int(i), int(v), bytes(d)) for o, i, v, d in rows})
        result: list[int | None] = [None] * len(owners)
        stale: list[int] = []
        fresh: list[int] = []  # positions to insert
        for pos, (owner, video, blob) in enumerate(zip(owners.tolist(), videos.tolist(), blobs)):
            old = existing.get(owner)
            if old is not None and old[1] == video and old[2] == blob:
                result[pos] = old[0]
            else:
                if old is not None:
                    stale.append(old[0])
                fresh.append(pos)
        if fresh:
            rows = [
                {
                    "space_id": space_id,
                    "kind": kind,
                    "owner_id": int(owners[p]),
                    "video_id": int(videos[p]),
                    "data": blobs[p],
                }
                for p in fresh
            ]
            if session.get_bind().dialect.name == "sqlite":
                new_ids = sqlite_ids(session, space_id, kind, stale, rows)
            else:
                self.delete_ids(session, stale)
                new_ids = list(
                    session.scalars(insert(Vector).returning(Vector.id, sort_by_parameter_order=True), rows)
                )
            for p, new_id in zip(fresh, new_ids):
                result[p] = int(new_id)
        return [int(i) for i in result]  # type: ignore[arg-type]

    @staticmethod
    def max_id(session: Session) -> int:
        """The highest vector id in the table (0 when empty)."""
        return int(session.scalar(select(func.max(Vector.id))) or 0)

    @staticmethod
    def insert_with_ids(session: Session, rows: list[dict[str, Any]], ids: list[int]) -> None:
        session.execute(insert(Vector), [dict(row, id=i) for row, i in zip(rows, ids)])

    @staticmethod
    def delete_ids(session: Session, ids: list[int]) -> None:
        for chunk in chunks(np.asarray(ids, dtype=np.int64)):
            session.execute(
                delete(Vector).where(Vector.id.in_(chunk)).execution_options(synchronize_session=False)
            )

    def delete_owners(self, session: Session, space_id: int, kind: str, owner_ids: Sequence[int]) -> int:
        """Remove the vectors of some owners (e.g. tracks merged away); sync afterwards."""
        check_kind(kind)
        removed = 0
        for chunk in chunks(_id_array(owner_ids, "owner ids")):
            res = session.execute(
                delete(Vector)
                .where(Vector.space_id == space_id, Vector.kind == kind, Vector.owner_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            removed += int(res.rowcount or 0)
        return removed

    def delete_video(self, session: Session, video_id: int) -> list[tuple[int, str]]:
        """Remove a video's vector rows; returns the (space id, kind) indexes the caller must sync."""
        touched = session.execute(
            select(Vector.space_id, Vector.kind).where(Vector.video_id == int(video_id)).distinct()
        ).all()
        session.execute(
            delete(Vector)
            .where(Vector.video_id == int(video_id))
            .execution_options(synchronize_session=False)
        )
        return sorted((int(s), str(k)) for s, k in touched)

    # ------------------------------------------------------------------------------- reads
    def space_dim(self, space_id: int) -> int | None:
        with self.catalog.session() as s:
            dim = s.scalar(select(ModelSpace.dim).where(ModelSpace.id == int(space_id)))
        return None if dim is None else int(dim)

    def space_family(self, space_id: int) -> str | None:
        with self.catalog.session() as s:
            family = s.scalar(select(ModelSpace.family).where(ModelSpace.id == int(space_id)))
        return None if family is None else str(family)

    def ids(self, space_id: int, kind: str) -> np.ndarray:
        """Every vector id of an index, sorted."""
        with self.catalog.session() as s:
            rows = s.execute(select(Vector.id).where(Vector.space_id == space_id, Vector.kind == kind))
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
        ids.sort()
        return ids

    def vectors_for(
        self,
        ids: Sequence[int] | np.ndarray,
        *,
        space_id: int | None = None,
        kind: str | None = None,
        missing: str = "raise",
        dim: int | None = None,
    ) -> np.ndarray:
        """Exact stored vectors (float32, rows in the order of ``ids``), in batched queries.

        ``missing="raise"``: an unknown id (or one outside the given space / kind) raises
        NotFoundError; ``missing="nan"``: its row is NaN, which re-ranking drops.
        """
        if missing not in ("raise", "nan"):
            raise InvalidQueryError(f"missing must be 'raise' or 'nan', got {missing!r}")
        ids = _id_array(ids)
        uniq = np.unique(ids)
        found_ids: list[int] = []
        blobs: list[bytes] = []
        with self.catalog.session() as s:
            # Core rows on the session's connection, not ORM results: the exact re-rank of a crop
            # query reads ~2,000 of them, and the ORM layer cost more than SQLite's reads (docs/API.md).
            conn = s.connection()
            for chunk in chunks(uniq):
                stmt = select(Vector.id, Vector.data).where(Vector.id.in_(chunk))
                if space_id is not None:
                    stmt = stmt.where(Vector.space_id == space_id)
                if kind is not None:
                    stmt = stmt.where(Vector.kind == kind)
                for i, d in conn.execute(stmt):
                    found_ids.append(int(i))
                    blobs.append(d)
        if missing == "raise" and len(found_ids) < len(uniq):
            known = set(found_ids)
            absent = [int(i) for i in ids if int(i) not in known][:10]
            raise NotFoundError(f"no stored vector with id {absent}")
        if dim is None:
            widths = {blob_dim(b) for b in blobs}
            if len(widths) > 1:
                raise ModelSpaceMismatchError(
                    "these vector ids belong to model spaces of different dimensions"
                )
            dim = widths.pop() if widths else 0
        out = np.full((len(ids), dim), np.nan, dtype=np.float32)
        if found_ids:
            have = np.asarray(found_ids, dtype=np.int64)
            order = np.argsort(have)
            have = have[order]
            pos = np.minimum(np.searchsorted(have, ids), len(have) - 1)
            hit = have[pos] == ids
            rows = decode([blobs[j] for j in order], dim)
            out[hit] = rows[pos[hit]]
        return out

    def stream(
        self, space_id: int, kind: str, dim: int, batch_size: int, *, ordered: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) batches of every row of an index, in one streamed scan."""
        stmt = select(Vector.id, Vector.data).where(Vector.space_id == space_id, Vector.kind == kind)
        if ordered:
            stmt = stmt.order_by(Vector.id)
        stmt = stmt.execution_options(yield_per=batch_size)
        with self.catalog.session() as s:
            for part in s.connection().execute(stmt).partitions():
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                yield ids, decode([bytes(r[1]) for r in part], dim)

    def ids_for_videos(self, space_id: int, kind: str, video_ids: Sequence[int]) -> np.ndarray:
        """Vector ids of some videos in one index: the allowed set of a filtered search."""
        out: list[int] = []
        with self.catalog.session() as s:
            for chunk in chunks(np.unique(_id_array(list(video_ids), "video ids"))):
                # Filtering space and kind here, not in SQL, leaves SQLite one index to use: video_id.
                # With all three in SQL it picks (space_id, kind) and reads every row of the index.
                rows = s.execute(
                    select(Vector.id, Vector.space_id, Vector.kind).where(Vector.video_id.in_(chunk))
                )
                out += [int(i) for i, sp, kd in rows if sp == space_id and kd == kind]
        return np.asarray(sorted(out), dtype=np.int64)

    def alive(self, space_id: int, kind: str, ids: np.ndarray) -> set[int]:
        """Which of these ids SQL still holds in this index."""
        found: set[int] = set()
        with self.catalog.session() as s:
            for chunk in chunks(ids):
                found.update(
                    s.scalars(
                        select(Vector.id).where(
                            Vector.id.in_(chunk), Vector.space_id == space_id, Vector.kind == kind
                        )
                    )
                )
        return found

    def fingerprint(self, space_id: int, kind: str) -> tuple[int, int, int]:
        """(count, max, sum) of SQL's ids for an index: one aggregate over the (space, kind) index."""
        with self.catalog.session() as s:
            row = s.execute(
                select(func.count(Vector.id), func.max(Vector.id), func.sum(Vector.id)).where(
                    Vector.space_id == space_id, Vector.kind == kind
                )
            ).one()
        return (int(row[0] or 0), int(row[1] if row[1] is not None else -1), int(row[2] or 0))

    def known_indexes(self) -> tuple[set[tuple[int, str]], set[int]]:
        """((space id, kind) with rows or a state row, every model space id)."""
        with self.catalog.session() as s:
            pairs = {(int(a), str(b)) for a, b in s.execute(select(Vector.space_id, Vector.kind).distinct())}
            pairs |= {(int(a), str(b)) for a, b in s.execute(select(IndexState.space_id, IndexState.kind))}
            spaces = {int(i) for i in s.scalars(select(ModelSpace.id))}
        return pairs, spaces

    # -------------------------------------------------------------------------- index state
    def state(self, space_id: int, kind: str) -> tuple[int, str | None]:
        """(published generation, factory) of an index; (0, None) before its first publish."""
        with self.catalog.session() as s:
            row = s.execute(
                select(IndexState.generation, IndexState.factory).where(
                    IndexState.space_id == space_id, IndexState.kind == kind
                )
            ).first()
        return (int(row[0]), str(row[1])) if row else (0, None)

    def publish(self, space_id: int, kind: str, generation: int, factory: str, count: int) -> None:
        """Record a saved index's generation (never moving it backwards), factory and size."""
        with self.catalog.session() as s:
            res = s.execute(
                update(IndexState)
                .where(
                    IndexState.space_id == space_id,
                    IndexState.kind == kind,
                    IndexState.generation < generation,
                )
                .values(generation=generation, factory=factory[:64], count=count)
                .execution_options(synchronize_session=False)
            )
            if not res.rowcount and not s.scalar(
                select(func.count()).where(IndexState.space_id == space_id, IndexState.kind == kind)
            ):
                s.add(
                    IndexState(
                        space_id=space_id, kind=kind, generation=generation, factory=factory[:64], count=count
                    )
                )
