"""Flat (float32) vs SQfp16 (float16 codes) as the exact index: ms per query and agreement.

Asserts nothing. Vectors are random non-negative unit rows rounded to float16 (what the store
adds: rows come from SQL as float16); queries are noisy copies of stored rows. Rounds
interleave the two factories, each keeps its fastest round::

    .venv/bin/python scripts/bench_exact_index.py                   # 50,000 x 1,280, top 100
    .venv/bin/python scripts/bench_exact_index.py --vectors 200000 --queries 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from video_inst.vectors.index import VectorIndex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((args.vectors, args.dim)).astype(np.float32), 0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float16).astype(np.float32)
    noise = 0.01 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries = x[rng.choice(args.vectors, args.queries)] + noise
    indexes = {}
    for factory in ("Flat", "SQfp16"):
        index = VectorIndex(args.dim, factory)
        index.add(np.arange(args.vectors), x)
        index.search(queries[:1], args.k)  # first search builds what the index keeps (norms)
        indexes[factory] = index
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for factory, index in indexes.items():
            start = time.perf_counter()
            for q in queries:
                index.search(q[None], args.k)
            ms = (time.perf_counter() - start) / len(queries) * 1000
            best[factory] = min(ms, best.get(factory, ms))
    (flat_s, flat_i), (half_s, half_i) = (indexes[f].search(queries, args.k) for f in ("Flat", "SQfp16"))
    print(f"{args.vectors} x {args.dim}, top {args.k}, {args.queries} queries, best of {args.rounds}")
    for factory, ms in best.items():
        print(f"  {factory:7s} {ms:8.2f} ms/query  ({best['Flat'] / ms:.2f}x Flat)")
    print(
        f"  same ids {float((flat_i == half_i).mean()):.4f}, "
        f"max score diff {float(np.abs(flat_s - half_s).max()):.1e}"
    )


if __name__ == "__main__":
    main()
