"""Wavelet scattering features of tiles (issue 28): public, per-tile, rotation-invariant, texture-sensitive."""

from __future__ import annotations

import numpy as np
import pytest

from synthrelease.modalities.image.scattering import _filters, feature_count, scattering_features


def _tiles(n: int = 12, size: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def test_the_wavelets_are_zero_mean_morlets_of_every_scale_and_orientation():
    psi = _filters(32)
    assert psi.shape == (3, 4, 32, 32)
    np.testing.assert_allclose(psi[:, :, 0, 0], 0.0, atol=1e-6)  # no DC: a Morlet, not a Gabor
    peaks = [np.unravel_index(np.abs(p).argmax(), p.shape) for p in psi[:, 0]]
    assert len(set(peaks)) == 3  # three distinct centre frequencies


@pytest.mark.parametrize(("size", "channels"), [(16, 3), (32, 1), (64, 3)])
def test_one_row_per_tile_each_from_its_own_tile(size, channels):
    tiles = _tiles(10, size, channels)
    feats = scattering_features(tiles)
    assert feats.shape == (10, feature_count(channels)) and np.isfinite(feats).all()
    np.testing.assert_allclose(scattering_features(tiles[:3]), feats[:3], rtol=1e-5, atol=1e-6)
    assert scattering_features(tiles[:0]).shape == (0, feature_count(channels))


def test_a_quarter_turn_leaves_the_features_unchanged():
    tiles = _tiles(4)
    # equal up to the grid's one unpaired (Nyquist) frequency: within 2 % (0.02 in log units)
    np.testing.assert_allclose(scattering_features(np.rot90(tiles, 1, axes=(1, 2))), scattering_features(tiles),
                               rtol=0, atol=0.02)


def test_it_tells_fine_grain_from_coarse_blobs_of_the_same_colour_statistics():
    rng = np.random.default_rng(1)
    fine = rng.integers(0, 2, (4, 32, 32)) * 255
    coarse = np.kron(rng.integers(0, 2, (4, 8, 8)), np.ones((4, 4))) * 255
    as_rgb = [np.repeat(t[..., None], 3, axis=-1).astype(np.uint8) for t in (fine, coarse)]
    a, b = (scattering_features(t) for t in as_rgb)
    # order 1, grey map: the finest scale dominates in the grain, the coarser ones in the blobs
    assert (a[:, 0] > b[:, 0]).all() and (a[:, 2] < b[:, 2]).all()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        scattering_features(np.zeros((2, 32, 16, 3), dtype=np.uint8))
