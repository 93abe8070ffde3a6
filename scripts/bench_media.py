#!/usr/bin/env python
"""Speed and shot accuracy of the media layer (probe, shot plan, keyframe decode + thumbnails).

Speed: prints seconds per stage and speed as a multiple of real time (video seconds per wall
second). Without paths it renders, once, a 720p25 and a 1080p30 H.264 clip with cuts into a
cache directory, built from the shared test clips (real texture decodes slower than synthetic
pictures).

Accuracy (``--accuracy``): runs plan_shots with each candidate detector over the shared edit,
three more edits built once from the shared clips (dissolves of 8-24 frames, fades through
black, same-source cuts, 25 / 29.97 / 50 fps, 640x360 and 1280x720) and the single-shot
clips, and counts missed transitions, doubled ones and extra boundaries.

Asserts nothing: figures go in docs/MEDIA.md with the command that made them.

Usage::

    .venv/bin/python scripts/bench_media.py                 # speed on the two cached clips
    .venv/bin/python scripts/bench_media.py a.mp4 b.mov     # speed on your own files
    .venv/bin/python scripts/bench_media.py --threads 1 --downscale-width 192
    .venv/bin/python scripts/bench_media.py --accuracy      # detector comparison
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from video_inst.media.decode import decode_keyframes, write_thumbnail  # noqa: E402
from video_inst.media.probe import probe  # noqa: E402
from video_inst.media.shots import ShotSettings, plan_shots  # noqa: E402

CACHE = Path(os.environ.get("VIDEO_INST_BENCH_CACHE", Path(tempfile.gettempdir()) / "video_inst_bench"))
SHARED_CLIPS = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media")) / "clips"
SOURCES = [  # (clip, start s): 3 s shots cut from the shared clips, cycled
    ("cockatoo.mp4", 0.0),
    ("bottle-detection.mp4", 5.0),
    ("big_buck_bunny_0_30.webm", 4.0),
    ("car-detection.mp4", 10.0),
    ("one-by-one-person-detection.mp4", 30.0),
    ("friday.mp4", 1.0),
    ("flower.mp4", 1.0),
    ("big_buck_bunny_0_30.webm", 17.0),
    ("sintel_snow.mp4", 0.0),
    ("stream-of-water.mp4", 0.0),
]
BENCH_CLIPS = {  # name: (width, height, fps, seconds)
    "bench_720p25.mp4": (1280, 720, Fraction(25), 40),
    "bench_720p25_60s.mp4": (1280, 720, Fraction(25), 60),  # scripts/profile_ingest.py (issue 15)
    "bench_1080p30.mp4": (1920, 1080, Fraction(30), 40),
}


def _source_frames(width: int, height: int, fps: Fraction, seconds: float) -> list[np.ndarray]:
    """Frames of 3 s shots from the shared clips, scaled to the target size (noise if absent)."""
    per_shot = round(3 * fps)
    total = round(seconds * fps)
    out: list[np.ndarray] = []
    cache: dict[str, list[tuple[float, np.ndarray]]] = {}
    i = 0
    while len(out) < total:
        name, start = SOURCES[i % len(SOURCES)]
        i += 1
        path = SHARED_CLIPS / name
        if not path.exists():
            rng = np.random.default_rng(i)
            base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
            still = np.kron(base, np.ones((8, 8, 1), np.uint8))
            out.extend(np.roll(still, k * 3, axis=1) for k in range(per_shot))
            continue
        if name not in cache:
            with av.open(str(path)) as c:
                cache[name] = [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        frames = cache[name]
        times = np.array([t for t, _ in frames])
        for k in range(per_shot):
            src = frames[int(np.argmin(np.abs(times - (start + k / float(fps)))))][1]
            out.append(np.asarray(Image.fromarray(src).resize((width, height), Image.BILINEAR)))
    return out[:total]


def ensure_clip(name: str) -> Path:
    """Render a benchmark clip once (H.264 High, B-frames, 2 s GOP, CRF 20) and reuse it."""
    width, height, fps, seconds = BENCH_CLIPS[name]
    path = CACHE / name
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"rendering {path} ({width}x{height} {fps} fps, {seconds} s) once...", flush=True)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "g": str(round(2 * fps)), "bf": "3"}
        for rgb in _source_frames(width, height, fps, seconds):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def bench(path: Path, settings: ShotSettings, thumbs: Path) -> None:
    """Time the three stages; CPU seconds (all threads) tell what a busy machine hides."""
    marks = [(time.perf_counter(), time.process_time())]
    info = probe(path)
    marks.append((time.perf_counter(), time.process_time()))
    plan = plan_shots(path, info, settings)
    marks.append((time.perf_counter(), time.process_time()))
    n = 0
    for kf, rgb in decode_keyframes(path, plan.keyframes, rotation=info.rotation, threads=settings.threads):
        write_thumbnail(rgb, thumbs / f"{kf.pts}.jpg")
        n += 1
    marks.append((time.perf_counter(), time.process_time()))
    duration = info.duration_s
    print(
        f"\n{path.name}: {info.width}x{info.height} {info.codec} {float(info.frame_rate):.3f} fps, "
        f"{duration:.1f} s, {plan.frame_count} frames, {len(plan.shots)} shots, {n} keyframes"
    )
    print(f"  {'stage':24s} {'wall s':>8s} {'x real time':>12s} {'CPU s':>8s}")
    labels = ["probe", "plan_shots", "decode_keyframes+thumbs"]
    rows = [
        (label, marks[i + 1][0] - marks[i][0], marks[i + 1][1] - marks[i][1])
        for i, label in enumerate(labels)
    ]
    rows.append(("total", marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]))
    for label, wall, cpu in rows:
        print(f"  {label:24s} {wall:8.3f} {duration / wall:11.1f}x {cpu:8.3f}")
    print(
        f"  plan decode rate: {plan.frame_count / rows[1][1]:.1f} frames/s; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


# --- accuracy ---------------------------------------------------------------------------

# Edits with known transitions: (name, fps, size, shots (clip, start s, duration s), transitions
# {shot i: (kind, frames)} between shot i and i + 1; kind "dissolve" or "fade" (through black)).
_B = [
    ("cockatoo.mp4", 3.0, 2.0),
    ("friday.mp4", 1.0, 2.0),
    ("car-detection.mp4", 1.0, 3.0),
    ("sintel_snow.mp4", 0.0, 1.9),
    ("one-by-one-person-detection.mp4", 40.0, 3.0),
    ("flower.mp4", 2.0, 2.5),
    ("big_buck_bunny_0_30.webm", 3.0, 3.0),
    ("stream-of-water.mp4", 0.5, 2.0),
    ("bottle-detection.mp4", 30.0, 2.0),
    ("classroom.gif", 0.5, 2.0),
    ("cockatoo.mp4", 6.0, 2.0),
    ("store-aisle-detection.gif", 1.0, 2.5),
    ("big_buck_bunny_0_30.webm", 24.0, 3.0),
    ("realshort.mp4", 0.0, 1.1),
    ("car-detection.mp4", 22.0, 2.0),
]
_C = [
    ("bottle-detection.mp4", 2.0, 1.0),
    ("bottle-detection.mp4", 20.0, 1.0),
    ("cockatoo.mp4", 0.0, 0.8),
    ("cockatoo.mp4", 9.5, 1.2),
    ("one-by-one-person-detection.mp4", 10.0, 1.0),
    ("one-by-one-person-detection.mp4", 100.0, 1.0),
    ("car-detection.mp4", 4.5, 1.0),
    ("car-detection.mp4", 15.0, 1.0),
    ("friday.mp4", 0.0, 1.5),
    ("friday.mp4", 3.5, 1.5),
    ("flower.mp4", 0.0, 1.0),
    ("stream-of-water.mp4", 1.0, 0.7),
    ("big_buck_bunny_0_30.webm", 12.5, 1.0),
    ("big_buck_bunny_0_30.webm", 16.0, 1.0),
    ("sintel_snow.mp4", 0.2, 1.0),
]
EDITS = {
    "edit_b.mp4": (
        Fraction(25),
        (640, 360),
        _B,
        {1: ("dissolve", 8), 5: ("dissolve", 16), 9: ("dissolve", 24)},
    ),
    "edit_c.mp4": (Fraction(30000, 1001), (640, 360), _C, {4: ("dissolve", 12)}),
    "edit_d.mp4": (
        Fraction(50),
        (1280, 720),
        _B[:10],
        {0: ("fade", 12), 3: ("fade", 25), 6: ("fade", 8), 7: ("dissolve", 20)},
    ),
}
CANDIDATES = {
    "content 27": ShotSettings(detector="content"),
    "adaptive 3": ShotSettings(detector="adaptive"),
    "adaptive 3 + fades": ShotSettings(detector="adaptive", detect_fades=True),
    "adaptive 2.5 + fades": ShotSettings(detector="adaptive", threshold=2.5, detect_fades=True),
    "content 27 + fades": ShotSettings(detector="content", detect_fades=True),
    "hash 0.35": ShotSettings(detector="hash"),
    "histogram 0.2": ShotSettings(detector="histogram"),
}


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    scale = min(width / image.width, height / image.height)
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR
    )
    canvas = Image.new("RGB", (width, height))
    canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
    return np.asarray(canvas)


def ensure_edit(name: str) -> tuple[Path, list[tuple[str, int, int]]]:
    """Render an edit once (as shared/tools/make_composite.py does) and return its transitions."""
    fps, (width, height), shots, transitions = EDITS[name]
    path, truth_path = CACHE / name, CACHE / (name + ".json")
    if path.exists() and truth_path.exists():
        return path, [tuple(t) for t in json.loads(truth_path.read_text())]
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"rendering {path} once...", flush=True)
    sources: dict[str, list[tuple[float, np.ndarray]]] = {}
    seq = []
    for clip, start, duration in shots:
        if clip not in sources:
            with av.open(str(SHARED_CLIPS / clip)) as c:
                sources[clip] = [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        times = np.array([t for t, _ in sources[clip]])
        n = round(duration * fps)
        picks = [sources[clip][int(np.argmin(np.abs(times - (start + k / float(fps)))))][1] for k in range(n)]
        seq.append([_fit(a, width, height) for a in picks])
    out: list[np.ndarray] = []
    truth: list[tuple[str, int, int]] = []
    for i, frames in enumerate(seq):
        kind_in, n_in = transitions.get(i - 1, ("cut", 0))
        body = frames[n_in if kind_in == "dissolve" else 0 :]
        if kind_in == "fade":
            body = [(f * min(1.0, (k + 1) / (n_in + 1))).astype(np.uint8) for k, f in enumerate(body)]
        kind, n = transitions.get(i, ("cut", 0))
        if kind == "fade":
            m = len(body)
            body = [
                (f * (1 - (k - (m - n) + 1) / (n + 1))).astype(np.uint8) if k >= m - n else f
                for k, f in enumerate(body)
            ]
        if i:
            truth.append((kind_in, len(out), n_in))
        out.extend(body)
        if kind == "dissolve":
            tail, nxt = out[-n:], seq[i + 1]
            for k in range(n):
                a = (k + 1) / (n + 1)
                out[-n + k] = (tail[k] * (1 - a) + nxt[k] * a).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "26", "preset": "veryfast", "g": str(round(2 * fps))}
        for rgb in out:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    truth_path.write_text(json.dumps(truth))
    return path, truth


def _shared_edit() -> tuple[Path, list[tuple[str, int, int]]]:
    path = SHARED_CLIPS.parent / "edits" / "instance_test_edit.mp4"
    data = json.loads(path.with_suffix(".shots.json").read_text())
    dissolves = {d["after_shot"]: d["frames"] for d in data["dissolves"]}
    truth = []
    for shot in data["shots"][1:]:
        kind = shot["transition_in"]
        truth.append(
            (kind, shot["start_frame"], dissolves.get(shot["shot"] - 1, 0) if kind == "dissolve" else 0)
        )
    return path, truth


def score(found: list[int], truth: list[tuple[str, int, int]]) -> tuple[int, int, list[int]]:
    """(missed, doubled, extra boundaries): a cut must be found within 1 frame; a dissolve or fade
    of n frames by one boundary inside it (or, for a dissolve, one at each end)."""
    missed = doubled = 0
    used: set[int] = set()
    for kind, start, n in truth:
        lo, hi = (start - 1, start + 1) if kind == "cut" else (start - n - 1, start + n + 1)
        inside = [f for f in found if lo <= f <= hi]
        used.update(inside)
        if not inside:
            missed += 1
        elif len(inside) > 1:
            ends = kind == "dissolve" and len(inside) == 2
            ends = ends and abs(inside[0] - (start - n)) <= 1 and abs(inside[1] - start) <= 1
            doubled += 0 if ends else 1
    return missed, doubled, [f for f in found if f not in used]


def accuracy() -> None:
    cases = [("instance_test_edit", *_shared_edit())]
    cases += [(name.removesuffix(".mp4"), *ensure_edit(name)) for name in EDITS]
    bbb_cuts = [("cut", f, 0) for f in (283, 376, 551)]  # checked by eye
    for clip in sorted(SHARED_CLIPS.iterdir()):
        if clip.suffix in (".mp4", ".webm", ".gif"):
            cases.append((clip.stem, clip, bbb_cuts if clip.stem.startswith("big_buck") else []))
    totals = {name: [0, 0, 0] for name in CANDIDATES}
    n_transitions = sum(len(t) for _, _, t in cases)
    print(f"{'case':32s} " + " | ".join(f"{name:>20s}" for name in CANDIDATES))
    for label, path, truth in cases:
        info = probe(path)
        cells = []
        for name, settings in CANDIDATES.items():
            plan = plan_shots(path, info, settings)
            missed, doubled, extra = score([s.start_frame for s in plan.shots[1:]], truth)
            totals[name][0] += missed
            totals[name][1] += doubled
            totals[name][2] += len(extra)
            cells.append(f"{missed}/{doubled}/{len(extra)}")
        print(f"{label[:24]:24s} ({len(truth):2d}) " + " | ".join(f"{c:>20s}" for c in cells), flush=True)
    print(
        f"{'TOTAL missed/doubled/extra':32s} "
        + " | ".join(f"{'/'.join(map(str, v)):>20s}" for v in totals.values())
    )
    print(f"{n_transitions} transitions in {len(cases)} videos")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path, help="videos to time (default: the rendered clips)")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (0 = FFmpeg's choice)")
    parser.add_argument("--downscale-width", type=int, default=ShotSettings().downscale_width)
    parser.add_argument("--detector", default=ShotSettings().detector)
    parser.add_argument("--accuracy", action="store_true", help="compare shot detectors instead of timing")
    args = parser.parse_args()
    if args.accuracy:
        accuracy()
        return

    paths = args.paths or [ensure_clip(name) for name in BENCH_CLIPS]
    settings = ShotSettings(
        detector=args.detector, downscale_width=args.downscale_width, threads=args.threads
    )
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, settings: {settings}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            bench(path, settings, Path(tmp) / path.stem)


if __name__ == "__main__":
    main()
