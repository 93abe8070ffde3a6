"""Every knob of DASR as one frozen dataclass, without torch: the model-space name is read by
processes that never run the network (a CLI text query answered from labels), and importing
torch costs them seconds.

Example::

    DasrParams().space_name("efficientnet_lite0")   # 'dasr:efficientnet_lite0:s576:avg'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PeakMode = Literal["dasr", "dasr_star"]
DTYPE_NAMES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class DasrParams:
    """Every knob of DASR; defaults chosen on pasted-object localisation (docs/DASR.md)."""

    input_size: int = 576  # longer side of the network input, px
    peak_mode: PeakMode = "dasr_star"
    min_peak: Literal["auto", "mean", "none"] = "mean"  # auto: mean for DASR, none for DASR*
    max_peaks: int = 8  # strongest peaks kept per frame
    peak_radius: int = 1  # a peak is the maximum of its (2r+1)^2 cells (1 = the paper's 3x3)
    excite_stop: int = 8  # stride at which the top-down pass stops (0 = down to the input)
    top_signal: Literal["uniform", "activation"] = "uniform"  # how a peak's unit signal spreads over channels
    smooth_sigma: float = 16.0  # Gaussian smoothing of the saliency map, input px; 0 = off
    threshold: Literal["percentile", "relative", "mass"] = "relative"
    tau: float = 0.7  # percentile (0-100); fraction (0-1) of the map's peak; or of its mass
    extra_taus: tuple[float, ...] = (0.4,)  # more thresholds (same rule): one more nested box per peak each
    component: bool = False  # keep only the thresholded pixels connected to the map's maximum
    moments: Literal["mask", "weighted"] = "mask"  # ellipse from kept pixels, or weighted by their saliency
    ellipse_scale: float = 2.0  # semi-axes = scale * sqrt(eigenvalue)
    nms_iou: float = 0.5  # DASR* greedy NMS overlap (beta)
    pooling: Literal["avg", "gem"] = "avg"
    gem_p: float = 3.0
    include_frame: bool = True  # whole frame as one more region (row 0)
    tiles: int = 0  # N > 1: also run DASR on an N x N grid of tiles, keeping their small boxes
    tile_max_area: float = 0.02  # a tile's box is kept when under this share of the frame's area
    # excite: full DASR per tile (peaks + one backward per peak rank); forward: peaks of each tile's
    # forward activation map, each box from that map's blob around its peak (no backward pass)
    tile_mode: Literal["excite", "forward"] = "excite"
    tile_size: int = 0  # longer side of a tile's network input, px (0 = input_size)
    tile_peaks: int = 0  # peaks per tile (0 = max_peaks)
    tile_box_scale: float = 1.5  # forward mode: ellipse_scale of the activation blobs (wider than the object)
    tile_dedupe_iou: float = 0.0  # > 0: drop a tile box overlapping a kept tile or frame box this much
    label_top_k: int = 5
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # autocast dtype (GPU)
    batch_size: int = 8  # frames per forward pass
    excite_batching: Literal["slots", "vmap", "expand"] = "slots"  # see _excite
    excite_eps: float = 1e-6

    def __post_init__(self) -> None:
        checks = {
            "input_size >= 32": self.input_size >= 32,
            "max_peaks >= 0": self.max_peaks >= 0,
            "peak_radius >= 1": self.peak_radius >= 1,
            "smooth_sigma >= 0": self.smooth_sigma >= 0,
            "ellipse_scale > 0": self.ellipse_scale > 0,
            "0 < nms_iou <= 1": 0 < self.nms_iou <= 1,
            "gem_p > 0": self.gem_p > 0,
            "label_top_k in 1..1000": 1 <= self.label_top_k <= 1000,
            "batch_size >= 1": self.batch_size >= 1,
            "tile_size 0 or >= 32": self.tile_size == 0 or self.tile_size >= 32,
            "tile_peaks >= 0": self.tile_peaks >= 0,
            "tile_box_scale > 0": self.tile_box_scale > 0,
            "0 <= tile_dedupe_iou <= 1": 0 <= self.tile_dedupe_iou <= 1,
            "tau in 0..100 (percentile)": self.threshold != "percentile" or 0 <= self.tau <= 100,
            "tau in 0..1 (relative)": self.threshold != "relative" or 0 <= self.tau <= 1,
            "tau in 0..1 (mass)": self.threshold != "mass" or 0 < self.tau <= 1,
            "extra_taus in the tau range": all(
                (0 <= t <= 100) if self.threshold == "percentile" else (0 < t <= 1) for t in self.extra_taus
            ),
        }
        for rule, ok in checks.items():
            if not ok:
                raise ValueError(f"DasrParams: {rule} violated ({self})")
        for name, value, allowed in (
            ("peak_mode", self.peak_mode, ("dasr", "dasr_star")),
            ("min_peak", self.min_peak, ("auto", "mean", "none")),
            ("top_signal", self.top_signal, ("uniform", "activation")),
            ("threshold", self.threshold, ("percentile", "relative", "mass")),
            ("moments", self.moments, ("mask", "weighted")),
            ("pooling", self.pooling, ("avg", "gem")),
            ("dtype", self.dtype, DTYPE_NAMES),
            ("excite_batching", self.excite_batching, ("slots", "vmap", "expand")),
            ("tile_mode", self.tile_mode, ("excite", "forward")),
        ):
            if value not in allowed:
                raise ValueError(f"DasrParams.{name} must be one of {allowed}, got {value!r}")

    @property
    def keep_above_mean(self) -> bool:
        """DASR keeps peaks >= the map mean; DASR* keeps every local maximum (NMS cleans up)."""
        if self.min_peak == "auto":
            return self.peak_mode == "dasr"
        return self.min_peak == "mean"

    def space_name(self, model_id: str) -> str:
        """Names the vector space: model + every parameter that changes vector values."""
        from video_inst.models.space_names import dasr_name

        return dasr_name(
            model_id,
            input_size=self.input_size,
            pooling=self.pooling,
            gem_p=self.gem_p,
            tiles=self.tiles,
            tile_mode=self.tile_mode,
            tile_size=self.tile_size,
        )
