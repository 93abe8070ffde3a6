"""DASR cost per keyframe of small-object (tiles) variants relative to the defaults, one run. Asserts nothing.

Why ratios in one run: the machine is shared and its load moves the absolute figures by 2-8x
(docs/DASR.md); rounds interleave the variants, so each round's ratio sees the same load.
The keyframes are those of the hard protocol's edit (``scripts/eval_hard.py``, one frame per
1 s shot, the middle frame), or every ``--every``-th frame of ``--video``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_dasr_tiles.py \\
        --video /tmp/bench_i11/eval_hard/<key>/edit.mp4 --rounds 3 \\
        --try "tiles=2" --try "tiles=2 tile_mode=forward" --try "tiles=2 tile_mode=forward tile_size=448"

Each ``--try`` is ``DasrParams`` overrides (``key=value``, tuples comma-separated). Prints, per
variant: median ms per keyframe, the median over rounds of its ratio to the defaults of the
same round, regions per keyframe (whole-frame row included) and float16 region-vector KB per
keyframe (2 bytes x dim per region, before the sparse-row saving of the store).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from video_inst.models.backbones import get_backbone  # noqa: E402
from video_inst.models.dasr import DasrExtractor, DasrParams  # noqa: E402


def parse_overrides(text: str) -> dict[str, Any]:
    """``"tiles=2 tile_mode=forward"`` -> DasrParams keyword arguments, typed from the defaults."""
    defaults = DasrParams()
    out: dict[str, Any] = {}
    for item in text.split():
        key, _, value = item.partition("=")
        if not hasattr(defaults, key):
            raise SystemExit(f"--try: DasrParams has no field {key!r}")
        current = getattr(defaults, key)
        if isinstance(current, tuple):
            out[key] = tuple(float(v) for v in value.split(",") if v)
        elif isinstance(current, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        else:
            out[key] = type(current)(value)
    return out


def keyframes(video: Path, every: int, offset: int, limit: int) -> list[np.ndarray]:
    with av.open(str(video)) as c:
        frames = [
            f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % every == offset
        ]
    return frames[:limit] if limit else frames


def run(dasr: DasrExtractor, frames: list[np.ndarray], batch: int) -> tuple[float, int]:
    """(seconds, regions) to extract every frame in batches of ``batch`` (as ingest's analysis_batch)."""
    t, regions = time.perf_counter(), 0
    for start in range(0, len(frames), batch):
        regions += sum(len(r) for r in dasr.extract(frames[start : start + batch]))
    return time.perf_counter() - t, regions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--every", type=int, default=25, help="one frame every N (the edit: one per 1 s shot)")
    ap.add_argument("--offset", type=int, default=12, help="which frame of each N (12: mid-shot)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many keyframes (0: all)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--try", dest="tries", action="append", default=[], help="DasrParams overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames = keyframes(args.video, args.every, args.offset, args.limit)
    backbone = get_backbone("efficientnet_lite0", device="cpu")
    variants = [("defaults", DasrParams())] + [
        (t, dataclasses.replace(DasrParams(), **parse_overrides(t))) for t in args.tries
    ]
    models = [
        (name, DasrExtractor(backbone, dataclasses.replace(p, batch_size=args.batch))) for name, p in variants
    ]
    run(models[0][1], frames[: args.batch], args.batch)  # warm-up
    times: dict[str, list[float]] = {name: [] for name, _ in models}
    ratios: dict[str, list[float]] = {name: [] for name, _ in models}
    regions: dict[str, int] = {}
    for r in range(args.rounds):
        base = None
        for name, dasr in models:
            sec, n = run(dasr, frames, args.batch)
            base = sec if base is None else base
            times[name].append(sec)
            ratios[name].append(sec / base)
            regions[name] = n
            print(f"# round {r + 1}: {name}: {1000 * sec / len(frames):.0f} ms/kf", flush=True)
    dim = backbone.dim
    print(f"# {len(frames)} keyframes of {args.video.name}, batch {args.batch}, "
          f"{args.threads} torch thread(s), {args.rounds} rounds")  # fmt: skip
    print(f"{'variant':60s} {'ms/kf':>7s} {'x default':>9s} {'regions/kf':>10s} {'KB/kf':>7s}")
    for name, _ in models:
        ms = 1000 * float(np.median(times[name])) / len(frames)
        per = regions[name] / len(frames)
        ratio = float(np.median(ratios[name]))
        print(f"{name:60s} {ms:7.0f} {ratio:9.2f} {per:10.1f} {per * dim * 2 / 1000:7.1f}")


if __name__ == "__main__":
    main()
