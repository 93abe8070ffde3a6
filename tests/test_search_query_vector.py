"""A crop query is pooled exactly as the database pools a region (DESIGN.md §3).

The query side runs only the backbone's forward pass over the query image and ROI-pools the
box: no peaks, no excitation pass. The vector must still equal the one ingest stored for
the same box of the same frame, or crop search would compare unlike things.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from video_inst.config import Settings
from video_inst.models.loading import load_dasr


@pytest.fixture(scope="module")
def dasr():  # noqa: ANN201 - DasrExtractor
    # no feature-map cache: these tests count forward passes (the cache has tests of its own below)
    return load_dasr(Settings(device="cpu", search_feature_cache=0))


@pytest.fixture(scope="module")
def frames(shared_media: Path) -> list[np.ndarray]:
    from dasr_pastes import decode_at

    return [
        decode_at(shared_media / "clips" / "cockatoo.mp4", 3.0),  # 16:9, shrunk to 512 wide
        decode_at(shared_media / "clips" / "bottle-detection.mp4", 5.0)[:300, :500],  # enlarged to 512
    ]


def test_query_vector_equals_the_stored_region_vector_for_the_same_box(dasr, frames) -> None:  # noqa: ANN001
    checked = 0
    for frame, regions in zip(frames, dasr.extract(frames), strict=True):
        assert len(regions) >= 2, "the frame row and at least one region"
        for i in range(min(len(regions), 6)):
            box = tuple(float(v) for v in regions.boxes[i])
            query = dasr.query(frame, None if regions.is_frame[i] else box)
            np.testing.assert_allclose(query.vector, regions.vectors[i], atol=2e-5)
            assert float(query.vector @ regions.vectors[i]) > 0.99999
            assert list(query.label_ids) == list(regions.label_ids[i])
            checked += 1
    assert checked >= 4


def test_the_query_runs_the_forward_pass_only(dasr, frames, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """No excitation back-propagation and no gradient graph for a query (the cost is one forward)."""

    def no_excitation(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a query ran the excitation pass")

    monkeypatch.setattr(dasr, "_saliency", no_excitation)
    monkeypatch.setattr(dasr, "_excite", no_excitation)
    calls: list[tuple[int, ...]] = []
    handle = dasr.backbone.stages[0].register_forward_hook(
        lambda _m, inputs, _out: calls.append((torch.is_grad_enabled(), *inputs[0].shape))
    )
    try:
        h, w = frames[0].shape[:2]
        dasr.query(frames[0], (w * 0.2, h * 0.2, w * 0.6, h * 0.7))
    finally:
        handle.remove()
    assert len(calls) == 1, "one forward pass"
    grad, _b, _c, in_h, in_w = calls[0]
    assert not grad
    assert max(in_h, in_w) == dasr.params.input_size  # the database's input size, never larger


def test_a_second_box_on_the_same_image_reuses_its_feature_map(dasr, frames) -> None:  # noqa: ANN001
    """With the searcher's cache on, one forward pass serves every box of one image, bit-identically."""
    from video_inst.models.feature_cache import FeatureMapCache

    calls: list[int] = []
    handle = dasr.backbone.stages[0].register_forward_hook(lambda *_a: calls.append(1))
    h, w = frames[0].shape[:2]
    boxes = [(w * 0.1, h * 0.1, w * 0.5, h * 0.6), (w * 0.4, h * 0.3, w * 0.9, h * 0.9), None]
    try:
        uncached = [dasr.query(frames[0], box).vector for box in boxes]
        assert len(calls) == 3
        dasr.query_cache = FeatureMapCache(2)
        cached = [dasr.query(frames[0], box).vector for box in boxes]
        assert len(calls) == 4, "one more forward pass for three boxes on one image"
        assert (dasr.query_cache.hits, dasr.query_cache.misses) == (2, 1)
        for got, want in zip(cached, uncached, strict=True):
            np.testing.assert_array_equal(got, want)
        other = np.ascontiguousarray(frames[0][::-1])  # same size, other pixels: another forward pass
        dasr.query(other, boxes[0])
        dasr.query(frames[1], boxes[0])
        assert len(calls) == 6
        assert len(dasr.query_cache) == 2, "least recently used map evicted at capacity"
        dasr.query(frames[0], boxes[1])
        assert len(calls) == 7, "the evicted image runs the network again"
    finally:
        handle.remove()
        dasr.query_cache = FeatureMapCache(0)


def test_the_searcher_sizes_the_cache_from_settings(tmp_path: Path) -> None:
    from video_inst.search.searcher import Searcher

    assert Searcher(Settings(home=tmp_path, device="cpu")).dasr.query_cache.capacity == 16
    off = Searcher(Settings(home=tmp_path, device="cpu", search_feature_cache=0))
    assert off.dasr.query_cache.capacity == 0


def test_prepare_runs_the_network_once_per_image_and_only_with_a_cache(dasr, frames) -> None:  # noqa: ANN001
    from video_inst.models.feature_cache import FeatureMapCache

    calls: list[int] = []
    handle = dasr.backbone.stages[0].register_forward_hook(lambda *_a: calls.append(1))
    try:
        assert dasr.prepare_query(frames[0]) == "off" and calls == [], "no cache: nothing to prepare"
        dasr.query_cache = FeatureMapCache(4)
        assert [dasr.prepare_query(frames[0]), dasr.prepare_query(frames[0])] == ["computed", "cached"]
        h, w = frames[0].shape[:2]
        dasr.query(frames[0], (0.0, 0.0, w / 2, h / 2))
        assert len(calls) == 1, "the box after prepare pooled from the kept map"
    finally:
        handle.remove()
        dasr.query_cache = FeatureMapCache(0)


def test_query_precision_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 / bfloat16 as asked; auto takes bfloat16 only where the CPU computes it natively."""
    import video_inst.models.dasr as dasr_module
    from video_inst.models.dasr import query_autocast

    cpu = torch.device("cpu")
    assert query_autocast("float32", cpu) is None
    assert query_autocast("bfloat16", cpu) is torch.bfloat16
    monkeypatch.setattr(dasr_module, "native_cpu_bf16", lambda: False)
    assert query_autocast("auto", cpu) is None
    monkeypatch.setattr(dasr_module, "native_cpu_bf16", lambda: True)
    assert query_autocast("auto", cpu) is torch.bfloat16


def test_a_bfloat16_query_stays_close_to_the_float32_one(dasr, frames) -> None:  # noqa: ANN001
    h, w = frames[0].shape[:2]
    box = (w * 0.2, h * 0.2, w * 0.7, h * 0.8)
    exact = dasr.query(frames[0], box)
    dasr.query_autocast = torch.bfloat16
    try:
        fast = dasr.query(frames[0], box)
    finally:
        dasr.query_autocast = None
    assert fast.vector.dtype == np.float32 and abs(float(np.linalg.norm(fast.vector)) - 1) < 1e-5
    assert 0.98 < float(fast.vector @ exact.vector) < 1.0  # close, and not silently float32
