"""Backbone registry and its one front door, :func:`get_backbone`.

Example::

    from video_inst.models.backbones import get_backbone

    bb = get_backbone("efficientnet_lite0", device="cpu")  # offline default
    bb = get_backbone("resnet50", pretrained=False)  # random weights: plumbing/speed only
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from video_inst.models.backbones.base import Backbone, imagenet_categories
from video_inst.models.backbones.efficientnet_lite import EfficientNetLite0

__all__ = ["BACKBONES", "Backbone", "get_backbone", "imagenet_categories"]


def _resnet50(weights: Path | None = None, *, pretrained: bool = True) -> Backbone:
    """ResNet-50, imported on use: torchvision.models costs seconds of start-up (docs/INGEST.md)."""
    from video_inst.models.backbones.resnet import ResNet50

    return ResNet50(weights, pretrained=pretrained)


#: name -> constructor(weights, *, pretrained); names are what Settings.backbone accepts.
BACKBONES: dict[str, Callable[..., Backbone]] = {
    "efficientnet_lite0": EfficientNetLite0,
    "resnet50": _resnet50,
}


def get_backbone(
    name: str, *, device: str = "cpu", weights: Path | None = None, pretrained: bool = True
) -> Backbone:
    """Build a backbone by name, in eval mode on ``device``.

    ``weights`` overrides where the checkpoint is read from; ``pretrained=False`` gives
    random weights (tests and speed checks only: its vectors mean nothing).
    Raises ValueError for an unknown name and WeightsMissingError when weights are absent.
    """
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    model = factory(Path(weights) if weights is not None else None, pretrained=pretrained)
    # channels_last: ~4x faster convolutions on CPU (oneDNN), and the layout cuDNN prefers.
    model = model.to(torch.device(device), memory_format=torch.channels_last)
    return model.eval().requires_grad_(False)
