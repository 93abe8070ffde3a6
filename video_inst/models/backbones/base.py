"""The `Backbone` interface: an ImageNet CNN cut into stride stages, plus its classifier head.

DASR needs more than ``model(x)``: the last conv block's map (for peaks and region
vectors), the stages above a stop stride (the top-down excitation pass runs through
them only), the classifier head on pooled features (region labels) and the input
normalisation. Every backbone exposes exactly that.

Example::

    bb = get_backbone("efficientnet_lite0")
    x = bb.normalize(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
    fmap = bb.features(x)  # (1, bb.dim, H/32, W/32)
    logits = bb.classify(fmap.mean((2, 3)))  # (1, 1000)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

_CLASSES_FILE = Path(__file__).resolve().parents[1] / "imagenet_classes.json"


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in model output order (torchvision's spelling)."""
    names = json.loads(_CLASSES_FILE.read_text(encoding="utf-8"))
    if len(names) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE} holds {len(names)} names, expected 1000")
    return tuple(names)


class Backbone(nn.Module):
    """An ImageNet CNN as ``stages`` (each ending at a known stride) and a ``head`` classifier.

    Subclasses fill ``stages`` (nn.ModuleList), ``stage_strides`` (output stride of each
    stage, non-decreasing, last == ``stride``), ``head`` (pooled features -> logits),
    ``dim``, ``model_id`` and the normalisation ``mean``/``std`` (for pixels in [0, 1]).
    """

    model_id: str
    dim: int
    stride: int = 32
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stages: nn.ModuleList
    stage_strides: tuple[int, ...]
    head: nn.Module

    def _init_normalisation(self) -> None:
        """Pixels 0..255 -> normalised input as one multiply-add (buffers follow .to(device))."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("_shift", -mean / std, persistent=False)

    @property
    def categories(self) -> tuple[str, ...]:
        return imagenet_categories()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB pixel values in 0..255 (any float/uint8 dtype) -> network input."""
        return pixels.to(self._scale.dtype) * self._scale + self._shift

    def run_stages(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Run ``stages[start:end]``; DASR runs the part below the excitation stop without autograd."""
        for stage in self.stages[start:end]:
            x = stage(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input -> last conv block map (B, dim, ceil(H/32), ceil(W/32))."""
        return self.run_stages(x)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Average-pooled last-block features (B, dim) -> ImageNet logits (B, 1000)."""
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).mean((2, 3)))

    def stop_index(self, stop_stride: int) -> int:
        """How many stages lie below an excitation stop at ``stop_stride`` (0 = down to the input).

        The excitation pass then runs through ``stages[index:]`` and yields a map at
        ``stop_stride``. Why a stride rather than a layer name: it means the same thing on
        every backbone.
        """
        if stop_stride in (0, 1):
            return 0
        ends = [i + 1 for i, s in enumerate(self.stage_strides) if s == stop_stride]
        if not ends or stop_stride >= self.stride:
            valid = sorted({0, *(s for s in self.stage_strides if s < self.stride)})
            raise ValueError(f"{self.model_id}: no stage ends at stride {stop_stride}; valid stops: {valid}")
        return ends[-1]
