"""IndexStore against a real migrated catalog (SQLite; one test on PostgreSQL): SQL and FAISS agree
after add / delete / sync / rebuild, readers in another "process" reload, filters, model spaces."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import IndexState, ModelSpace, Vector, Video
from video_inst.config import Settings
from video_inst.errors import InvalidQueryError, ModelSpaceMismatchError
from video_inst.vectors import codec
from video_inst.vectors.errors import IndexUnavailableError
from video_inst.vectors.index import EXACT_FACTORY, VectorIndex
from video_inst.vectors.store import IndexStore

DIM = 32
REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("VIDEO_INST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _one_omp_thread():
    """FAISS's OpenMP threads spin-wait badly on a loaded 2-core machine; one thread is faster here."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, *, seed: int = 0, dim: int = DIM, clusters: int = 30) -> np.ndarray:
    centres = codec.l2n(np.random.default_rng(99).standard_normal((clusters, dim)))
    rng = np.random.default_rng(seed)
    return codec.l2n(
        centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", auto_upgrade=True)


@pytest.fixture
def store(tmp_path: Path, catalog: Catalog) -> IndexStore:
    return IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=200_000))


def make_videos(catalog: Catalog, n: int) -> list[int]:
    with catalog.session() as s:
        rows = [Video(path=f"/media/v{i}-{uuid.uuid4().hex[:6]}.mp4") for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def add(
    store: IndexStore,
    name: str,
    kind: str,
    owners: list[int],
    videos: list[int],
    vecs: np.ndarray,
    dim: int = DIM,
) -> tuple[int, list[int]]:
    with store.catalog.session() as s:
        space = store.ensure_space(s, name, "dasr", dim, {"backbone": "test"})
        ids = store.add_vectors(s, space, kind, owners, videos, vecs)
        return space.id, ids


def sql_rows(catalog: Catalog, space_id: int, kind: str) -> dict[int, tuple[int, int]]:
    with catalog.session() as s:
        rows = s.execute(
            select(Vector.id, Vector.owner_id, Vector.video_id).where(
                Vector.space_id == space_id, Vector.kind == kind
            )
        )
        return {int(i): (int(o), int(v)) for i, o, v in rows}


def brute(queries: np.ndarray, data: np.ndarray, ids: list[int], k: int) -> list[list[int]]:
    order = np.argsort(-(codec.l2n(queries) @ data.T), axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order]


# --------------------------------------------------------------------------- basics
def test_exact_search_matches_brute_force_and_ids_map_to_rows(store: IndexStore) -> None:
    vids = make_videos(store.catalog, 3)
    data = clustered(600)
    owners = list(range(1000, 1600))
    videos = [vids[i % 3] for i in range(600)]
    space_id, ids = add(store, "dasr:test", "region", owners, videos, data)
    report = store.sync(space_id, "region")
    assert (report.added, report.count, report.factory, report.rebuilt) == (600, 600, EXACT_FACTORY, True)
    stored = codec.l2n(store.vectors_for(ids))  # float16 round trip of the L2-normalised input
    queries = clustered(10, seed=5)
    results = store.search(space_id, "region", queries, 8)
    assert [[i for i, _ in row] for row in results] == brute(queries, stored, ids, 8)
    rows = sql_rows(store.catalog, space_id, "region")
    for q, row in enumerate(results):
        for vector_id, score in row:
            owner, video = rows[vector_id]
            pos = owners.index(owner)
            assert video == videos[pos]
            assert score == pytest.approx(float(codec.l2n(queries[q])[0] @ stored[pos]), abs=1e-5)
    with store.catalog.session() as s:
        state = s.scalars(select(IndexState).where(IndexState.space_id == space_id)).one()
        assert (state.generation, state.count, state.factory) == (report.generation, 600, EXACT_FACTORY)


def test_add_is_idempotent_and_a_changed_vector_replaces_its_row(store: IndexStore) -> None:
    (vid,) = make_videos(store.catalog, 1)
    data = clustered(50, seed=1)
    space_id, first = add(store, "dasr:test", "track", list(range(50)), [vid] * 50, data)
    store.sync(space_id, "track")
    _, again = add(store, "dasr:test", "track", list(range(50)), [vid] * 50, data)
    assert again == first
    assert len(sql_rows(store.catalog, space_id, "track")) == 50
    report = store.sync(space_id, "track")
    assert not report.changed and report.count == 50
    changed = data.copy()
    changed[7] = clustered(1, seed=77)[0]
    _, third = add(store, "dasr:test", "track", list(range(50)), [vid] * 50, changed)
    assert third[:7] == first[:7] and third[8:] == first[8:] and third[7] not in first
    report = store.sync(space_id, "track")
    assert (report.added, report.removed, report.count) == (1, 1, 50)
    top = store.search(space_id, "track", changed[7], 1)[0][0]
    assert top[0] == third[7] and top[1] == pytest.approx(1.0, abs=2e-3)
    assert store.check_consistency(space_id, "track").ok


def test_delete_video_sync_and_rebuild_keep_sql_and_faiss_equal(store: IndexStore) -> None:
    a, b = make_videos(store.catalog, 2)
    data = clustered(300, seed=2)
    space_id, ids = add(store, "dasr:test", "region", list(range(300)), [a] * 150 + [b] * 150, data)
    store.sync(space_id, "region")
    store.search(space_id, "region", data[:1], 1)  # loaded (a first load would repair what follows)
    with store.catalog.session() as s:
        touched = store.delete_video(s, a)
    assert touched == [(space_id, "region")]
    # before the sync, readers already drop rows SQL no longer has
    hits = store.search(space_id, "region", data[:5], 3)
    assert all(vector_id in ids[150:] for row in hits for vector_id, _ in row)
    check = store.check_consistency(space_id, "region")
    assert (check.sql_count, check.index_count, sorted(check.extra)) == (150, 300, sorted(ids[:150]))
    report = store.sync(space_id, "region")
    assert (report.removed, report.count) == (150, 150)
    assert store.check_consistency(space_id, "region") == (150, 150, [], [])
    before = store.search(space_id, "region", data[150:160], 5)
    report = store.rebuild(space_id, "region")
    assert report.rebuilt and report.count == 150
    assert store.search(space_id, "region", data[150:160], 5) == before
    assert store.check_consistency(space_id, "region").ok


def test_sqlite_ids_of_deleted_rows_are_never_reused(store: IndexStore) -> None:
    """SQLite reuses the highest deleted rowid; the index would keep the old vector under it."""
    a, b = make_videos(store.catalog, 2)
    old = clustered(20, seed=3)
    space_id, old_ids = add(store, "dasr:test", "track", list(range(20)), [a] * 20, old)
    store.sync(space_id, "track")
    with store.catalog.session() as s:
        store.delete_video(s, a)
    new = clustered(20, seed=4)
    _, new_ids = add(store, "dasr:test", "track", list(range(100, 120)), [b] * 20, new)
    assert min(new_ids) > max(old_ids)
    store.sync(space_id, "track")
    top = store.search(space_id, "track", new[:5], 1)
    assert [row[0][0] for row in top] == new_ids[:5]
    assert store.check_consistency(space_id, "track").ok


def test_second_store_sees_new_vectors_after_the_writer_syncs(tmp_path: Path, store: IndexStore) -> None:
    vid = make_videos(store.catalog, 1)[0]
    data = clustered(120, seed=5)
    space_id, ids = add(store, "dasr:test", "frame", list(range(60)), [vid] * 60, data[:60])
    store.sync(space_id, "frame")
    reader = IndexStore(store.root, Catalog(store.catalog.url), store.settings)  # another process's view
    assert {i for i, _ in reader.search(space_id, "frame", data[70], 100)[0]} == set(ids)
    _, more = add(store, "dasr:test", "frame", list(range(60, 120)), [vid] * 60, data[60:])
    assert {i for i, _ in reader.search(space_id, "frame", data[70], 200)[0]} == set(ids)  # not synced yet
    store.sync(space_id, "frame")
    assert reader.search(space_id, "frame", data[70], 1)[0][0][0] == more[10]
    assert {i for i, _ in reader.search(space_id, "frame", data[70], 200)[0]} == set(ids + more)


def test_filter_by_video(store: IndexStore) -> None:
    vids = make_videos(store.catalog, 4)
    data = clustered(400, seed=6)
    videos = [vids[i % 4] for i in range(400)]
    space_id, ids = add(store, "dasr:test", "region", list(range(400)), videos, data)
    store.sync(space_id, "region")
    keep = {vids[1], vids[3]}
    queries = clustered(6, seed=7)
    results = store.search(space_id, "region", queries, 10, video_ids=sorted(keep))
    rows = sql_rows(store.catalog, space_id, "region")
    allowed = [i for i in ids if rows[i][1] in keep]
    stored = codec.l2n(store.vectors_for(allowed))
    assert [[i for i, _ in row] for row in results] == brute(queries, stored, allowed, 10)
    unknown = max(vids) + 100
    assert store.search(space_id, "region", queries[:1], 10, video_ids=[unknown]) == [[]]


def test_models_never_mix(store: IndexStore) -> None:
    (vid,) = make_videos(store.catalog, 1)
    small_space, _ = add(store, "dasr:small", "region", [1, 2], [vid, vid], clustered(2))
    big_space, _ = add(store, "clip:big", "region", [1, 2], [vid, vid], clustered(2, dim=64), dim=64)
    store.sync(small_space, "region")
    store.sync(big_space, "region")
    assert store.index_path(small_space, "region") != store.index_path(big_space, "region")
    assert VectorIndex.load(store.index_path(big_space, "region")).dim == 64
    with store.catalog.session() as s:
        space = s.get(ModelSpace, small_space)
        with pytest.raises(ModelSpaceMismatchError, match="dimension 64"):
            store.add_vectors(s, space, "region", [3], [vid], clustered(1, dim=64))
        with pytest.raises(ModelSpaceMismatchError, match="new space name"):
            store.ensure_space(s, "dasr:small", "dasr", 48, {"backbone": "test"})
    with pytest.raises(ModelSpaceMismatchError):
        store.search(small_space, "region", clustered(1, dim=64), 3)
    with pytest.raises(InvalidQueryError, match="kind"):
        store.search(small_space, "shot", clustered(1), 3)
    assert store.known_indexes() == sorted([(small_space, "region"), (big_space, "region")])
    assert sorted(store.rebuild_all()) == sorted([(small_space, "region", 2), (big_space, "region", 2)])
    assert [r.changed for r in store.sync_all()] == [False, False]


@pytest.mark.parametrize("approx", ["hnsw", "ivfpq", "compact"])
def test_approximate_index_above_threshold_reranks_from_sql(
    tmp_path: Path, catalog: Catalog, approx: str
) -> None:
    settings = Settings(exact_index_max=1000, approx_index=approx)
    store = IndexStore(tmp_path / "index", catalog, settings, exact_subset_max=0)
    vids = make_videos(catalog, 2)
    data = clustered(3000, seed=8)
    owners = list(range(3000))
    videos = [vids[i % 2] for i in range(3000)]
    space_id, ids = add(store, "dasr:test", "region", owners, videos, data)
    report = store.sync(space_id, "region")
    expected = {"hnsw": "HNSW32", "ivfpq": "IVF64,PQ4", "compact": "OPQ4_32,IVF64,PQ4|PCA32,fp16"}
    assert report.factory == expected[approx]
    stored = codec.l2n(store.vectors_for(ids))
    queries = clustered(30, seed=9)
    results = store.search(space_id, "region", queries, 10)
    truth = brute(queries, stored, ids, 10)
    found = [[i for i, _ in row] for row in results]
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) >= 0.95
    exact = dict(zip(ids, (codec.l2n(queries[0])[0] @ stored.T).tolist()))
    assert all(score == pytest.approx(exact[i], abs=1e-5) for i, score in results[0])
    filtered = store.search(space_id, "region", queries, 10, video_ids=[vids[0]])
    rows = sql_rows(catalog, space_id, "region")
    assert all(rows[i][1] == vids[0] for row in filtered for i, _ in row)
    with catalog.session() as s:
        store.delete_video(s, vids[1])
    store.sync(space_id, "region")
    assert store.check_consistency(space_id, "region") == (1500, 1500, [], [])
    found = [i for row in store.search(space_id, "region", queries, 10) for i, _ in row]
    assert found and all(rows[i][1] == vids[0] for i in found)


@pytest.mark.parametrize("oversample", [None, 3])
def test_served_store_reranks_search_oversample_candidates_per_hit(
    tmp_path: Path, oversample: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Settings.search_oversample`` sets how many stored vectors one search reads to re-rank."""
    from video_inst.vectors.store import get_index_store

    settings = Settings(
        home=tmp_path,
        database_url=None,
        exact_index_max=1000,
        approx_index="ivfpq",
        search_oversample=oversample,
    )
    store = get_index_store(settings)
    vids = make_videos(store.catalog, 1)
    space_id, ids = add(store, "dasr:test", "region", list(range(1500)), vids * 1500, clustered(1500, seed=4))
    store.sync(space_id, "region")
    read: list[int] = []
    real = store.vectors_for

    def spy(wanted: np.ndarray, **kwargs: object) -> np.ndarray:
        read.append(len(wanted))
        return real(wanted, **kwargs)

    monkeypatch.setattr(store, "vectors_for", spy)
    hits = store.search(space_id, "region", clustered(1, seed=5), 10)[0]
    assert len(hits) == 10
    assert read == [10 * (oversample or 10)]  # the index default for short PQ codes: 10 per hit
    store.catalog.engine.dispose()


def test_switches_exact_to_approximate_when_it_grows(tmp_path: Path, catalog: Catalog) -> None:
    store = IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=1000, approx_index="hnsw"))
    (vid,) = make_videos(catalog, 1)
    data = clustered(1500, seed=10)
    space_id, _ = add(store, "dasr:test", "track", list(range(800)), [vid] * 800, data[:800])
    assert store.sync(space_id, "track").factory == EXACT_FACTORY
    add(store, "dasr:test", "track", list(range(800, 1500)), [vid] * 700, data[800:])
    report = store.sync(space_id, "track")
    assert report.rebuilt and report.factory == "HNSW32" and report.count == 1500
    with catalog.session() as s:
        assert s.scalar(select(IndexState.factory).where(IndexState.space_id == space_id)) == "HNSW32"


def test_a_growing_catalog_switches_index_type_in_the_background_while_searches_answer(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past exact_index_max a server's sync keeps the exact index current and builds the compact one
    in a thread; searches answer from the old index until the new one is published, then from it."""
    store = IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=1000))
    store.switch_in_background = True
    (vid,) = make_videos(catalog, 1)
    data = clustered(2500, seed=31)
    space_id, first = add(store, "dasr:test", "region", list(range(900)), [vid] * 900, data[:900])
    assert store.sync(space_id, "region").factory == EXACT_FACTORY
    building = threading.Event()
    real_build = store._build

    def slow_build(*args: object) -> VectorIndex:
        building.set()
        index = real_build(*args)  # type: ignore[arg-type]
        time.sleep(1.0)  # a big catalog's build takes minutes: searches must go on meanwhile
        return index

    monkeypatch.setattr(store, "_build", slow_build)
    stop = threading.Event()
    answered: list[tuple[str, bool]] = []  # (factory that answered, top hit is the query itself)
    errors: list[BaseException] = []
    _, later = add(store, "dasr:test", "region", list(range(900, 2500)), [vid] * 1600, data[900:])
    ids = first + later

    def searcher() -> None:
        rng = np.random.default_rng(0)
        while not stop.is_set():
            j = int(rng.integers(0, 900))
            try:
                hits = store.search(space_id, "region", data[j], 5)[0]
                factory = store._loaded[(space_id, "region")].index.factory
                answered.append((factory, bool(hits) and hits[0][0] == ids[j]))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        report = store.sync(space_id, "region")  # returns at once: the exact index has the new rows
        assert report.factory == EXACT_FACTORY and report.count == 2500
        assert store.search(space_id, "region", data[2400], 1)[0][0][0] == ids[2400]
        assert building.wait(30)
        assert store.wait_switched(120)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert not errors
    factories = [f for f, _ in answered]
    assert factories[0] == EXACT_FACTORY and factories[-1].startswith("OPQ")  # switched by itself
    assert all(ok for _, ok in answered)  # every search answered, and right
    with catalog.session() as s:
        assert s.scalar(select(IndexState.factory).where(IndexState.space_id == space_id)).startswith("OPQ")
    assert store.check_consistency(space_id, "region").ok
    assert (
        IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=1000))
        .sync(space_id, "region")
        .changed
        is False
    )  # another process sees the switched index as current


def test_corrupt_file_is_rebuilt_by_sync(store: IndexStore) -> None:
    (vid,) = make_videos(store.catalog, 1)
    space_id, ids = add(store, "dasr:test", "frame", list(range(40)), [vid] * 40, clustered(40, seed=11))
    store.sync(space_id, "frame")
    store.index_path(space_id, "frame").write_bytes(b"garbage")
    store.drop_cache()
    report = store.sync(space_id, "frame")
    assert report.rebuilt and report.count == 40
    assert store.check_consistency(space_id, "frame").ok


def test_concurrent_syncs_in_threads_agree(store: IndexStore) -> None:
    vids = make_videos(store.catalog, 4)
    space_id, _ = add(store, "dasr:test", "region", [0], [vids[0]], clustered(1))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            add(
                store,
                "dasr:test",
                "region",
                list(range(100 * n + 1, 100 * n + 51)),
                [vids[n]] * 50,
                clustered(50, seed=n),
            )
            store.sync(space_id, "region")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store.sync(space_id, "region")
    assert store.check_consistency(space_id, "region") == (201, 201, [], [])


_WRITER = """
import sys, numpy as np
from pathlib import Path
from video_inst.catalog.db import Catalog
from video_inst.catalog.models import Video
from video_inst.config import Settings
from video_inst.vectors.store import IndexStore
root, url, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
catalog = Catalog(url)
store = IndexStore(root, catalog, Settings(exact_index_max=200_000))
rng = np.random.default_rng(n)
for batch in range(3):
    with catalog.session() as s:
        video = Video(path=f"/p/{n}-{batch}.mp4"); s.add(video); s.flush()
        space = store.ensure_space(s, "dasr:test", "dasr", 32, {"backbone": "test"})
        owners = list(range(n * 1000 + batch * 100, n * 1000 + batch * 100 + 40))
        store.add_vectors(s, space, "region", owners, [video.id] * 40, rng.standard_normal((40, 32)))
    store.sync(space.id, "region")
"""


def test_two_processes_write_one_index(tmp_path: Path, store: IndexStore) -> None:
    """Real processes: the file lock keeps one writer at a time, nothing is lost."""
    add(store, "dasr:test", "region", [0], make_videos(store.catalog, 1), clustered(1))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(store.root), store.catalog.url, str(n)], env=env)
        for n in (1, 2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    space_id = store.known_indexes()[0][0]
    assert store.check_consistency(space_id, "region") == (241, 241, [], [])
    assert len(set(sql_rows(store.catalog, space_id, "region"))) == 241


@pytest.mark.postgres
def test_on_postgresql(tmp_path: Path) -> None:
    """The same contract on a fresh PostgreSQL database (sequence ids, RETURNING, batched IN lists)."""
    admin_url = POSTGRES_URL
    name = f"vi_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {err}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        catalog = Catalog(url, auto_upgrade=True)
        store = IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=200_000))
        vids = make_videos(catalog, 2)
        data = clustered(1200, seed=12)
        videos = [vids[i % 2] for i in range(1200)]
        space_id, ids = add(store, "dasr:pg", "region", list(range(1200)), videos, data)
        assert len(set(ids)) == 1200
        assert add(store, "dasr:pg", "region", list(range(1200)), videos, data)[1] == ids  # idempotent
        store.sync(space_id, "region")
        queries = clustered(5, seed=13)
        results = store.search(space_id, "region", queries, 10)
        assert [[i for i, _ in row] for row in results] == brute(
            queries, codec.l2n(store.vectors_for(ids)), ids, 10
        )
        with catalog.session() as s:
            store.delete_video(s, vids[0])
        store.sync(space_id, "region")
        assert store.check_consistency(space_id, "region") == (600, 600, [], [])
        with catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(Vector)) == 600
        catalog.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ------------------------------------------------------------------ SQL-only kinds
def test_a_sql_only_kind_has_no_file_and_is_searched_exactly_over_sql(
    tmp_path: Path, catalog: Catalog
) -> None:
    """DASR track vectors (SQL_ONLY_KINDS) are read by id, never through FAISS: no file, no repair,
    nothing in the index checks; a search still answers, exactly, from SQL."""
    from video_inst.vectors.store import SQL_ONLY_KINDS

    assert ("dasr", "track") in SQL_ONLY_KINDS and ("clip", "track") not in SQL_ONLY_KINDS
    plain = IndexStore(tmp_path / "index", catalog, Settings(exact_index_max=200_000))
    vids = make_videos(catalog, 2)
    data = clustered(300)
    space_id, ids = add(
        plain, "dasr:test", "track", list(range(300)), [vids[i % 2] for i in range(300)], data
    )
    add(plain, "dasr:test", "region", list(range(300)), [vids[i % 2] for i in range(300)], data)
    plain.sync(space_id, "track")  # an index file an older version wrote
    plain.sync(space_id, "region")
    track_file = plain.index_path(space_id, "track")
    assert track_file.exists()
    queries = clustered(5, seed=3)
    expected = plain.search(space_id, "track", queries, 7)

    store = IndexStore(
        tmp_path / "index", catalog, Settings(exact_index_max=200_000), sql_only=SQL_ONLY_KINDS
    )
    assert not store.indexed(space_id, "track") and store.indexed(space_id, "region")
    report = store.sync(space_id, "track")
    assert not track_file.exists() and report.factory == "sql" and report.count == 300 and report.changed
    assert not store.sync(space_id, "track").changed
    assert store.known_indexes() == [(space_id, "region")]
    assert store.check_files() == [] and store.repair_if_behind(space_id, "track") is None
    assert not track_file.exists()  # nothing "repaired" it back
    got = store.search(space_id, "track", queries, 7)
    assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in expected]
    for row, want in zip(got, expected):
        assert [s for _, s in row] == pytest.approx([s for _, s in want], abs=1e-5)
    only_b = store.search(space_id, "track", queries, 7, video_ids=[vids[1]])
    assert all(ids.index(i) % 2 == 1 for row in only_b for i, _ in row) and all(len(r) == 7 for r in only_b)
    assert store.health(space_id, "track").state == "ok" and store.check_consistency(space_id, "track").ok
    store.exact_fallback_max = 100
    with pytest.raises(IndexUnavailableError, match="kept in SQL only"):
        store.search(space_id, "track", queries, 7)
