"""DASR* throughput: keyframes per second per backbone, batch size, dtype and device. Asserts nothing.

Runs standalone from the repository root with only the project venv::

    .venv/bin/python scripts/bench_dasr.py                       # CPU, both backbones, batches 1 4 8
    .venv/bin/python scripts/bench_dasr.py --device cuda   # GPU: fp32 + bf16 autocast, batches 8 32 64
    .venv/bin/python scripts/bench_dasr.py --media ../shared/media/clips/cockatoo.mp4

Frames are synthetic (smoothed random noise, 16:9) unless ``--media`` names a video or an
image folder. ResNet-50 uses real weights when weights.py finds them, otherwise it is
randomly initialised (speed only: the table says so). Every row uses DASR* with up to
``--peaks`` peaks per frame; the table reports the peaks actually found, since the
top-down pass costs one backward per peak rank. ``--force-peaks`` makes every frame yield
exactly ``--peaks`` peaks (the strongest interior cells instead of local maxima): a load that
does not depend on the weights, so a randomly initialised ResNet-50 (a handful of local
maxima per frame) can still be timed at the 16 peaks the GPU target names; everything after
the peaks is the product's own code. Bytes per region: the float16 vector plus an estimate
of the box / ids / labels / row overhead of one stored region.
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

from video_inst.errors import WeightsMissingError  # noqa: E402
from video_inst.models.backbones import get_backbone  # noqa: E402
from video_inst.models.dasr import DasrExtractor, DasrParams  # noqa: E402

# Stored per region besides the vector: box 4 x float32, score float32, keyframe/track ids 2 x int64,
# 5 label ids (int16) + probs (float16), is_frame flag; plus ~40 B of SQL row / index overhead.
ROW_OVERHEAD_BYTES = 16 + 4 + 16 + 5 * 2 + 5 * 2 + 1 + 40


def synthetic_frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour fields (blobs give the CNN local maxima, unlike white noise)."""
    rng = np.random.default_rng(seed)
    h, w = round(size * 9 / 16), size
    frames = []
    for _ in range(n):
        small = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        big = np.kron(small, np.ones((16, 16, 1), dtype=np.uint8))[:h, :w]
        noise = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
        frames.append(np.clip(big.astype(np.int16) + noise - 20, 0, 255).astype(np.uint8))
    return frames


def media_frames(path: Path, n: int) -> list[np.ndarray]:
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))
        imgs = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    else:
        import av

        with av.open(str(path)) as container:
            imgs = [f.to_ndarray(format="rgb24") for _, f in zip(range(4 * n), container.decode(video=0))]
    if not imgs:
        raise SystemExit(f"no frames in {path}")
    return [imgs[i % len(imgs)] for i in range(n)]


def strongest_cells(amap: torch.Tensor, *, keep_above_mean: bool, max_peaks: int, radius: int = 1):
    """``--force-peaks``: the ``max_peaks`` strongest interior cells of each map, local maxima or not."""
    from video_inst.models.dasr import Peaks

    del keep_above_mean, radius  # a fixed load: every frame gets exactly max_peaks
    b, h, w = amap.shape
    inner = torch.full_like(amap.float(), float("-inf"))
    inner[:, 1:-1, 1:-1] = amap.float()[:, 1:-1, 1:-1]
    k = min(max_peaks, max(h - 2, 0) * max(w - 2, 0))
    values, flat = inner.view(b, -1).topk(k, dim=1)
    frame = torch.arange(b, device=amap.device)[:, None].expand(b, k).reshape(-1)
    slot = torch.arange(k, device=amap.device)[None, :].expand(b, k).reshape(-1)
    flat = flat.reshape(-1)
    return Peaks(frame, slot, flat // w, flat % w, values.reshape(-1))


def load_backbone(name: str, device: str):
    try:
        return get_backbone(name, device=device), "real"
    except WeightsMissingError:
        return get_backbone(name, device=device, pretrained=False), "random init"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(dasr: DasrExtractor, frames: list[np.ndarray], batch: int, seconds: float, device: str):
    """(keyframes/s, mean peaks per frame, mean regions per frame) over >= ``seconds`` of batches."""
    batch_frames = [frames[i % len(frames)] for i in range(batch)]
    dasr.extract(batch_frames)  # warm-up (allocations, cuDNN autotune)
    sync(device)
    done, start, regions = 0, time.perf_counter(), 0
    while True:
        out = dasr.extract(batch_frames)
        sync(device)
        done += batch
        regions += sum(len(r) for r in out)
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    peaks = _count_peaks(dasr, batch_frames)
    return done / elapsed, peaks, regions / done


def _count_peaks(dasr: DasrExtractor, frames: list[np.ndarray]) -> float:
    with torch.inference_mode():
        x = dasr._to_input([dasr._resize(f) for f in frames])
        amap = dasr.backbone.features(x).float().mean(1)
    from video_inst.models.dasr import find_peaks

    p = dasr.params
    peaks = find_peaks(amap, keep_above_mean=p.keep_above_mean, max_peaks=p.max_peaks, radius=p.peak_radius)
    return len(peaks.frame) / len(frames)


def forward_only(dasr: DasrExtractor, frames: list[np.ndarray], batch: int, device: str) -> float:
    """Keyframes/s of the plain backbone forward (no top-down pass), for reference."""
    x = dasr._to_input([dasr._resize(frames[i % len(frames)]) for i in range(batch)])
    with torch.inference_mode(), dasr._autocast():
        dasr.backbone.features(x)
        sync(device)
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < 1.0 or n < 2:
            dasr.backbone.features(x)
            n += 1
        sync(device)
    return n * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backbones", nargs="*", default=["efficientnet_lite0", "resnet50"])
    ap.add_argument("--batches", nargs="*", type=int, help="default: 1 4 8 on CPU, 8 32 64 on CUDA")
    ap.add_argument("--dtypes", nargs="*", help="default: float32 on CPU, float32 bfloat16 on CUDA")
    ap.add_argument("--batching", nargs="*", default=["slots"], help="modes: slots vmap expand")
    defaults = DasrParams()
    ap.add_argument("--size", type=int, default=defaults.input_size, help="input px (default: DasrParams)")
    ap.add_argument("--peaks", type=int, default=defaults.max_peaks, help="max peaks (default: DasrParams)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per row")
    ap.add_argument("--media", type=Path, help="a video file or an image folder instead of synthetic frames")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument(
        "--force-peaks", action="store_true", help="exactly --peaks peaks per frame, whatever the weights"
    )
    args = ap.parse_args()
    if args.force_peaks:
        import video_inst.models.dasr as dasr_module

        dasr_module.find_peaks = strongest_cells

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
    batches = args.batches or ([8, 32, 64] if cuda else [1, 4, 8])
    dtypes = args.dtypes or (["float32", "bfloat16"] if cuda else ["float32"])
    n = max(batches)
    frames = media_frames(args.media, n) if args.media else synthetic_frames(n, args.size)
    source = str(args.media) if args.media else f"synthetic {frames[0].shape[1]}x{frames[0].shape[0]}"
    device_name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    forced = f"; forced {args.peaks} peaks per frame" if args.force_peaks else ""
    head = f"# DASR* bench: {device_name}; torch {torch.__version__}; frames: {source}; input {args.size} px"
    print(head + forced)
    print(f"{'backbone':20s} {'weights':11s} {'dtype':8s} {'batching':8s} {'batch':>5s} {'peaks/f':>7s} "
          f"{'regions/f':>9s} {'kf/s':>8s} {'ms/kf':>7s} {'fwd kf/s':>8s}")  # fmt: skip
    for name in args.backbones:
        backbone, weights = load_backbone(name, args.device)
        for dtype in dtypes:
            for batching in args.batching:
                params = DasrParams(
                    input_size=args.size, max_peaks=args.peaks, dtype=dtype, excite_batching=batching
                )
                for batch in batches:
                    dasr = DasrExtractor(backbone, dataclasses.replace(params, batch_size=batch), args.device)
                    try:
                        kfs, peaks, regions = bench(dasr, frames, batch, args.seconds, args.device)
                        fwd = forward_only(dasr, frames, batch, args.device)
                    except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # e.g. bf16 unsupported, OOM
                        row = f"{name:20s} {weights:11s} {dtype:8s} {batching:8s} {batch:5d}"
                        print(f"{row}  failed: {exc}"[:200])
                        if cuda:
                            torch.cuda.empty_cache()
                        continue
                    print(f"{name:20s} {weights:11s} {dtype:8s} {batching:8s} {batch:5d} {peaks:7.1f} "
                          f"{regions:9.1f} {kfs:8.1f} {1000 / kfs:7.1f} {fwd:8.1f}", flush=True)  # fmt: skip
        vec = backbone.dim * 2
        print(f"# {name}: region vector {backbone.dim} x float16 = {vec} B; with row overhead "
              f"~{vec + ROW_OVERHEAD_BYTES} B per region")  # fmt: skip
        del backbone
        if cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
