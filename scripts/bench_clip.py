"""Speed of CLIP image / text embeddings and of the label matcher. Prints figures, asserts nothing.

Real CLIP weights are used when ``ClipEmbedder.load`` finds them; otherwise the same
architecture with random weights (speed does not depend on the weights; the output says which).

Usage::

    .venv/bin/python scripts/bench_clip.py                       # CPU, ViT-B-32, batches 1/8/32
    .venv/bin/python scripts/bench_clip.py --device cuda         # GPU: warm-up, synchronise, bf16 autocast
    .venv/bin/python scripts/bench_clip.py --device cuda --precision fp32 --batches 1,32,128
    .venv/bin/python scripts/bench_clip.py --labels              # also the MiniLM label matcher
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from video_inst.config import get_settings
from video_inst.errors import WeightsMissingError
from video_inst.models.clip import ClipEmbedder, resolve_device

QUERIES = [
    "a red car",
    "a cockatoo on a perch",
    "two people talking at a table",
    "a snowy mountain at dusk",
    "plastic bottles on a shelf",
    "a man riding a horse on the beach",
    "automobile",
    "bird",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int) -> list[float]:
    """Wall seconds of each call, the device synchronised before and after."""
    out = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def make_embedder(args: argparse.Namespace) -> tuple[ClipEmbedder, str]:
    settings = get_settings().model_copy(update={"clip_model": args.model})
    if not args.random:
        try:
            return ClipEmbedder.load(settings, device=args.device, precision=args.precision), "real weights"
        except WeightsMissingError:
            pass
    precision = args.precision or ("bf16" if resolve_device(args.device).type == "cuda" else "fp32")
    emb = ClipEmbedder.random_init(args.model, args.device, precision=precision)
    return emb, "RANDOM weights (no checkpoint found; speed only)"


def bench_clip(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    emb, what = make_embedder(args)
    build_s = time.perf_counter() - t0
    dev = emb.device
    name = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    )
    print(f"model {args.model} ({what}); space {emb.space_name}; dim {emb.dim}")
    print(
        f"device {dev} [{name}], precision {emb.precision}, torch threads {torch.get_num_threads()}, "
        f"cpu count {os.cpu_count()}; build+load {build_s:.1f} s"
    )

    rng = np.random.default_rng(0)
    h, w = args.frame
    batches = [int(b) for b in args.batches.split(",")]
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(batches))]

    # warm-up: kernels, autotuning, allocator
    emb.embed_images(frames[:2], batch_size=2)
    emb.embed_texts(["warm up"])

    print(f"\nimages ({w}x{h} RGB frames → {emb.preprocess.size}px), median of {args.repeat}:")
    print(f"{'batch':>6} {'end-to-end img/s':>17} {'model-only img/s':>17} {'preprocess ms/img':>18}")
    for b in batches:
        chunk = frames[:b]
        e2e = statistics.median(
            timed(lambda c=chunk, b=b: emb.embed_images(c, batch_size=b), dev, args.repeat)
        )
        pixels = emb.preprocess_images(chunk)

        def forward(p: torch.Tensor = pixels) -> None:
            with emb._inference():
                emb.model.encode_image(p)

        model_s = statistics.median(timed(forward, dev, args.repeat))
        pre_s = statistics.median(timed(lambda c=chunk: emb.preprocess_images(c), dev, args.repeat))
        print(f"{b:>6} {b / e2e:>17.1f} {b / model_s:>17.1f} {1000 * pre_s / b:>18.2f}")

    one = timed(lambda: emb.embed_texts([QUERIES[0]]), dev, max(args.repeat, 10))
    many = timed(lambda: emb.embed_texts(QUERIES * 4), dev, args.repeat)
    print(
        f"\ntext: one query {1000 * statistics.median(one):.1f} ms (median of {len(one)}); "
        f"{len(QUERIES) * 4} queries {1000 * statistics.median(many):.1f} ms"
    )


def bench_labels() -> None:
    from video_inst.models.labels import LabelMatcher

    t0 = time.perf_counter()
    import sentence_transformers  # noqa: F401  (import time is most of a cold load)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    matcher = LabelMatcher.load()
    load_s = time.perf_counter() - t0
    matcher.match("warm up")
    times = [t for q in QUERIES for t in timed(lambda q=q: matcher.match(q), torch.device("cpu"), 5)]
    times.sort()
    print(
        f"\nlabel matcher: import sentence_transformers {import_s:.1f} s, load {load_s:.1f} s "
        f"(label matrix cached under {get_settings().models_dir / 'labels'})"
    )
    print(
        f"  match(): median {1000 * statistics.median(times):.1f} ms, "
        f"p95 {1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms over {len(times)} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None, help="default: bf16 on CUDA")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--frame", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--random", action="store_true", help="random weights even if real ones exist")
    parser.add_argument("--labels", action="store_true", help="also time the label matcher")
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP part")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_clip:
        bench_clip(args)
    if args.labels:
        bench_labels()


if __name__ == "__main__":
    main()
