"""Model-space names, formatted and parsed here and nowhere else.

A model space's name carries every parameter that changes its vectors, so a model can be
rebuilt from the name alone (``models.loading.load_space_model``) and two models never
share a space:

- DASR: ``dasr:<backbone id>:s<input size>:<avg|gem<p>>[:t<tiles>[f][s<tile size>]]``, e.g.
  ``dasr:efficientnet_lite0:s576:avg`` (``f``: the tiles' regions from forward-only peaks;
  ``s<tile size>``: tiles at another network input than the whole frame);
- CLIP: ``clip:<model>:<pretrained tag>``, e.g. ``clip:ViT-B-32:laion2b_s34b_b79k``, or
  ``clip:<model>:random:s<seed>`` for seeded random weights (tests, speed figures);
- a whitened copy of a DASR space: ``<base>+pcaw<dim>-<digest>`` (docs/VECTORS.md).

No imports beyond the standard library: processes that never run a network read names too.

Example::

    name = dasr_name("efficientnet_lite0", input_size=576, pooling="avg")
    assert parse_dasr(name) == DasrName("efficientnet_lite0", 576, "avg", None, 0)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from video_inst.errors import ModelSpaceMismatchError

_DASR = re.compile(
    r"^dasr:(?P<model>.+):s(?P<size>\d+):(?P<pool>avg|gem(?P<p>[0-9.e+-]+))(?::t(?P<tiles>\d+)(?P<fwd>f)?(?:s(?P<tsize>\d+))?)?$"
)
_CLIP_RANDOM = re.compile(r"^clip:(?P<model>.+):random:s(?P<seed>\d+)$")


class DasrName(NamedTuple):
    """The parts of a DASR space name (``gem_p`` None for average pooling)."""

    model_id: str
    input_size: int
    pooling: str
    gem_p: float | None
    tiles: int
    tile_mode: str = "excite"
    tile_size: int = 0


class ClipName(NamedTuple):
    """The parts of a CLIP space name (``seed`` set, and ``pretrained='random'``, for random weights)."""

    model: str
    pretrained: str
    seed: int | None


def family_of(name: str) -> str:
    """'dasr' or 'clip' (a whitened copy is of its base's family)."""
    for family in ("dasr", "clip"):
        if name.startswith(f"{family}:"):
            return family
    raise ModelSpaceMismatchError(f"model space {name!r}: unknown family, cannot rebuild its model")


def dasr_name(
    model_id: str,
    *,
    input_size: int,
    pooling: str,
    gem_p: float = 3.0,
    tiles: int = 0,
    tile_mode: str = "excite",
    tile_size: int = 0,
) -> str:
    """The DASR space of a backbone and the DASR parameters that change vector values."""
    pool = "avg" if pooling == "avg" else f"gem{gem_p:g}"
    suffix = ""
    if tiles > 1:
        mode = "f" if tile_mode == "forward" else ""
        size = f"s{tile_size}" if tile_size and tile_size != input_size else ""
        suffix = f":t{tiles}{mode}{size}"
    return f"dasr:{model_id}:s{input_size}:{pool}{suffix}"


def parse_dasr(name: str) -> DasrName:
    """The parts of a DASR space name; ``ModelSpaceMismatchError`` for anything else."""
    m = _DASR.match(name)
    if m is None:
        raise ModelSpaceMismatchError(f"model space {name!r} is not a DASR space name")
    pooling = "avg" if m["pool"] == "avg" else "gem"
    return DasrName(
        m["model"],
        int(m["size"]),
        pooling,
        float(m["p"]) if m["p"] else None,
        int(m["tiles"] or 0),
        "forward" if m["fwd"] else "excite",
        int(m["tsize"] or 0),
    )


def clip_name(model: str, pretrained: str) -> str:
    """The CLIP space of an open_clip model and its pretrained tag."""
    return f"clip:{model}:{pretrained}"


def clip_random_name(model: str, seed: int) -> str:
    """The CLIP space of seeded random weights: never mixed with real ones, exactly rebuildable."""
    return f"clip:{model}:random:s{seed}"


def parse_clip(name: str) -> ClipName:
    """The parts of a CLIP space name; ``ModelSpaceMismatchError`` for anything else."""
    random = _CLIP_RANDOM.match(name)
    if random is not None:
        return ClipName(random["model"], "random", int(random["seed"]))
    if not name.startswith("clip:"):
        raise ModelSpaceMismatchError(f"model space {name!r} is not a CLIP space name")
    model, _, tag = name[len("clip:") :].rpartition(":")
    if not model or not tag:
        raise ModelSpaceMismatchError(f"model space {name!r} is not a CLIP space name")
    return ClipName(model, tag, None)


def whitened_name(base: str, dim: int, digest: str) -> str:
    """``<base>+pcaw<dim>-<digest>``: a new fit is a new space, never a silent change of one."""
    return f"{base}+pcaw{dim}-{digest}"
