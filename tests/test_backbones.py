"""Backbones: registry, real EfficientNet-Lite0 classification, stage strides, weights resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from video_inst.config import get_settings
from video_inst.errors import WeightsMissingError
from video_inst.models.backbones import BACKBONES, get_backbone, imagenet_categories
from video_inst.models.weights import RESNET50_V1, efficientnet_lite0_weights, resnet50_weights


@pytest.fixture(scope="module")
def effnet():
    return get_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def random_resnet():
    # pretrained=False: random weights, for plumbing and architecture checks only.
    return get_backbone("resnet50", pretrained=False)


def _center_crop(path: Path, size: int = 224) -> torch.Tensor:
    img = Image.open(path).convert("RGB")
    s = size / min(img.size)
    img = img.resize((max(size, round(img.size[0] * s)), max(size, round(img.size[1] * s))), Image.BICUBIC)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    arr = np.array(img.crop((left, top, left + size, top + size)))
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


# Expected ImageNet classes (any of them) of photos whose content is unambiguous.
GOLDEN = {
    "bird.bmp": {"chickadee"},
    "parrot.jpg": {"macaw"},
    "hot_dog.jpg": {"hotdog"},
    "leopard.jpg": {"leopard"},
    "dragonfly.bmp": {"dragonfly"},
    "cat.bmp": {"Egyptian cat", "tabby", "tiger cat"},
    "balloon.jpg": {"balloon"},
    "gecko-320-213.jpg": {"banded gecko"},
}


def test_efficientnet_classifies_shared_photos(effnet, shared_media: Path) -> None:
    names = list(GOLDEN)
    x = torch.cat([_center_crop(shared_media / "images" / n) for n in names])
    with torch.inference_mode():
        probs = effnet(effnet.normalize(x)).softmax(1)
    for name, row in zip(names, probs, strict=True):
        top5 = {effnet.categories[i] for i in row.topk(5).indices.tolist()}
        assert top5 & GOLDEN[name], f"{name}: top-5 {sorted(top5)} misses {GOLDEN[name]}"
    top1 = [effnet.categories[i] for i in probs.argmax(1).tolist()]
    assert sum(t in GOLDEN[n] for n, t in zip(names, top1, strict=True)) >= 7, top1


def test_registry_front_door_and_errors() -> None:
    assert set(BACKBONES) == {"efficientnet_lite0", "resnet50"}
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        get_backbone("vgg16")
    assert len(imagenet_categories()) == 1000 and imagenet_categories()[1] == "goldfish"


def test_efficientnet_interface(effnet) -> None:
    assert effnet.model_id == "efficientnet_lite0"
    assert (effnet.dim, effnet.stride, effnet.stage_strides) == (1280, 32, (2, 4, 8, 16, 32))
    # TF-Lite input scaling, chosen by measurement (see docs/DASR.md)
    px = torch.tensor([0.0, 127.5, 255.0]).view(1, 3, 1, 1)
    assert torch.allclose(effnet.normalize(px).flatten(), (px.flatten() - 127.5) / 128, atol=1e-5)
    x = torch.randn(2, 3, 100, 130)
    with torch.inference_mode():
        fmap = effnet.features(x)
        assert fmap.shape == (2, 1280, 4, 5)  # TF "same": ceil(100/32), ceil(130/32)
        assert effnet.classify(fmap.mean((2, 3))).shape == (2, 1000)
        low = effnet.run_stages(x, 0, effnet.stop_index(8))
        assert low.shape[-2:] == (13, 17)
        assert torch.allclose(effnet.run_stages(low, effnet.stop_index(8)), fmap, atol=1e-5)
    assert [effnet.stop_index(s) for s in (0, 2, 4, 8, 16)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="valid stops"):
        effnet.stop_index(32)


class _CountConvolutions(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.convolution.default, torch.ops.aten.conv2d.default):
            self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("fixture", ["effnet", "random_resnet"])
def test_every_convolution_is_an_nn_conv2d_module(fixture: str, request: pytest.FixtureRequest) -> None:
    """The excitation rule hooks nn.Conv2d; a functional conv would silently bypass it."""
    bb = request.getfixturevalue(fixture)
    module_calls = []
    convs = [m for m in bb.modules() if isinstance(m, nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda *a: module_calls.append(1)) for m in convs]
    counter = _CountConvolutions()
    with torch.inference_mode(), counter:
        bb.features(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert counter.calls == len(module_calls) > 20
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.stages.modules())  # folded into the convs


def test_resnet50_random_plumbing(random_resnet) -> None:
    bb = random_resnet
    assert (bb.model_id, bb.dim, bb.stride) == ("resnet50:random", 2048, 32)
    with torch.inference_mode():
        fmap = bb.features(bb.normalize(torch.zeros(1, 3, 96, 160)))
    assert fmap.shape == (1, 2048, 3, 5)
    assert [bb.stop_index(s) for s in (0, 4, 8, 16)] == [0, 2, 3, 4]
    with pytest.raises(ValueError, match="valid stops"):
        bb.stop_index(2)


def test_efficientnet_weights_ship_in_the_wheel() -> None:
    path = efficientnet_lite0_weights()
    assert path.is_file() and path.suffix == ".pth"


def test_resnet50_weights_missing_names_file_url_and_folder(
    vi_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissingError) as err:
        resnet50_weights(get_settings())
    msg = str(err.value)
    assert RESNET50_V1.filename in msg and RESNET50_V1.url in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg and "VIDEO_INST_RESNET50_WEIGHTS" in msg
    with pytest.raises(WeightsMissingError, match="ResNet-50"):
        get_backbone("resnet50")

    monkeypatch.setenv("VIDEO_INST_RESNET50_WEIGHTS", str(tmp_path / "nope.pth"))
    get_settings.cache_clear()
    with pytest.raises(WeightsMissingError, match="nope.pth"):
        resnet50_weights(get_settings())


def test_resnet50_weights_found_in_hub_cache_and_loaded_strictly(
    vi_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import resnet50

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    # An uninitialised state dict stands in for the real file: this tests resolution and strict loading.
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in resnet50().state_dict().items()}
    torch.save(
        {k: torch.empty(shape, dtype=dt) for k, (shape, dt) in shapes.items()}, hub / RESNET50_V1.filename
    )
    assert resnet50_weights(get_settings()) == hub / RESNET50_V1.filename
    bb = get_backbone("resnet50")
    assert bb.model_id == "resnet50"

    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, bad)
    with pytest.raises(RuntimeError, match="Missing key"):  # strict: a partial checkpoint is refused
        get_backbone("resnet50", weights=bad)
