"""open_clip image and text embeddings in one space: keyframes, region crops and text queries.

Weights are found offline first (DESIGN.md §5): an explicit path from settings, then the
Hugging Face cache, then a download only where ``Settings.allow_download`` says so; otherwise
:class:`~video_inst.errors.WeightsMissingError` says which file to put where. Every vector is
tagged with :attr:`ClipEmbedder.space_name` (model + pretrained tag), so vectors of two models
never share an index.

Example::

    from video_inst.config import get_settings
    from video_inst.models.clip import ClipEmbedder

    clip = ClipEmbedder.load(get_settings(), device="cpu")
    frames = clip.embed_images([rgb_frame])          # (1, 512) float32, L2-normalised
    regions = clip.embed_crops(rgb_frame, [[10, 20, 200, 220]])
    query = clip.embed_texts(["a red car"])          # same space as the images
    clip.space_name                                  # 'clip:ViT-B-32:laion2b_s34b_b79k'

:func:`resolve_clip_weights` lives here because ``models/weights.py`` did not exist when this
module was written; it only depends on settings and can move there unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from video_inst.config import Settings
from video_inst.errors import InvalidQueryError, NotAnImageError, WeightsMissingError
from video_inst.models.space_names import clip_name, clip_random_name
from video_inst.models.weights import _env_true, hf_hub_cache_dir, hf_offline  # noqa: F401 (moved there)

# File names open_clip publishes on the Hugging Face Hub (open_clip/constants.py), safest first.
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_CONFIG_NAME = "open_clip_config.json"
_DIR_CANDIDATES = (
    HF_SAFE_WEIGHTS_NAME,
    "open_clip_pytorch_model.safetensors",
    HF_WEIGHTS_NAME,
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")

WeightsSource = Literal["settings", "hf_cache", "clip_cache", "download"]
_STAGING_BYTES = 256 << 20  # largest pinned upload buffer on CUDA

# "a photo of {}." style prompts: optional, see docs/CLIP_AND_LABELS.md (not measured: no weights here).
PHOTO_TEMPLATES: tuple[str, ...] = ("a photo of {}.", "a photo of the {}.", "a close-up photo of {}.")


@dataclass(frozen=True)
class Preprocess:
    """The inference transform of one checkpoint (what open_clip's ``PreprocessCfg`` holds)."""

    size: int = 224
    mean: tuple[float, float, float] = _OPENAI_MEAN
    std: tuple[float, float, float] = _OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # 'shortest' (+ centre crop), 'longest' (+ pad) or 'squash'

    def merged(self, overrides: dict[str, Any]) -> Preprocess:
        """A copy with the keys open_clip's pretrained registry or config file set for these weights."""
        values = {k: overrides[k] for k in _PREPROCESS_KEYS if overrides.get(k)}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return Preprocess(**{**self.__dict__, **values})


@dataclass(frozen=True)
class ClipWeights:
    """Where the weights of one (model, pretrained tag) pair were found, and how to feed them."""

    model_name: str
    pretrained: str
    checkpoint: Path
    source: WeightsSource
    preprocess: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# weights resolution
# ---------------------------------------------------------------------------------------------


def _hf_repo_and_files(hf_hub: str) -> tuple[str, list[str]]:
    """Split open_clip's ``'org/repo/'`` or ``'org/repo/file.bin'`` into a repo id and files to try."""
    repo_id, filename = os.path.split(hf_hub)  # exactly how open_clip.pretrained.download_pretrained splits
    if not filename:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    files = [filename]
    if filename.endswith((".bin", ".pth")):
        files.insert(0, filename[:-4] + ".safetensors")
    return repo_id, files


def _model_names() -> list[str]:
    import open_clip

    return open_clip.list_models()


def _pretrained_cfg(model_name: str, tag: str) -> dict[str, Any]:
    import open_clip

    return dict(open_clip.get_pretrained_cfg(model_name, tag) or {})


def _missing_message(model_name: str, tag: str, cfg: dict[str, Any], why: str) -> str:
    """The one message that says exactly which file to put where."""
    lines = [f"CLIP weights for model {model_name!r}, pretrained {tag!r} not found ({why})."]
    cache = hf_hub_cache_dir()
    if cfg.get("hf_hub"):
        repo_id, files = _hf_repo_and_files(cfg["hf_hub"])
        repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
        lines += [
            f"Get {files[0]} (or {files[-1]}) from https://huggingface.co/{repo_id} and either:",
            f"  - set VIDEO_INST_CLIP_WEIGHTS=/path/to/{files[0]} (the file, or the folder holding it);",
            f"  - or put it in the Hugging Face cache: {repo_dir}/snapshots/<revision>/{files[0]} "
            f"with the revision name in {repo_dir}/refs/main "
            f"(on a connected machine: `hf download {repo_id} {files[0]}`, then copy {repo_dir});",
        ]
    elif cfg.get("url"):
        name = os.path.basename(cfg["url"])
        lines += [
            f"Get {cfg['url']} and either set VIDEO_INST_CLIP_WEIGHTS=/path/to/{name}",
            f"  or put it at {Path('~/.cache/clip').expanduser() / name};",
        ]
    lines.append("  - or set VIDEO_INST_ALLOW_DOWNLOAD=1 (and unset HF_HUB_OFFLINE) where a network exists.")
    return "\n".join(lines)


def _from_settings_path(path: Path, model_name: str, tag: str, cfg: dict[str, Any]) -> ClipWeights:
    """An explicit file or Hugging Face style folder: the operator said where, so a miss is an error."""
    path = path.expanduser()
    if not path.exists():
        raise WeightsMissingError(
            f"VIDEO_INST_CLIP_WEIGHTS points to {path}, which does not exist. It must be an open_clip "
            f"checkpoint (.safetensors/.bin/.pt/.pth) or a folder holding {HF_SAFE_WEIGHTS_NAME} or "
            f"{HF_WEIGHTS_NAME}, for model {model_name!r}."
        )
    preprocess = {k: cfg[k] for k in _PREPROCESS_KEYS if cfg.get(k)}
    if path.is_dir():
        found = next((path / n for n in _DIR_CANDIDATES if (path / n).is_file()), None)
        if found is None:
            raise WeightsMissingError(
                f"The CLIP weights folder {path} holds none of {', '.join(_DIR_CANDIDATES)}; put "
                f"{HF_SAFE_WEIGHTS_NAME} (or {HF_WEIGHTS_NAME}) for model {model_name!r} there."
            )
        config = path / HF_CONFIG_NAME
        if config.is_file():
            with contextlib.suppress(ValueError, OSError):
                preprocess.update(json.loads(config.read_text()).get("preprocess_cfg", {}))
        path = found
    return ClipWeights(model_name, tag, path, "settings", preprocess)


def resolve_clip_weights(settings: Settings) -> ClipWeights:
    """Find the checkpoint for ``settings.clip_model`` / ``clip_pretrained`` without surprises.

    Order (DESIGN.md §5): ``settings.clip_weights``; the Hugging Face cache (and open_clip's own
    ``~/.cache/clip`` for URL-only tags); a download only when ``settings.allow_download`` and not
    HF_HUB_OFFLINE; else :class:`WeightsMissingError` naming the repo, file and places.
    """
    model_name, tag = settings.clip_model, settings.clip_pretrained
    if model_name not in _model_names():
        raise WeightsMissingError(
            f"Unknown CLIP model {model_name!r} (VIDEO_INST_CLIP_MODEL); open_clip knows e.g. "
            f"ViT-B-32, ViT-B-16, ViT-L-14 (open_clip.list_models() has them all)."
        )
    cfg = _pretrained_cfg(model_name, tag)
    if settings.clip_weights is not None:
        return _from_settings_path(Path(settings.clip_weights), model_name, tag, cfg)
    if not cfg:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise WeightsMissingError(
            f"Unknown pretrained tag {tag!r} for CLIP model {model_name!r} (VIDEO_INST_CLIP_PRETRAINED); "
            f"known tags: {', '.join(tags) or 'none'}. A custom checkpoint needs VIDEO_INST_CLIP_WEIGHTS."
        )
    preprocess = {k: cfg[k] for k in _PREPROCESS_KEYS if cfg.get(k)}

    cache = hf_hub_cache_dir()
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, files = _hf_repo_and_files(cfg["hf_hub"])
        for name in files:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=str(cache))
            if isinstance(hit, str) and Path(hit).is_file():
                return ClipWeights(model_name, tag, Path(hit), "hf_cache", preprocess)
    if cfg.get("url"):
        local = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if local.is_file():
            return ClipWeights(model_name, tag, local, "clip_cache", preprocess)

    if not settings.allow_download:
        raise WeightsMissingError(_missing_message(model_name, tag, cfg, "downloads are off"))
    if hf_offline():
        raise WeightsMissingError(_missing_message(model_name, tag, cfg, "HF_HUB_OFFLINE is set"))
    import open_clip

    try:
        target = open_clip.download_pretrained(cfg, cache_dir=str(cache) if cfg.get("hf_hub") else None)
    except Exception as exc:  # network, HTTP, disk: all mean "not here", say why
        raise WeightsMissingError(_missing_message(model_name, tag, cfg, f"download failed: {exc}")) from exc
    if not target or not Path(target).is_file():
        raise WeightsMissingError(_missing_message(model_name, tag, cfg, "download returned no file"))
    return ClipWeights(model_name, tag, Path(target), "download", preprocess)


# ---------------------------------------------------------------------------------------------
# the embedder
# ---------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """:func:`video_inst.models.device.resolve_device` as a ``torch.device``."""
    from video_inst.models.device import resolve_device as resolve

    return torch.device(resolve(None if device is None else str(device)))


def _build_model(model_name: str) -> torch.nn.Module:
    """The real open_clip architecture with random weights; nothing is downloaded."""
    import open_clip

    return open_clip.create_model(
        model_name,
        pretrained=None,
        load_weights=False,
        pretrained_image=False,
        pretrained_text=False,
        device="cpu",
    )


def _check_image(image: Any, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise NotAnImageError(
            f"{what} must be an RGB uint8 array of shape (H, W, 3); got shape {shape}, {dtype}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise NotAnImageError(f"{what} is empty: shape {image.shape}")
    return image


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A zero-copy tensor view; read-only arrays (decoded frames, PIL) are only ever read here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


class ClipEmbedder:
    """One loaded open_clip model: images, crops and texts to L2-normalised float32 vectors."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        model_name: str,
        space_name: str,
        preprocess: Preprocess,
        device: torch.device,
        precision: Literal["fp32", "bf16"] = "fp32",
    ) -> None:
        import open_clip

        self.model = model.eval().to(device)
        self.model_name = model_name
        self._space_name = space_name
        self.preprocess = preprocess
        self.device = device
        self.precision = precision
        self._stage_lock = threading.Lock()
        self._tokenizer = open_clip.get_tokenizer(model_name)
        cfg = open_clip.get_model_config(model_name) or {}
        self._dim = int(cfg.get("embed_dim") or self.embed_texts([""]).shape[1])

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        settings: Settings,
        device: str | torch.device | None = None,
        precision: Literal["fp32", "bf16"] | None = None,
    ) -> ClipEmbedder:
        """The configured model with real weights, or :class:`WeightsMissingError`.

        ``device=None`` uses ``settings.device`` ('auto' = CUDA where present). ``precision=None``
        means bf16 autocast on CUDA and fp32 on CPU (bf16 on CPU is slower there, not faster).
        """
        import open_clip

        weights = resolve_clip_weights(settings)
        model = _build_model(weights.model_name)
        try:
            open_clip.load_checkpoint(model, str(weights.checkpoint), strict=True, device="cpu")
        except Exception as exc:  # torch, safetensors and pickle each raise their own types
            raise WeightsMissingError(
                f"{weights.checkpoint} ({weights.source}) is not a usable checkpoint for CLIP model "
                f"{weights.model_name!r}: {str(exc).splitlines()[0][:300]}"
            ) from exc
        dev = resolve_device(device if device is not None else settings.device)
        image_size = getattr(model.visual, "image_size", 224)
        size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        return cls(
            model,
            model_name=weights.model_name,
            space_name=clip_name(weights.model_name, weights.pretrained),
            preprocess=Preprocess(size=size).merged(weights.preprocess),
            device=dev,
            precision=precision or ("bf16" if dev.type == "cuda" else "fp32"),
        )

    @classmethod
    def random_init(
        cls,
        model_name: str,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        precision: Literal["fp32", "bf16"] = "fp32",
    ) -> ClipEmbedder:
        """For tests and speed figures only: the real code paths with seeded random weights.

        Its space name ends in ``:random:s<seed>`` so such vectors never mix with real ones.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build_model(model_name)
        image_size = getattr(model.visual, "image_size", 224)
        size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        return cls(
            model,
            model_name=model_name,
            space_name=clip_random_name(model_name, seed),
            preprocess=Preprocess(size=size),
            device=resolve_device(device),
            precision=precision,
        )

    # --- identity --------------------------------------------------------------------------
    @property
    def space_name(self) -> str:
        """The model space every vector of this embedder belongs to (ARCHITECTURE.md)."""
        return self._space_name

    @property
    def dim(self) -> int:
        return self._dim

    # --- internals -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.device.type == "cuda" and self.precision == "bf16":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def _pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 → (N, 3, S, S) normalised float, as open_clip's eval transform does.

        On CPU the resize runs on uint8 (torchvision's antialiased path matches PIL's); on GPU it
        runs on float, which differs from PIL by less than one grey level.
        """
        p = self.preprocess
        s = p.size
        interp = InterpolationMode.BILINEAR if p.interpolation == "bilinear" else InterpolationMode.BICUBIC
        x = batch if batch.device.type == "cpu" else batch.float()
        h, w = x.shape[-2:]
        if p.resize_mode == "squash":
            x = TF.resize(x, [s, s], interpolation=interp, antialias=True)
        elif p.resize_mode == "longest":
            scale = s / max(h, w)
            x = TF.resize(x, [round(h * scale), round(w * scale)], interpolation=interp, antialias=True)
            x = TF.center_crop(x, [s, s])  # pads with 0, like open_clip's CenterCropOrPad
        else:
            x = TF.resize(x, [s], interpolation=interp, antialias=True)
            x = TF.center_crop(x, [s, s])
        x = x.float().clamp_(0, 255).round_() if x.dtype != torch.uint8 else x.float()
        mean = torch.tensor(p.mean, device=x.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(p.std, device=x.device).view(1, 3, 1, 1) * 255.0
        return (x - mean) / std

    def preprocess_images(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Model input for a list of RGB frames.

        CPU: each frame is resized on its own (no stacked copy of full-size frames). CUDA: frames
        of one size go up together through one reused pinned buffer and are resized on the GPU;
        a fresh host array per batch cost more in page faults than the resize itself.
        """
        arrays = [_check_image(im, f"image {i}") for i, im in enumerate(images)]
        out = torch.empty((len(arrays), 3, self.preprocess.size, self.preprocess.size), device=self.device)
        if self.device.type != "cuda":
            for i, a in enumerate(arrays):
                out[i] = self._pixels(_as_tensor(a).permute(2, 0, 1)[None])[0]
            return out
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(arrays):
            by_shape.setdefault(a.shape, []).append(i)
        with self._stage_lock:  # one process-wide embedder (models.loading): API threads share the buffer
            for shape, idx in by_shape.items():
                self._stage_shape(arrays, shape, idx, out)
        return out

    def _stage_shape(
        self, arrays: list[np.ndarray], shape: tuple[int, ...], idx: list[int], out: torch.Tensor
    ) -> None:
        """Frames of one shape through the pinned buffer to the device, resized there into ``out``."""
        frame_bytes = int(np.prod(shape))
        per_chunk = max(1, _STAGING_BYTES // frame_bytes)
        for start in range(0, len(idx), per_chunk):
            part = idx[start : start + per_chunk]
            staged = self._staging(len(part) * frame_bytes).view(len(part), *shape)
            host = staged.numpy()
            for j, i in enumerate(part):
                np.copyto(host[j], arrays[i])
            batch = staged.to(self.device)  # synchronous: the buffer is reused right after
            out[part] = self._pixels(batch.permute(0, 3, 1, 2))

    def _staging(self, nbytes: int) -> torch.Tensor:
        """A pinned host buffer of at least ``nbytes``, kept between calls."""
        buf = getattr(self, "_stage", None)
        if buf is None or buf.numel() < nbytes:
            buf = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
            self._stage = buf
        return buf[:nbytes]

    # --- public embedding API --------------------------------------------------------------
    def embed_images(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """One vector per RGB uint8 frame, (N, dim) float32, L2-normalised; batched."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = self.preprocess_images(chunk)
            with self._inference():
                feats = self.model.encode_image(pixels)
            out[start : start + len(chunk)] = F.normalize(feats.float(), dim=-1).cpu().numpy()
        return out

    def embed_crops(
        self,
        image: np.ndarray,
        boxes: Sequence[Sequence[float]] | np.ndarray,
        *,
        margin: float = 0.1,
        square: bool = True,
        batch_size: int = 32,
    ) -> np.ndarray:
        """One vector per box (x1, y1, x2, y2 in pixels of ``image``), (N, dim) L2-normalised.

        Each box grows by ``margin`` of its size on every side (CLIP sees a little context), then
        to a square of image content where the frame allows, so the centre crop of the model's
        transform does not cut off the ends of a tall or wide object.
        """
        image = _check_image(image, "image")
        crops = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in crop_windows(image.shape, boxes, margin, square)]
        if not crops:
            return np.empty((0, self.dim), dtype=np.float32)
        return self.embed_images(crops, batch_size=batch_size)

    def embed_texts(
        self, texts: Sequence[str], templates: Sequence[str] | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """One vector per text, (N, dim) float32, L2-normalised, in the image space.

        With ``templates`` (e.g. :data:`PHOTO_TEMPLATES`) each text is put in every template and
        the normalised results are averaged; without, the text is embedded as typed.
        """
        if isinstance(texts, str):
            raise InvalidQueryError("embed_texts takes a list of texts, not one string")
        for t in texts:
            if not isinstance(t, str):
                raise InvalidQueryError(f"text queries must be strings; got {type(t).__name__}")
        if not texts:
            return np.empty((0, getattr(self, "_dim", 0)), dtype=np.float32)
        prompts = [tpl.format(t) for t in texts for tpl in templates] if templates else list(texts)
        feats = []
        for start in range(0, len(prompts), batch_size):
            tokens = self._tokenizer(prompts[start : start + batch_size]).to(self.device)
            with self._inference():
                f = self.model.encode_text(tokens)
            feats.append(F.normalize(f.float(), dim=-1))
        vectors = torch.cat(feats)
        if templates:
            vectors = F.normalize(vectors.view(len(texts), len(templates), -1).mean(dim=1), dim=-1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)


def crop_windows(
    shape: tuple[int, ...],
    boxes: Sequence[Sequence[float]] | np.ndarray,
    margin: float = 0.1,
    square: bool = True,
) -> list[tuple[int, int, int, int]]:
    """Integer crop windows (x1, y1, x2, y2) for boxes, with context margin, inside the frame.

    Raises :class:`InvalidQueryError` for a box that is not finite, has no area or lies outside.
    """
    h, w = int(shape[0]), int(shape[1])
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.empty((0, 4))
    windows = []
    for i, (x1, y1, x2, y2) in enumerate(arr):
        if not np.all(np.isfinite([x1, y1, x2, y2])) or x2 <= x1 or y2 <= y1:
            raise InvalidQueryError(f"box {i} {[x1, y1, x2, y2]} is not a valid (x1, y1, x2, y2) box")
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            raise InvalidQueryError(f"box {i} {[x1, y1, x2, y2]} lies outside the {w}x{h} image")
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ww, hh = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
        if square:
            ww = hh = max(ww, hh)
        ww, hh = min(ww, w), min(hh, h)
        # shift the window into the frame rather than cutting it, so the object stays whole
        left = min(max(cx - ww / 2, 0.0), w - ww)
        top = min(max(cy - hh / 2, 0.0), h - hh)
        ix1, iy1 = int(np.floor(left)), int(np.floor(top))
        ix2, iy2 = max(ix1 + 1, min(w, int(np.ceil(left + ww)))), max(iy1 + 1, min(h, int(np.ceil(top + hh))))
        windows.append((ix1, iy1, ix2, iy2))
    return windows
