"""DASR* localisation on real frames: objects cropped from photos, pasted at known boxes into decoded frames.

The pastes come from tests/dasr_pastes.py with seed 7; the defaults were chosen with
scripts/eval_localisation.py on seeds 1-6, so this scores unseen samples (protocol: docs/DASR.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dasr_pastes import hits, make_samples

from video_inst.models.backbones import get_backbone
from video_inst.models.backbones.excitation import excitation_rule
from video_inst.models.dasr import DasrExtractor, DasrParams, find_peaks

TEST_SEED = 7  # never used for choosing parameters


@pytest.fixture(scope="module")
def dasr() -> DasrExtractor:
    return DasrExtractor(get_backbone("efficientnet_lite0"), DasrParams())


# The acceptance: at least 70% of pasted objects get a DASR* box with IoU >= 0.5.
# The defaults were chosen on seeds 1-6 (74% mean there, 68-78% per seed: docs/DASR.md); on
# this unseen sample they reach 28/40, exactly the target, so the margin is nil.
TARGET = 0.70


@pytest.mark.slow
def test_dasr_star_localises_pasted_objects(dasr: DasrExtractor, shared_media: Path) -> None:
    samples = make_samples(shared_media, seed=TEST_SEED, frames=20, per_frame=2)
    regions = dasr.extract([s.frame for s in samples])
    covered, total = hits([r.boxes[~r.is_frame] for r in regions], samples)
    assert total >= 38
    assert covered / total >= TARGET, f"only {covered}/{total} pasted objects got a box with IoU >= 0.5"


def test_dasr_star_localises_a_few_pasted_objects(dasr: DasrExtractor, shared_media: Path) -> None:
    """Quick guard (not slow): a handful of pastes; a broken top-down pass scores far lower."""
    samples = make_samples(shared_media, seed=TEST_SEED + 1, frames=3, per_frame=2, clips=("flower.mp4",))
    regions = dasr.extract([s.frame for s in samples])
    covered, total = hits([r.boxes[~r.is_frame] for r in regions], samples)
    assert covered >= total // 3, f"{covered}/{total}"


def test_excitation_rule_is_applied_on_the_real_backbone(dasr: DasrExtractor, shared_media: Path) -> None:
    """DESIGN.md §3: a rule hooked on nn.Conv2d must actually run (its map differs from the gradient's)."""
    sample = make_samples(shared_media, seed=TEST_SEED, frames=1, per_frame=1, clips=("flower.mp4",))[0]
    bb, stop = dasr.backbone, dasr.backbone.stop_index(8)
    x = dasr._to_input([dasr._resize(sample.frame)])[:, :, :256, :256]
    with torch.no_grad():
        low = bb.run_stages(x, 0, stop)
    maps = []
    for rule in (True, False):
        inp = low.clone().requires_grad_(True)
        with torch.enable_grad():
            if rule:
                with excitation_rule(bb.stages[stop:]) as n:
                    top = bb.run_stages(inp, stop)
                assert n == sum(isinstance(m, torch.nn.Conv2d) for m in bb.stages[stop:].modules())
            else:
                top = bb.run_stages(inp, stop)
        peaks = find_peaks(top.detach().mean(1), keep_above_mean=False, max_peaks=1)
        signal = torch.zeros_like(top)
        signal[0, :, peaks.y[0], peaks.x[0]] = 1 / top.shape[1]
        (grad,) = torch.autograd.grad(top, inp, signal)
        maps.append(grad.sum(1)[0])
    excitation, gradient = maps
    assert (excitation >= 0).all() and excitation.sum() > 0
    assert gradient.min() < 0  # a plain gradient has negative parts; the rule never does
    cos = torch.nn.functional.cosine_similarity(excitation.flatten(), gradient.flatten(), dim=0)
    assert cos < 0.9
