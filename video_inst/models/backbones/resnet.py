"""ResNet-50 (torchvision, ImageNet), the DASR paper's backbone, as stride stages with folded batch norms.

Weights resolve through :func:`video_inst.models.weights.resnet50_weights` (settings
path, caches, download when allowed, else a :class:`WeightsMissingError` naming the
file). ``pretrained=False`` gives random weights for plumbing and speed checks only.

Example::

    bb = ResNet50()  # needs resnet50-0676ba61.pth somewhere weights.py looks
    fmap = bb.features(bb.normalize(pixels))  # (B, 2048, H/32, W/32)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

from video_inst.models.backbones.base import Backbone


def _fold_bottleneck(block: Bottleneck) -> None:
    """Fold each batch norm of a bottleneck into its conv (in place); the BN becomes Identity."""
    for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
        setattr(block, conv_name, fuse_conv_bn_eval(getattr(block, conv_name), getattr(block, bn_name)))
        setattr(block, bn_name, nn.Identity())
    if block.downsample is not None:
        conv, bn = block.downsample[0], block.downsample[1]
        block.downsample = nn.Sequential(fuse_conv_bn_eval(conv, bn))


class ResNet50(Backbone):
    """torchvision ResNet-50 as stages: stem (stride 4), layer1 (4), layer2 (8), layer3 (16), layer4 (32)."""

    dim = 2048
    stage_strides = (4, 4, 8, 16, 32)
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, weights: Path | None = None, *, pretrained: bool = True, fuse_bn: bool = True) -> None:
        super().__init__()
        if pretrained:
            from video_inst.models.weights import resnet50_model_id, resnet50_weights

            path = Path(weights) if weights is not None else resnet50_weights()
            state = torch.load(path, map_location="cpu", weights_only=True)
            with torch.device("meta"):  # skip the random init the checkpoint overwrites anyway
                net = resnet50(weights=None)
            net.load_state_dict(state, strict=True, assign=True)
            self.model_id = resnet50_model_id(path)
        else:
            net = resnet50(weights=None)
            self.model_id = "resnet50:random"
        net.eval()
        stem: list[nn.Module] = [net.conv1, net.bn1]
        if fuse_bn:
            stem = [fuse_conv_bn_eval(net.conv1, net.bn1)]
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
                for block in layer:
                    _fold_bottleneck(block)
        self.stages = nn.ModuleList(
            [nn.Sequential(*stem, net.relu, net.maxpool), net.layer1, net.layer2, net.layer3, net.layer4]
        )
        self.head = net.fc
        self._init_normalisation()
        self.eval()
