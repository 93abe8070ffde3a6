"""DASR parts with known answers: peaks, the excitation rule, ellipse boxes, NMS, the extractor contract."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from video_inst.config import Settings
from video_inst.errors import InvalidQueryError, NotAnImageError
from video_inst.models.backbones import get_backbone
from video_inst.models.backbones.excitation import excitation_rule
from video_inst.models.dasr import (
    DasrExtractor,
    DasrParams,
    Peaks,
    Saliency,
    ellipse_boxes,
    find_peaks,
    peak_component,
    saliency_boxes,
)

# --------------------------------------------------------------------------- peaks


def _peaks_set(p: Peaks) -> set[tuple[int, int, int]]:
    return set(zip(p.frame.tolist(), p.y.tolist(), p.x.tolist(), strict=True))


def test_peaks_are_interior_positive_local_maxima() -> None:
    a = torch.zeros(2, 6, 7)
    a[0, 2, 3] = 5.0  # interior peak
    a[0, 0, 5] = 9.0  # on the border: excluded
    a[0, 4, 1] = 2.0  # interior, smaller
    a[0, 4, 2] = 1.0  # neighbour of the 2.0: not a maximum
    a[1, 3, 3] = -1.0  # negative: excluded (frame 1 has no positive value)
    p = find_peaks(a, keep_above_mean=False, max_peaks=16)
    assert _peaks_set(p) == {(0, 2, 3), (0, 4, 1)}
    assert p.value.tolist() == [5.0, 2.0] and p.slot.tolist() == [0, 1]  # strongest first, rank = slot


def test_plateau_gives_one_peak() -> None:
    a = torch.zeros(1, 7, 7)
    a[0, 2:4, 2:5] = 3.0  # a 2x3 plateau
    a[0, 5, 5] = 3.0  # an isolated cell of the same value elsewhere
    p = find_peaks(a, keep_above_mean=False, max_peaks=16)
    assert _peaks_set(p) == {(0, 2, 2), (0, 5, 5)}  # first plateau cell in raster order


def test_dasr_mean_rule_vs_dasr_star_and_max_peaks() -> None:
    a = torch.full((1, 9, 9), 0.5)
    a[0, 2, 2], a[0, 6, 6], a[0, 4, 6] = 8.0, 6.0, 0.6  # the 0.6 peak lies below the map mean
    assert a.mean().item() > 0.6
    dasr = find_peaks(a, keep_above_mean=True, max_peaks=16)
    star = find_peaks(a, keep_above_mean=False, max_peaks=16)
    assert _peaks_set(dasr) == {(0, 2, 2), (0, 6, 6)}
    assert _peaks_set(star) == {(0, 2, 2), (0, 6, 6), (0, 4, 6)}
    top1 = find_peaks(a, keep_above_mean=False, max_peaks=1)
    assert _peaks_set(top1) == {(0, 2, 2)}
    assert DasrParams(peak_mode="dasr", min_peak="auto").keep_above_mean
    assert not DasrParams(min_peak="auto").keep_above_mean and DasrParams().keep_above_mean


# --------------------------------------------------------------------------- excitation rule


def _explicit_excitation(a: np.ndarray, w: np.ndarray, p_out: np.ndarray, stride: int, pad: int, groups: int):
    """P(a_i) = sum_j a+_i w+_ij / Z_j * P(o_j), written as loops over every output and tap."""
    n, cin, h, wd = a.shape
    cout, cin_g, k, _ = w.shape
    ap = np.pad(np.clip(a, 0, None), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    wp = np.clip(w, 0, None)
    res = np.zeros_like(ap)
    out_per_group = cout // groups
    for b in range(n):
        for j in range(cout):
            g = j // out_per_group
            for oy in range(p_out.shape[2]):
                for ox in range(p_out.shape[3]):
                    patch = ap[
                        b,
                        g * cin_g : (g + 1) * cin_g,
                        oy * stride : oy * stride + k,
                        ox * stride : ox * stride + k,
                    ]
                    contrib = patch * wp[j]
                    z = contrib.sum() + 1e-6
                    res[
                        b,
                        g * cin_g : (g + 1) * cin_g,
                        oy * stride : oy * stride + k,
                        ox * stride : ox * stride + k,
                    ] += contrib / z * p_out[b, j, oy, ox]
    return res[:, :, pad : pad + h, pad : pad + wd]


@pytest.mark.parametrize(("stride", "pad", "groups"), [(1, 1, 1), (2, 1, 2), (2, 0, 4)])
def test_excitation_rule_matches_explicit_sum(stride: int, pad: int, groups: int) -> None:
    g = torch.Generator().manual_seed(stride * 10 + groups)
    conv = nn.Conv2d(4, 4, 3, stride=stride, padding=pad, groups=groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    conv.requires_grad_(False)
    a = torch.randn(2, 4, 7, 8, generator=g).requires_grad_(True)  # negative inputs too
    with excitation_rule(conv):
        out = conv(a)
    p_out = torch.rand(out.shape, generator=g)
    (p_in,) = torch.autograd.grad(out, a, p_out)
    expected = _explicit_excitation(
        a.detach().numpy(), conv.weight.numpy(), p_out.numpy(), stride, pad, groups
    )
    np.testing.assert_allclose(p_in.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert (p_in >= 0).all()
    assert "forward" not in conv.__dict__  # the rule is removed on exit


def test_excitation_conserves_mass_through_a_conv() -> None:
    g = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=True).requires_grad_(False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g).abs() + 0.01)  # Z > 0 everywhere
    a = (torch.rand(1, 3, 6, 6, generator=g) + 0.1).requires_grad_(True)
    with excitation_rule(conv):
        out = conv(a)
    p_out = torch.rand(out.shape, generator=g)
    (p_in,) = torch.autograd.grad(out, a, p_out)
    assert math.isclose(p_in.sum().item(), p_out.sum().item(), rel_tol=1e-4)


def test_excitation_rule_differs_from_plain_gradient_on_a_stack() -> None:
    g = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU6(), nn.Conv2d(6, 3, 3, stride=2, padding=1))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    net.requires_grad_(False)
    x = torch.randn(1, 2, 8, 8, generator=g).requires_grad_(True)
    signal = torch.zeros(1, 3, 4, 4)
    signal[0, :, 2, 1] = 1 / 3
    with excitation_rule(net) as n:
        (p,) = torch.autograd.grad(net(x), x, signal)
    (grad,) = torch.autograd.grad(net(x), x, signal)
    assert n == 2
    assert (p >= 0).all() and grad.min() < 0
    assert not torch.allclose(p, grad)
    # Layer by layer with the explicit rule: conv2 -> ReLU6 gradient mask -> conv1.
    c1, c2 = net[0], net[2]
    h = c1(x).detach()
    p_h_act = _explicit_excitation(nn.functional.relu6(h).numpy(), c2.weight.numpy(), signal.numpy(), 2, 1, 1)
    p_h = p_h_act * ((h > 0) & (h < 6)).numpy()
    p_x = _explicit_excitation(x.detach().numpy(), c1.weight.numpy(), p_h, 1, 1, 1)
    np.testing.assert_allclose(p.numpy(), p_x, rtol=1e-4, atol=1e-7)


def test_excitation_rule_refuses_a_module_without_convs() -> None:
    with pytest.raises(ValueError, match="never run"), excitation_rule(nn.Sequential(nn.ReLU())):
        pass


# --------------------------------------------------------------------------- boxes


def test_box_of_a_filled_rotated_ellipse_is_its_bounding_box() -> None:
    h, w, cx, cy, a, b, theta = 120, 160, 70.0, 55.0, 40.0, 18.0, math.radians(30)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    u = (xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)
    v = -(xs - cx) * math.sin(theta) + (ys - cy) * math.cos(theta)
    mask = torch.from_numpy((u / a) ** 2 + (v / b) ** 2 <= 1)[None]
    box = ellipse_boxes(mask, cell=1.0, scale=2.0)[0].numpy()
    half_w = math.sqrt((a * math.cos(theta)) ** 2 + (b * math.sin(theta)) ** 2)
    half_h = math.sqrt((a * math.sin(theta)) ** 2 + (b * math.cos(theta)) ** 2)
    np.testing.assert_allclose(box, [cx - half_w, cy - half_h, cx + half_w, cy + half_h], atol=1.0)
    # the same ellipse sampled on a coarse grid (cell 4) lands close, in pixel units
    coarse = torch.nn.functional.max_pool2d(mask[None].float(), 4)[0] > 0.5
    box4 = ellipse_boxes(coarse, cell=4.0, scale=2.0)[0].numpy()
    np.testing.assert_allclose(box4, box, atol=4.0)


def test_saliency_boxes_threshold_clip_and_invalid() -> None:
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(60.0), indexing="ij")
    blob = torch.exp(-(((xs - 45) / 6) ** 2 + ((ys - 12) / 4) ** 2) / 2)
    edge = torch.exp(-(((xs - 1) / 5) ** 2 + ((ys - 20) / 5) ** 2) / 2)
    maps = torch.stack([blob, edge, torch.zeros(40, 60)])
    boxes, valid = saliency_boxes(
        maps, cell=2.0, image_hw=(80, 120), threshold="relative", tau=0.5, scale=2.0
    )
    assert valid.tolist() == [True, True, False]
    cx, cy = (boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2
    assert abs(cx - 91) < 1.5 and abs(cy - 25) < 1.5  # blob centre (45.5, 12.5) cells * 2 px
    assert boxes[0, 2] - boxes[0, 0] > boxes[0, 3] - boxes[0, 1]  # wider than tall, like the blob
    assert boxes[1, 0] == 0  # clipped at the left border
    low, _ = saliency_boxes(maps[:1], cell=2.0, image_hw=(80, 120), threshold="relative", tau=0.2, scale=2.0)
    pct, _ = saliency_boxes(maps[:1], cell=2.0, image_hw=(80, 120), threshold="percentile", tau=99, scale=2.0)
    area = lambda bx: ((bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])).item()  # noqa: E731
    assert area(pct) < area(boxes[:1]) < area(low)  # a higher threshold keeps a smaller core


def test_mass_threshold_keeps_the_cells_holding_that_share() -> None:
    maps = torch.zeros(1, 10, 12)
    maps[0, 2:4, 2:6] = 1.0  # 8 cells holding 8 / 8.5 of the mass
    maps[0, 7, 9] = 0.5
    kw = {"cell": 1.0, "image_hw": (10, 12), "threshold": "mass", "scale": 2.0}
    core, _ = saliency_boxes(maps, tau=0.9, **kw)
    expect = ellipse_boxes(maps[:, :, :] >= 1.0, cell=1.0, scale=2.0)
    torch.testing.assert_close(core, expect)
    everything, _ = saliency_boxes(maps, tau=1.0, **kw)
    assert (
        everything[0, 2] > core[0, 2] + 2 and everything[0, 3] > core[0, 3] + 2
    )  # the weak cell joins at 100 %


def test_component_keeps_the_blob_of_the_maximum_only() -> None:
    maps = torch.zeros(2, 12, 16)
    maps[:, 2:5, 2:6] = 1.0  # strongest blob
    maps[:, 2:5, 5] = 1.2  # its maximum
    maps[:, 8:11, 11:15] = 0.9  # distant blob, also above the threshold
    maps[1, 5:8, 6:11] = 0.95  # frame 1: a diagonal-ish bridge joins the two blobs
    mask = maps >= 0.5
    comp = peak_component(mask, maps.reshape(2, -1).argmax(1), check_every=2)
    assert comp[0].sum() == 12 and not comp[0, 8:, 11:].any()
    assert torch.equal(comp[1], mask[1])  # connected: everything stays
    kw = {"cell": 1.0, "image_hw": (12, 16), "threshold": "relative", "tau": 0.5, "scale": 2.0}
    whole, _ = saliency_boxes(maps[:1], **kw)
    blob, _ = saliency_boxes(maps[:1], component=True, **kw)
    torch.testing.assert_close(blob, ellipse_boxes(comp[:1], cell=1.0, scale=2.0))
    assert blob[0, 2] < whole[0, 2] and blob[0, 3] < whole[0, 3]  # the far blob no longer stretches it


def test_weighted_moments_pull_the_box_to_the_strong_pixels() -> None:
    maps = torch.zeros(1, 10, 40)
    maps[0, 4:6, 2:38] = 0.6
    maps[0, 4:6, 30:38] = 1.0  # strong right end
    kw = {"cell": 1.0, "image_hw": (10, 40), "threshold": "relative", "tau": 0.5, "scale": 1.0}
    plain, _ = saliency_boxes(maps, **kw)
    weighted, _ = saliency_boxes(maps, weighted=True, **kw)
    assert (weighted[0, 0] + weighted[0, 2]) / 2 > (plain[0, 0] + plain[0, 2]) / 2 + 1


def test_extra_taus_add_one_nested_box_per_level(effnet) -> None:
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    maps = torch.exp(-(((xs - 15) / 4) ** 2 + ((ys - 10) / 3) ** 2) / 2)[None]
    peaks = Peaks(*(torch.zeros(1, dtype=torch.long),) * 4, value=torch.ones(1))
    sal = Saliency(torch.rand(1, effnet.dim, 5, 8), peaks, maps, (160, 240))
    base = DasrParams(smooth_sigma=0, threshold="relative", tau=0.5, extra_taus=())
    one = DasrExtractor(effnet, base)._regions(sal)[0]
    three = DasrExtractor(effnet, dataclasses.replace(base, extra_taus=(0.2, 0.8)))._regions(sal)[0]
    assert len(one) == 2 and len(three) == 4  # frame row + one box per level (NMS within a level)
    areas = sorted(((b[2] - b[0]) * (b[3] - b[1])).item() for b in three.boxes[1:])
    assert areas[0] < areas[1] < areas[2]
    assert any(np.allclose(b, one.boxes[1]) for b in three.boxes[1:])


# --------------------------------------------------------------------------- extractor


@pytest.fixture(scope="module")
def effnet():
    return get_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def frames(shared_media):
    from dasr_pastes import decode_at

    return [
        decode_at(shared_media / "clips" / "cockatoo.mp4", 3.0),
        decode_at(shared_media / "clips" / "bottle-detection.mp4", 5.0)[:300, :500],  # another size
    ]


def test_nms_suppresses_overlaps_within_a_frame_only(effnet) -> None:
    dasr = DasrExtractor(effnet, DasrParams(smooth_sigma=0, threshold="relative", tau=0.5, extra_taus=()))
    maps = torch.zeros(4, 20, 30)
    maps[0, 5:10, 5:12] = 1.0
    maps[1, 5:10, 6:13] = 1.0  # same frame, overlaps the first: suppressed (weaker)
    maps[2, 12:18, 20:28] = 1.0  # same frame, elsewhere: kept
    maps[3, 5:10, 6:13] = 1.0  # other frame: kept
    peaks = Peaks(
        frame=torch.tensor([0, 0, 0, 1]),
        slot=torch.tensor([0, 1, 2, 0]),
        y=torch.zeros(4, dtype=torch.long),
        x=torch.zeros(4, dtype=torch.long),
        value=torch.tensor([0.9, 0.8, 0.5, 0.7]),
    )
    feats = torch.rand(2, effnet.dim, 5, 8)
    regions = dasr._regions(Saliency(feats, peaks, maps, (160, 240)))
    assert [len(r) for r in regions] == [3, 2]  # frame row + surviving regions
    assert regions[0].scores[1:].tolist() == pytest.approx([0.9, 0.5])
    no_nms = DasrExtractor(effnet, dataclasses.replace(dasr.params, peak_mode="dasr"))
    assert [len(r) for r in no_nms._regions(Saliency(feats, peaks, maps, (160, 240)))] == [4, 2]


def test_extract_contract_on_frames_of_two_sizes(effnet, frames) -> None:
    dasr = DasrExtractor(effnet, DasrParams(max_peaks=4, input_size=384))
    assert dasr.space_name == "dasr:efficientnet_lite0:s384:avg" and dasr.dim == 1280
    out = dasr.extract(frames)
    assert len(out) == 2
    for regions, frame in zip(out, frames, strict=True):
        h, w = frame.shape[:2]
        n = len(regions)
        assert 2 <= n <= 1 + 4 * (1 + len(dasr.params.extra_taus))  # frame + <= one box per peak and level
        assert regions.is_frame.tolist() == [True] + [False] * (n - 1)
        np.testing.assert_allclose(regions.boxes[0], [0, 0, w, h])
        assert regions.boxes.dtype == np.float32 and regions.vectors.shape == (n, 1280)
        assert (regions.boxes[:, 0] >= 0).all() and (regions.boxes[:, 2] <= w).all()
        assert (regions.boxes[:, 1] >= 0).all() and (regions.boxes[:, 3] <= h).all()
        assert (regions.boxes[:, 2] > regions.boxes[:, 0]).all() and (
            regions.boxes[:, 3] > regions.boxes[:, 1]
        ).all()
        np.testing.assert_allclose(np.linalg.norm(regions.vectors, axis=1), 1.0, rtol=1e-5)
        assert regions.label_ids.shape == (n, 5) and regions.label_probs.shape == (n, 5)
        assert (np.diff(regions.scores[1:]) <= 0).all()  # regions by peak value
    # the cockatoo frame: some region is labelled a cockatoo
    assert effnet.categories.index("sulphur-crested cockatoo") in out[0].label_ids[:, :3]
    # query pooling is exactly region pooling: same image -> same vectors
    np.testing.assert_allclose(dasr.embed_query(frames[0]), out[0].vectors[0], atol=1e-5)
    box = tuple(out[0].boxes[1])
    q = dasr.query(frames[0], box)
    np.testing.assert_allclose(q.vector, out[0].vectors[1], atol=1e-4)
    assert q.label_ids.tolist() == out[0].label_ids[1].tolist()


def test_excite_batching_modes_agree(effnet, frames) -> None:
    small = [frames[1][::2, ::2].copy()]
    base = DasrParams(max_peaks=3, input_size=256)
    results = [
        DasrExtractor(effnet, dataclasses.replace(base, excite_batching=m)).extract(small)[0]
        for m in ("slots", "vmap", "expand")
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other.boxes, results[0].boxes, atol=0.5)


def test_bad_inputs_get_named_errors(effnet) -> None:
    dasr = DasrExtractor(effnet)
    with pytest.raises(NotAnImageError, match="frame 1"):
        dasr.extract([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.uint8)])
    with pytest.raises(NotAnImageError, match="uint8"):
        dasr.embed_query(np.zeros((10, 10, 3), np.float32))
    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(InvalidQueryError, match="empty"):
        dasr.embed_query(img, (10, 10, 5, 20))
    with pytest.raises(InvalidQueryError, match="outside"):
        dasr.embed_query(img, (100, 100, 120, 130))
    with pytest.raises(ValueError, match="tau"):
        DasrParams(threshold="relative", tau=50)
    assert dasr.extract([]) == []


@pytest.mark.parametrize("threshold,tau", [("percentile", 98.0), ("relative", 0.7), ("mass", 0.5)])
def test_saliency_boxes_of_no_maps_is_empty(threshold: str, tau: float) -> None:
    """A frame with no peaks gives no maps: no boxes, not a reshape error."""
    boxes, valid = saliency_boxes(
        torch.zeros(0, 18, 32), cell=1.0, image_hw=(18, 32), threshold=threshold, tau=tau, scale=2.0
    )
    assert boxes.shape == (0, 4) and valid.shape == (0,)


def test_settings_default_input_size_is_the_dasr_default() -> None:
    """The product builds DASR from settings: its default must be the tuned one (docs/DASR.md)."""
    from video_inst.config import Settings

    assert Settings().dasr_input_size == DasrParams().input_size
    assert Settings().dasr_pooling == DasrParams().pooling


def test_query_sides_pool_the_box_at_each_scale(effnet, frames) -> None:
    """A side equal to the box's size at the default scale gives the default query vector."""
    dasr = DasrExtractor(effnet, DasrParams(input_size=384))
    frame = frames[0]
    h, w = frame.shape[:2]
    box = (w * 0.25, h * 0.25, w * 0.75, h * 0.6)
    default_side = (box[2] - box[0]) * 384 / max(h, w)
    vecs = dasr.embed_query_sides(frame, box, [round(default_side), 48])
    assert vecs.shape == (2, dasr.dim)
    assert np.linalg.norm(vecs, axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)
    assert float(vecs[0] @ dasr.embed_query(frame, box)) > 0.999
    assert float(vecs[1] @ vecs[0]) < 0.999  # another scale, another vector
    with pytest.raises(InvalidQueryError):
        dasr.embed_query_sides(frame, (5, 5, 2, 2), [64])


def test_tiles_add_small_boxes_after_the_whole_frame_regions(effnet, frames) -> None:
    base = DasrExtractor(effnet, DasrParams(input_size=384, max_peaks=4))
    tiled = DasrExtractor(effnet, DasrParams(input_size=384, max_peaks=4, tiles=2))
    assert tiled.space_name == "dasr:efficientnet_lite0:s384:avg:t2"
    from video_inst.models.loading import load_space_model

    assert load_space_model(tiled.space_name, Settings(device="cpu")).params.tiles == 2
    for plain, more, frame in zip(base.extract(frames), tiled.extract(frames), frames, strict=True):
        h, w = frame.shape[:2]
        n = len(plain)
        assert np.allclose(more.boxes[:n], plain.boxes) and np.allclose(more.vectors[:n], plain.vectors)
        extra = more.boxes[n:]
        assert not more.is_frame[n:].any()
        area = (extra[:, 2] - extra[:, 0]) * (extra[:, 3] - extra[:, 1])
        assert (area < 0.02 * w * h).all()
        assert (
            (extra[:, 0] >= 0).all() and (extra[:, 2] <= w + 1e-3).all() and (extra[:, 3] <= h + 1e-3).all()
        )
        assert np.linalg.norm(more.vectors[n:], axis=1) == pytest.approx(np.ones(len(extra)), abs=1e-3)


def test_excitation_rule_is_per_thread_on_a_shared_module() -> None:
    """Two analysis threads and a plain-gradient thread share one conv, their blocks overlapping."""
    import threading

    g = torch.Generator().manual_seed(11)
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=True).requires_grad_(False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    a = torch.randn(2, 4, 7, 8, generator=g)
    p_out = torch.rand(2, 4, 7, 8, generator=g)
    expected = _explicit_excitation(a.numpy(), conv.weight.numpy(), p_out.numpy(), 1, 1, 1)
    inside = threading.Barrier(3)
    results: dict[str, torch.Tensor] = {}
    errors: list[BaseException] = []

    def excited(name: str, leave_first: bool) -> None:
        try:
            x = a.clone().requires_grad_(True)
            with excitation_rule(conv):
                inside.wait(timeout=30)  # all three threads are now between enter and exit
                out = conv(x)
                if not leave_first:
                    inside.wait(timeout=30)
            if leave_first:
                inside.wait(timeout=30)  # the other rule thread still holds the conv
            (results[name],) = torch.autograd.grad(out, x, p_out)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    def plain() -> None:
        try:
            x = a.clone().requires_grad_(True)
            inside.wait(timeout=30)
            out = conv(x)
            inside.wait(timeout=30)
            (results["plain"],) = torch.autograd.grad(out, x, p_out)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=excited, args=("first", True)),
        threading.Thread(target=excited, args=("second", False)),
        threading.Thread(target=plain),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    for name in ("first", "second"):
        np.testing.assert_allclose(results[name].numpy(), expected, rtol=1e-4, atol=1e-6)
    x = a.clone().requires_grad_(True)
    plain_out = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    (gradient,) = torch.autograd.grad(plain_out, x, p_out)
    np.testing.assert_allclose(results["plain"].numpy(), gradient.numpy(), rtol=1e-5, atol=1e-6)
    assert "forward" not in conv.__dict__  # the last block out removed the rule
