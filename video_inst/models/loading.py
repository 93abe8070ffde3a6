"""The one front door to the models of a process: the DASR and CLIP loaders.

Ingest, search, re-index and whitening all load their DASR extractor and CLIP embedder here,
so the configured backbone, input size, pooling and device mean the same everywhere. torch
and open_clip are imported only when a model is actually loaded.

Example::

    dasr = load_dasr(settings)                 # the configured DASR space
    clip, reason = load_clip(settings)         # (None, why) when CLIP weights are missing
"""

from __future__ import annotations

from typing import Any

from video_inst.config import Settings
from video_inst.errors import WeightsMissingError
from video_inst.models.device import resolve_device


def load_dasr(settings: Settings, device: str | None = None) -> Any:
    """The DASR extractor of the configured backbone and DASR parameters."""
    from video_inst.models.backbones import get_backbone
    from video_inst.models.dasr import DasrExtractor, DasrParams

    device = device or resolve_device(settings.device)
    weights = settings.resnet50_weights if settings.backbone == "resnet50" else None
    backbone = get_backbone(settings.backbone, device=device, weights=weights)
    params = DasrParams(
        input_size=settings.dasr_input_size, pooling=settings.dasr_pooling, tiles=settings.dasr_tiles
    )
    return DasrExtractor(backbone, params, device=device)


def load_clip(settings: Settings, device: str | None = None) -> tuple[Any | None, str | None]:
    """The CLIP embedder, or (None, reason) when its weights cannot be found offline.

    The plain "no weights here" case is answered without importing open_clip (seconds).
    """
    from video_inst.models.weights import clip_weights_surely_absent

    absent = clip_weights_surely_absent(settings)
    if absent is not None:
        return None, absent
    from video_inst.models.clip import ClipEmbedder

    try:
        return ClipEmbedder.load(settings, device=device or resolve_device(settings.device)), None
    except WeightsMissingError as exc:
        return None, exc.message
