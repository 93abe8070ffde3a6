#!/usr/bin/env python
"""Recall of IVF-PQ + exact re-rank on real DASR region vectors, per re-rank oversample factor.

Why: the search default re-ranks 10 candidates per wanted hit for PQ codes, chosen on
synthetic vectors (docs/VECTORS.md, docs/API.md); each candidate is a stored-vector read,
most of a crop query's index time at 1M tracks. This measures the factor on real vectors:
DASR* regions of keyframes sampled from every shared clip and the edit (the default
offline backbone), indexed with the factory the product would choose for a large catalog
(``IVF<nlist>,PQ<dim/8>``, trained on these vectors), queried with real crop vectors
(the shared photos and frame grabs with random boxes, pooled as the API pools them), and
compared with the exact top-k over the same vectors. Asserts nothing; the figures go in
docs/API.md with the command.

Usage::

    VIDEO_INST_TEST_MEDIA=/work/shared/media .venv/bin/python scripts/eval_rerank.py --fps 2
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from video_inst.config import Settings  # noqa: E402
from video_inst.models.loading import load_dasr  # noqa: E402
from video_inst.vectors.index import VectorIndex, ivf_nlist, pq_m  # noqa: E402


def sampled_frames(path: Path, fps: float) -> list[np.ndarray]:
    """Frames every 1/fps seconds, decoded sequentially (some shared clips break after a seek)."""
    out, next_s = [], 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time is not None and frame.time >= next_s:
                out.append(frame.to_ndarray(format="rgb24"))
                next_s += 1.0 / fps
    return out


def region_vectors(dasr: object, media: Path, fps: float, batch: int = 8) -> np.ndarray:
    """Every DASR* region vector (frame rows included, as ingest stores them) of the sampled frames."""
    clips = sorted((media / "clips").glob("*.mp4")) + sorted((media / "edits").glob("*.mp4"))
    chunks = []
    for clip in clips:
        frames = sampled_frames(clip, fps)
        for start in range(0, len(frames), batch):
            for regions in dasr.extract(frames[start : start + batch]):  # type: ignore[attr-defined]
                chunks.append(regions.vectors)
        print(
            f"  {clip.name:<36} {len(frames):4d} frames  {sum(len(c) for c in chunks):7d} regions", flush=True
        )
    return np.concatenate(chunks).astype(np.float32)


def query_vectors(dasr: object, count: int, seed: int = 3) -> np.ndarray:
    """Real crop queries: the bench's distinct query images with a random box each, pooled as served."""
    from bench_api import _query_images, random_box

    rnd = random.Random(seed)
    out = []
    for image in _query_images(count):
        h, w = image.shape[:2]
        out.append(dasr.embed_query(image, random_box(rnd, w, h)))  # type: ignore[attr-defined]
    return np.stack(out).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fps", type=float, default=2.0, help="keyframes sampled per second of video")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=20, help="hits shown; the search fetches 10x as many")
    parser.add_argument("--factors", default="1,2,3,5,10,20")
    parser.add_argument(
        "--cache", type=Path, help=".npz keeping the vectors between runs (index settings only)"
    )
    parser.add_argument(
        "--nprobe",
        type=int,
        help="IVF lists probed (default: the product's; the list count isolates re-ranking)",
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
    dasr = load_dasr(Settings(device="cpu"))
    started = time.perf_counter()
    if args.cache and args.cache.exists():
        with np.load(args.cache) as kept:
            x, q = kept["regions"], kept["queries"]
    else:
        x = region_vectors(dasr, media, args.fps)
        q = query_vectors(dasr, args.queries)
        if args.cache:
            np.savez(args.cache, regions=x, queries=q)
    print(
        f"{len(x)} real region vectors ({x.shape[1]}-d) and {len(q)} crop queries in "
        f"{time.perf_counter() - started:.0f} s ({dasr.space_name})"
    )
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    factory = f"IVF{ivf_nlist(len(x))},PQ{pq_m(x.shape[1])}"
    fetch = args.top_k * 10  # as Searcher.search asks the index
    exact = np.argsort(-(q @ x.T), axis=1)[:, :fetch] + 1

    def lookup(wanted: np.ndarray) -> np.ndarray:
        return x[wanted - 1]

    index = VectorIndex(x.shape[1], factory)
    index.train(x)
    index.add(ids, x)
    for factor in [int(v) for v in args.factors.split(",")]:
        index.set_tuning(oversample=factor, nprobe=args.nprobe)
        _, got = index.search(q, fetch, fetch=lookup)
        at_k = np.mean(
            [len(set(g[: args.top_k]) & set(e[: args.top_k])) / args.top_k for g, e in zip(got, exact)]
        )
        at_all = np.mean([len(set(g) & set(e)) / fetch for g, e in zip(got, exact)])
        print(
            f"  {factory} nprobe {args.nprobe or 'default'} oversample {factor:>3} "
            f"({factor * fetch:>5} vectors read): recall@{args.top_k} {at_k:.3f}  recall@{fetch} {at_all:.3f}"
            "  (against the exact top over the same vectors)",
            flush=True,
        )


if __name__ == "__main__":
    main()
