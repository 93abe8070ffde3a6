"""Vectors ⇄ bytes for the ``vectors.data`` column: float16 values, one row per blob, lossless.

SQL keeps every vector (so FAISS can be rebuilt and results re-ranked exactly); float16
halves the bytes and loses nothing that matters to cosine ranking. Vectors are
L2-normalised before they are stored, so inner product is cosine similarity.

Two layouts, both little-endian, told apart by the blob's length (dense is even, sparse odd):

- dense: ``dim`` float16 values (``2 * dim`` bytes);
- sparse, written when it is smaller: ``b"S"``, the dimension (u16), a bitmap of the non-zero
  coordinates (``ceil(dim / 8)`` bytes, bit i of byte j = coordinate 8j + i), their float16
  values in coordinate order, and one zero byte where needed to make the length odd. DASR
  vectors come out of a ReLU: ~40% non-zero at 1,280-d, 1.2 KB a vector instead of 2.5 KB
  (docs/VECTORS.md, "Disk per hour"). Decoding gives exactly the float16 values of the dense
  layout (a negative zero comes back as zero).

Example::

    blobs = encode(l2n(np.random.rand(3, 512)))
    back = decode(blobs, 512)          # float32, shape (3, 512)
    blob_dim(blobs[0])                 # 512, whichever layout
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from video_inst.errors import ModelSpaceMismatchError
from video_inst.vectors.errors import InvalidVectorsError

_F16 = np.dtype("<f2")
_F16_MAX = float(np.finfo(np.float16).max)
_SPARSE = b"S"
_SPARSE_HEAD = 3  # tag + u16 dimension
_SPARSE_DIM_MAX = 0xFFFF


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


def _bitmap_bytes(dim: int) -> int:
    return (dim + 7) // 8


def sparse_size(dim: int, nnz: int) -> int:
    """Bytes of a sparse blob with ``nnz`` non-zero values (always odd)."""
    size = _SPARSE_HEAD + _bitmap_bytes(dim) + 2 * nnz
    return size + 1 - size % 2


def encode(vectors: np.ndarray) -> list[bytes]:
    """One blob per row, sparse where smaller; values beyond float16 range are refused, not clipped."""
    arr = as_matrix(vectors)
    if arr.size and float(np.abs(arr).max()) > _F16_MAX:
        raise InvalidVectorsError(
            f"vector values exceed the float16 range ({_F16_MAX}); normalise them first"
        )
    half = arr.astype(_F16)
    dim = half.shape[1]
    if dim > _SPARSE_DIM_MAX or not len(half):
        return [row.tobytes() for row in half]
    nonzero = half != 0
    nnz = nonzero.sum(axis=1)
    bitmaps = np.packbits(nonzero, axis=1, bitorder="little")
    head = _SPARSE + dim.to_bytes(2, "little")
    out = []
    for row, mask, bits, count in zip(half, nonzero, bitmaps, nnz.tolist()):
        size = sparse_size(dim, count)
        if size >= 2 * dim:
            out.append(row.tobytes())
            continue
        blob = head + bits.tobytes() + row[mask].tobytes()
        out.append(blob + b"\0" * (size - len(blob)))
    return out


def encode_one(vector: np.ndarray | Sequence[float]) -> bytes:
    """The blob of a single vector (D,)."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1:
        raise InvalidVectorsError(f"encode_one takes one vector (D,), got shape {arr.shape}")
    return encode(arr[None, :])[0]


def blob_dim(blob: bytes) -> int:
    """The dimension of the vector in one blob, whichever layout it has."""
    blob = bytes(blob)
    if len(blob) % 2 == 0:
        return len(blob) // 2
    if len(blob) < _SPARSE_HEAD or blob[:1] != _SPARSE:
        raise InvalidVectorsError(f"stored vector of {len(blob)} bytes is neither dense nor sparse float16")
    return int.from_bytes(blob[1:3], "little")


def decode(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Blobs back to a float32 (N, dim) matrix in a few vectorised copies (fast for thousands of rows).

    A blob of another width was written by another model space: ModelSpaceMismatchError.
    """
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    width = dim * _F16.itemsize
    nbits = _bitmap_bytes(dim)
    dense_rows: list[int] = []
    dense: list[bytes] = []
    sparse_rows: list[int] = []
    bitmaps: list[bytes] = []
    values: list[bytes] = []
    for pos, blob in enumerate(blobs):
        blob = bytes(blob)
        if len(blob) == width:
            dense_rows.append(pos)
            dense.append(blob)
            continue
        got = _blob_dim_or_none(blob)
        if got != dim or len(blob) >= width:
            raise ModelSpaceMismatchError(
                f"stored vector {pos} has {len(blob)} bytes, expected {width} (dimension {dim}, float16) "
                f"or a sparse blob of that dimension"
                + (f"; it holds a vector of dimension {got}" if got is not None else "")
            )
        bitmaps.append(blob[_SPARSE_HEAD : _SPARSE_HEAD + nbits])
        values.append(blob[_SPARSE_HEAD + nbits :])
        sparse_rows.append(pos)
    out = np.zeros((len(blobs) if dense else 0, dim), dtype=np.float32)
    if dense:
        out[dense_rows] = np.frombuffer(b"".join(dense), dtype=_F16).reshape(len(dense), dim)
    if sparse_rows:
        bits = np.frombuffer(b"".join(bitmaps), dtype=np.uint8).reshape(len(sparse_rows), nbits)
        mask = np.unpackbits(bits, axis=1, count=dim, bitorder="little").view(bool)
        counts = mask.sum(axis=1)
        # each value run is 2 * count bytes plus at most one pad byte
        spare = [len(v) - 2 * c for v, c in zip(values, counts.tolist())]
        if any(extra not in (0, 1) for extra in spare):
            bad = sparse_rows[next(i for i, extra in enumerate(spare) if extra not in (0, 1))]
            raise InvalidVectorsError(f"stored vector {bad}: sparse bitmap and values disagree (damaged row)")
        flat = b"".join(v[: 2 * int(c)] for v, c in zip(values, counts.tolist()))
        block = np.zeros(len(sparse_rows) * dim, dtype=np.float32)
        # fancy indexing on flat positions: ~3x faster than assigning through the boolean mask
        block[np.flatnonzero(mask)] = np.frombuffer(flat, dtype=_F16).astype(np.float32)
        if len(sparse_rows) == len(blobs):
            return block.reshape(len(blobs), dim)
        out[sparse_rows] = block.reshape(len(sparse_rows), dim)
    return out


def _blob_dim_or_none(blob: bytes) -> int | None:
    try:
        return blob_dim(blob)
    except InvalidVectorsError:
        return None


def decode_one(blob: bytes, dim: int) -> np.ndarray:
    """The float32 (dim,) vector of one blob."""
    return decode([blob], dim)[0]
