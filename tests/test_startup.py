"""Start-up paid once: what an ingest process imports, and torchvision's kernels without torchvision.

Each check runs a fresh interpreter (a module imported by another test would hide a lazy
import). The kernels are compared with torchvision.ops' on the same inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from video_inst.models import vision_ops

REPO = Path(__file__).resolve().parents[1]


def fresh(code: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(REPO), **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_the_default_models_skips_torchvision_open_clip_and_dynamo(tmp_path: Path) -> None:
    got = fresh(
        "import json, sys\n"
        "from video_inst.config import get_settings\n"
        "from video_inst.models.loading import load_clip, load_dasr\n"
        "s = get_settings(); load_dasr(s); clip, why = load_clip(s)\n"
        "print(json.dumps({'clip': clip is None, 'why': why, 'mods': sorted(m for m in sys.modules if m in "
        "('torchvision', 'open_clip', 'torch._dynamo', 'sentence_transformers'))}))",
        VIDEO_INST_HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "empty_hf"),
        HOME=str(tmp_path),
    )
    assert got["clip"] and "VIDEO_INST_CLIP_WEIGHTS" in got["why"] and "ViT-B-32" in got["why"]
    assert got["mods"] == []


def test_a_cached_hugging_face_model_still_gets_the_full_clip_check(tmp_path: Path) -> None:
    hub = tmp_path / "hf" / "hub"
    (hub / "models--someone--some-model").mkdir(parents=True)
    got = fresh(
        "import json, sys\n"
        "from video_inst.config import get_settings\n"
        "from video_inst.models.loading import load_clip\n"
        "clip, why = load_clip(get_settings())\n"
        "print(json.dumps({'why': why, 'open_clip': 'open_clip' in sys.modules}))",
        VIDEO_INST_HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "hf"),
        HOME=str(tmp_path),
    )
    assert got["open_clip"] and "huggingface.co" in got["why"]  # open_clip's own, exact message


def test_kernels_equal_torchvision_ops() -> None:
    import torchvision.ops as tv

    g = torch.Generator().manual_seed(0)
    fmap = torch.randn(3, 32, 18, 32, generator=g)
    xy = torch.rand(50, 2, generator=g) * 500
    wh = torch.rand(50, 2, generator=g) * 200 + 1
    rois = torch.cat([torch.randint(0, 3, (50, 1), generator=g).float(), xy, xy + wh], 1)
    for sampling in (0, 2):
        assert torch.equal(
            vision_ops.roi_align(fmap, rois, 3, 1 / 32, sampling, True),
            tv.roi_align(fmap, rois, 3, spatial_scale=1 / 32, sampling_ratio=sampling, aligned=True),
        )
    for n in (0, 40, 1500):  # 1500 boxes take torchvision's per-class path on CPU
        boxes = torch.rand(n, 2, generator=g) * 400
        boxes = torch.cat([boxes, boxes + torch.rand(n, 2, generator=g) * 150 + 1], 1)
        scores = torch.rand(n, generator=g)
        groups = torch.randint(0, 6, (n,), generator=g)
        assert torch.equal(
            vision_ops.batched_nms(boxes, scores, groups, 0.5), tv.batched_nms(boxes, scores, groups, 0.5)
        )
