#!/usr/bin/env python
"""What the forward pass of a crop query costs on this CPU, and what the cheaper variants give up.

A crop query on a new image runs the backbone once over the whole query image at the model
space's input size (``DasrExtractor.query``), and on a 2-core CPU that alone is more than a
50 ms latency budget (docs/API.md). This prints, for the default offline backbone:

1. forward-pass time per query image shape (4:3 photo, 16:9 frame) for torch eager in
   NCHW and channels_last (what the product runs), on 1 and 2 threads, and ONNX Runtime on
   one thread when ``onnxruntime`` and ``onnx`` happen to be installed (not a dependency:
   numerically the same network, measured only to see whether another engine would close
   the gap);
2. "compute only a window around the box": cosine between the vector pooled from the whole
   image's feature map (what the database holds) and from a window with a context margin,
   and the share of pixels the window keeps, over the bench's query images and boxes.

Asserts nothing; the figures go in docs/API.md with the command.

Usage::

    VIDEO_INST_TEST_MEDIA=/work/shared/media .venv/bin/python scripts/bench_query_forward.py
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from video_inst.config import Settings  # noqa: E402
from video_inst.models.dasr import pool_boxes  # noqa: E402
from video_inst.models.loading import load_dasr  # noqa: E402


def interleaved_ms(
    variants: list[tuple[str, int, object, object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """(p50, p90) ms per variant (label, threads, fn, input), timed round-robin.

    Round-robin, so that a burst of load from another process on this shared machine hits
    every variant alike and the ratios between them hold.
    """
    times: dict[str, list[float]] = {label: [] for label, *_ in variants}
    for _ in range(2):  # warm-up
        for _label, threads, fn, x in variants:
            torch.set_num_threads(threads)
            fn(x)  # type: ignore[operator]
    for _ in range(repeats):
        for label, threads, fn, x in variants:
            torch.set_num_threads(threads)
            t = time.perf_counter()
            fn(x)  # type: ignore[operator]
            times[label].append(time.perf_counter() - t)
    torch.set_num_threads(1)
    out = {}
    for label, samples in times.items():
        ms = np.asarray(samples) * 1000
        out[label] = (float(np.percentile(ms, 50)), float(np.percentile(ms, 90)))
    return out


def onnx_runner(backbone: torch.nn.Module, x: torch.Tensor) -> object | None:
    """ONNX Runtime session (one thread) for this input shape, or None when it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return self.backbone.features(inp)

    path = Path(tempfile.mkdtemp(prefix="vi_onnx_")) / "features.onnx"
    try:
        warnings.simplefilter("ignore")  # tracer warnings about the TF padding's Python arithmetic
        torch.onnx.export(Features(), (x,), str(path), dynamo=False, input_names=["x"])
    except Exception as exc:  # noqa: BLE001 - e.g. the onnx package missing: report and go on
        print(f"  (ONNX export failed: {exc})")
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda arr: session.run(None, {"x": arr})


def forward_times(dasr: object, repeats: int) -> None:
    backbone = dasr.backbone  # type: ignore[attr-defined]
    size = dasr.params.input_size  # type: ignore[attr-defined]
    print(f"forward pass of one query image, input {size} px (p50 / p90 ms, {repeats} interleaved rounds):")
    for name, (h, w) in (("4:3 photo", (size * 3 // 4, size)), ("16:9 frame", (round(size * 9 / 16), size))):
        x = torch.randn(1, 3, h, w)
        xc = x.contiguous(memory_format=torch.channels_last)
        variants: list[tuple[str, int, object, object]] = []
        for threads in (1, 2):
            variants.append((f"torch NCHW, {threads} thread(s)", threads, backbone.features, x))
            variants.append((f"torch channels_last, {threads} thread(s)", threads, backbone.features, xc))
        torch.set_num_threads(1)
        runner = onnx_runner(backbone, x)
        if runner is not None:
            variants.append(("onnxruntime, 1 thread", 1, runner, x.numpy()))
        with torch.inference_mode():
            results = interleaved_ms(variants, repeats)
        for label, (p50, p90) in results.items():
            print(f"  {name} {w}x{h}  {label:<34} {p50:7.1f} / {p90:7.1f}")


def window_fidelity(dasr: object, count: int, margins: list[int]) -> None:
    """Cosine(whole-image pooled vector, window pooled vector) and pixels kept, per context margin."""
    from bench_api import _query_images, random_box

    torch.set_num_threads(1)
    bb, p = dasr.backbone, dasr.params  # type: ignore[attr-defined]
    rnd = random.Random(3)
    cos: dict[int, list[float]] = {m: [] for m in margins}
    kept: dict[int, list[float]] = {m: [] for m in margins}
    stride = bb.stride

    def pooled(fmap: torch.Tensor, box: list[float]) -> torch.Tensor:
        return pool_boxes(
            fmap, fmap.new_tensor([[0.0, *box]]), stride=stride, pooling=p.pooling, gem_p=p.gem_p
        )[0][0]

    for image in _query_images(count):
        h, w = image.shape[:2]
        x0, y0, x1, y1 = random_box(rnd, w, h)
        resized = dasr._resize(image)  # type: ignore[attr-defined]
        rh, rw = resized.shape[:2]
        sx, sy = rw / w, rh / h
        box = [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
        with torch.inference_mode():
            whole = pooled(bb.features(dasr._to_input([resized])).float(), box)  # type: ignore[attr-defined]
            for m in margins:
                # The window starts on the stride grid, so its cells line up with the whole image's.
                wx0, wy0 = (
                    max(0, int((box[0] - m) // stride) * stride),
                    max(0, int((box[1] - m) // stride) * stride),
                )
                wx1 = min(rw, math.ceil((box[2] + m) / stride) * stride)
                wy1 = min(rh, math.ceil((box[3] + m) / stride) * stride)
                window = np.ascontiguousarray(resized[wy0:wy1, wx0:wx1])
                fmap = bb.features(dasr._to_input([window])).float()  # type: ignore[attr-defined]
                vec = pooled(fmap, [box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0])
                cos[m].append(float(vec @ whole))
                kept[m].append((wx1 - wx0) * (wy1 - wy0) / (rw * rh))
    print(f"box-window forward pass instead of the whole image ({count} query images, random boxes):")
    for m in margins:
        c, k = np.asarray(cos[m]), np.asarray(kept[m])
        print(
            f"  margin {m:3d} px: cosine to the whole-image vector min {c.min():.3f}"
            f" p5 {np.percentile(c, 5):.3f}"
            f" median {np.median(c):.4f}; pixels computed mean {k.mean():.2f} p95 {np.percentile(k, 95):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--images", type=int, default=48, help="query images for the window check")
    parser.add_argument("--margins", default="0,32,64,96,128", help="context margins (input px)")
    args = parser.parse_args()
    dasr = load_dasr(Settings(device="cpu"))
    print(f"# {dasr.space_name}; torch {torch.__version__}")
    forward_times(dasr, args.repeats)
    if args.images:
        window_fidelity(dasr, args.images, [int(m) for m in args.margins.split(",")])


if __name__ == "__main__":
    main()
