"""Vectors ⇄ bytes for the ``vectors.data`` column: float16, little-endian, one row per blob.

SQL keeps every vector (so FAISS can be rebuilt and results re-ranked exactly); float16
halves the bytes and loses nothing that matters to cosine ranking. Vectors are
L2-normalised before they are stored, so inner product is cosine similarity::

    blobs = encode(l2n(np.random.rand(3, 512)))
    back = decode(blobs, 512)          # float32, shape (3, 512)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from video_inst.errors import ModelSpaceMismatchError
from video_inst.vectors.errors import InvalidVectorsError

_F16 = np.dtype("<f2")
_F16_MAX = float(np.finfo(np.float16).max)


def as_matrix(vectors: np.ndarray | Sequence[Sequence[float]], dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 (N, D) copy, checked, because FAISS silently misreads anything else.

    A single vector (D,) becomes (1, D). ``dim`` given: a different width raises
    ModelSpaceMismatchError, since it means vectors from another model.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVectorsError(f"vectors must be a (N, D) array, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ModelSpaceMismatchError(f"vectors have dimension {arr.shape[1]} but the model space has {dim}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidVectorsError(f"vector {bad} contains NaN or infinity")
    return np.ascontiguousarray(arr)


def l2n(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so that inner product ranks like cosine similarity.

    A zero row stays zero (it matches nothing) instead of becoming NaN.
    """
    arr = as_matrix(vectors)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, np.float32(1e-12))


def encode(vectors: np.ndarray) -> list[bytes]:
    """One float16 little-endian blob per row; values beyond float16 range are refused, not clipped."""
    arr = as_matrix(vectors)
    if arr.size and float(np.abs(arr).max()) > _F16_MAX:
        raise InvalidVectorsError(
            f"vector values exceed the float16 range ({_F16_MAX}); normalise them first"
        )
    half = arr.astype(_F16)
    return [row.tobytes() for row in half]


def encode_one(vector: np.ndarray | Sequence[float]) -> bytes:
    """The blob of a single vector (D,)."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1:
        raise InvalidVectorsError(f"encode_one takes one vector (D,), got shape {arr.shape}")
    return encode(arr[None, :])[0]


def decode(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Blobs back to a float32 (N, dim) matrix in one copy (fast for thousands of rows).

    A blob of the wrong length was written by another model space: ModelSpaceMismatchError.
    """
    width = dim * _F16.itemsize
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    if (lengths != width).any():
        bad = int(np.flatnonzero(lengths != width)[0])
        raise ModelSpaceMismatchError(
            f"stored vector {bad} has {lengths[bad]} bytes, expected {width} (dimension {dim}, float16)"
        )
    flat = np.frombuffer(b"".join(blobs), dtype=_F16)
    return flat.reshape(len(blobs), dim).astype(np.float32)


def decode_one(blob: bytes, dim: int) -> np.ndarray:
    """The float32 (dim,) vector of one blob."""
    return decode([blob], dim)[0]
