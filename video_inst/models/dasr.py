"""DASR / DASR*: salient regions of a frame and their vectors from one CNN forward plus a top-down pass.

Xiao, Zhao et al., "Deeply Activated Salient Region for Instance Search" (ACM TOMM
2022), as DESIGN.md §3: last conv block -> channel-mean map -> local-maximum peaks ->
excitation back-propagation from each peak (batched over frames, through the
backbone's stages above ``excite_stop``) -> saliency map -> threshold -> second-moment
ellipse -> its bounding rectangle -> NMS (DASR*) -> ROI-pooled, L2-normalised region
vectors, plus the whole frame as one more region. The query side pools a box of the
query image's own feature map exactly like a database region.

Example::

    from video_inst.models.backbones import get_backbone
    from video_inst.models.dasr import DasrExtractor, DasrParams

    dasr = DasrExtractor(get_backbone("efficientnet_lite0"), DasrParams())
    regions = dasr.extract([rgb_frame])[0]  # boxes in source pixels, row 0 = whole frame
    q = dasr.embed_query(photo, (10, 20, 200, 180))  # comparable with regions.vectors
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from video_inst.errors import InvalidQueryError, NotAnImageError
from video_inst.models.backbones.base import Backbone
from video_inst.models.backbones.excitation import excitation_rule
from video_inst.models.dasr_params import DTYPE_NAMES, DasrParams
from video_inst.models.feature_cache import FeatureMapCache
from video_inst.models.vision_ops import batched_nms, nms, roi_align

_ROI_BINS = 3  # roi_align output bins per side (adaptive sampling inside each bin)
_DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.bfloat16, torch.float16), strict=True))


@dataclass
class FrameRegions:
    """Regions of one frame; row 0 is the whole frame when ``include_frame`` (``is_frame``)."""

    boxes: np.ndarray  # (N, 4) float32, x0 y0 x1 y1 in source pixels
    scores: np.ndarray  # (N,) float32 peak value (channel-mean activation); frame row: map mean
    vectors: np.ndarray  # (N, dim) float32, L2-normalised
    is_frame: np.ndarray  # (N,) bool
    label_ids: np.ndarray  # (N, k) int64 ImageNet class ids, best first
    label_probs: np.ndarray  # (N, k) float32 softmax probabilities

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class QueryEmbedding:
    """A query crop's vector (same space as region vectors) and its ImageNet labels."""

    vector: np.ndarray  # (dim,) float32, L2-normalised
    box: tuple[float, float, float, float]  # the box used, source pixels (whole image when none given)
    label_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class Peaks(NamedTuple):
    """Peaks of a batch of maps, sorted by frame then value (descending); ``slot`` = rank in frame."""

    frame: torch.Tensor  # (K,) int64
    slot: torch.Tensor  # (K,) int64
    y: torch.Tensor  # (K,) int64
    x: torch.Tensor  # (K,) int64
    value: torch.Tensor  # (K,) float


class Saliency(NamedTuple):
    """Intermediate result of one batch: last-block features, peaks and their raw top-down maps."""

    feats: torch.Tensor  # (B, dim, H/32, W/32) float32
    peaks: Peaks
    maps: torch.Tensor  # (K, h, w) at the stop stride, summed over channels, clamped at 0
    image_hw: tuple[int, int]  # network input size


# --------------------------------------------------------------------------- peaks


def find_peaks(amap: torch.Tensor, *, keep_above_mean: bool, max_peaks: int, radius: int = 1) -> Peaks:
    """Local maxima of (B, H, W) maps: 3x3 maximum, value > 0, not on the border.

    On a plateau of equal values only the first cell in raster order counts (a peak must
    beat its earlier neighbours strictly and the later ones or tie), so a flat object
    yields one peak, not one per cell. ``radius`` > 1 also asks for the maximum of the
    (2r+1)^2 window (fewer, farther-apart peaks). ``keep_above_mean`` is DASR's rule
    (value >= the map's mean); at most ``max_peaks`` per frame, strongest first.
    """
    b, h, w = amap.shape
    amap = amap.float()
    padded = F.pad(amap[:, None], (1, 1, 1, 1), value=float("-inf"))
    neigh = F.unfold(padded, 3).view(b, 9, h, w)  # raster order; index 4 is the centre
    earlier = neigh[:, :4].amax(1)
    later = neigh[:, 5:].amax(1)
    is_peak = (amap > earlier) & (amap >= later) & (amap > 0)
    if radius > 1:
        is_peak &= amap >= F.max_pool2d(amap[:, None], 2 * radius + 1, 1, radius)[:, 0]
    border = torch.ones_like(is_peak)
    border[:, 1:-1, 1:-1] = False
    is_peak &= ~border
    if keep_above_mean:
        is_peak &= amap >= amap.mean((1, 2), keepdim=True)
    k = min(max_peaks, h * w)
    empty = torch.zeros(0, dtype=torch.long, device=amap.device)
    if k == 0:
        return Peaks(empty, empty, empty, empty, amap.new_zeros(0))
    scored = torch.where(is_peak, amap, torch.full_like(amap, float("-inf"))).view(b, -1)
    values, flat = scored.topk(k, dim=1)  # sorted descending
    keep = torch.isfinite(values)
    frame = torch.arange(b, device=amap.device)[:, None].expand(b, k)[keep]
    slot = torch.arange(k, device=amap.device)[None, :].expand(b, k)[keep]
    flat = flat[keep]
    return Peaks(frame, slot, flat // w, flat % w, values[keep])


# --------------------------------------------------------------------------- saliency -> boxes


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (K, H, W) maps (sigma in cells; zero padding keeps mass local)."""
    if sigma <= 0 or maps.numel() == 0:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kern = torch.exp(-0.5 * (t / sigma) ** 2)
    kern = kern / kern.sum()
    x = maps[:, None]
    x = F.conv2d(x, kern.view(1, 1, 1, -1), padding=(0, radius))
    x = F.conv2d(x, kern.view(1, 1, -1, 1), padding=(radius, 0))
    return x[:, 0]


def ellipse_boxes(mask: torch.Tensor, cell: float, scale: float) -> torch.Tensor:
    """Boxes (K, 4) circumscribing the second-moment ellipses of (K, H, W) masks (bool or weights >= 0).

    Cell (i, j) covers [j*cell, (j+1)*cell) x [i*cell, (i+1)*cell); its variance
    cell^2/12 is added so one kept cell still has an extent. With semi-axes
    ``scale * sqrt(eigenvalue)`` the axis-aligned rectangle around the (rotated)
    ellipse has half-sides ``scale * sqrt(var_x)`` and ``scale * sqrt(var_y)``: no
    eigen-decomposition is needed. For a filled ellipse of pixels, scale 2 gives its own box.
    """
    k, h, w = mask.shape
    m = mask.to(torch.float32)
    n = m.sum((1, 2)).clamp(min=1e-12)
    xs = (torch.arange(w, device=mask.device, dtype=torch.float32) + 0.5) * cell
    ys = (torch.arange(h, device=mask.device, dtype=torch.float32) + 0.5) * cell
    col = m.sum(1)  # (K, W): mass per column
    row = m.sum(2)  # (K, H)
    mx = (col * xs).sum(1) / n
    my = (row * ys).sum(1) / n
    vx = (col * (xs - mx[:, None]) ** 2).sum(1) / n + cell * cell / 12
    vy = (row * (ys - my[:, None]) ** 2).sum(1) / n + cell * cell / 12
    hw, hh = scale * vx.sqrt(), scale * vy.sqrt()
    return torch.stack([mx - hw, my - hh, mx + hw, my + hh], dim=1)


def peak_component(mask: torch.Tensor, seed: torch.Tensor, check_every: int = 8) -> torch.Tensor:
    """The 8-connected component of each (K, H, W) mask that contains its ``seed`` (flat index).

    Grown by repeated 3x3 dilation inside the mask, all maps at once (no loop over
    pixels or peaks); convergence is checked every ``check_every`` steps to limit syncs.
    A seed outside its mask gives an empty component.
    """
    k, h, w = mask.shape
    m = mask[:, None].float()
    grown = torch.zeros(k, h * w, device=mask.device)
    grown[torch.arange(k, device=mask.device), seed] = 1.0
    grown = grown.view(k, 1, h, w) * m
    for _ in range(0, h + w, check_every):
        before = grown
        for _ in range(check_every):
            grown = F.max_pool2d(grown, 3, 1, 1) * m
        if torch.equal(grown, before):
            break
    else:  # a winding component can be longer than h + w: finish it
        while True:
            nxt = F.max_pool2d(grown, 3, 1, 1) * m
            if torch.equal(nxt, grown):
                break
            grown = nxt
    return grown[:, 0] > 0


def saliency_boxes(
    maps: torch.Tensor,
    *,
    cell: float,
    image_hw: tuple[int, int],
    threshold: Literal["percentile", "relative", "mass"],
    tau: float,
    scale: float,
    component: bool = False,
    weighted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Saliency maps (K, H, W) -> boxes (K, 4) in input pixels clipped to the image, and a validity mask.

    Kept pixels: ``percentile`` those at or above the map's tau-th percentile (a fixed share
    of the frame, the paper's rule); ``relative`` those >= tau x the map's own peak;
    ``mass`` the strongest pixels that together hold a tau share of the map's total
    (adapts to both the spread and the size of the evidence). ``component`` then keeps
    only the kept pixels 8-connected to the map's maximum, so a distant second blob
    does not stretch the ellipse; ``weighted`` takes the moments of the kept pixels
    weighted by their saliency. A map with no positive mass, or whose box collapses
    after clipping, is invalid.
    """
    k = maps.shape[0]
    flat = maps.flatten(1).float()  # not reshape(k, -1): ambiguous when k == 0 (no peaks)
    peak = flat.amax(1) if k else flat.new_zeros(0)
    if k == 0:
        thr = peak
    elif threshold == "percentile":
        thr = torch.quantile(flat, tau / 100.0, dim=1)
    elif threshold == "relative":
        thr = tau * peak
    else:
        ranked = flat.sort(1, descending=True).values
        cum = ranked.cumsum(1)
        idx = (cum < tau * cum[:, -1:]).sum(1).clamp(max=flat.shape[1] - 1)
        thr = ranked.gather(1, idx[:, None])[:, 0]
    mask = ((flat >= thr[:, None]) & (flat > 0)).view_as(maps)
    if component and k:
        mask = peak_component(mask, flat.argmax(1))
    boxes = ellipse_boxes(maps.float() * mask if weighted else mask, cell, scale)
    h, w = image_hw
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    valid = (peak > 0) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes, valid


def activation_boxes(
    amap: torch.Tensor,
    peaks: Peaks,
    *,
    stride: int,
    tau: float,
    scale: float,
    image_hw: tuple[int, int],
    up: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (K, 4) in input px of each peak's blob in its own (B, h, w) activation map, and a validity mask.

    The map is upsampled ``up`` times (bilinear); kept: the cells 8-connected to the peak whose
    value is at least ``mean + tau x (peak - mean)`` of the frame's map (the background of a
    post-activation map is positive, so a threshold relative to zero would grow into it); the
    box is the second-moment ellipse's rectangle, as ``ellipse_boxes``. No top-down pass.
    """
    k = len(peaks.frame)
    if k == 0:
        return amap.new_zeros(0, 4), torch.zeros(0, dtype=torch.bool, device=amap.device)
    b, h, w = amap.shape
    fine = F.interpolate(amap[:, None].float(), scale_factor=up, mode="bilinear", align_corners=False)[:, 0]
    maps = fine[peaks.frame]  # (K, up*h, up*w)
    seed = (peaks.y * up + up // 2) * (up * w) + peaks.x * up + up // 2
    top = maps.flatten(1).gather(1, seed[:, None])[:, 0]
    base = amap.float().mean((1, 2))[peaks.frame]
    thr = base + tau * (top - base)
    mask = peak_component(maps >= thr[:, None, None], seed)
    boxes = ellipse_boxes(mask, stride / up, scale)
    ih, iw = image_hw
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, iw)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, ih)
    valid = (top > base) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return boxes, valid


# --------------------------------------------------------------------------- pooling


def pool_boxes(
    fmap: torch.Tensor, rois: torch.Tensor, *, stride: int, pooling: str, gem_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """ROI-pool (R, 5) rois [frame, x0, y0, x1, y1] (input px) -> (vectors L2-normalised, average-pooled).

    The average-pooled features feed the classifier head (labels); the returned vectors
    use ``pooling``. Why roi_align: sub-cell boxes interpolate instead of snapping to cells.
    """
    if rois.shape[0] == 0:
        empty = fmap.new_zeros(0, fmap.shape[1])
        return empty, empty
    samples = roi_align(
        fmap, rois, output_size=_ROI_BINS, spatial_scale=1.0 / stride, sampling_ratio=0, aligned=True
    )
    avg = samples.mean((2, 3))
    vec = avg if pooling == "avg" else samples.clamp(min=1e-6).pow(gem_p).mean((2, 3)).pow(1.0 / gem_p)
    return F.normalize(vec, dim=1), avg


def _frame_pool(fmap: torch.Tensor, pooling: str, gem_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-frame pooling: the exact global average the classifier was trained on (or GeM)."""
    avg = fmap.mean((2, 3))
    vec = avg if pooling == "avg" else fmap.clamp(min=1e-6).pow(gem_p).mean((2, 3)).pow(1.0 / gem_p)
    return F.normalize(vec, dim=1), avg


# --------------------------------------------------------------------------- extractor


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays.

    Elsewhere oneDNN emulates it and a bfloat16 forward pass is slower than float32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def query_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a query's forward pass (None = float32) for ``Settings.search_precision``."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and native_cpu_bf16() else None


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise NotAnImageError(f"{what} must be an (H, W, 3) uint8 RGB array, got shape {shape} dtype {dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise NotAnImageError(f"{what} is empty (shape {image.shape})")
    return image


class DasrExtractor:
    """Runs DASR / DASR* over batches of RGB frames with one backbone on one device."""

    def __init__(
        self, backbone: Backbone, params: DasrParams | None = None, device: str | None = None
    ) -> None:
        self.params = params or DasrParams()
        self.device = torch.device(device) if device is not None else backbone.device
        self.backbone = backbone.to(self.device).eval().requires_grad_(False)
        self._stop = backbone.stop_index(self.params.excite_stop)
        self._stop_stride = self.params.excite_stop if self._stop > 0 else 1
        dtype = _DTYPES[self.params.dtype]
        if dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError("DasrParams.dtype float16 needs a CUDA device; use bfloat16 or float32")
        self._autocast_dtype = dtype if dtype != torch.float32 else None
        # Feature maps of recent query images (``query``); off unless a searcher turns it on.
        self.query_cache = FeatureMapCache(0)
        # Autocast dtype of a query's forward pass (None: float32); a searcher may choose
        # bfloat16 where the device runs it natively (Settings.search_precision).
        self.query_autocast: torch.dtype | None = self._autocast_dtype

    @property
    def space_name(self) -> str:
        return self.params.space_name(self.backbone.model_id)

    @property
    def dim(self) -> int:
        return self.backbone.dim

    # ---- input ---------------------------------------------------------------

    def _resize(self, image: np.ndarray, side: int = 0) -> np.ndarray:
        """Longer side -> ``side`` (default input_size; area filter when shrinking), aspect kept."""
        h, w = image.shape[:2]
        s = (side or self.params.input_size) / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        if size == (w, h):
            return np.ascontiguousarray(image)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)

    def _to_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Equal-size HWC uint8 images -> normalised (B, 3, H, W), channels_last like the backbone."""
        x = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        return self.backbone.normalize(x.permute(0, 3, 1, 2).float())

    def _autocast(self, dtype: torch.dtype | None = None):
        dtype = dtype or self._autocast_dtype
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    # ---- frames ----------------------------------------------------------------

    def extract(self, frames: Sequence[np.ndarray]) -> list[FrameRegions]:
        """Regions of every frame; frames may differ in size (batched per resized shape)."""
        frames = [_check_image(f, f"frame {i}") for i, f in enumerate(frames)]
        resized = [self._resize(f) for f in frames]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(resized):
            groups[r.shape].append(i)
        out: list[FrameRegions | None] = [None] * len(frames)
        bs = self.params.batch_size
        with torch.inference_mode(False):
            for idxs in groups.values():
                for start in range(0, len(idxs), bs):
                    chunk = idxs[start : start + bs]
                    results = self._extract_batch([resized[i] for i in chunk])
                    for i, res in zip(chunk, results, strict=True):
                        out[i] = _to_source(res, frames[i].shape, resized[i].shape)
        if self.params.tiles > 1:
            out = [_merge(res, self._tile_regions(f, res)) for res, f in zip(out, frames, strict=True)]
        return out  # type: ignore[return-value]

    def _tile_regions(self, frame: np.ndarray, whole: FrameRegions) -> FrameRegions:
        """Regions of an N x N grid of overlapping tiles, each at ``tile_size`` input px, in frame pixels.

        Why: an object under about 1 % of the frame spans less than one stride-32 cell of the
        whole-frame pass and never makes its own peak; in a tile it is N times larger. Only boxes
        under ``tile_max_area`` of the frame are kept (the whole-frame pass covers the rest).
        ``tile_mode="forward"`` finds them without backward passes (``_forward_regions``);
        ``tile_dedupe_iou`` drops tile boxes that repeat a kept tile box or one of ``whole``.
        """
        p = self.params
        peaks = p.tile_peaks or p.max_peaks
        run = self._forward_regions if p.tile_mode == "forward" else self._extract_batch
        h, w = frame.shape[:2]
        n, overlap = p.tiles, 0.125
        tw, th = w / (n - (n - 1) * overlap), h / (n - (n - 1) * overlap)
        crops, offsets = [], []
        for r in range(n):
            for c in range(n):
                x0, y0 = round(c * tw * (1 - overlap)), round(r * th * (1 - overlap))
                x1, y1 = min(w, round(x0 + tw)), min(h, round(y0 + th))
                crops.append(frame[y0:y1, x0:x1])
                offsets.append((x0, y0))
        resized = [self._resize(cr, p.tile_size) for cr in crops]
        parts = []
        for start in range(0, len(crops), p.batch_size):
            idx = range(start, min(start + p.batch_size, len(crops)))
            same = [resized[i] for i in idx]
            if len({r.shape for r in same}) > 1:  # edge tiles may differ by a pixel: one at a time
                results = [run([r], peaks)[0] for r in same]
            else:
                results = run(same, peaks)
            for i, res in zip(idx, results, strict=True):
                res = _to_source(res, crops[i].shape, resized[i].shape)
                res.boxes = res.boxes + np.array([*offsets[i], *offsets[i]], dtype=np.float32)
                parts.append(res)
        regions = _concat(parts)
        area = (regions.boxes[:, 2] - regions.boxes[:, 0]) * (regions.boxes[:, 3] - regions.boxes[:, 1])
        keep = ~regions.is_frame & (area < p.tile_max_area * w * h)
        regions = _select(regions, keep)
        if p.tile_dedupe_iou > 0 and len(regions):
            regions = _select(regions, _dedupe(regions, whole.boxes[~whole.is_frame], p.tile_dedupe_iou))
        return regions

    def _extract_batch(self, images: list[np.ndarray], max_peaks: int = 0) -> list[FrameRegions]:
        return self._regions(self._saliency(images, max_peaks))

    def _forward_regions(self, images: list[np.ndarray], max_peaks: int = 0) -> list[FrameRegions]:
        """Regions from one forward pass: peaks of the activation map, boxes from its blob around each.

        Why: the top-down passes cost about 3.6x the forward pass of a keyframe on a CPU; a small
        object spans one or two cells of a tile's map, where the activation blob itself already
        bounds it about as well as the excitation map would. Boxes as ``activation_boxes``.
        """
        p, bb = self.params, self.backbone
        x = self._to_input(images)
        with torch.no_grad():
            with self._autocast():
                fmap = bb.features(x)
            feats = fmap.float()
            amap = feats.mean(1)
            n = max_peaks or p.max_peaks
            peaks = find_peaks(amap, keep_above_mean=p.keep_above_mean, max_peaks=n, radius=p.peak_radius)
            hw = (x.shape[-2], x.shape[-1])
            levels = (p.tau, *p.extra_taus) if p.threshold == "relative" else (0.7, 0.4)
            found = [
                activation_boxes(amap, peaks, stride=bb.stride, tau=t, scale=p.tile_box_scale, image_hw=hw)
                for t in levels
            ]
            boxes = torch.cat([b for b, _ in found])
            valid = torch.cat([v for _, v in found])
            k = len(peaks.frame)
            level = torch.arange(len(levels), device=boxes.device).repeat_interleave(k)[valid]
            frame_of = peaks.frame.repeat(len(levels))[valid]
            boxes, scores = boxes[valid], peaks.value.repeat(len(levels))[valid]
            if len(boxes):
                keep = batched_nms(boxes, scores, frame_of * len(levels) + level, p.nms_iou)
                frame_of, boxes, scores = frame_of[keep], boxes[keep], scores[keep]
            return self._describe(feats, frame_of, boxes, scores, hw)

    def _saliency(self, images: list[np.ndarray], max_peaks: int = 0) -> Saliency:
        """Forward (graph kept above the stop stage), peaks, one raw top-down map per peak."""
        p, bb = self.params, self.backbone
        x = self._to_input(images)
        with self._autocast():
            with torch.no_grad():
                low = bb.run_stages(x, 0, self._stop)
            low = low.detach().requires_grad_(True)
            with torch.enable_grad(), excitation_rule(bb.stages[self._stop :], p.excite_eps):
                fmap = bb.run_stages(low, self._stop)
        feats = fmap.detach().float()
        peaks = find_peaks(
            feats.mean(1),
            keep_above_mean=p.keep_above_mean,
            max_peaks=max_peaks or p.max_peaks,
            radius=p.peak_radius,
        )
        with torch.no_grad():
            maps = self._excite(low, fmap, feats, peaks)
        return Saliency(feats, peaks, maps, (x.shape[-2], x.shape[-1]))

    def _regions(self, sal: Saliency) -> list[FrameRegions]:
        """Saliency maps -> smoothed, thresholded, ellipse boxes -> NMS -> pooled, labelled regions."""
        p = self.params
        with torch.no_grad():
            maps = gaussian_smooth(sal.maps.float(), p.smooth_sigma / self._stop_stride)
            levels = (p.tau, *p.extra_taus)
            found = [
                saliency_boxes(
                    maps, cell=self._stop_stride, image_hw=sal.image_hw, threshold=p.threshold, tau=tau,
                    scale=p.ellipse_scale, component=p.component, weighted=p.moments == "weighted",
                )
                for tau in levels
            ]  # fmt: skip
            boxes = torch.cat([b for b, _ in found])
            valid = torch.cat([v for _, v in found])
            k = len(sal.peaks.frame)
            level = torch.arange(len(levels), device=boxes.device).repeat_interleave(k)[valid]
            frame_of = sal.peaks.frame.repeat(len(levels))[valid]
            boxes, scores = boxes[valid], sal.peaks.value.repeat(len(levels))[valid]
            if p.peak_mode == "dasr_star" and len(boxes):  # NMS within each threshold level
                keep = batched_nms(boxes, scores, frame_of * len(levels) + level, p.nms_iou)
                frame_of, boxes, scores = frame_of[keep], boxes[keep], scores[keep]
            return self._describe(sal.feats, frame_of, boxes, scores, sal.image_hw)

    def _excite(
        self, low: torch.Tensor, fmap: torch.Tensor, feats: torch.Tensor, peaks: Peaks
    ) -> torch.Tensor:
        """Top-down maps (K, h, w) at the stop stride, one per peak, summed over channels, clamped at 0.

        Peaks are independent signals through one recorded graph. ``slots`` (default):
        one backward per peak rank, each carrying that rank's peak of every frame
        (<= max_peaks passes, the graph reused). ``vmap``: all ranks in one vmapped
        backward (measured slower on CPU with torch 2.x: convolution batching falls back
        to loops). ``expand``: re-run the upper stages with one batch row per peak and
        one backward of the summed objective (recomputes the forward).
        """
        k = peaks.frame.shape[0]
        b, d, fh, fw = feats.shape
        if k == 0:
            return feats.new_zeros(0, *low.shape[-2:])
        if self.params.top_signal == "uniform":
            weights = feats.new_full((k, d), 1.0 / d)
        else:  # each channel's share of the peak's channel-mean value
            weights = feats[peaks.frame, :, peaks.y, peaks.x].clamp(min=0)
            weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
        weights = weights.to(fmap.dtype)
        mode = self.params.excite_batching
        if mode == "expand":
            rows = low.detach()[peaks.frame].requires_grad_(True)
            with torch.enable_grad(), self._autocast(), excitation_rule(self.backbone.stages[self._stop :]):
                top = self.backbone.run_stages(rows, self._stop)
                ar = torch.arange(k, device=top.device)
                objective = (top[ar, :, peaks.y, peaks.x] * weights).sum()
            (grad,) = torch.autograd.grad(objective, rows)
            return grad.float().sum(1).clamp(min=0)
        slots = int(peaks.slot.max()) + 1
        if mode == "vmap":
            signal = fmap.new_zeros(slots, b, d, fh, fw)
            signal[peaks.slot, peaks.frame, :, peaks.y, peaks.x] = weights
            (grad,) = torch.autograd.grad(fmap, low, signal, is_grads_batched=True)
            return grad.float().sum(2)[peaks.slot, peaks.frame].clamp(min=0)
        maps = []
        for s in range(slots):  # <= max_peaks passes; each carries one peak of every frame
            sel = peaks.slot == s
            signal = torch.zeros_like(fmap, memory_format=torch.channels_last)
            signal[peaks.frame[sel], :, peaks.y[sel], peaks.x[sel]] = weights[sel]
            (grad,) = torch.autograd.grad(fmap, low, signal, retain_graph=s < slots - 1)
            maps.append(grad.float().sum(1)[peaks.frame[sel]])
        out = torch.cat(maps)  # slot-major order -> back to the order of ``peaks``
        order = torch.cat([torch.nonzero(peaks.slot == s)[:, 0] for s in range(slots)])
        return torch.empty_like(out).index_copy_(0, order, out).clamp(min=0)

    def _describe(
        self,
        feats: torch.Tensor,
        frame_of: torch.Tensor,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> list[FrameRegions]:
        """Pool, label and split per frame: whole-frame row first, then regions by score."""
        p, bb = self.params, self.backbone
        b = feats.shape[0]
        order = torch.argsort(-scores, stable=True)
        order = order[torch.argsort(frame_of[order], stable=True)]
        frame_of, boxes, scores = frame_of[order], boxes[order], scores[order]
        rois = torch.cat([frame_of[:, None].to(boxes.dtype), boxes], dim=1)
        reg_vec, reg_avg = pool_boxes(feats, rois, stride=bb.stride, pooling=p.pooling, gem_p=p.gem_p)
        fr_vec, fr_avg = _frame_pool(feats, p.pooling, p.gem_p)
        label_p, label_i = bb.classify(torch.cat([fr_avg, reg_avg])).float().softmax(1).topk(p.label_top_k, 1)
        # rows 0..b-1 of label_p/label_i are the frames, then the regions in frame order
        h, w = image_hw
        frame_boxes = boxes.new_tensor([[0.0, 0.0, w, h]]).expand(b, 4)
        frame_scores = feats.mean(1).mean((1, 2))
        # One transfer to host memory, then split per frame with numpy.
        host = [
            t.detach().cpu().numpy()
            for t in (frame_of, boxes.float(), scores.float(), reg_vec, label_i, label_p.float(), frame_boxes,
                      frame_scores, fr_vec)
        ]  # fmt: skip
        frame_np, box_np, score_np, vec_np, ids_np, prob_np, fbox_np, fscore_np, fvec_np = host
        bounds = np.searchsorted(frame_np, np.arange(b + 1))
        out = []
        for i in range(b):
            rows = slice(b + bounds[i], b + bounds[i + 1])  # rows of this frame's regions in ids/probs
            regs = slice(bounds[i], bounds[i + 1])
            parts = [(fbox_np[i : i + 1], fscore_np[i : i + 1], fvec_np[i : i + 1], ids_np[i : i + 1],
                      prob_np[i : i + 1], True)] if p.include_frame else []  # fmt: skip
            parts.append((box_np[regs], score_np[regs], vec_np[regs], ids_np[rows], prob_np[rows], False))
            out.append(
                FrameRegions(
                    boxes=np.concatenate([q[0] for q in parts]).astype(np.float32),
                    scores=np.concatenate([q[1] for q in parts]).astype(np.float32),
                    vectors=np.concatenate([q[2] for q in parts]).astype(np.float32),
                    is_frame=np.concatenate([np.full(len(q[0]), q[5]) for q in parts]).astype(bool),
                    label_ids=np.concatenate([q[3] for q in parts]).astype(np.int64),
                    label_probs=np.concatenate([q[4] for q in parts]).astype(np.float32),
                )
            )
        return out

    # ---- queries ---------------------------------------------------------------

    def query(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> QueryEmbedding:
        """Vector and labels of a query crop, pooled from the query image's own feature map."""
        image = _check_image(image, "query image")
        src_h, src_w = image.shape[:2]
        src_box = (0.0, 0.0, float(src_w), float(src_h)) if box is None else _check_box(box, src_w, src_h)
        resized = self._resize(image)
        sy, sx = resized.shape[0] / src_h, resized.shape[1] / src_w
        p, bb = self.params, self.backbone
        with torch.inference_mode():
            feats, _ = self._query_features(resized)
            if box is None:
                vec, avg = _frame_pool(feats, p.pooling, p.gem_p)
            else:
                x0, y0, x1, y1 = src_box
                rois = feats.new_tensor([[0.0, x0 * sx, y0 * sy, x1 * sx, y1 * sy]])
                vec, avg = pool_boxes(feats, rois, stride=bb.stride, pooling=p.pooling, gem_p=p.gem_p)
            probs, ids = bb.classify(avg).float().softmax(1).topk(p.label_top_k, 1)
        return QueryEmbedding(
            vector=vec[0].float().cpu().numpy(),
            box=src_box,
            label_ids=ids[0].cpu().numpy().astype(np.int64),
            label_probs=probs[0].cpu().numpy(),
        )

    def prepare_query(self, image: np.ndarray) -> str:
        """Run the network over a query image ahead of its boxes: "computed", "cached" or "off".

        Why: the search page sends the image as soon as it is dropped, so the forward pass
        runs while the editor drags a box and the box's search pools from the kept map.
        """
        image = _check_image(image, "query image")
        if not self.query_cache.capacity:
            return "off"
        with torch.inference_mode():
            _, status = self._query_features(self._resize(image))
        return status

    def _query_features(self, resized: np.ndarray) -> tuple[torch.Tensor, str]:
        """Last-block map of a resized query image, from the cache when it holds it."""
        key = self.query_cache.key(resized) if self.query_cache.capacity else b""
        feats = self.query_cache.get(key) if key else None
        if feats is not None:
            return feats, "cached"
        with self._autocast(self.query_autocast):  # the network only: pooling and labels in float32
            feats = self.backbone.features(self._to_input([resized])).float()
        return self.query_cache.put(key, feats), "computed"

    def embed_query(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """(dim,) L2-normalised vector of ``box`` (source pixels) in ``image``; whole image without a box."""
        return self.query(image, box).vector

    def embed_query_sides(
        self, image: np.ndarray, box: tuple[float, float, float, float] | None, sides: Sequence[int]
    ) -> np.ndarray:
        """(len(sides), dim) vectors of the query with the box's longer side at each of ``sides`` input px.

        Why: a photo query fills the network input while the same object in a frame may span less
        than one stride-32 cell; pooled at a matching scale their vectors are closer. The resized
        image's longer side is kept within [32, 2 x input_size].
        """
        image = _check_image(image, "query image")
        src_h, src_w = image.shape[:2]
        x0, y0, x1, y1 = (
            (0.0, 0.0, float(src_w), float(src_h)) if box is None else _check_box(box, src_w, src_h)
        )
        p, bb = self.params, self.backbone
        out = []
        with torch.inference_mode():
            for side in sides:
                f = side / max(x1 - x0, y1 - y0)
                f = min(max(f, 32 / max(src_h, src_w)), 2 * p.input_size / max(src_h, src_w))
                size = (max(1, round(src_w * f)), max(1, round(src_h * f)))
                interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
                resized = np.ascontiguousarray(cv2.resize(image, size, interpolation=interp))
                sy, sx = size[1] / src_h, size[0] / src_w
                with self._autocast(self.query_autocast):  # not cached: keep the LRU for main-scale maps
                    feats = self.backbone.features(self._to_input([resized])).float()
                rois = feats.new_tensor([[0.0, x0 * sx, y0 * sy, x1 * sx, y1 * sy]])
                vec, _ = pool_boxes(feats, rois, stride=bb.stride, pooling=p.pooling, gem_p=p.gem_p)
                out.append(vec[0].float().cpu().numpy())
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)


def _select(res: FrameRegions, keep: np.ndarray) -> FrameRegions:
    return FrameRegions(*(getattr(res, f)[keep] for f in _FIELDS))


def _concat(parts: Sequence[FrameRegions]) -> FrameRegions:
    return FrameRegions(*(np.concatenate([getattr(r, f) for r in parts]) for f in _FIELDS))


def _merge(res: FrameRegions, extra: FrameRegions) -> FrameRegions:
    """The whole-frame pass's regions, then the tiles' (the whole-frame row stays row 0)."""
    return _concat([res, extra])


_FIELDS = ("boxes", "scores", "vectors", "is_frame", "label_ids", "label_probs")


def _dedupe(tiles: FrameRegions, whole_boxes: np.ndarray, iou: float) -> np.ndarray:
    """Which tile regions to keep: greedy NMS among them (overlapping tiles see one object twice;
    two threshold levels of a small blob give nearly one box), then none that a whole-frame
    region already covers with IoU >= ``iou``. Only stored rows change, never a kept vector."""
    boxes = torch.from_numpy(tiles.boxes)
    keep = np.zeros(len(tiles), bool)
    keep[nms(boxes, torch.from_numpy(tiles.scores), iou).numpy()] = True
    if len(whole_boxes):
        keep &= _iou(tiles.boxes, whole_boxes).max(1) < iou
    return keep


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def _check_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Validate a query box (x0, y0, x1, y1 in source pixels) and clip it to the image."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidQueryError(f"query box must be four numbers x0, y0, x1, y1, got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise InvalidQueryError(f"query box {box!r} is empty or not finite (need x0 < x1 and y0 < y1)")
    cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    if cx1 - cx0 < 1 or cy1 - cy0 < 1:
        raise InvalidQueryError(f"query box {box!r} lies outside the {width}x{height} image")
    return cx0, cy0, cx1, cy1


def _to_source(res: FrameRegions, src_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> FrameRegions:
    """Map boxes from network-input pixels back to source pixels; clip the whole-frame row exactly."""
    sy, sx = src_shape[0] / in_shape[0], src_shape[1] / in_shape[1]
    boxes = res.boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, src_shape[1])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, src_shape[0])
    res.boxes = boxes.astype(np.float32)
    return res
