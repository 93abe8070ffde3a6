#!/usr/bin/env python
"""Archive-scale index figures on vectors with the real distribution: RAM, disk, recall@100, latency.

Why: the default index past ``exact_index_max`` must hold 1,000+ hours of video on one 24 GB
machine; synthetic clusters say little about real DASR embeddings. The base data are real
DASR region vectors of the shared media (built once into ``--cache`` by decoding the shared
clips and the edit at ``--fps``, as ``scripts/eval_rerank.py`` does), and the queries real crop
queries (shared photos and frame grabs with random boxes, pooled as the API pools them). To
reach N, vector i is real vector ``i mod n0`` plus ``--alpha`` times the difference of two other
random real vectors (a perturbation along the data's own directions), L2-normalised; the first
n0 are the real vectors themselves. Vectors are generated in chunks from a seed per chunk, so
nothing of size N is ever held in float32: the index is built chunk by chunk and the exact
float32 top 100 of every query is kept by a chunked brute force over the same chunks.

The index is then saved and a fresh **serving process** (this script with ``--serve``) loads it
and runs the queries one at a time: ``ram_bytes_per_vector`` is that process's anonymous RSS
growth (what must stay in RAM; memory-mapped re-rank pages it touched are reported apart as
``rss_file_bytes``, page cache the kernel can drop), ``disk_bytes_per_vector`` the index file
plus its re-rank copy. ``recall_at_100`` compares the final ranking (after re-ranking by the
copy, or by exact vectors when the factory has none) with the exact float32 top 100.

Usage::

    .venv/bin/python scripts/bench_scale.py --vectors 1000000 --json
    .venv/bin/python scripts/bench_scale.py --vectors 1000000 \\
        --factory 'OPQ64_256,IVF4096,PQ64|PCA248,fp16' --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

CHUNK = 100_000
K = 100


def proc_status() -> dict[str, int]:
    """VmRSS / RssAnon / RssFile of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def load_real(cache: Path, fps: float, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Real region vectors and crop query vectors, computed once into ``cache``."""
    if not cache.exists():
        import torch
        from eval_rerank import query_vectors, region_vectors

        from video_inst.config import Settings
        from video_inst.models.loading import load_dasr

        torch.set_num_threads(1)
        dasr = load_dasr(Settings(device="cpu"))
        media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
        with contextlib.redirect_stdout(sys.stderr):  # progress lines; stdout is the JSON
            x = region_vectors(dasr, media, fps)
            q = query_vectors(dasr, queries)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, regions=x, queries=q)
    with np.load(cache) as kept:
        return kept["regions"].astype(np.float32), kept["queries"].astype(np.float32)


def chunk_vectors(real: np.ndarray, start: int, size: int, alpha: float, seed: int) -> np.ndarray:
    """Vectors start..start+size of the replicated set (deterministic per chunk)."""
    from video_inst.vectors.codec import l2n

    n0 = len(real)
    idx = np.arange(start, start + size)
    rng = np.random.default_rng([seed, start])
    b, c = rng.integers(0, n0, size), rng.integers(0, n0, size)
    a = np.where(idx < n0, 0.0, alpha).astype(np.float32)[:, None]
    return l2n(real[idx % n0] + a * (real[b] - real[c])).astype(np.float32)


def build(args: argparse.Namespace, real: np.ndarray, q: np.ndarray, work: Path) -> dict:
    import faiss

    from video_inst.config import Settings
    from video_inst.vectors.codec import l2n
    from video_inst.vectors.index import VectorIndex, choose_factory

    faiss.omp_set_num_threads(args.threads)
    n, dim = args.vectors, real.shape[1]
    factory = args.factory or choose_factory(n, dim, Settings())
    qn = l2n(q)
    started = time.perf_counter()
    index = VectorIndex(dim, factory)
    train_n = min(n, args.train)
    if not index.is_trained:
        sample = np.concatenate(
            [
                chunk_vectors(real, s, min(CHUNK, train_n - s), args.alpha, args.seed)
                for s in range(0, train_n, CHUNK)
            ]
        )
        index.train(sample)
        del sample
    trained = time.perf_counter() - started
    best_s = np.full((len(qn), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qn), 0), dtype=np.int64)
    src_cos = []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        x = chunk_vectors(real, start, size, args.alpha, args.seed)
        if start + size > len(real) and start < 10 * CHUNK:
            rows = np.arange(start, start + size)
            rep = rows >= len(real)
            src_cos.append(np.einsum("ij,ij->i", x[rep][:2000], real[rows[rep][:2000] % len(real)]))
        ids = np.arange(start + 1, start + size + 1, dtype=np.int64)
        index.add(ids, x, check=False)
        scores = qn @ x.T  # exact float32
        best_s = np.concatenate([best_s, scores], axis=1)
        best_i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
        keep = np.argpartition(-best_s, K - 1, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
        print(
            f"  added {start + size:>9,} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True
        )
    built = time.perf_counter() - started
    path = work / "1-region.faiss"
    index.save(path)
    disk = path.stat().st_size + (index.copy.disk_bytes(path) if index.copy is not None else 0)
    order = np.argsort(-best_s, axis=1)
    np.save(work / "truth.npy", np.take_along_axis(best_i, order, axis=1))
    np.save(work / "queries.npy", qn)
    return {
        "factory": factory,
        "train_vectors": int(train_n),
        "train_s": round(trained, 1),
        "build_s": round(built, 1),
        "disk_bytes_per_vector": round(disk / n, 1),
        "index_file_bytes": path.stat().st_size,
        "rerank_copy_bytes": disk - path.stat().st_size,
        "replica_cos_to_source_median": round(float(np.median(np.concatenate(src_cos))), 3)
        if src_cos
        else None,
    }


def serve(work: Path, threads: int, oversample: int | None, nprobe: int | None) -> None:
    """The serving process: load the saved index, search each query alone, report RSS and times."""
    import faiss

    from video_inst.vectors.index import VectorIndex

    faiss.omp_set_num_threads(threads)
    q = np.load(work / "queries.npy")
    before = proc_status()
    index = VectorIndex.load(work / "1-region.faiss", oversample=oversample, nprobe=nprobe)
    loaded = proc_status()
    index.search(q[:3], K)  # warm-up
    times, found = [], np.full((len(q), K), -1, dtype=np.int64)
    for row in range(len(q)):
        t = time.perf_counter()
        _, ids = index.search(q[row : row + 1], K)
        times.append(time.perf_counter() - t)
        found[row] = ids[0]
    after = proc_status()
    np.save(work / "found.npy", found)
    ms = np.asarray(times) * 1000
    json.dump(
        {
            "ntotal": index.ntotal,
            "ram_anon_bytes": after["RssAnon"] - before["RssAnon"],
            "ram_anon_bytes_after_load": loaded["RssAnon"] - before["RssAnon"],
            "rss_file_bytes": after["RssFile"] - before["RssFile"],
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "oversample": index.oversample,
        },
        sys.stdout,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--factory", help="VectorIndex factory (default: what choose_factory picks at N)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.3, help="perturbation: alpha * (x_b - x_c)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=200_000, help="training sample (the store's train_max)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--oversample", type=int, help="candidates per hit (default: the index's)")
    parser.add_argument("--nprobe", type=int, help="IVF lists probed (default: the index's)")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "video_inst_bench_scale" / "real.npz"
    )
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second decoded to build the cache")
    parser.add_argument("--workdir", type=Path, help="where the index is written (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.threads, args.oversample, args.nprobe)
        return
    real, q = load_real(args.cache, args.fps, max(args.queries, 200))
    q = q[: args.queries]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        out: dict = {"vectors": args.vectors, "dim": int(real.shape[1]), "real_vectors": len(real)}
        out.update(build(args, real, q, work))
        cmd = [sys.executable, __file__, "--serve", str(work), "--threads", str(args.threads)]
        if args.oversample:
            cmd += ["--oversample", str(args.oversample)]
        if args.nprobe:
            cmd += ["--nprobe", str(args.nprobe)]
        served = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        truth, found = np.load(work / "truth.npy"), np.load(work / "found.npy")
    recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))
    out.update(served)
    out["ram_bytes_per_vector"] = round(served["ram_anon_bytes"] / args.vectors, 1)
    out["recall_at_100"] = round(recall, 4)
    out["queries"] = len(q)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
