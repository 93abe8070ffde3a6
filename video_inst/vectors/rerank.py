"""A compact on-disk copy of an index's vectors that re-ranks ANN candidates without reading SQL.

Why: IVF-PQ codes of <= 100 B rank coarsely, so an approximate index re-ranks ``k * oversample``
candidates. Reading them from SQL (float16, 2 B a dimension) costs one row each; this copy keeps
each vector PCA-reduced to ``out_dim`` dimensions as float16 (``fp16``, 2 B a dimension) or 8-bit
scalar codes (``sq8``, 1 B), in memory-mapped ``.npy`` files beside the index, so a server's
RAM holds only the pages it touches. Spec strings: ``"PCA256,fp16"`` (512 B a vector),
``"PCA384,sq8"`` (384 B).

Layout: ``<index stem>.rerank/params.npz`` (mean, projection, sq8 ranges) and one segment per
save that added vectors (``seg-<tag>.ids.npy`` sorted int64 ids, ``seg-<tag>.codes.npy``).
Removed ids stay in their segment (the index never returns them); a rebuild writes one fresh
segment. The index file's header lists the segments it needs (``meta["rerank"]``).

Scores: ``q . x ~= q . mean + (P^T q) . P^T (x - mean)`` with P the orthonormal projection: an
approximation of the cosine used to order candidates; the store then scores the k winners
exactly from SQL (docs/VECTORS.md "Compact indexes").
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_inst.vectors.errors import CorruptIndexError, VectorIndexError

_SPEC = re.compile(r"^PCA(\d+),(fp16|sq8)$")


def parse_spec(spec: str) -> tuple[int, str]:
    """``"PCA256,fp16"`` -> (256, "fp16"); anything else raises VectorIndexError."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise VectorIndexError(
            f"re-rank copy spec must look like 'PCA256,fp16' or 'PCA384,sq8', got {spec!r}"
        )
    return int(match.group(1)), match.group(2)


def bytes_per_vector(spec: str) -> int:
    out_dim, codec = parse_spec(spec)
    return out_dim * (2 if codec == "fp16" else 1)


@dataclass
class _Segment:
    ids: np.ndarray  # sorted int64
    codes: np.ndarray  # (n, out_dim) float16 or uint8, possibly a read-only memmap
    name: str | None = None  # file tag once saved


@dataclass
class RerankCopy:
    """PCA-reduced, quantised vectors by id; see the module docstring."""

    dim: int
    spec: str
    mean: np.ndarray | None = None
    proj: np.ndarray | None = None  # (dim, out_dim) float32, orthonormal columns
    lo: np.ndarray | None = None  # sq8: per-dimension range
    scale: np.ndarray | None = None
    segments: list[_Segment] = field(default_factory=list)
    _params_name: str | None = None

    def __post_init__(self) -> None:
        self.out_dim, self.codec = parse_spec(self.spec)
        if self.out_dim > self.dim:
            raise VectorIndexError(
                f"re-rank copy {self.spec!r} reduces to more than the {self.dim} dimensions"
            )

    @property
    def is_trained(self) -> bool:
        return self.proj is not None

    @property
    def code_bytes(self) -> int:
        return self.out_dim * (2 if self.codec == "fp16" else 1)

    @property
    def stored(self) -> int:
        return int(sum(len(s.ids) for s in self.segments))

    # ---------------------------------------------------------------- building
    def train(self, sample: np.ndarray) -> None:
        """PCA on a sample of stored vectors (float64 covariance, one eigh); sq8 ranges from it too."""
        x = np.asarray(sample, dtype=np.float32)
        if len(x) < 2:
            raise VectorIndexError(f"cannot train a re-rank copy on {len(x)} vectors")
        mean = x.mean(axis=0, dtype=np.float64)
        cov = np.zeros((self.dim, self.dim), dtype=np.float64)
        for start in range(0, len(x), 50_000):
            part = x[start : start + 50_000].astype(np.float64) - mean
            cov += part.T @ part
        _, vecs = np.linalg.eigh(cov)
        proj = vecs[:, ::-1][:, : self.out_dim]
        proj *= np.where(proj[np.abs(proj).argmax(axis=0), np.arange(self.out_dim)] < 0, -1.0, 1.0)
        self.mean = mean.astype(np.float32)
        self.proj = np.ascontiguousarray(proj, dtype=np.float32)
        if self.codec == "sq8":
            z = (x - self.mean) @ self.proj
            lo, hi = np.percentile(z, 0.1, axis=0), np.percentile(z, 99.9, axis=0)
            self.lo = lo.astype(np.float32)
            self.scale = np.maximum(hi - lo, 1e-6).astype(np.float32) / 255.0

    def encode(self, x: np.ndarray) -> np.ndarray:
        if not self.is_trained:
            raise VectorIndexError("re-rank copy used before training")
        z = (np.asarray(x, dtype=np.float32) - self.mean) @ self.proj
        if self.codec == "fp16":
            return z.astype(np.float16)
        return np.clip(np.rint((z - self.lo) / self.scale), 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self.codec == "fp16":
            return codes.astype(np.float32)
        return codes.astype(np.float32) * self.scale + self.lo

    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        """Append vectors (kept in memory until the next save writes them as one segment)."""
        if not len(ids):
            return
        order = np.argsort(ids, kind="stable")
        codes = self.encode(x)[order]
        ids = np.asarray(ids, dtype=np.int64)[order]
        last = self.segments[-1] if self.segments else None
        if last is not None and last.name is None:
            merged = np.concatenate([last.ids, ids])
            keep = np.argsort(merged, kind="stable")
            last.ids, last.codes = merged[keep], np.concatenate([last.codes, codes])[keep]
        else:
            self.segments.append(_Segment(ids, codes))

    # ----------------------------------------------------------------- reading
    def scores(self, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Approximate inner products (Q, C) of each query with its candidate ids; -inf where unknown."""
        out = np.full(cand.shape, -np.inf, dtype=np.float32)
        uniq = np.unique(cand[cand >= 0])
        if not len(uniq) or not self.is_trained:
            return out
        z = np.zeros((len(uniq), self.out_dim), dtype=np.float32)
        found = np.zeros(len(uniq), dtype=bool)
        for seg in self.segments:
            if not len(seg.ids):
                continue
            pos = np.minimum(np.searchsorted(seg.ids, uniq), len(seg.ids) - 1)
            hit = (seg.ids[pos] == uniq) & ~found
            if hit.any():
                rows = pos[hit]
                order = np.argsort(rows)  # ascending reads of the memory map
                got = self.decode(np.asarray(seg.codes[rows[order]]))
                idx = np.nonzero(hit)[0][order]
                z[idx] = got
                found[idx] = True
        qz = q @ self.proj  # (Q, out)
        base = q @ self.mean  # (Q,)
        pos = np.clip(np.searchsorted(uniq, cand), 0, len(uniq) - 1)
        ok = (cand >= 0) & (uniq[pos] == cand) & found[pos]
        rows, cols = np.nonzero(ok)
        out[rows, cols] = base[rows] + np.einsum("ij,ij->i", qz[rows], z[pos[rows, cols]])
        return out

    # ------------------------------------------------------------------- files
    @staticmethod
    def folder_for(index_path: Path) -> Path:
        return index_path.with_name(index_path.stem + ".rerank")

    def save(self, index_path: Path) -> dict[str, Any]:
        """Write params and unsaved segments; returns the manifest the index header keeps."""
        folder = self.folder_for(index_path)
        folder.mkdir(parents=True, exist_ok=True)
        for seg in self.segments:
            if seg.name is None:
                seg.name = uuid.uuid4().hex[:12]
                _write_npy(folder / f"seg-{seg.name}.ids.npy", seg.ids)
                _write_npy(folder / f"seg-{seg.name}.codes.npy", seg.codes)
        if not self._params_name or not (folder / self._params_name).exists():
            arrays = {"mean": self.mean, "proj": self.proj}
            if self.codec == "sq8":
                arrays.update(lo=self.lo, scale=self.scale)
            self._params_name = f"params-{uuid.uuid4().hex[:12]}.npz"
            _write_npz(folder / self._params_name, arrays)
        return {
            "spec": self.spec,
            "params": self._params_name,
            "segments": [[s.name, len(s.ids)] for s in self.segments],
        }

    @classmethod
    def load(cls, index_path: Path, dim: int, manifest: dict[str, Any]) -> RerankCopy:
        """Open a saved copy with its segments memory-mapped (read-only); missing parts: CorruptIndexError."""
        folder = cls.folder_for(index_path)
        copy = cls(dim, str(manifest["spec"]))
        try:
            with np.load(folder / manifest["params"]) as arrays:
                copy.mean, copy.proj = arrays["mean"], arrays["proj"]
                if copy.codec == "sq8":
                    copy.lo, copy.scale = arrays["lo"], arrays["scale"]
            copy._params_name = str(manifest["params"])
            for name, count in manifest["segments"]:
                ids = np.load(folder / f"seg-{name}.ids.npy", mmap_mode="r")
                codes = np.load(folder / f"seg-{name}.codes.npy", mmap_mode="r")
                if len(ids) != count or len(codes) != count or codes.shape[1:] != (copy.out_dim,):
                    raise CorruptIndexError(f"{index_path.name}: re-rank segment {name} has the wrong size")
                copy.segments.append(_Segment(ids, codes, str(name)))
        except (OSError, KeyError, ValueError) as err:
            raise CorruptIndexError(
                f"{index_path.name}: re-rank copy unreadable ({type(err).__name__})"
            ) from err
        return copy

    def disk_bytes(self, index_path: Path) -> int:
        folder = self.folder_for(index_path)
        return sum(p.stat().st_size for p in folder.iterdir()) if folder.exists() else 0


def collect_unused(index_path: Path, manifests: list[dict[str, Any]]) -> int:
    """Delete segment / params files no listed manifest names (the current and previous header)."""
    folder = RerankCopy.folder_for(index_path)
    if not folder.exists():
        return 0
    keep: set[str] = set()
    for manifest in manifests:
        keep.add(str(manifest.get("params")))
        for name, _count in manifest.get("segments", []):
            keep.update({f"seg-{name}.ids.npy", f"seg-{name}.codes.npy"})
    removed = 0
    for path in folder.iterdir():
        if path.name not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        np.save(out, np.ascontiguousarray(array))
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        np.savez(out, **arrays)
    tmp.replace(path)
