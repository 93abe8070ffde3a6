"""Shot-boundary detectors by name: one front door over PySceneDetect's detectors.

Each entry builds a fresh ``scenedetect`` detector from a threshold (None = that detector's
default) and a minimum shot length in frames. The shot plan feeds them downscaled BGR frames
one by one (``process_frame``), so no PySceneDetect video backend is involved.

Example::

    det = make_detector("adaptive", threshold=None, min_len_frames=10)
    cuts = det.process_frame(FrameTimecode(0, fps=Fraction(25)), bgr)

Default choice, measured over edits with known cuts and single-shot clips (docs/MEDIA.md):
``adaptive`` at its own default ratio 3.0. ``threshold`` (fades to black) can run beside it
(``ShotSettings.detect_fades``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scenedetect.detector import SceneDetector
from scenedetect.detectors import (
    AdaptiveDetector,
    ContentDetector,
    HashDetector,
    HistogramDetector,
    ThresholdDetector,
)


@dataclass(frozen=True)
class DetectorSpec:
    """How to build one detector, and what its threshold means."""

    default_threshold: float
    meaning: str
    build: Callable[[float, int], SceneDetector]


DETECTORS: dict[str, DetectorSpec] = {
    "content": DetectorSpec(
        27.0,
        "mean HSV difference to the previous frame (0-255)",
        lambda t, n: ContentDetector(threshold=t, min_scene_len=n),
    ),
    "adaptive": DetectorSpec(
        3.0,
        "content difference divided by its average over the 2 frames either side",
        lambda t, n: AdaptiveDetector(adaptive_threshold=t, min_scene_len=n),
    ),
    "threshold": DetectorSpec(
        12.0,
        "mean intensity below which a frame counts as faded out (0-255)",
        lambda t, n: ThresholdDetector(threshold=t, min_scene_len=n),
    ),
    "hash": DetectorSpec(
        0.35,
        "share of perceptual-hash bits that differ from the previous frame (0-1)",
        lambda t, n: HashDetector(threshold=t, min_scene_len=n),
    ),
    "histogram": DetectorSpec(
        0.20,
        "1 - correlation of luma histograms with the previous frame (0-1)",
        lambda t, n: HistogramDetector(threshold=t, min_scene_len=n),
    ),
}

FADE_DETECTOR = "threshold"


def make_detector(name: str, threshold: float | None, min_len_frames: int) -> SceneDetector:
    """A fresh detector; unknown names list the valid ones."""
    try:
        spec = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown shot detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    value = spec.default_threshold if threshold is None else float(threshold)
    return spec.build(value, max(0, int(min_len_frames)))
