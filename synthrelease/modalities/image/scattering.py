"""Wavelet scattering features of tiles: a PUBLIC, hand-made texture map (no learned weights).

Tramèr & Boneh (ICLR 2021, "Differentially private learning needs better features") found the
scattering transform (Bruna & Mallat 2013, IEEE TPAMI 35:1872) the strongest hand-made feature
for DP image learning. This is the 2-D transform of kymatio's ``Scattering2D`` (Morlet
wavelets of J scales and L orientations, orders 1 and 2), written here because kymatio 0.3
does not import with SciPy ≥ 1.15 (``scipy.special.sph_harm`` is gone), and reduced to what a
tile descriptor needs:

* inputs: two maps per tile — grey (ITU-R BT.601 luma) and, for RGB, haematoxylin optical
  density by colour deconvolution (``skimage.color.rgb2hed``), so nuclei texture is seen apart
  from stroma texture;
* order 1: ``S1[j] = mean_u |x ⋆ ψ_{j,θ}|(u)`` averaged over the L orientations θ;
* order 2: ``S2[j1, j2, Δθ] = mean_u ||x ⋆ ψ_{j1,θ1}| ⋆ ψ_{j2,θ2}|(u)`` for j2 > j1, averaged
  over the pairs with the same orientation difference Δθ, divided by ``S1[j1]``
  (renormalised, as Bruna & Mallat do, so it measures the shape of the texture, not its
  contrast);
* global spatial means (a tile is a texture sample), then ``log(ε + ·)``.

Rotation averaging makes the features invariant to the tile's orientation (tissue has none).
Every feature of a tile depends on that tile alone, and the wavelets are fixed constants.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

SCALES = 3
"""J: dyadic scales 2^0 … 2^(J−1) (pixels of the wavelet's Gaussian width ∝ 0.8 · 2^j)."""
ORIENTATIONS = 4
"""L: wavelet orientations over [0, π)."""
_FLOOR = 1e-4
_BLOCK = 256
_LUMA = np.array([0.299, 0.587, 0.114])


@functools.cache
def _filters(size: int) -> np.ndarray:
    """Morlet wavelets in the Fourier domain, ``[J, L, size, size]`` (real, zero mean).

    Kymatio's parameters: σ = 0.8 · 2^j, ξ = 3π/4 / 2^j, slant 4/L; ψ̂ = ĝ(ω − ξ) − β ĝ(ω)
    with β chosen so that ψ̂(0) = 0 (a Morlet, not a Gabor, wavelet).
    """
    w = 2 * np.pi * np.fft.fftfreq(size)
    wy, wx = np.meshgrid(w, w, indexing="ij")
    slant = 4.0 / ORIENTATIONS
    out = np.empty((SCALES, ORIENTATIONS, size, size))
    for j in range(SCALES):
        sigma, xi = 0.8 * 2**j, 3 * np.pi / 4 / 2**j
        for k in range(ORIENTATIONS):
            c, s = np.cos(np.pi * k / ORIENTATIONS), np.sin(np.pi * k / ORIENTATIONS)
            shifted = _envelope(wx - xi * c, wy - xi * s, c, s, sigma, slant)
            centred = _envelope(wx, wy, c, s, sigma, slant)
            out[j, k] = shifted - shifted[0, 0] / centred[0, 0] * centred
    return out.astype(np.float32)


def _envelope(ax: np.ndarray, ay: np.ndarray, c: float, s: float, sigma: float, slant: float) -> np.ndarray:
    """The Gaussian envelope's Fourier transform at frequencies (ax, ay), axes turned by (cos, sin) = (c, s)."""
    along, across = c * ax + s * ay, -s * ax + c * ay
    return np.exp(-(sigma**2) / 2 * (along**2 + across**2 / slant**2))


def _maps(x: np.ndarray) -> np.ndarray:
    """``[n, H, W, C]`` on [0, 1] → the maps the transform reads, ``[n, M, H, W]``."""
    if x.shape[-1] == 1:
        return x[..., 0][:, None]
    from skimage.color import rgb2hed

    grey = x @ _LUMA
    haematoxylin = np.clip(rgb2hed(x)[..., 0], 0.0, None)
    return np.stack([grey, haematoxylin], axis=1)


def scattering_features(images: np.ndarray) -> np.ndarray:
    """Rotation-averaged, renormalised order-1 and order-2 scattering of each tile, log scale.

    Args:
        images: uint8 ``[n, H, W, C]`` (C = 1 or 3), square tiles of 16–64 px.

    Returns:
        float64 ``[n, F]`` with F = maps × (J + J(J−1)/2 · (L/2 + 1)) (2 maps for RGB, 1 for grey).
    """
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[1] != arr.shape[2] or arr.shape[-1] not in (1, 3):
        raise ValueError(f"images must be square [n, H, H, 1 or 3], not {arr.shape}")
    parts = [_block(arr[i:i + _BLOCK].astype(np.float64) / (255.0 if arr.dtype == np.uint8 else 1.0))
             for i in range(0, len(arr), _BLOCK)]
    if not parts:
        return np.empty((0, feature_count(arr.shape[-1])))
    return np.concatenate(parts)


def feature_count(channels: int) -> int:
    """Number of scattering features of a tile with ``channels`` channels."""
    maps = 1 if channels == 1 else 2
    return maps * (SCALES + SCALES * (SCALES - 1) // 2 * (ORIENTATIONS // 2 + 1))


def _block(x: np.ndarray) -> np.ndarray:
    maps = _maps(x)  # [n, M, S, S]
    n, _, size, _ = maps.shape
    psi = _filters(size)  # [J, L, S, S]
    spectrum = scipy.fft.fft2(maps.astype(np.float32))[:, :, None, None]  # [n, M, 1, 1, S, S]
    u1 = np.abs(scipy.fft.ifft2(spectrum * psi))  # [n, M, J, L, S, S]
    s1 = u1.mean(axis=(-2, -1))  # [n, M, J, L]
    cols = [np.log(_FLOOR + s1.mean(axis=-1))]  # orientation-averaged order 1: [n, M, J]
    u1_hat = scipy.fft.fft2(u1)
    for j1 in range(SCALES):
        for j2 in range(j1 + 1, SCALES):
            # [n, M, L1, L2]: every (θ1, θ2) pair
            s2 = np.abs(scipy.fft.ifft2(u1_hat[:, :, j1, :, None] * psi[j2][None, None, None])).mean(axis=(-2, -1))
            for d in range(ORIENTATIONS // 2 + 1):  # |θ2 − θ1| in steps of π/L, folded (0 … L/2)
                pairs = [(a, b) for a in range(ORIENTATIONS) for b in range(ORIENTATIONS)
                         if min((a - b) % ORIENTATIONS, (b - a) % ORIENTATIONS) == d]
                mean = np.mean([s2[:, :, a, b] for a, b in pairs], axis=0)
                cols.append(np.log(_FLOOR + mean / (_FLOOR + s1[:, :, j1].mean(axis=-1)))[:, :, None])
    return np.concatenate(cols, axis=2).reshape(n, -1).astype(np.float64)
