#!/usr/bin/env python
"""Ingest throughput as x real time: one CLI ingest from the shell, and a long-lived process's steady state.

1. ``single``: ``python -m video_inst.cli ingest CLIP --json`` in a fresh process and a fresh
   data directory, timed from the shell (interpreter start, imports and model loads
   included), as a user runs it.
2. ``steady``: one process ingests ``--videos`` distinct copies of the clip one after the
   other with ``ingest_path`` (what ``ingest-archive --in-process`` and each worker process
   do: the models load once per process). Reported: every video's seconds, the first one
   (model load included), and the steady state = the others' video seconds / their wall time.

Copies differ only in a container metadata tag (stream copy, same frames), so each is new
content to the catalog. ``--baseline DIR`` runs the same measurements with another source
tree (e.g. ``git archive main | tar -x -C /tmp/vi_base``), alternating new and baseline in
each round so both see the same machine load; then the ratio new / baseline is the figure
to trust on a shared machine. Threads: whatever the environment says (OMP_NUM_THREADS);
on the 2-core machine ``OMP_NUM_THREADS=2`` is the user's default.

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=$PWD .venv/bin/python scripts/bench_ingest.py            # this tree
    OMP_NUM_THREADS=2 PYTHONPATH=$PWD .venv/bin/python scripts/bench_ingest.py \\
        --baseline /tmp/vi_base --rounds 2                                             # old vs new
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

STEADY = r"""
import json, sys, time
from pathlib import Path
from video_inst.config import get_settings
from video_inst.ingest.pipeline import ingest_path
settings = get_settings()
out = []
for path in sys.argv[1:]:
    t = time.perf_counter()
    result = ingest_path(Path(path), settings=settings)
    out.append({"seconds": time.perf_counter() - t, "status": result.status, "keyframes": result.keyframes,
                "tracks": result.tracks, "error": result.error})
print(json.dumps(out))
"""


def copies(clip: Path, n: int, folder: Path) -> list[Path]:
    """``n`` stream copies of ``clip`` differing only in a metadata tag (new content, same frames)."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        dest = folder / f"{clip.stem}_copy{i:02d}{clip.suffix}"
        if not dest.exists():
            with av.open(str(clip)) as src, av.open(str(dest), "w") as out:
                s_in = src.streams.video[0]
                s_out = out.add_stream_from_template(s_in)
                out.metadata["comment"] = f"video_inst bench copy {i}"
                for packet in src.demux(s_in):
                    if packet.dts is None:
                        continue
                    packet.stream = s_out
                    out.mux(packet)
        paths.append(dest)
    return paths


def env_for(tree: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ, VIDEO_INST_HOME=str(home), PYTHONPATH=str(tree))
    env.pop("VIDEO_INST_DATABASE_URL", None)
    env.pop("VIDEO_INST_CONFIG", None)
    return env


def single(tree: Path, clip: Path, home: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "video_inst.cli", "ingest", str(clip), "--json"],
        env=env_for(tree, home),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"ingest failed with {tree}: {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def steady(tree: Path, clips: list[Path], home: Path) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", STEADY, *map(str, clips)],
        env=env_for(tree, home),
        capture_output=True,
        text=True,
        timeout=7200,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"steady run failed with {tree}: {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = [r for r in rows if r["status"] != "done"]
    if bad:
        sys.exit(f"steady run with {tree}: {bad[0]}")
    return wall, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="clip (default: the cached 60 s 720p25 H.264 edit)")
    ap.add_argument("--baseline", type=Path, help="another source tree to measure in the same rounds")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--videos", type=int, default=10, help="videos of the steady-state run (0: skip it)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.video is None:
        from bench_media import ensure_clip

        args.video = ensure_clip("bench_720p25_60s.mp4")
    from video_inst.media.probe import probe

    duration = probe(args.video).duration_s
    trees = {"new": REPO}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    report: dict = {"video": str(args.video), "duration_s": round(duration, 2), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="vi_bench_ingest_") as tmp:
        root = Path(tmp)
        clips = copies(args.video, args.videos, root / "copies") if args.videos else []
        for r in range(args.rounds):
            row: dict = {"load_1min_start": round(os.getloadavg()[0], 1)}
            for name, tree in trees.items():
                wall, result = single(tree, args.video, root / f"{name}-single-{r}")
                row[f"{name}_single_s"] = round(wall, 2)
                row[f"{name}_single_x"] = round(duration / wall, 2)
                row[f"{name}_keyframes_tracks"] = (result["keyframes"], result["tracks"])
                kt = f"{result['keyframes']} keyframes, {result['tracks']} tracks"
                x = duration / wall
                print(
                    f"round {r} {name:8s} single CLI ingest {wall:6.1f} s = {x:5.2f}x real time ({kt})",
                    flush=True,
                )
            for name, tree in trees.items() if clips else ():
                wall, rows = steady(tree, clips, root / f"{name}-steady-{r}")
                later = sum(x["seconds"] for x in rows[1:])
                x_steady = duration * (len(rows) - 1) / later if later else float("nan")
                row[f"{name}_steady_x"] = round(x_steady, 2)
                row[f"{name}_steady_first_s"] = round(rows[0]["seconds"], 2)
                row[f"{name}_steady_all_x"] = round(duration * len(rows) / wall, 2)
                row[f"{name}_steady_seconds"] = [round(x["seconds"], 2) for x in rows]
                first, x_all = rows[0]["seconds"], duration * len(rows) / wall
                print(
                    f"round {r} {name:8s} {len(rows)} videos in one process: first {first:.1f} s, "
                    f"steady state {x_steady:5.2f}x real time, all {len(rows)} incl. start {x_all:5.2f}x",
                    flush=True,
                )
            row["load_1min_end"] = round(os.getloadavg()[0], 1)
            report["rounds"].append(row)
    if args.baseline:
        for key in ("single_x", "steady_x"):
            pairs = [(row.get(f"new_{key}"), row.get(f"baseline_{key}")) for row in report["rounds"]]
            ratios = [n / b for n, b in pairs if n and b]
            if ratios:
                report[f"ratio_{key}"] = [round(x, 2) for x in ratios]
                print(f"new / baseline {key}: " + ", ".join(f"{x:.2f}" for x in ratios))
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
