"""PCA-whitening math on synthetic data with known answers (no catalog, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from video_inst.spaces.whitening import Whitening, WhiteningError, fit_whitening


def _anisotropic(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian data with a known mean and a known covariance (random rotation, spread variances)."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    stds = np.geomspace(10.0, 0.1, d)
    mean = rng.normal(size=d) * 3
    x = (rng.normal(size=(n, d)) * stds) @ rotation.T + mean
    return x, mean, (rotation * stds**2) @ rotation.T


def test_plain_whitening_gives_identity_covariance_on_the_sample() -> None:
    x, _, _ = _anisotropic(5000, 16)
    w = fit_whitening(x, shrinkage=0.0)
    z = (x - w.mean) @ w.projection  # before the final L2: the whitened coordinates
    assert np.abs(z.mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(16), atol=2e-3)


def test_fit_recovers_the_known_mean_and_variances() -> None:
    x, mean, cov = _anisotropic(20_000, 8, seed=1)
    w = fit_whitening(x, shrinkage=0.0)
    np.testing.assert_allclose(w.mean, mean, atol=0.15)  # sampling error of the largest std (10)
    np.testing.assert_allclose(w.eigenvalues, np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=0.05)


def test_reduced_dim_keeps_the_strongest_directions_and_outputs_unit_rows() -> None:
    x, _, _ = _anisotropic(3000, 32, seed=2)
    w = fit_whitening(x, dim=5, shrinkage=0.0)
    assert (w.in_dim, w.out_dim) == (32, 5)
    assert np.all(np.diff(w.eigenvalues) <= 0)
    out = w.apply(x[:100])
    assert out.shape == (100, 5) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    z = (x - w.mean) @ w.projection
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(5), atol=5e-3)


def test_shrinkage_bounds_the_gain_of_weak_directions() -> None:
    """Fewer vectors than dimensions: plain whitening blows null directions up, shrinkage does not."""
    x, _, _ = _anisotropic(40, 64, seed=3)
    plain = fit_whitening(x, dim=39, shrinkage=0.0)
    shrunk = fit_whitening(x, dim=39, shrinkage=0.5)
    gain = lambda w: np.linalg.norm(w.projection, axis=0)  # noqa: E731 - scale per output axis
    average = float(np.mean(np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False)), 0, None)))
    assert gain(shrunk).max() <= 1 / np.sqrt(0.5 * average) + 1e-4
    assert gain(plain).max() > 5 * gain(shrunk).max()
    full = fit_whitening(x, dim=39, shrinkage=1.0)
    np.testing.assert_allclose(gain(full), 1 / np.sqrt(average), rtol=1e-4)  # s = 1: rotation only


def test_npz_round_trip_is_exact_and_digest_names_the_parameters() -> None:
    x, _, _ = _anisotropic(500, 12, seed=4)
    w = fit_whitening(x, dim=6)
    back = Whitening.from_bytes(w.to_bytes())
    for name in ("mean", "projection", "eigenvalues"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))
    assert (back.shrinkage, back.sample_size) == (w.shrinkage, 500)
    np.testing.assert_array_equal(back.apply(x[:5]), w.apply(x[:5]))
    assert back.digest() == w.digest() != fit_whitening(x[:400], dim=6).digest()
    assert fit_whitening(x, dim=6).digest() == w.digest()  # deterministic (eigenvector signs fixed)


def test_too_few_vectors_bad_dim_and_bad_blob_are_clear_errors() -> None:
    x, _, _ = _anisotropic(10, 12, seed=5)
    with pytest.raises(WhiteningError, match="too few vectors.*10 sampled, at least 13 needed"):
        fit_whitening(x)
    with pytest.raises(WhiteningError, match="between 1 and 12"):
        fit_whitening(x, dim=20)
    with pytest.raises(WhiteningError, match="not a readable npz"):
        Whitening.from_bytes(b"not an npz")
    w = fit_whitening(x, dim=4)
    from video_inst.errors import ModelSpaceMismatchError

    with pytest.raises(ModelSpaceMismatchError):
        w.apply(np.ones((2, 7)))


def test_ledoit_wolf_shrinkage_follows_the_sample_size_and_matches_a_reference() -> None:
    from video_inst.spaces.whitening import ledoit_wolf_shrinkage

    rng = np.random.default_rng(6)
    stds = np.geomspace(10.0, 0.1, 64)

    def centred(n: int, scale: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(n, len(scale))) * scale
        return x - x.mean(axis=0)

    few, many = ledoit_wolf_shrinkage(centred(40, stds)), ledoit_wolf_shrinkage(centred(20_000, stds))
    assert 0.1 < few < 1 and many < 0.01  # a small sample is shrunk hard, an ample one hardly
    assert ledoit_wolf_shrinkage(centred(5000, np.ones(64))) > 0.8  # the truth is isotropic
    sklearn = pytest.importorskip("sklearn.covariance")  # an independent implementation, if present
    x = centred(300, stds[:20])
    assert ledoit_wolf_shrinkage(x) == pytest.approx(sklearn.ledoit_wolf_shrinkage(x, assume_centered=True))
    w = fit_whitening(centred(40, stds), dim=30)  # the default: Ledoit-Wolf from the sample
    assert 0.1 < w.shrinkage < 1
