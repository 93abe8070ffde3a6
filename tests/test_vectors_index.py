"""One FAISS index: exact search against numpy, removal for every factory, ANN recall with re-ranking,
atomic saves, filters, and the float16 codec. Synthetic clustered vectors, small enough to be fast."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import faiss
import numpy as np
import pytest

from video_inst.config import Settings
from video_inst.errors import ModelSpaceMismatchError
from video_inst.vectors import codec, rerank
from video_inst.vectors.errors import CorruptIndexError, InvalidVectorsError, VectorIndexError
from video_inst.vectors.index import (
    EXACT_FACTORY,
    VectorIndex,
    choose_factory,
    compact_factory,
    estimate_bytes,
    read_header,
)

DIM = 32
FACTORIES = ["Flat", "SQfp16", "HNSW32", "IVF16,PQ16", "IVF16,Flat", "SQ8"]


@pytest.fixture(autouse=True)
def _one_omp_thread():
    """FAISS's OpenMP threads spin-wait badly on a loaded 2-core machine; one thread is faster here."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(
    n: int, dim: int = DIM, *, clusters: int = 40, seed: int = 0, centres_seed: int = 0
) -> np.ndarray:
    """Unit vectors around random centres (fixed by ``centres_seed``): neighbours are close, as with
    real embeddings; another ``seed`` draws new points (queries) around the same centres."""
    centres = codec.l2n(np.random.default_rng(centres_seed).standard_normal((clusters, dim)))
    rng = np.random.default_rng(seed + 1000)
    noise = 0.5 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return codec.l2n(centres[rng.integers(0, clusters, n)] + noise)


def brute_force(
    queries: np.ndarray, data: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = codec.l2n(queries) @ codec.l2n(data).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


# --------------------------------------------------------------------------- codec
def test_codec_round_trip_is_float16_little_endian() -> None:
    vecs = codec.l2n(np.random.default_rng(1).standard_normal((5, 7)))
    blobs = codec.encode(vecs)
    assert [len(b) for b in blobs] == [14] * 5
    assert blobs[2] == vecs[2].astype("<f2").tobytes()
    back = codec.decode(blobs, 7)
    assert back.dtype == np.float32 and back.shape == (5, 7)
    np.testing.assert_allclose(back, vecs, atol=1e-3)
    np.testing.assert_array_equal(codec.decode_one(codec.encode_one(vecs[0]), 7), back[0])


def test_codec_refuses_bad_input() -> None:
    with pytest.raises(ModelSpaceMismatchError, match="16 bytes, expected 14"):
        codec.decode([b"\x00" * 14, b"\x00" * 16], 7)
    with pytest.raises(InvalidVectorsError, match="NaN"):
        codec.encode(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidVectorsError, match="float16 range"):
        codec.encode(np.array([[1e6, 0.0]]))
    with pytest.raises(ModelSpaceMismatchError, match="dimension 3"):
        codec.as_matrix(np.zeros((2, 3)), dim=4)


def test_codec_sparse_rows_are_lossless_and_smaller() -> None:
    rng = np.random.default_rng(2)
    dense_part = rng.standard_normal((3, 1280))
    relu = np.maximum(rng.standard_normal((4, 1280)), 0.0)  # ~50% zeros, as DASR vectors after a ReLU
    relu[1, :1200] = 0.0  # very sparse
    relu[2, 5] = -0.0  # a negative zero is a zero
    vecs = codec.l2n(np.concatenate([dense_part, relu]))
    blobs = codec.encode(vecs)
    half = vecs.astype("<f2")
    assert [len(b) for b in blobs[:3]] == [2560] * 3  # dense: sparse would be larger
    assert blobs[0] == half[0].tobytes()
    for blob, row in zip(blobs[3:], half[3:]):
        assert len(blob) % 2 == 1 and blob[:1] == b"S"
        assert len(blob) == codec.sparse_size(1280, int(np.count_nonzero(row))) < 2560
    assert len(blobs[4]) == 3 + 160 + 2 * int(np.count_nonzero(half[4]))  # 163 + even: odd, no pad
    assert codec.sparse_size(8, 3) == 3 + 1 + 6 + 1  # 10 bytes: padded to odd
    back = codec.decode(blobs, 1280)  # a mixed batch
    np.testing.assert_array_equal(back, half.astype(np.float32))  # exactly the float16 values
    assert back.dtype == np.float32 and back.flags.c_contiguous
    np.testing.assert_array_equal(codec.decode(blobs[3:], 1280), half[3:].astype(np.float32))
    np.testing.assert_array_equal(codec.decode_one(blobs[5], 1280), half[5].astype(np.float32))
    assert {codec.blob_dim(b) for b in blobs} == {1280}
    assert codec.encode(back) == blobs  # stable bytes: add_vectors compares blobs to stay idempotent


@pytest.mark.parametrize("dim", [1, 7, 8, 9, 513])
def test_codec_sparse_any_dimension(dim: int) -> None:
    rng = np.random.default_rng(dim)
    vecs = codec.l2n(np.maximum(rng.standard_normal((6, dim)), 0.0) * (rng.random((6, dim)) < 0.2))
    vecs[0] = 0.0  # a zero row stays a zero row
    blobs = codec.encode(vecs)
    assert all(len(b) <= 2 * dim for b in blobs)
    assert {codec.blob_dim(b) for b in blobs} == {dim}
    np.testing.assert_array_equal(codec.decode(blobs, dim), vecs.astype("<f2").astype(np.float32))


def test_codec_sparse_refuses_other_dimensions_and_damage() -> None:
    vec = codec.l2n(np.eye(1, 64))
    blob = codec.encode(vec)[0]
    assert len(blob) % 2 == 1
    with pytest.raises(ModelSpaceMismatchError, match="dimension 64"):
        codec.decode([blob], 32)
    with pytest.raises(ModelSpaceMismatchError, match="dimension 64"):
        codec.decode([blob], 128)
    with pytest.raises(InvalidVectorsError, match="disagree"):
        codec.decode([blob[:-2]], 64)  # the bitmap says 1 value, no byte of it is left
    with pytest.raises(InvalidVectorsError, match="neither dense nor sparse"):
        codec.blob_dim(b"X" + blob[1:])
    with pytest.raises(ModelSpaceMismatchError):
        codec.decode([b"X" + blob[1:]], 64)


def test_l2n_unit_rows_and_zero_rows_stay_zero() -> None:
    out = codec.l2n(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)


# ---------------------------------------------------------------------- exact search
def test_flat_search_is_exact_and_returns_row_ids() -> None:
    data = clustered(800)
    ids = np.random.default_rng(2).choice(10**9, size=800, replace=False).astype(np.int64)
    queries = clustered(15, seed=9)
    index = VectorIndex(DIM)  # Flat by default
    assert index.exact and index.factory == "Flat"
    index.add(ids, data)
    scores, found = index.search(queries, 10)
    true_scores, true_ids = brute_force(queries, data, ids, 10)
    np.testing.assert_array_equal(found, true_ids)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    # k beyond the index: padded with -1 / -inf
    scores, found = VectorIndex(DIM).search(queries, 3)
    assert (found == -1).all() and np.isneginf(scores).all()


@pytest.mark.parametrize("factory", FACTORIES)
def test_remove_works_for_every_factory(factory: str) -> None:
    data = clustered(1500, seed=3)
    ids = np.arange(5000, 6500, dtype=np.int64)
    index = VectorIndex(DIM, factory)
    index.add(ids, data)
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, [999_999]])) == len(gone)  # unknown ids are ignored
    assert index.ntotal == 1500 - len(gone)
    assert not np.isin(gone, index.ids()).any()
    assert index.remove(gone) == 0  # twice: nothing more to remove
    # queries equal to removed vectors must not find them
    fetch = _fetcher(ids, data)
    _, found = index.search(data[::3][:50], 20, fetch=fetch)
    assert not np.isin(found, gone).any()
    # a removed id can come back (HNSW compacts its tombstones first)
    index.add(gone[:5], data[::3][:5])
    _, found = index.search(data[::3][:5], 1, fetch=fetch)
    np.testing.assert_array_equal(found[:, 0], gone[:5])


def _fetcher(ids: np.ndarray, data: np.ndarray):  # type: ignore[no-untyped-def]
    """The store's role: exact vectors by id, NaN rows for ids it does not know."""
    pos = {int(i): p for p, i in enumerate(ids)}

    def fetch(wanted: np.ndarray) -> np.ndarray:
        out = np.full((len(wanted), data.shape[1]), np.nan, dtype=np.float32)
        for row, i in enumerate(wanted.tolist()):
            if i in pos:
                out[row] = data[pos[i]]
        return out

    return fetch


@pytest.mark.parametrize("factory", ["HNSW32", "IVF32,PQ8"])
def test_approximate_with_reranking_has_high_recall(factory: str) -> None:
    data = clustered(4000, clusters=60, seed=4)
    ids = np.arange(1, 4001, dtype=np.int64) * 7
    queries = clustered(40, clusters=60, seed=5)  # new points around the same centres
    index = VectorIndex(DIM, factory)
    assert index.approximate
    index.add(ids, data)
    true_scores, truth = brute_force(queries, data, ids, 10)
    scores, found = index.search(queries, 10, fetch=_fetcher(ids, data))
    assert recall(found, truth) >= 0.95
    # re-ranked scores are the exact cosine similarities of the ids returned
    exact = np.einsum("qd,qkd->qk", codec.l2n(queries), data[found // 7 - 1])
    np.testing.assert_allclose(scores, exact, atol=1e-5)


def _saved(index: VectorIndex) -> Path:
    path = Path(tempfile.mkdtemp(prefix="vi_half_")) / "1-region.faiss"
    index.save(path)
    return path


def test_float16_exact_index_gives_flat_ids_and_scores_at_half_the_bytes() -> None:
    """Stored vectors are float16 (codec.py): float16 codes hold them exactly, so the default
    exact index answers as Flat does, filtered or not, after removals, from half the bytes."""
    data = codec.decode(codec.encode(codec.l2n(np.maximum(clustered(900, seed=21), 0.0))), DIM)
    ids = np.arange(900, dtype=np.int64) * 7 + 3
    queries = clustered(12, seed=22)
    flat, half = VectorIndex(DIM, "Flat"), VectorIndex(DIM, EXACT_FACTORY)
    assert half.exact and not half.approximate
    for index in (flat, half):
        index.add(ids, data)
        index.remove(ids[::9])
    np.testing.assert_array_equal(flat.search(queries, 25)[1], half.search(queries, 25)[1])
    # the same cosines up to float32 rounding (q . l2n(row) there, q . row / |row| here)
    np.testing.assert_allclose(flat.search(queries, 25)[0], half.search(queries, 25)[0], atol=1e-6)
    allowed = ids[ids % 3 == 0]
    got = [index.search(queries, 10, allowed=allowed) for index in (flat, half)]
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_allclose(got[0][0], got[1][0], atol=1e-6)
    back = VectorIndex.load(_saved(half))  # norms rebuilt from the codes of a loaded file
    np.testing.assert_array_equal(back.search(queries, 25)[1], flat.search(queries, 25)[1])
    ratio = len(faiss.serialize_index(half._index)) / len(faiss.serialize_index(flat._index))
    assert ratio < (2 * DIM + 8) / (4 * DIM + 8) + 0.02  # 2 B a dimension instead of 4, + the id


def test_filter_by_allowed_ids_and_predicate() -> None:
    data = clustered(1200, seed=5)
    ids = np.arange(1200, dtype=np.int64) + 100
    queries = clustered(8, seed=6)
    allowed = ids[ids % 5 == 0]
    for factory in ("Flat", "SQfp16", "HNSW32"):
        index = VectorIndex(DIM, factory, exact_subset_max=0)  # force FAISS's own selector path
        index.add(ids, data)
        fetch = _fetcher(ids, data)
        _, found = index.search(queries, 10, allowed=allowed, fetch=fetch)
        assert np.isin(found, allowed).all()
        _, truth = brute_force(queries, data[ids % 5 == 0], allowed, 10)
        assert recall(found, truth) >= 0.95
        _, found = index.search(queries, 10, allowed=lambda x: x % 5 == 0, fetch=fetch)
        assert np.isin(found, allowed).all()
        _, found = index.search(queries, 10, allowed=faiss.IDSelectorRange(100, 400), fetch=fetch)
        assert ((found >= 100) & (found < 400)).all()
    index = VectorIndex(DIM, "HNSW32")  # small allowed set on an ANN index: exact over fetched vectors
    index.add(ids, data)
    _, found = index.search(queries, 10, allowed=allowed[:30], fetch=_fetcher(ids, data))
    _, truth = brute_force(queries, data[ids % 5 == 0][:30], allowed[:30], 10)
    np.testing.assert_array_equal(found, truth)


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(VectorIndexError, match="bad FAISS factory"):
        VectorIndex(DIM, "Nonsense42")
    with pytest.raises(VectorIndexError, match="IDMap"):
        VectorIndex(DIM, "IDMap,Flat")
    index = VectorIndex(DIM)
    with pytest.raises(ModelSpaceMismatchError):
        index.add([1], np.zeros((1, DIM + 1)))
    with pytest.raises(InvalidVectorsError):
        index.add([1, 2], clustered(3))
    index.add([1, 2], clustered(2))
    with pytest.raises(VectorIndexError, match="already in the index"):
        index.add([2, 3], clustered(2))
    with pytest.raises(InvalidVectorsError, match=">= 0"):
        index.add([-5], clustered(1))
    with pytest.raises(ModelSpaceMismatchError):
        index.search(np.zeros((1, DIM * 2)), 3)
    with pytest.raises(VectorIndexError, match="needs|train"):
        VectorIndex(DIM, "IVF64,PQ16").add(np.arange(10), clustered(10))


# ------------------------------------------------------------------------------ files
@pytest.mark.parametrize("factory", ["Flat", "SQfp16", "HNSW32", "IVF16,PQ16"])
def test_save_load_round_trip(tmp_path: Path, factory: str) -> None:
    data = clustered(1000, seed=7)
    ids = np.arange(1000, dtype=np.int64) * 3 + 1
    index = VectorIndex(DIM, factory)
    index.add(ids, data)
    index.remove(ids[:10])
    index.generation = 7
    index.meta["space_id"] = 4
    path = tmp_path / "4-track.faiss"
    index.save(path)
    back = VectorIndex.load(path)
    assert (back.factory, back.generation, back.ntotal, back.meta["space_id"]) == (factory, 7, 990, 4)
    np.testing.assert_array_equal(back.ids(), index.ids())
    queries = clustered(5, seed=8)
    fetch = _fetcher(ids, data)
    np.testing.assert_array_equal(
        back.search(queries, 5, fetch=fetch)[1], index.search(queries, 5, fetch=fetch)[1]
    )
    assert read_header(path)["max_id"] == int(ids.max())


def test_crash_during_save_leaves_the_old_file_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "1-frame.faiss"
    old = VectorIndex(DIM)
    old.add([1, 2, 3], clustered(3))
    old.save(path)
    new = VectorIndex(DIM)
    new.add(np.arange(10, 60), clustered(50))

    def crash(*_args):  # type: ignore[no-untyped-def]
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(VectorIndex.load(path).ids(), [1, 2, 3])
    assert [p.name for p in tmp_path.iterdir()] == ["1-frame.faiss"]  # no temp file left behind

    def crash_mid_write(*_args):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated crash halfway through the FAISS data")

    monkeypatch.setattr(faiss, "write_index", crash_mid_write)
    with pytest.raises(RuntimeError, match="halfway"):
        new.save(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(VectorIndex.load(path).ids(), [1, 2, 3])
    assert [p.name for p in tmp_path.iterdir()] == ["1-frame.faiss"]


def test_unreadable_files_raise_corrupt_index_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.faiss"
    junk.write_bytes(b"not an index at all")
    with pytest.raises(CorruptIndexError, match="not a video_inst index"):
        VectorIndex.load(junk)
    good = tmp_path / "good.faiss"
    index = VectorIndex(DIM)
    index.add(np.arange(100), clustered(100))
    index.save(good)
    truncated = tmp_path / "truncated.faiss"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptIndexError):
        VectorIndex.load(truncated)


# ------------------------------------------------------------------- factory helpers
def test_choose_factory_follows_settings() -> None:
    exact = Settings(exact_index_max=200_000, approx_index="hnsw")
    assert choose_factory(200_000, 512, exact) == EXACT_FACTORY == "SQfp16"
    assert choose_factory(200_001, 512, exact) == "HNSW32"
    ivf = Settings(exact_index_max=200_000, approx_index="ivfpq")
    assert choose_factory(1_000_000, 512, ivf) == "IVF4096,PQ64"
    factory = choose_factory(300_000, 768, ivf)
    assert factory.startswith("IVF") and factory.endswith(",PQ96")
    assert choose_factory(500, 512, Settings(exact_index_max=10)) == EXACT_FACTORY  # too small to approximate


@pytest.mark.parametrize("factory", ["Flat", "SQfp16", "IVF16,PQ8", "HNSW32"])
def test_estimate_bytes_is_close_to_the_real_size(factory: str) -> None:
    n = 3000
    index = VectorIndex(DIM, factory)
    index.add(np.arange(n), clustered(n, seed=11))
    stored = len(faiss.serialize_index(index._index))
    estimate = estimate_bytes(factory, n, DIM)
    # the estimate also counts the in-memory reverse id map that files do not store
    assert 0.8 * stored <= estimate <= 1.6 * stored + 64 * n
    assert estimate_bytes(factory, 2 * n, DIM) > estimate
    with pytest.raises(VectorIndexError):
        estimate_bytes("Nonsense", n, DIM)


def test_default_rerank_depth_follows_the_pq_code_size() -> None:
    """Short PQ codes rank coarsely and re-rank 10 per hit; the product's dim/8-byte codes 4."""
    assert VectorIndex(32, "IVF4,PQ4").oversample == 10
    assert VectorIndex(512, "IVF4,PQ64").oversample == 4
    assert VectorIndex(1280, "IVF4,PQ160").oversample == 4
    assert VectorIndex(64, "HNSW32").oversample == 4
    assert VectorIndex(32, "IVF4,PQ4", oversample=7).oversample == 7


# ------------------------------------------------------------------ compact indexes (archive scale)
def test_past_the_exact_size_the_default_is_compact_and_hnsw_only_while_it_fits() -> None:
    default = Settings(exact_index_max=200_000)
    assert choose_factory(200_000, 1280, default) == EXACT_FACTORY
    factory = choose_factory(10_000_000, 1280, default)
    assert factory.startswith("OPQ64_256,IVF") and factory.endswith(",PQ64|PCA248,fp16")
    assert estimate_bytes(factory, 10_000_000, 1280) / 10_000_000 <= 100  # RAM: codes + ids + tables
    assert rerank.bytes_per_vector(factory.partition("|")[2]) + 8 <= 512  # disk copy + its id
    hnsw = Settings(exact_index_max=200_000, approx_index="hnsw", index_ram_max=4 * 2**30)
    assert choose_factory(300_000, 1280, hnsw) == "HNSW32"  # ~1.6 GB: fits
    assert choose_factory(2_000_000, 1280, hnsw).startswith("OPQ")  # ~10 GB would not: never HNSW
    assert estimate_bytes("HNSW32", 2_000_000, 1280) > hnsw.index_ram_max


def test_compact_index_reranks_by_its_memory_mapped_copy_and_round_trips(tmp_path: Path) -> None:
    dim, n = 64, 6000
    data = clustered(n, dim, seed=21)
    ids = np.arange(1, n + 1)
    factory = compact_factory(n, dim)
    assert factory == "OPQ8_64,IVF128,PQ8|PCA64,fp16"
    index = VectorIndex(dim, factory, nprobe=64)
    index.train(data[:4000])
    index.add(ids, data)
    queries = clustered(20, dim, seed=22)
    truth_s, truth = brute_force(queries, data, ids, 10)
    _, by_copy = index.search(queries, 10)  # no SQL: the copy orders the candidates
    assert recall(by_copy, truth) >= 0.95
    read: list[int] = []

    def fetch(wanted: np.ndarray) -> np.ndarray:
        read.append(len(wanted))
        return data[wanted - 1]

    scores, found = index.search(queries[:1], 10, fetch=fetch)
    assert read == [10]  # only the k kept are read exactly, not k * oversample
    exact = dict(zip(ids.tolist(), (codec.l2n(queries[:1]) @ data.T)[0].tolist()))
    assert scores[0] == pytest.approx([exact[i] for i in found[0]], abs=1e-5)
    path = tmp_path / "1-region.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, nprobe=64)
    assert isinstance(loaded.copy.segments[0].codes, np.memmap)  # on disk, not in RAM
    assert np.array_equal(loaded.search(queries, 10)[1], by_copy)
    # incremental adds write one more segment; files no header names any more are collected
    extra = clustered(50, dim, seed=23)
    loaded.add(np.arange(n + 1, n + 51), extra)
    loaded.save(path)
    loaded.remove(np.arange(1, 101))
    loaded.add(np.arange(n + 51, n + 61), extra[:10])
    loaded.save(path)
    again = VectorIndex.load(path, nprobe=64)
    assert len(again.copy.segments) == 3 and again.ntotal == n + 60 - 100
    _, hit = again.search(extra[:5], 1)
    assert hit[:, 0].tolist() == list(range(n + 1, n + 6))
    assert not set(again.search(data[:100], 5)[1].ravel().tolist()) & set(range(1, 101))
    names = {p.name for p in rerank.RerankCopy.folder_for(path).iterdir()}
    assert len(names) == 1 + 2 * 3  # params + ids/codes of the three segments named
    first = loaded.copy.segments[0].name
    for p in rerank.RerankCopy.folder_for(path).glob(f"seg-{first}.*"):
        p.unlink()
    with pytest.raises(CorruptIndexError, match="re-rank copy"):
        VectorIndex.load(path)
