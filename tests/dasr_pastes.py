"""Pasted-object localisation set for DASR: photos pasted at known boxes onto real decoded video frames.

Shared by tests/test_dasr_localisation.py (one seed) and scripts/eval_localisation.py
(other seeds, for choosing parameters), so that the test never scores the sample the
defaults were tuned on. Frames are decoded with PyAV from the test media's clips (tests/media/clips).

Example::

    samples = make_samples(media, seed=7, frames=20, per_frame=2)
    regions = dasr.extract([s.frame for s in samples])
    covered, total = hits([r.boxes[~r.is_frame] for r in regions], samples)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

CLIPS = (
    "bottle-detection.mp4",
    "car-detection.mp4",
    "one-by-one-person-detection.mp4",
    "cockatoo.mp4",
    "flower.mp4",
    "friday.mp4",
    "stream-of-water.mp4",
    "big_buck_bunny_0_30.webm",
    "sintel_snow.mp4",
    "realshort.mp4",
)
# The main object of each single-object photo, as fractions (x0, y0, x1, y1) of the photo, set by eye.
# Only this crop is pasted, so the pasted rectangle is the object's box: a region that finds the
# owl and not the grass around it is right. Group and scene photos (face, kite_and_cold, kodim03,
# pets) have no single object and are left out.
OBJECT_BOXES: dict[str, tuple[float, float, float, float]] = {
    "astronaut.png": (0.03, 0.03, 0.72, 1.0),
    "balloon.jpg": (0.07, 0.04, 0.95, 0.96),
    "bird.bmp": (0.07, 0.22, 0.95, 0.86),
    "cat.bmp": (0.1, 0.1, 0.72, 1.0),
    "chelsea.png": (0.0, 0.0, 0.85, 1.0),
    "coffee.png": (0.12, 0.0, 0.81, 0.93),
    "dragonfly.bmp": (0.0, 0.0, 1.0, 1.0),
    "elephant-660-480.jpg": (0.2, 0.36, 0.66, 0.85),
    "gecko-320-213.jpg": (0.05, 0.12, 0.93, 0.97),
    "grace_hopper.bmp": (0.03, 0.03, 1.0, 1.0),
    "grapefruit-slice-332-332.jpg": (0.03, 0.02, 0.97, 0.97),
    "hot_dog.jpg": (0.1, 0.12, 0.95, 0.68),
    "hummingbird.jpg": (0.1, 0.15, 0.88, 0.9),
    "ice-cream.jpg": (0.27, 0.2, 0.72, 1.0),
    "leopard.jpg": (0.0, 0.0, 0.74, 1.0),
    "owl.jpg": (0.31, 0.02, 0.65, 0.96),
    "parrot.jpg": (0.19, 0.11, 0.91, 0.97),
    "sunflower.bmp": (0.12, 0.0, 0.85, 1.0),
    "surfer-240-200.jpg": (0.3, 0.3, 0.6, 0.65),
}


@dataclass
class Sample:
    """One frame with pasted photos; ``boxes`` (x0, y0, x1, y1 source px) and the photos' names."""

    frame: np.ndarray
    boxes: np.ndarray  # (P, 4) float32
    names: list[str]
    clip: str
    time_s: float


def decode_at(path: Path, time_s: float) -> np.ndarray:
    """The first frame at or after ``time_s`` (RGB uint8)."""
    return decode_times(path, [time_s])[0]


def decode_times(path: Path, times: Sequence[float]) -> list[np.ndarray]:
    """Frames at or after each of ``times``, decoded in one sequential pass from the start.

    Why no seeking: some shared clips decode to grey-green garbage after a seek (they
    have a single keyframe), and a sequential pass over these short clips is cheap.
    """
    wanted = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base)
        k = 0
        last = None
        for frame in container.decode(stream):
            last = frame
            while k < len(wanted) and frame.pts is not None and frame.pts * tb >= times[wanted[k]]:
                out[wanted[k]] = frame.to_ndarray(format="rgb24")
                k += 1
            if k == len(wanted):
                break
        for i in wanted[k:]:  # past the end: the last frame
            if last is None:
                raise RuntimeError(f"no frame decoded from {path}")
            out[i] = last.to_ndarray(format="rgb24")
    return out  # type: ignore[return-value]


def clip_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration / av.time_base)


def load_objects(images: Path) -> dict[str, np.ndarray]:
    """Each annotated photo cropped to its main object (RGB uint8)."""
    out = {}
    for name, (fx0, fy0, fx1, fy1) in OBJECT_BOXES.items():
        photo = np.asarray(Image.open(images / name).convert("RGB"))
        h, w = photo.shape[:2]
        out[name] = photo[round(fy0 * h) : round(fy1 * h), round(fx0 * w) : round(fx1 * w)]
    return out


def _overlaps(box: np.ndarray, others: list[np.ndarray], margin: float) -> bool:
    return any(
        box[0] < o[2] + margin
        and o[0] < box[2] + margin
        and box[1] < o[3] + margin
        and o[1] < box[3] + margin
        for o in others
    )


def make_samples(
    media: Path,
    *,
    seed: int,
    frames: int,
    per_frame: int = 2,
    size_range: tuple[float, float] = (0.15, 0.45),
    clips: Sequence[str] = CLIPS,
    max_time_s: float = 30.0,
) -> list[Sample]:
    """``frames`` random frames (seeded clip + time), each with ``per_frame`` non-overlapping pasted objects.

    An object crop is scaled so its longer side is ``size_range`` x the frame's shorter side.
    Times fall within the first ``max_time_s`` of each clip (bounds the decoding cost).
    """
    rng = np.random.default_rng(seed)
    photos = load_objects(media / "images")
    names = sorted(photos)
    durations = {c: clip_duration(media / "clips" / c) for c in clips}
    picks = []
    for _ in range(frames):
        clip = clips[int(rng.integers(len(clips)))]
        picks.append((clip, float(rng.uniform(0.05, 0.95) * min(durations[clip], max_time_s))))
    decoded: dict[tuple[str, float], np.ndarray] = {}
    for clip in sorted({c for c, _ in picks}):
        times = [t for c, t in picks if c == clip]
        decoded.update(
            zip([(clip, t) for t in times], decode_times(media / "clips" / clip, times), strict=True)
        )
    samples = []
    for clip, t in picks:
        frame = decoded[(clip, t)].copy()
        fh, fw = frame.shape[:2]
        boxes: list[np.ndarray] = []
        chosen: list[str] = []
        for name in rng.choice(names, size=per_frame, replace=False):
            photo = photos[str(name)]
            side = rng.uniform(*size_range) * min(fh, fw)
            s = side / max(photo.shape[:2])
            pw, ph = max(8, round(photo.shape[1] * s)), max(8, round(photo.shape[0] * s))
            for _try in range(50):
                x0, y0 = int(rng.integers(0, fw - pw + 1)), int(rng.integers(0, fh - ph + 1))
                box = np.array([x0, y0, x0 + pw, y0 + ph], dtype=np.float32)
                if not _overlaps(box, boxes, margin=4):
                    break
            else:
                continue
            small = np.asarray(Image.fromarray(photo).resize((pw, ph), Image.Resampling.LANCZOS))
            frame[y0 : y0 + ph, x0 : x0 + pw] = small
            boxes.append(box)
            chosen.append(str(name))
        samples.append(Sample(frame, np.array(boxes, dtype=np.float32).reshape(-1, 4), chosen, clip, t))
    return samples


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x0 y0 x1 y1 boxes."""
    a, b = a.reshape(-1, 4).astype(np.float64), b.reshape(-1, 4).astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def hits(found: Sequence[np.ndarray], samples: Sequence[Sample], iou: float = 0.5) -> tuple[int, int]:
    """(pasted objects covered by some found box with IoU >= ``iou``, pasted objects in all)."""
    covered = total = 0
    for boxes, sample in zip(found, samples, strict=True):
        total += len(sample.boxes)
        if len(boxes) and len(sample.boxes):
            covered += int((box_iou(sample.boxes, boxes).max(1) >= iou).sum())
    return covered, total
