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

from video_inst.analyse import load_dasr
from video_inst.config import Settings


@pytest.fixture(scope="module")
def dasr():  # noqa: ANN201 - DasrExtractor
    return load_dasr(Settings(device="cpu"))


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
