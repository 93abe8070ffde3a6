"""The tiles pass for small objects on real frames: small photo crops pasted at known boxes.

Objects of 0.2-1 % of the frame area (the hard protocol's small class, docs/DASR.md) span less
than one stride-32 cell of the whole-frame pass, so the default regions rarely bound them; the
forward-only tiles pass (``tile_mode="forward"``) must, without any backward pass, and its
de-duplication must only drop rows, never change a kept one. Seed 22 is used nowhere else (seed 21
was used to look at the forward boxes' size, ``tile_box_scale``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from dasr_pastes import box_iou, make_samples

from video_inst.config import Settings
from video_inst.models.backbones import get_backbone
from video_inst.models.dasr import DasrExtractor, DasrParams
from video_inst.models.loading import load_dasr, load_space_model

SEED = 22
# Longer side 8-13 % of the frame's shorter side: 0.2-0.9 % of a 16:9 frame's area for these crops.
SMALL = (0.08, 0.13)
FORWARD = DasrParams(tiles=2, tile_mode="forward", tile_peaks=4, tile_dedupe_iou=0.5)


@pytest.fixture(scope="module")
def backbone():  # noqa: ANN201 - a Backbone
    return get_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def samples(shared_media: Path):  # noqa: ANN201 - list[Sample]
    return make_samples(shared_media, seed=SEED, frames=8, per_frame=2, size_range=SMALL)


def _best_iou(regions, samples) -> np.ndarray:  # noqa: ANN001
    """Per pasted object: the best IoU of any non-frame region of its frame."""
    out = []
    for reg, s in zip(regions, samples, strict=True):
        boxes = reg.boxes[~reg.is_frame]
        iou = box_iou(s.boxes, boxes).max(1) if len(boxes) else np.zeros(len(s.boxes))
        out.extend(iou.tolist())
    return np.array(out)


def test_small_pasted_objects_get_better_boxes_only_with_forward_tiles(backbone, samples) -> None:  # noqa: ANN001
    frames = [s.frame for s in samples]
    areas = np.concatenate([(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (s.frame.shape[0] * s.frame.shape[1])
                            for s in samples for b in [s.boxes]])  # fmt: skip
    assert len(areas) >= 14 and areas.max() < 0.012  # the small class, as the protocol's
    plain = DasrExtractor(backbone, DasrParams()).extract(frames)
    tiled = DasrExtractor(backbone, FORWARD).extract(frames)
    before, after = _best_iou(plain, samples), _best_iou(tiled, samples)
    msg = f"defaults {np.round(before, 2)} vs forward tiles {np.round(after, 2)}"
    assert (after >= before - 1e-6).all(), msg  # the whole-frame pass's boxes are all still there
    # Some small objects get a clearly better box (the tiles' own) only with the lever on. Boxes
    # are not the lever's strength (docs/DASR.md: IoU >= 0.5 stays rare for small objects).
    assert (after > before + 0.05).sum() >= 3, msg
    assert after.mean() >= before.mean() + 0.02, msg


def test_forward_tiles_match_a_small_object_better_than_the_whole_frame_pass(
    backbone, samples, shared_media
) -> None:  # noqa: ANN001, E501
    """The object's own photo crop as the query: its best region among the tiles' is the pasted one."""
    from dasr_pastes import OBJECT_BOXES, load_objects

    photos = load_objects(shared_media / "images")
    plain_x = DasrExtractor(backbone, DasrParams())
    tiled = DasrExtractor(backbone, FORWARD).extract([s.frame for s in samples])
    plain = plain_x.extract([s.frame for s in samples])
    found = {"plain": 0, "tiled": 0}
    total = 0
    for s, p_reg, t_reg in zip(samples, plain, tiled, strict=True):
        for box, name in zip(s.boxes, s.names, strict=True):
            q = plain_x.embed_query_sides(photos[name], None, (64, 128))  # the object's crop, as search does
            total += 1
            for key, reg in (("plain", p_reg), ("tiled", t_reg)):
                best = int(np.argmax((reg.vectors @ q.T).max(1)))
                found[key] += int(box_iou(box[None], reg.boxes[best][None])[0, 0] >= 0.3)
    assert OBJECT_BOXES  # the crops are the annotated objects
    assert found["tiled"] >= found["plain"] + 2, found


def test_forward_tiles_keep_the_whole_frame_regions_and_dedupe_only_drops_rows(backbone, samples) -> None:  # noqa: ANN001, E501
    frames = [s.frame for s in samples[:4]]
    plain = DasrExtractor(backbone, DasrParams()).extract(frames)
    kept_all = DasrExtractor(backbone, dataclasses.replace(FORWARD, tile_dedupe_iou=0.0)).extract(frames)
    deduped = DasrExtractor(backbone, FORWARD).extract(frames)
    for base, full, dd, frame in zip(plain, kept_all, deduped, frames, strict=True):
        n = len(base)
        h, w = frame.shape[:2]
        for res in (full, dd):  # the whole-frame pass's rows first, untouched
            assert np.allclose(res.boxes[:n], base.boxes) and np.allclose(res.vectors[:n], base.vectors)
            extra = res.boxes[n:]
            assert not res.is_frame[n:].any()
            assert ((extra[:, 2] - extra[:, 0]) * (extra[:, 3] - extra[:, 1]) < 0.02 * w * h).all()
            assert (
                (extra[:, 0] >= 0).all()
                and (extra[:, 2] <= w + 1e-3).all()
                and (extra[:, 3] <= h + 1e-3).all()
            )
        assert len(dd) <= len(full)
        # every kept tile row is one of the undeduplicated rows, vector and all
        sim = dd.vectors[n:] @ full.vectors[n:].T
        assert (sim.max(1) > 0.9999).all() if len(sim) else True
        tiles = dd.boxes[n:]
        if len(tiles) > 1:
            iou = box_iou(tiles, tiles)
            np.fill_diagonal(iou, 0)
            assert iou.max() < 0.5  # no two stored tile boxes repeat one another
        if len(tiles) and n > 1:
            assert box_iou(tiles, base.boxes[~base.is_frame]).max() < 0.5  # nor a whole-frame-pass box


def test_forward_tiles_run_no_backward_pass(backbone, samples, monkeypatch) -> None:  # noqa: ANN001
    """Cost: the tiles' regions come from forward passes only (the whole-frame pass keeps its own)."""
    dasr = DasrExtractor(backbone, FORWARD)
    frames = [s.frame for s in samples[:2]]
    calls = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    DasrExtractor(backbone, DasrParams()).extract(frames)
    plain_calls = len(calls)
    calls.clear()
    dasr.extract(frames)
    assert plain_calls > 0 and len(calls) == plain_calls


def test_forward_tiles_are_their_own_model_space() -> None:
    assert FORWARD.space_name("efficientnet_lite0") == "dasr:efficientnet_lite0:s576:avg:t2f"
    small = dataclasses.replace(FORWARD, tile_size=448)
    assert small.space_name("efficientnet_lite0") == "dasr:efficientnet_lite0:s576:avg:t2fs448"
    rebuilt = load_space_model(small.space_name("efficientnet_lite0"), Settings(device="cpu"))
    assert (rebuilt.params.tiles, rebuilt.params.tile_mode, rebuilt.params.tile_size) == (2, "forward", 448)
    configured = load_dasr(Settings(device="cpu", dasr_tiles=2, dasr_tile_mode="forward", dasr_tile_peaks=4))
    assert configured.space_name.endswith(":t2f") and configured.params.tile_peaks == 4
