"""Model-space names: formatted and parsed in one module (video_inst/models/space_names.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from video_inst.errors import ModelSpaceMismatchError
from video_inst.models.dasr_params import DasrParams
from video_inst.models.space_names import (
    ClipName,
    DasrName,
    clip_name,
    clip_random_name,
    family_of,
    parse_clip,
    parse_dasr,
    whitened_name,
)


@given(
    st.sampled_from(["efficientnet_lite0", "resnet50:0676ba61", "efficientnet_lite0:random"]),
    st.integers(32, 2048),
    st.sampled_from(["avg", "gem"]),
    st.sampled_from([1.0, 2.5, 3.0, 4.0]),
    st.integers(0, 4),
)
def test_a_dasr_name_parses_back_to_the_parameters_that_made_it(
    model_id: str, size: int, pooling: str, p: float, tiles: int
) -> None:
    params = DasrParams(input_size=size, pooling=pooling, gem_p=p, tiles=tiles)  # type: ignore[arg-type]
    name = params.space_name(model_id)
    assert family_of(name) == "dasr"
    assert parse_dasr(name) == DasrName(
        model_id, size, pooling, p if pooling == "gem" else None, tiles if tiles > 1 else 0
    )


def test_names_as_stored_in_catalogs() -> None:
    assert DasrParams().space_name("efficientnet_lite0") == "dasr:efficientnet_lite0:s576:avg"
    assert DasrParams(pooling="gem", tiles=2).space_name("m") == "dasr:m:s576:gem3:t2"
    assert clip_name("ViT-B-32", "laion2b_s34b_b79k") == "clip:ViT-B-32:laion2b_s34b_b79k"
    assert parse_clip("clip:ViT-B-32:laion2b_s34b_b79k") == ClipName("ViT-B-32", "laion2b_s34b_b79k", None)
    assert parse_clip(clip_random_name("vi-tiny-clip", 7)) == ClipName("vi-tiny-clip", "random", 7)
    assert whitened_name("dasr:m:s576:avg", 256, "abc123") == "dasr:m:s576:avg+pcaw256-abc123"
    assert family_of("clip:x:y") == "clip"


@pytest.mark.parametrize("name", ["dasr:m:s576", "dasr:m:576:avg", "clip:x:y", "other:x"])
def test_not_a_dasr_name_is_named(name: str) -> None:
    with pytest.raises(ModelSpaceMismatchError):
        parse_dasr(name)


@pytest.mark.parametrize("name", ["clip:", "clip:x", "dasr:m:s576:avg"])
def test_not_a_clip_name_is_named(name: str) -> None:
    with pytest.raises(ModelSpaceMismatchError):
        parse_clip(name)
    with pytest.raises(ModelSpaceMismatchError, match="unknown family"):
        family_of("pca:x")
