"""The one front door to the models of a process: DASR extractors and CLIP embedders.

Ingest, search, re-index and whitening all load their DASR extractor and CLIP embedder here,
so the configured backbone, input size, pooling and device mean the same everywhere; an
older model space's model is rebuilt here from its name alone (``load_space_model``, names
parsed by ``models.space_names``). torch and open_clip are imported only when a model is
actually loaded.

One cache per process (``shared_dasr`` / ``shared_clip`` / ``shared_space_model``): the API
server ingests and searches in one process, and a worker ingests video after video, so a
model is built once per set of model settings and every caller gets that same object.
``load_*`` build a fresh one (benchmarks, tests that want their own).

Example::

    dasr = shared_dasr(settings)               # the configured DASR space, loaded once
    clip, reason = shared_clip(settings)       # (None, why) when CLIP weights are missing
    old = shared_space_model("dasr:efficientnet_lite0:s512:avg", settings)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from video_inst.config import Settings
from video_inst.errors import ModelSpaceMismatchError, WeightsMissingError
from video_inst.models.device import resolve_device
from video_inst.models.space_names import family_of, parse_clip, parse_dasr


def load_dasr(settings: Settings, device: str | None = None) -> Any:
    """The DASR extractor of the configured backbone and DASR parameters."""
    from video_inst.models.backbones import get_backbone
    from video_inst.models.dasr import DasrExtractor, DasrParams

    device = device or resolve_device(settings.device)
    weights = settings.resnet50_weights if settings.backbone == "resnet50" else None
    backbone = get_backbone(settings.backbone, device=device, weights=weights)
    params = DasrParams(
        input_size=settings.dasr_input_size,
        pooling=settings.dasr_pooling,
        tiles=settings.dasr_tiles,
        tile_mode=settings.dasr_tile_mode,
        tile_size=settings.dasr_tile_size,
        tile_peaks=settings.dasr_tile_peaks,
        tile_dedupe_iou=settings.dasr_tile_dedupe,
    )
    return _ready_for_queries(DasrExtractor(backbone, params, device=device), settings)


def _ready_for_queries(dasr: Any, settings: Settings) -> Any:
    """Give a DASR extractor the query side's feature-map cache and forward-pass precision."""
    from video_inst.models.dasr import query_autocast
    from video_inst.models.feature_cache import FeatureMapCache

    dasr.query_cache = FeatureMapCache(settings.search_feature_cache)
    dasr.query_autocast = query_autocast(settings.search_precision, dasr.device)
    return dasr


_SHARED: dict[tuple, Any] = {}
_SHARED_LOCK = threading.Lock()  # two first requests in two threads must not each build a model


def _dasr_key(settings: Settings) -> tuple:
    return (
        "dasr",
        settings.backbone,
        str(settings.resnet50_weights),
        settings.dasr_input_size,
        settings.dasr_pooling,
        settings.dasr_tiles,
        settings.dasr_tile_mode,
        settings.dasr_tile_size,
        settings.dasr_tile_peaks,
        settings.dasr_tile_dedupe,
        settings.device,
        settings.search_feature_cache,
        settings.search_precision,
    )


def _clip_key(settings: Settings) -> tuple:
    return (
        "clip",
        settings.clip_model,
        settings.clip_pretrained,
        str(settings.clip_weights),
        settings.allow_download,
        settings.device,
    )


def _shared(key: tuple, build: Callable[[], Any]) -> Any:
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = build()
        return _SHARED[key]


def shared_dasr(settings: Settings) -> Any:
    """This process's DASR extractor for these settings (built on first use, then reused)."""
    return _shared(_dasr_key(settings), lambda: load_dasr(settings))


def shared_clip(settings: Settings) -> tuple[Any | None, str | None]:
    """This process's CLIP embedder, or (None, reason); the answer is kept like the model."""
    return _shared(_clip_key(settings), lambda: load_clip(settings))


def shared_space_model(space_name: str, settings: Settings) -> Any:
    """The model of an older space (answering during a re-index), rebuilt once per process."""
    key = ("space", space_name, _dasr_key(settings), _clip_key(settings))
    return _shared(key, lambda: load_space_model(space_name, settings))


def models_loaded(settings: Settings) -> bool:
    """Whether this process already holds the configured DASR and CLIP answers."""
    with _SHARED_LOCK:
        return _dasr_key(settings) in _SHARED and _clip_key(settings) in _SHARED


def forget_models() -> None:
    """Drop every shared model (tests that change what the same settings would load)."""
    with _SHARED_LOCK:
        _SHARED.clear()


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


def load_space_model(space_name: str, settings: Settings) -> Any:
    """The extractor / embedder that made ``space_name``, rebuilt from the name alone.

    Space names carry every parameter that changes vector values (backbone id, input size,
    pooling; CLIP model and pretrained tag), so a query can be embedded into an older space
    while a re-index fills the new one. Raises ModelSpaceMismatchError when this machine cannot
    rebuild that exact model, WeightsMissingError when its weights are absent.
    """
    if family_of(space_name) == "dasr":
        return _load_dasr_space(space_name, settings)
    return _load_clip_space(space_name, settings)


def _load_dasr_space(space_name: str, settings: Settings) -> Any:
    from video_inst.models.backbones import get_backbone
    from video_inst.models.dasr import DasrExtractor, DasrParams

    parts = parse_dasr(space_name)
    if parts.model_id.endswith(":random"):
        raise ModelSpaceMismatchError(
            f"model space {space_name!r} was made by randomly initialised weights; it cannot be rebuilt"
        )
    name = parts.model_id.split(":", 1)[0]
    weights = settings.resnet50_weights if name == "resnet50" else None
    device = resolve_device(settings.device)
    backbone = get_backbone(name, device=device, weights=weights)
    params = DasrParams(
        input_size=parts.input_size,
        pooling=parts.pooling,  # type: ignore[arg-type]
        tiles=parts.tiles,
        tile_mode=parts.tile_mode,  # type: ignore[arg-type]
        tile_size=parts.tile_size,
        **({"gem_p": parts.gem_p} if parts.gem_p is not None else {}),
    )
    dasr = DasrExtractor(backbone, params, device=device)
    if dasr.space_name != space_name:
        raise ModelSpaceMismatchError(
            f"model space {space_name!r} cannot be rebuilt here: these weights give {dasr.space_name!r}"
        )
    return _ready_for_queries(dasr, settings)


def _load_clip_space(space_name: str, settings: Settings) -> Any:
    from video_inst.models.clip import ClipEmbedder

    parts = parse_clip(space_name)
    if parts.seed is not None:  # test and benchmark spaces: the name records the seed, so it is exact
        return ClipEmbedder.random_init(parts.model, settings.device, seed=parts.seed)
    same = (parts.model, parts.pretrained) == (settings.clip_model, settings.clip_pretrained)
    update: dict[str, Any] = {"clip_model": parts.model, "clip_pretrained": parts.pretrained}
    if not same:
        update["clip_weights"] = None  # the configured file belongs to the configured model
    clip = ClipEmbedder.load(settings.model_copy(update=update))
    if clip.space_name != space_name:
        raise ModelSpaceMismatchError(
            f"model space {space_name!r} cannot be rebuilt: got {clip.space_name!r}"
        )
    return clip
