#!/usr/bin/env python
"""Speed, memory and recall of the vector indexes: exact Flat against HNSW and IVF-PQ with re-ranking.

Builds each index over N synthetic clustered unit vectors (a mixture around ``--clusters``
random centres, queries drawn around the same centres), then prints build time, memory
(RSS growth and ``estimate_bytes``), single-query search latency p50 / p95 for k (default 20)
and recall@k against the exact answer. Re-ranking reads float16 vectors from memory here;
``--store-n`` adds an end-to-end run through IndexStore on a temporary SQLite catalog, where
re-ranking reads them from SQL as in production. Asserts nothing: figures go in docs/VECTORS.md
with the command that made them.

Usage::

    .venv/bin/python scripts/bench_index.py                          # 100k x 512
    .venv/bin/python scripts/bench_index.py --n 1000000 --queries 200 --store-n 0
    .venv/bin/python scripts/bench_index.py --factories HNSW32 --ef-sweep 64,128,256,512,1024
    .venv/bin/python scripts/bench_index.py --factories 'Flat;IVF1024,PQ64' --threads 1
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from video_inst.config import Settings  # noqa: E402
from video_inst.vectors.codec import l2n  # noqa: E402
from video_inst.vectors.index import VectorIndex, choose_factory, estimate_bytes  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def clustered(n: int, dim: int, clusters: int, seed: int, spread: float, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors around fixed random centres, generated in chunks (float32 only, no float64 copy)."""
    centres = l2n(np.random.default_rng(12345).standard_normal((clusters, dim), dtype=np.float32))
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
        out[start : start + m] = l2n(centres[rng.integers(0, clusters, m)] + noise)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found.tolist(), truth.tolist())])
    )


def bench_factory(
    factory: str,
    data: np.ndarray,
    half: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    args: argparse.Namespace,
) -> None:
    n, dim = data.shape
    ids = np.arange(1, n + 1, dtype=np.int64)  # like vectors.id: never 0

    def fetch(wanted: np.ndarray) -> np.ndarray:  # the store's job: exact stored (float16) vectors
        return half[wanted - 1].astype(np.float32)

    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    index = VectorIndex(dim, factory, oversample=args.oversample)
    if not index.is_trained:
        sample = np.random.default_rng(1).choice(n, min(n, args.train_max), replace=False)
        index.train(data[np.sort(sample)])
    trained = time.perf_counter() - started
    for start in range(0, n, 100_000):
        index.add(ids[start : start + 100_000], data[start : start + 100_000], check=False)
    build = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    estimate = estimate_bytes(factory, n, dim)
    index.search(queries[:5], args.k, fetch=fetch)  # warm-up
    p50, p95, rec = timed_search(index, queries, truth, fetch, args.k)
    raw = ""
    if index.approximate:
        _, plain = index.search(queries, args.k)  # no re-ranking: what the ANN alone returns
        raw = f"{recall_at(plain, truth):.3f}"
    print(
        f"{factory:<16} build {build:8.1f} s (train {trained:6.1f})  rss +{grown / 2**20:8.0f} MiB  "
        f"estimate {estimate / 2**20:8.0f} MiB  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
        f"recall@{args.k} {rec:.3f}  (no re-rank {raw or '-'})  oversample {index.oversample}",
        flush=True,
    )
    if args.ef_sweep and "HNSW" in factory:
        for ef in (int(x) for x in args.ef_sweep.split(",")):
            index.set_tuning(oversample=args.oversample, ef_search=ef)
            p50, p95, rec = timed_search(index, queries, truth, fetch, args.k)
            print(
                f"{'':<16} efSearch {ef:5d}: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  recall@{args.k} {rec:.3f}"
            )
    del index
    gc.collect()


def timed_search(
    index: VectorIndex, queries: np.ndarray, truth: np.ndarray, fetch, k: int
) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Single-query latency p50 / p95 (ms) and recall@k of one index as tuned now."""
    times = []
    found = np.empty((len(queries), k), dtype=np.int64)
    for row, q in enumerate(queries):
        t = time.perf_counter()
        _, hit = index.search(q[None, :], k, fetch=fetch)
        times.append(time.perf_counter() - t)
        found[row] = hit[0]
    p50, p95 = percentiles(times)
    return p50, p95, recall_at(found, truth)


def bench_store(args: argparse.Namespace) -> None:
    """End to end through IndexStore: add_vectors to SQLite, sync, search (exact and HNSW from SQL)."""
    from video_inst.catalog.db import Catalog
    from video_inst.catalog.models import Video
    from video_inst.vectors.store import IndexStore

    n, dim = args.store_n, args.dim
    data = clustered(n, dim, args.clusters, seed=3, spread=args.spread)
    queries = clustered(args.queries, dim, args.clusters, seed=4, spread=args.spread)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(f"sqlite:///{tmp}/catalog.sqlite3", auto_upgrade=True)
        store = IndexStore(Path(tmp) / "index", catalog, Settings(exact_index_max=10**9))
        started = time.perf_counter()
        with catalog.session() as s:
            videos = [Video(path=f"/bench/{i}.mp4") for i in range(max(1, n // 1000))]
            s.add_all(videos)
            s.flush()
            space = store.ensure_space(s, "bench:synthetic", "dasr", dim, {})
            space_id = space.id
            for start in range(0, n, 5000):
                part = slice(start, min(n, start + 5000))
                owners = list(range(part.start, part.stop))
                vids = [videos[i // 1000 % len(videos)].id for i in owners]
                store.add_vectors(s, space, "region", owners, vids, data[part])
        added = time.perf_counter() - started
        report = store.sync(space_id, "region")
        print(
            f"store  n={n}: add_vectors {n / added:8.0f} vectors/s, first sync {report.seconds:.2f} s, "
            f"file {store.index_path(space_id, 'region').stat().st_size / 2**20:.0f} MiB",
            flush=True,
        )
        for label, factory in (("Flat (exact)", None), ("HNSW32 + SQL re-rank", "HNSW32")):
            if factory:
                report = store.rebuild(space_id, "region", factory=factory)
            store.search(space_id, "region", queries[:3], args.k)
            times = []
            for q in queries:
                t = time.perf_counter()
                store.search(space_id, "region", q[None, :], args.k)
                times.append(time.perf_counter() - t)
            p50, p95 = percentiles(times)
            two = [videos[0].id, videos[-1].id]  # about 2,000 vectors: searched exactly over them
            times = []
            for q in queries[:20]:
                t = time.perf_counter()
                store.search(space_id, "region", q[None, :], args.k, video_ids=two)
                times.append(time.perf_counter() - t)
            filtered, _ = percentiles(times)
            print(
                f"store  {label:<22} build {report.seconds:6.2f} s  search p50 {p50:6.2f} ms  "
                f"p95 {p95:6.2f} ms  filtered by 2 videos p50 {filtered:6.2f} ms",
                flush=True,
            )
        t = time.perf_counter()
        with catalog.session() as s:
            store.delete_video(s, videos[0].id)
        report = store.sync(space_id, "region")
        seconds = time.perf_counter() - t
        print(f"store  delete one video + incremental sync: {seconds:.2f} s (removed {report.removed})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors in each index (up to 1,000,000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument(
        "--spread", type=float, default=0.75, help="noise norm around a centre (unit centres)"
    )
    parser.add_argument(
        "--factories",
        default="Flat;HNSW32;ivfpq",
        help="';'-separated FAISS factory strings; 'ivfpq' = what choose_factory picks for N",
    )
    parser.add_argument("--oversample", type=int, default=None, help="re-rank candidates per result")
    parser.add_argument(
        "--ef-sweep", default="", help="HNSW: also time these efSearch values, e.g. 64,256,1024"
    )
    parser.add_argument("--train-max", type=int, default=200_000, help="training sample of IVF / PQ")
    parser.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0 = FAISS default)")
    parser.add_argument(
        "--store-n", type=int, default=20_000, help="vectors for the IndexStore run (0 = skip)"
    )
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    factories = []
    for name in args.factories.split(";"):
        name = name.strip()
        if name.lower() == "ivfpq":
            name = choose_factory(
                max(args.n, 1001), args.dim, Settings(exact_index_max=0, approx_index="ivfpq")
            )
        factories.append(name)

    print(
        f"N={args.n} dim={args.dim} k={args.k} queries={args.queries} clusters={args.clusters} "
        f"spread={args.spread} faiss={faiss.__version__} omp_threads={faiss.omp_get_max_threads()} "
        f"cpus={os.cpu_count()}",
        flush=True,
    )
    t = time.perf_counter()
    data = clustered(args.n, args.dim, args.clusters, seed=1, spread=args.spread)
    half = data.astype(np.float16)  # what SQL stores
    queries = clustered(args.queries, args.dim, args.clusters, seed=2, spread=args.spread)
    exact = VectorIndex(args.dim)
    exact.add(np.arange(1, args.n + 1), data, check=False)
    _, truth = exact.search(queries, args.k)
    del exact
    print(f"data + ground truth in {time.perf_counter() - t:.1f} s", flush=True)
    for factory in factories:
        bench_factory(factory, data, half, queries, truth, args)
    if args.store_n:
        del data, half
        gc.collect()
        bench_store(args)


if __name__ == "__main__":
    main()
