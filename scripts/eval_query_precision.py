#!/usr/bin/env python
"""Does a bfloat16 forward pass for crop queries find what the float32 one finds, and how much faster is it?

The database's region vectors are computed in float32 on the CPU (bfloat16 autocast on a
GPU). A crop query on the CPU can run its one forward pass under bfloat16 autocast instead;
on CPUs with native bfloat16 (AVX512-BF16 / AMX) that is several times faster. This
compares, over real crop queries (the bench's distinct query images with a random box each):

- the cosine between each query's bfloat16 and float32 vector;
- the exact top-20 / top-200 over real DASR region vectors of the shared media (the same
  vectors as ``scripts/eval_rerank.py``, ``--cache`` shares its file) found by the bfloat16
  query against those found by the float32 one;
- the forward-pass time of both, interleaved, on one thread;
- for scale, the same comparison for two float32 changes an editor makes without thinking:
  the query image re-saved as JPEG q95, and the box 2 px tighter on each side.

Asserts nothing; figures go in docs/API.md with the command.

Usage::

    VIDEO_INST_TEST_MEDIA=/work/shared/media .venv/bin/python scripts/eval_query_precision.py \\
        --cache /tmp/rerank_fps4.npz
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from eval_rerank import region_vectors  # noqa: E402

from video_inst.config import Settings  # noqa: E402
from video_inst.models.dasr import native_cpu_bf16  # noqa: E402
from video_inst.models.loading import load_dasr  # noqa: E402


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """The image as it comes back from a JPEG save at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--fps", type=float, default=4.0, help="keyframes per second for the region vectors")
    parser.add_argument("--cache", type=Path, help="eval_rerank.py's .npz of region vectors (made if absent)")
    args = parser.parse_args()
    from bench_api import _query_images, random_box

    torch.set_num_threads(1)
    media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
    fp32 = load_dasr(Settings(device="cpu"))  # queries in float32 (no searcher changed it)
    bf16 = load_dasr(Settings(device="cpu"))
    bf16.query_autocast = torch.bfloat16
    print(f"# {fp32.space_name}; native CPU bfloat16: {native_cpu_bf16()}; torch {torch.__version__}")
    if args.cache and args.cache.exists():
        with np.load(args.cache) as kept:
            regions = kept["regions"]
    else:
        regions = region_vectors(fp32, media, args.fps)
    rnd = random.Random(3)
    vec32, vec16, t32, t16, images, boxes = [], [], [], [], [], []
    for image in _query_images(args.queries):
        h, w = image.shape[:2]
        box = random_box(rnd, w, h)
        images.append(image)
        boxes.append(box)
        for model, vecs, times in ((fp32, vec32, t32), (bf16, vec16, t16)):
            t = time.perf_counter()
            vecs.append(model.embed_query(image, box))
            times.append(time.perf_counter() - t)
    q32 = np.stack(vec32)
    top32 = np.argsort(-(q32 @ regions.T), axis=1)

    def compare(label: str, q: np.ndarray) -> None:
        """Cosine to the float32 query and the share of its exact top-k regions found."""
        cos = np.sum(q32 * q, axis=1)
        top = np.argsort(-(q @ regions.T), axis=1)
        same = {k: np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(top32, top)]) for k in (20, 200)}
        print(
            f"  {label:<36} cosine min {cos.min():.5f} p5 {np.percentile(cos, 5):.5f}"
            f" median {np.median(cos):.5f}; top-20 kept {same[20]:.3f}, top-200 {same[200]:.3f},"
            f" same best region {np.mean(top32[:, 0] == top[:, 0]):.2f}"
        )

    print(
        f"{len(q32)} crop queries against the float32 query,"
        f" exact search over {len(regions)} real region vectors:"
    )
    compare("bfloat16 forward pass", np.stack(vec16))
    # For scale, two changes an editor makes without thinking: re-saving the query, a box 2 px tighter.
    compare(
        "float32, image re-saved as JPEG q95",
        np.stack([fp32.embed_query(_jpeg(i, 95), b) for i, b in zip(images, boxes)]),
    )
    tighter = [(x0 + 2, y0 + 2, x1 - 2, y1 - 2) for x0, y0, x1, y1 in boxes]
    compare("float32, box 2 px tighter", np.stack([fp32.embed_query(i, b) for i, b in zip(images, tighter)]))
    ms32, ms16 = np.asarray(t32) * 1000, np.asarray(t16) * 1000
    print(
        f"query embedding, 1 thread, interleaved: fp32 p50 {np.median(ms32):.1f}"
        f" p95 {np.percentile(ms32, 95):.1f} ms; bf16 p50 {np.median(ms16):.1f}"
        f" p95 {np.percentile(ms16, 95):.1f} ms"
    )


if __name__ == "__main__":
    main()
