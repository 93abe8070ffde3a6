#!/usr/bin/env python
"""Where one ``video-inst ingest`` spends its time, stage by stage, as a user runs it.

Two fresh processes on fresh data directories ingest the same clip (default: a 60 s 720p25
H.264 edit of the shared clips, rendered once by ``bench_media.ensure_clip``):

1. plain, timed from the shell (process start included): the wall time and x real time;
2. under cProfile: each stage's cumulative seconds (the outermost call of the functions that
   make it), and its share of the profiled run. Profiling slows Python-heavy stages more than
   torch / FFmpeg ones, so shares are a map of the run, not exact costs; the plain run is the
   figure to quote.

Stages overlap where one calls another (keyframe decode runs inside the analysis loop, the
FAISS sync inside the commit, imports everywhere): each is reported alone, not summed.
Asserts nothing; figures go in docs/ with the command that made them.

cProfile sees the main thread only: since issue 15 the plan pass (with the keyframe pictures
it hands over) and the model load run in threads of their own (docs/INGEST.md), so on this
code those rows show "-" or only the waiting; the docs/INGEST.md profile was taken on the
code before that change. The plain run's wall time is unaffected.

Usage::

    PYTHONPATH=$PWD .venv/bin/python scripts/profile_ingest.py            # the cached 60 s clip
    PYTHONPATH=$PWD .venv/bin/python scripts/profile_ingest.py --video clip.mp4 --json
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

# (stage, path suffix of the defining file, function name): the first match of each row counts.
STAGES: list[tuple[str, str, str]] = [
    ("imports (all, lazy ones included)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("model load: DASR backbone", "video_inst/models/loading.py", "load_dasr"),
    ("model load: CLIP attempt", "video_inst/models/loading.py", "load_clip"),
    ("hash", "video_inst/media/hashing.py", "content_hash"),
    ("probe", "video_inst/media/probe.py", "probe"),
    ("shot plan decode + detector", "video_inst/media/shots.py", "plan_shots"),
    ("keyframe decode (seek + decode)", "video_inst/media/decode.py", "decode_keyframes"),
    ("thumbnails", "video_inst/media/decode.py", "write_thumbnail"),
    ("DASR forward + excitation (saliency)", "video_inst/models/dasr.py", "_saliency"),
    ("DASR top-down passes per peak", "video_inst/models/dasr.py", "_excite"),
    ("DASR boxes, NMS, pooling, labels", "video_inst/models/dasr.py", "_regions"),
    ("CLIP frame vectors", "video_inst/models/clip.py", "embed_images"),
    ("tracks (linking)", "video_inst/analysis/analyser.py", "_link"),
    ("analysis of all keyframes", "video_inst/ingest/pipeline.py", "analyse_shots"),
    ("commit (SQL transaction + FAISS sync)", "video_inst/ingest/pipeline.py", "commit_video"),
    ("FAISS sync", "video_inst/vectors/store.py", "sync"),
    ("whole ingest command", "video_inst/cli/commands.py", "ingest"),
]

PROFILED = """
import cProfile, sys
profile = cProfile.Profile()
profile.enable()
from video_inst.cli import main
try:
    main(["ingest", sys.argv[1], "--json"], prog_name="video-inst", standalone_mode=False)
finally:
    profile.disable()
    profile.dump_stats(sys.argv[2])
"""


def run(argv: list[str], home: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, VIDEO_INST_HOME=str(home))
    env.pop("VIDEO_INST_DATABASE_URL", None)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - start, proc


def stage_seconds(stats_path: Path) -> dict[str, float | None]:
    stats = pstats.Stats(str(stats_path)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    out: dict[str, float | None] = {}
    for stage, suffix, func in STAGES:
        found = [
            ct
            for (file, _, name), (_, _, _, ct, _) in stats.items()
            if name == func and file.endswith(suffix)
        ]
        out[stage] = round(max(found), 2) if found else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="clip to ingest (default: the cached 60 s 720p25 edit)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = ap.parse_args()
    if args.video is None:
        from bench_media import ensure_clip

        args.video = ensure_clip("bench_720p25_60s.mp4")
    from video_inst.media.probe import probe

    duration = probe(args.video).duration_s
    with tempfile.TemporaryDirectory(prefix="vi_profile_") as tmp:
        root = Path(tmp)
        plain_s, plain = run(
            [sys.executable, "-m", "video_inst.cli", "ingest", str(args.video), "--json"], root / "a"
        )
        if plain.returncode != 0:
            sys.exit(f"plain ingest failed ({plain.returncode}): {plain.stderr[-2000:]}")
        stats_path = root / "ingest.prof"
        profiled_s, profiled = run(
            [sys.executable, "-c", PROFILED, str(args.video), str(stats_path)], root / "b"
        )
        if profiled.returncode != 0:
            sys.exit(f"profiled ingest failed ({profiled.returncode}): {profiled.stderr[-2000:]}")
        stages = stage_seconds(stats_path)
        result = json.loads(plain.stdout.strip().splitlines()[-1])
    report = {
        "video": str(args.video),
        "duration_s": round(duration, 2),
        "keyframes": result.get("keyframes"),
        "tracks": result.get("tracks"),
        "plain_wall_s": round(plain_s, 2),
        "x_real_time": round(duration / plain_s, 2),
        "profiled_wall_s": round(profiled_s, 2),
        "stages_profiled_s": stages,
        "load_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"{args.video.name}: {duration:.1f} s of video, {report['keyframes']} keyframes, "
        f"{report['tracks']} tracks; plain ingest {plain_s:.1f} s = {report['x_real_time']}x real time "
        f"(load {report['load_1min']:.1f})"
    )
    print(f"under cProfile {profiled_s:.1f} s; cumulative seconds per stage (overlapping, see docstring):")
    for stage, seconds in stages.items():
        share = "" if seconds is None else f"{100 * seconds / profiled_s:5.1f} %"
        print(f"  {stage:<42} {'-' if seconds is None else f'{seconds:7.2f}':>7}  {share}")


if __name__ == "__main__":
    main()
