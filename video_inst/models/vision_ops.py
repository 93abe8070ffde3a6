"""torchvision's compiled ``roi_align`` and ``nms`` kernels without importing the torchvision package.

Why: ``import torchvision.ops`` pulls in ``torchvision.models`` and ``torch._dynamo`` (2-7 s of
every ingest process's start on this machine, docs/INGEST.md) for two C++ kernels. This module
loads torchvision's own extension library (the file its ``extension.py`` loads) and calls the
same ``torch.ops.torchvision`` kernels with the same arguments as ``torchvision.ops``, so
results are bit-identical (tests compare both). Where the library cannot be found or loaded
it falls back to ``torchvision.ops``.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import torch

_LOCK = threading.Lock()
_STATE: dict[str, bool] = {}


def _load() -> bool:
    """Load torchvision's kernel library once; False when only the Python package can provide them."""
    with _LOCK:
        if "native" not in _STATE:
            _STATE["native"] = _load_library()
        return _STATE["native"]


def _load_library() -> bool:
    if hasattr(torch.ops.torchvision, "roi_align") and _has_op("roi_align"):
        return True  # torchvision (or this module) already loaded it
    spec = importlib.util.find_spec("torchvision")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    for name in ("_C_stable", "_C"):  # torchvision >= 0.26 ships _C_stable; older ones _C
        for lib in sorted(folder.glob(f"{name}.*")):
            if lib.suffix in (".so", ".pyd", ".dylib"):
                try:
                    torch.ops.load_library(str(lib))
                except (OSError, RuntimeError):
                    continue
                if _has_op("roi_align") and _has_op("nms"):
                    return True
    return False


def _has_op(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """``torchvision.ops.roi_align`` for an (R, 5) tensor of rois and a square output size."""
    if not _load():
        from torchvision.ops import roi_align as tv_roi_align

        return tv_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
    if rois.dim() != 2 or rois.size(1) != 5:
        raise ValueError(f"rois must be an (R, 5) tensor [frame, x0, y0, x1, y1], got {tuple(rois.shape)}")
    return torch.ops.torchvision.roi_align(
        input, rois, spatial_scale, output_size, output_size, sampling_ratio, aligned
    )


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``torchvision.ops.nms``: kept indices, by decreasing score."""
    if not _load():
        from torchvision.ops import nms as tv_nms

        return tv_nms(boxes, scores, iou_threshold)
    return torch.ops.torchvision.nms(boxes, scores, iou_threshold)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """``torchvision.ops.batched_nms``: NMS within each ``idxs`` group, the same two strategies."""
    if not _load():
        from torchvision.ops import batched_nms as tv_batched_nms

        return tv_batched_nms(boxes, scores, idxs, iou_threshold)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            curr = torch.where(idxs == class_id)[0]
            keep_mask[curr[nms(boxes[curr], scores[curr], iou_threshold)]] = True
        keep = torch.where(keep_mask)[0]
        return keep[scores[keep].sort(descending=True)[1]]
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)
