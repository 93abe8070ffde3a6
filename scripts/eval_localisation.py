"""Localisation rate of DASR* per parameter choice, on photos pasted into real video frames.

Prints, for each variant, how many pasted objects get some region box with IoU >= 0.5,
and the mean number of boxes per frame (more boxes make hits easier: read both).
Variants that only change post-processing (smoothing, threshold, ellipse scale, NMS)
reuse the saliency maps of their base run. Asserts nothing.

Choose parameters with a seed other than the test's (tests/test_dasr_localisation.py
uses seed 7): the default here is seed 1.

    .venv/bin/python scripts/eval_localisation.py                 # all variants, seed 1
    .venv/bin/python scripts/eval_localisation.py --seed 3 --frames 20 --only stop
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from dasr_pastes import hits, make_samples  # noqa: E402

from video_inst.models.backbones import get_backbone  # noqa: E402
from video_inst.models.dasr import DasrExtractor, DasrParams  # noqa: E402

# Fields that change the saliency maps themselves (need a new forward/backward).
MAP_FIELDS = ("input_size", "excite_stop", "top_signal", "peak_mode", "min_peak", "max_peaks")

# group -> list of (label, overrides relative to the defaults)
VARIANTS: dict[str, list[tuple[str, dict]]] = {
    "default": [("defaults", {})],
    "stop": [(f"excite_stop={s}", {"excite_stop": s}) for s in (0, 4, 16)],
    "smooth": [(f"smooth_sigma={s}", {"smooth_sigma": s}) for s in (0.0, 8.0, 24.0, 32.0)],
    "threshold": [(f"percentile {t}", {"threshold": "percentile", "tau": t}) for t in (90.0, 95.0, 99.0)]
    + [(f"relative {t}", {"threshold": "relative", "tau": t}) for t in (0.2, 0.3, 0.4, 0.5, 0.6)],
    "scale": [(f"ellipse_scale={s}", {"ellipse_scale": s}) for s in (1.5, 1.75, 2.25, 2.5)],
    "nms": [(f"nms_iou={b}", {"nms_iou": b}) for b in (0.5,)],
    "signal": [("top_signal=activation", {"top_signal": "activation"})],
    "peaks": [("peak_mode=dasr", {"peak_mode": "dasr"}), ("max_peaks=8", {"max_peaks": 8})],
    "size": [(f"input_size={s}", {"input_size": s}) for s in (384, 640)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--per-frame", type=int, default=2)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--only", nargs="*", help=f"variant groups among {sorted(VARIANTS)}")
    ap.add_argument("--set", nargs="*", default=[], help="base overrides, e.g. tau=95 threshold=percentile")
    args = ap.parse_args()

    sets = (s.split("=", 1) for s in args.set)
    base = DasrParams(**{k: _parse(getattr(DasrParams(), k), v) for k, v in sets})
    samples = make_samples(args.media, seed=args.seed, frames=args.frames, per_frame=args.per_frame)
    frames = [s.frame for s in samples]
    backbone = get_backbone(args.backbone)
    groups = args.only or list(VARIANTS)
    rows = []
    cache: dict[tuple, list] = {}
    for group in groups:
        for label, overrides in VARIANTS[group]:
            params = dataclasses.replace(base, **overrides)
            dasr = DasrExtractor(backbone, params)
            key = tuple(getattr(params, f) for f in MAP_FIELDS)
            t0 = time.perf_counter()
            if key not in cache:
                cache[key] = [_saliency(dasr, f) for f in frames]
            regions = [dasr._regions(sal)[0] for sal in cache[key]]
            found = [_to_source(r.boxes[~r.is_frame], f, dasr) for r, f in zip(regions, frames, strict=True)]
            covered, total = hits(found, samples)
            nbox = np.mean([len(b) for b in found])
            rows.append((group, label, covered, total, nbox, time.perf_counter() - t0))
            rate = f"{covered:3d}/{total:<3d} {covered / total:6.1%}"
            print(f"{group:9s} {label:24s} {rate}  boxes/frame {nbox:5.1f}")
    print(f"\nbackbone {backbone.model_id}, seed {args.seed}, {len(frames)} frames, base {base}")


def _saliency(dasr: DasrExtractor, frame: np.ndarray):
    with torch.inference_mode(False):
        return dasr._saliency([dasr._resize(frame)])


def _to_source(boxes: np.ndarray, frame: np.ndarray, dasr: DasrExtractor) -> np.ndarray:
    r = dasr._resize(frame)
    sy, sx = frame.shape[0] / r.shape[0], frame.shape[1] / r.shape[1]
    return boxes * np.array([sx, sy, sx, sy], dtype=np.float32)


def _parse(default, text: str):
    return type(default)(text) if not isinstance(default, str) else text


if __name__ == "__main__":
    main()
