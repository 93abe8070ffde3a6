"""PCA-whitening of region vectors: fit on a sample, apply (centre, project, L2), store as npz.

Pooled CNN activations are anisotropic: a few directions (image statistics shared by
almost every region) dominate the cosine, so unrelated regions score high. Whitening
removes the sample mean and rescales each principal direction to unit variance, so
ranking depends on what distinguishes regions (Jégou & Chum 2012, Radenović et al. 2018).
Plain whitening divides by sqrt(eigenvalue): directions of near-zero variance (noise, or
none at all when the sample has fewer vectors than dimensions) would be blown up, so the
eigenvalues are shrunk towards their mean first: ``(1 - s) * lambda + s * mean(lambda)``
(s = 0 is plain whitening, s = 1 is plain PCA rotation without rescaling). By default s is
the Ledoit-Wolf estimate (Ledoit & Wolf 2004): the shrinkage that minimises the expected
error of the covariance estimate, large when the sample is small for its dimension, near 0
when it is ample; it depends on the sample alone, so nothing is tuned on any test data.

Example::

    w = fit_whitening(sample, dim=256)        # sample: (N, D) float, N > 256
    z = w.apply(vectors)                      # (M, 256) float32, rows L2-normalised
    again = Whitening.from_bytes(w.to_bytes())
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from video_inst.errors import VideoInstError
from video_inst.vectors.codec import as_matrix, l2n

DEFAULT_SHRINKAGE: float | None = None  # None: Ledoit-Wolf, from the sample
_FORMAT = 1


class WhiteningError(VideoInstError):
    """A whitening cannot be fitted or read (too few vectors, bad blob, wrong width)."""


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening: ``l2n((x - mean) @ projection)``."""

    mean: np.ndarray  # (D,) float32
    projection: np.ndarray  # (D, d) float32: eigenvectors scaled by 1 / sqrt(shrunk eigenvalue)
    eigenvalues: np.ndarray  # (d,) float32, the sample's (unshrunk) variances along the kept axes
    shrinkage: float
    sample_size: int

    @property
    def in_dim(self) -> int:
        return int(self.projection.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened, L2-normalised float32 (N, out_dim); a vector of another width raises."""
        x = as_matrix(vectors, self.in_dim)
        return l2n((x - self.mean) @ self.projection)

    def to_bytes(self) -> bytes:
        """The npz blob kept in ``model_spaces.whitening`` (uncompressed: the values are dense)."""
        out = io.BytesIO()
        np.savez(
            out,
            format=np.int64(_FORMAT),
            mean=self.mean.astype("<f4"),
            projection=self.projection.astype("<f4"),
            eigenvalues=self.eigenvalues.astype("<f4"),
            shrinkage=np.float64(self.shrinkage),
            sample_size=np.int64(self.sample_size),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Whitening:
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                if int(data["format"]) != _FORMAT:
                    raise WhiteningError(
                        f"whitening blob has format {int(data['format'])}, expected {_FORMAT}"
                    )
                w = cls(
                    mean=data["mean"].astype(np.float32),
                    projection=data["projection"].astype(np.float32),
                    eigenvalues=data["eigenvalues"].astype(np.float32),
                    shrinkage=float(data["shrinkage"]),
                    sample_size=int(data["sample_size"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise WhiteningError(
                f"whitening blob is not a readable npz of mean + projection: {exc}"
            ) from None
        if w.mean.shape != (w.in_dim,) or w.eigenvalues.shape != (w.out_dim,):
            raise WhiteningError(
                f"whitening blob is inconsistent: mean {w.mean.shape}, projection {w.projection.shape}"
            )
        return w

    def digest(self) -> str:
        """Eight hex digits of the fitted parameters: names the derived model space."""
        h = hashlib.sha256()
        for part in (self.mean, self.projection):
            h.update(np.ascontiguousarray(part, dtype="<f4").tobytes())
        h.update(repr(float(self.shrinkage)).encode())
        return h.hexdigest()[:8]


def fit_whitening(
    sample: np.ndarray, dim: int | None = None, shrinkage: float | None = DEFAULT_SHRINKAGE
) -> Whitening:
    """PCA-whitening of ``sample`` (N, D) keeping the ``dim`` strongest directions (default D).

    Needs N > dim: N vectors span at most N - 1 directions around their mean, so more output
    dimensions than that would be pure noise. Computed in float64 from the D x D covariance
    (one ``eigh``: cheap for D in the low thousands, whatever N). ``shrinkage`` None: Ledoit-Wolf.
    """
    x = as_matrix(sample).astype(np.float64)
    n, d_in = x.shape
    out = d_in if dim is None else int(dim)
    if not 1 <= out <= d_in:
        raise WhiteningError(f"whitening dimension must be between 1 and {d_in}, got {dim}")
    if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
        raise WhiteningError(f"whitening shrinkage must be between 0 and 1, got {shrinkage}")
    if n <= out:
        raise WhiteningError(
            f"too few vectors to fit a {out}-dimensional whitening: {n} sampled, at least {out + 1} needed"
        )
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / (n - 1)
    if shrinkage is None:
        shrinkage = ledoit_wolf_shrinkage(centred)
    values, vectors = np.linalg.eigh(cov)  # ascending
    values = np.clip(values[::-1], 0.0, None)
    vectors = vectors[:, ::-1]
    # Deterministic signs (eigh may flip a column between runs or BLAS builds): largest entry positive.
    flip = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(d_in)])
    vectors = vectors * np.where(flip == 0, 1.0, flip)
    average = float(values.mean())
    if average <= 0.0:
        raise WhiteningError("the sampled vectors are all identical: nothing to whiten")
    shrunk = (1.0 - shrinkage) * values[:out] + shrinkage * average
    floor = average * 1e-6  # s = 0 on a rank-deficient sample: still finite
    projection = vectors[:, :out] / np.sqrt(np.maximum(shrunk, floor))
    return Whitening(
        mean=mean.astype(np.float32),
        projection=projection.astype(np.float32),
        eigenvalues=values[:out].astype(np.float32),
        shrinkage=float(shrinkage),
        sample_size=int(n),
    )


def ledoit_wolf_shrinkage(centred: np.ndarray) -> float:
    """Ledoit-Wolf intensity towards ``mean(eigenvalues) * I`` for a centred (N, D) sample.

    ``beta2 / delta2`` with ``delta2 = |S - mu I|^2 / D`` (how far the sample covariance is
    from the scaled identity) and ``beta2 = min(delta2, (sum |x|^4 / N - |S|^2) / (N D))``
    (the variance of S's estimate); computed without forming N outer products.
    """
    n, d = centred.shape
    s = centred.T @ centred / n
    mu = float(np.trace(s)) / d
    s_norm2 = float((s * s).sum())
    delta2 = (s_norm2 - 2 * mu * float(np.trace(s)) + mu * mu * d) / d
    if delta2 <= 0.0:
        return 1.0  # already a multiple of the identity
    fourth = float((np.einsum("ij,ij->i", centred, centred) ** 2).sum()) / n
    beta2 = min(delta2, max(0.0, (fourth - s_norm2) / (n * d)))
    return float(beta2 / delta2)
