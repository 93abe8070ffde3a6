#!/usr/bin/env python
"""End-to-end latency of a text query on the CLI: `video-inst search --text ... --json`, wall time.

What an editor waits for when they type a query in a terminal: a fresh process, imports, the
catalog, the model that embeds the text, the FAISS search, the JSON. Prints figures, asserts
nothing. Steps:

1. ingest the shared edit (or ``--video``) into a scratch home, once (reused with ``--home``);
2. time ``video-inst --version`` (the interpreter + CLI import floor, the baseline);
3. time text queries with no CLIP weights (mode "labels": the offline sentence model);
4. with ``--clip-random``: save a *randomly initialised* ViT-B-32 checkpoint into the scratch
   home, point ``VIDEO_INST_CLIP_WEIGHTS`` at it, add CLIP vectors with
   ``video-inst reindex --space clip`` and time the same queries in mode "text". Speed does not
   depend on the weights; the hits are meaningless, and this home must never be used for
   anything but this figure.

Usage::

    .venv/bin/python scripts/bench_cli_search.py --runs 5
    .venv/bin/python scripts/bench_cli_search.py --runs 5 --clip-random --home /tmp/vi_cli_bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("video-inst"))
QUERIES = ("bird", "a red car", "plastic bottles", "automobile")


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout


def timed(label: str, args: list[str], env: dict[str, str], runs: int) -> list[float]:
    walls = [run(args, env)[0] for _ in range(runs)]
    p50 = statistics.median(walls)
    print(f"  {label:34s} median {p50:6.2f} s  min {min(walls):6.2f} s  max {max(walls):6.2f} s")
    return walls


def save_random_clip(path: Path) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    torch.save(model.state_dict(), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=REPO.parent / "shared/media/edits/instance_test_edit.mp4")
    ap.add_argument("--home", type=Path, help="scratch VIDEO_INST_HOME (default: a new temp dir)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clip-random", action="store_true", help="also time CLIP text search (random ViT-B-32)")
    args = ap.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="vi_cli_bench_"))
    env = {**os.environ, "VIDEO_INST_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("VIDEO_INST_CLIP_WEIGHTS", None)
    print(f"home {home}; cores {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    videos = (
        json.loads(run(["videos", "--json"], env)[1] or "[]") if (home / "catalog.sqlite3").exists() else []
    )
    if not videos:
        wall, _ = run(["ingest", str(args.video)], env)
        print(f"ingested {args.video.name} in {wall:.1f} s")

    print("baseline (fresh process, imports):")
    base = timed("video-inst --version", ["--version"], env, args.runs)
    print("text search, no CLIP weights (mode labels):")
    walls = []
    for q in QUERIES:
        walls += timed(f"--text {q!r}", ["search", "--text", q, "--json"], env, args.runs)
    out = json.loads(run(["search", "--text", QUERIES[0], "--json"], env)[1])
    mode = out[0].get("mode") if isinstance(out, list) and out else out
    print(f"  mode of the hits: {mode}")
    print(
        f"  all labels queries: median {statistics.median(walls):.2f} s = "
        f"{statistics.median(walls) / statistics.median(base):.1f}x the --version floor"
    )

    if args.clip_random:
        ckpt = home / "random_vit_b_32.pt"
        if not ckpt.exists():
            save_random_clip(ckpt)
        env["VIDEO_INST_CLIP_WEIGHTS"] = str(ckpt)
        env["VIDEO_INST_CLIP_PRETRAINED"] = "random-bench"  # the space name says these are not real
        wall, _ = run(["reindex", "--space", "clip"], env)
        print(f"reindex --space clip (RANDOM ViT-B-32 weights, speed only) in {wall:.1f} s")
        print("text search with CLIP (mode text):")
        walls = []
        for q in QUERIES:
            walls += timed(f"--text {q!r}", ["search", "--text", q, "--json"], env, args.runs)
        print(
            f"  all CLIP queries: median {statistics.median(walls):.2f} s = "
            f"{statistics.median(walls) / statistics.median(base):.1f}x the --version floor"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
