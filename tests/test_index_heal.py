"""Damage to FAISS files and SQL/FAISS disagreement: detected on load, repaired from SQL.

Real SQLite catalogs and real index files; the damage is done to the files on disk the way an
operator's accident would (delete, truncate, overwrite bytes in the middle). One-shot stores
repair before they answer; a store in background mode (a server) answers from SQL meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.test_vectors_store import add, clustered, make_videos
from video_inst.catalog.db import Catalog
from video_inst.config import Settings
from video_inst.vectors import codec
from video_inst.vectors.errors import CorruptIndexError, IndexUnavailableError
from video_inst.vectors.index import VectorIndex
from video_inst.vectors.rerank import RerankCopy
from video_inst.vectors.store import IndexStore

N = 400


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", auto_upgrade=True)


def new_store(tmp_path: Path, catalog: Catalog, **kw: object) -> IndexStore:
    """A store as a fresh process would open it (nothing cached)."""
    return IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=200_000), **kw)  # type: ignore[arg-type]


@pytest.fixture
def filled(tmp_path: Path, catalog: Catalog) -> tuple[IndexStore, int, list[int], np.ndarray]:
    store = new_store(tmp_path, catalog)
    vids = make_videos(catalog, 2)
    data = clustered(N)
    space_id, ids = add(store, "dasr:heal", "region", list(range(N)), [vids[i % 2] for i in range(N)], data)
    store.sync(space_id, "region")
    return store, space_id, ids, codec.l2n(store.vectors_for(ids))


def brute(queries: np.ndarray, stored: np.ndarray, ids: list[int], k: int) -> list[list[int]]:
    order = np.argsort(-(codec.l2n(queries) @ stored.T), axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order]


def garble(path: Path, size: int = 4096) -> None:
    """Overwrite ``size`` bytes in the middle of the file (inside the stored vectors)."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


@pytest.mark.parametrize("damage", [garble, truncate])
def test_a_damaged_file_is_named_on_load(filled, damage) -> None:  # noqa: ANN001
    store, space_id, _, _ = filled
    path = store.index_path(space_id, "region")
    damage(path)
    with pytest.raises(CorruptIndexError) as err:
        VectorIndex.load(path)
    assert path.name in err.value.message and str(path.parent) not in err.value.message


def test_garbled_bytes_that_faiss_reads_without_complaint_are_caught_by_the_checksum(filled) -> None:  # noqa: ANN001
    store, space_id, _, _ = filled
    path = store.index_path(space_id, "region")
    garble(path, size=64)
    with pytest.raises(CorruptIndexError, match="checksum mismatch"):
        VectorIndex.load(path)


@pytest.mark.parametrize("damage", [garble, truncate, Path.unlink])
def test_a_one_shot_store_repairs_before_answering(tmp_path: Path, catalog: Catalog, filled, damage) -> None:  # noqa: ANN001
    _, space_id, ids, stored = filled
    damage(new_store(tmp_path, catalog).index_path(space_id, "region"))
    fresh = new_store(tmp_path, catalog)
    if damage is Path.unlink:
        assert len(fresh.check_consistency(space_id, "region").missing) == N
    else:
        with pytest.raises(CorruptIndexError):  # the explicit check names it and repairs nothing
            fresh.check_consistency(space_id, "region")
    queries = clustered(5, seed=7)
    got = fresh.search(space_id, "region", queries, 10)
    assert [[i for i, _ in row] for row in got] == brute(queries, stored, ids, 10)
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok  # the file is whole again


def test_vectors_committed_but_never_synced_are_found_by_the_next_process(
    tmp_path: Path, catalog: Catalog, filled
) -> None:  # noqa: ANN001
    store, space_id, ids, _ = filled
    vids = make_videos(catalog, 1)
    extra = clustered(50, seed=3)
    _, new_ids = add(
        store, "dasr:heal", "region", list(range(N, N + 50)), vids * 50, extra
    )  # committed, no sync
    report = new_store(tmp_path, catalog).check_consistency(space_id, "region")
    assert sorted(report.missing) == sorted(new_ids)
    got = new_store(tmp_path, catalog).search(space_id, "region", extra[:3], 1)
    assert [row[0][0] for row in got] == new_ids[:3]
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok


def test_ids_deleted_in_sql_but_left_in_the_index_are_synced_out(
    tmp_path: Path, catalog: Catalog, filled
) -> None:  # noqa: ANN001
    store, space_id, ids, _ = filled
    with catalog.session() as s:
        store.delete_owners(s, space_id, "region", list(range(10)))  # committed, no sync
    assert len(new_store(tmp_path, catalog).check_consistency(space_id, "region").extra) == 10
    new_store(tmp_path, catalog).search(space_id, "region", clustered(1), 5)
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok


@pytest.mark.parametrize("damage", [garble, truncate, Path.unlink])
def test_a_server_store_answers_from_sql_while_it_repairs_in_the_background(
    tmp_path: Path,
    catalog: Catalog,
    filled,  # noqa: ANN001
    damage,  # noqa: ANN001
) -> None:
    _, space_id, ids, stored = filled
    server = new_store(tmp_path, catalog)
    server.heal_in_background = True
    queries = clustered(4, seed=11)
    expected = brute(queries, stored, ids, 10)
    assert [[i for i, _ in row] for row in server.search(space_id, "region", queries, 10)] == expected
    path = server.index_path(space_id, "region")
    damage(path)
    got = server.search(space_id, "region", queries, 10)  # never an empty answer
    assert [[i for i, _ in row] for row in got] == expected
    assert server.wait_healed(timeout=60)
    health = server.health(space_id, "region")
    assert (health.state, health.vectors, health.problem) == ("ok", N, None)
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok
    assert [[i for i, _ in row] for row in server.search(space_id, "region", queries, 10)] == expected


def test_health_names_the_problem_while_the_repair_runs(tmp_path: Path, catalog: Catalog, filled) -> None:  # noqa: ANN001
    _, space_id, _, _ = filled
    server = new_store(tmp_path, catalog, lock_timeout_s=30)
    server.heal_in_background = True
    path = server.index_path(space_id, "region")
    truncate(path)
    with server._flock(server._lock_path(space_id, "region")):  # another writer holds the index: repair waits
        health = server.health(space_id, "region")
        assert health.state == "healing" and path.name in (health.problem or "")
        assert "truncated" in health.problem or "FAISS cannot read" in health.problem
    assert server.wait_healed(timeout=60)
    assert server.health(space_id, "region").state == "ok"


def test_too_many_vectors_to_search_exactly_is_a_named_error(
    tmp_path: Path, catalog: Catalog, filled
) -> None:  # noqa: ANN001
    _, space_id, _, _ = filled
    server = new_store(tmp_path, catalog, exact_fallback_max=100, lock_timeout_s=30)
    server.heal_in_background = True
    path = server.index_path(space_id, "region")
    path.unlink()
    with server._flock(server._lock_path(space_id, "region")):
        with pytest.raises(IndexUnavailableError) as err:
            server.search(space_id, "region", clustered(1), 5)
        assert "being rebuilt" in err.value.message and err.value.code == "index_unavailable"
    assert server.wait_healed(timeout=60) and path.is_file()
    assert len(server.search(space_id, "region", clustered(1), 5)[0]) == 5


def test_a_server_rechecks_its_loaded_index_against_sql(tmp_path: Path, catalog: Catalog, filled) -> None:  # noqa: ANN001
    """A process killed between its commit and its sync changes neither the file nor the generation."""
    store, space_id, _, _ = filled
    server = new_store(tmp_path, catalog)
    server.heal_in_background = True
    server.search(space_id, "region", clustered(1), 1)  # loaded and checked
    extra = clustered(20, seed=21)
    _, new_ids = add(
        store, "dasr:heal", "region", list(range(N, N + 20)), make_videos(catalog, 1) * 20, extra
    )
    server.recheck_s = 0.0
    got = server.search(space_id, "region", extra[:3], 1)  # exact over SQL, or the healed index
    assert [row[0][0] for row in got] == new_ids[:3]
    assert server.wait_healed(timeout=60)
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok
    assert [row[0][0] for row in server.search(space_id, "region", extra[:3], 1)] == new_ids[:3]


@pytest.mark.postgres
def test_lagging_and_damaged_indexes_heal_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The same detection on PostgreSQL (sum(id) is a numeric there, ids come from a sequence)."""
    catalog = Catalog(pg_url, auto_upgrade=True)
    store = new_store(tmp_path, catalog)
    vids = make_videos(catalog, 2)
    data = clustered(200)
    space_id, ids = add(
        store, "dasr:heal", "region", list(range(200)), [vids[i % 2] for i in range(200)], data
    )
    assert (
        len(new_store(tmp_path, catalog).check_consistency(space_id, "region").missing) == 200
    )  # never synced
    got = new_store(tmp_path, catalog).search(space_id, "region", data[:3], 1)
    assert [row[0][0] for row in got] == ids[:3]
    garble(store.index_path(space_id, "region"))
    server = new_store(tmp_path, catalog)
    server.heal_in_background = True
    assert [row[0][0] for row in server.search(space_id, "region", data[:3], 1)] == ids[:3]
    assert server.wait_healed(timeout=60)
    assert new_store(tmp_path, catalog).check_consistency(space_id, "region").ok
    catalog.engine.dispose()


@pytest.mark.parametrize("damage", ["segment", "params", "index"])
def test_a_compact_index_with_a_lost_rerank_copy_is_rebuilt_before_answering(
    tmp_path: Path, catalog: Catalog, damage: str
) -> None:
    """The compact format (index file + memory-mapped re-rank copy) heals like the others."""
    settings = Settings(exact_index_max=500)
    store = IndexStore(tmp_path / "index", catalog, settings)
    vids = make_videos(catalog, 1)
    data = clustered(1500, seed=41)
    space_id, ids = add(store, "dasr:heal", "region", list(range(1500)), vids * 1500, data)
    assert store.sync(space_id, "region").factory.startswith("OPQ")
    path = store.index_path(space_id, "region")
    folder = RerankCopy.folder_for(path)
    if damage == "segment":
        next(folder.glob("seg-*.codes.npy")).unlink()
    elif damage == "params":
        next(folder.glob("params-*.npz")).write_bytes(b"garbage")
    else:
        garble(path)
    fresh = IndexStore(tmp_path / "index", catalog, settings)
    queries = data[:5]
    got = fresh.search(space_id, "region", queries, 1)
    assert [row[0][0] for row in got] == ids[:5]
    assert IndexStore(tmp_path / "index", catalog, settings).check_consistency(space_id, "region").ok
