"""A public-bounded feature view of image tiles: one row per tile, every column within constant bounds.

The release gate computes its DP figures on a table whose every column has PUBLIC bounds,
one row per record. :func:`feature_view` maps each tile, alone, to 15 (grey) or 32
(RGB) numbers — intensity statistics, colour (HSV), near-white/near-black shares, Sobel
gradient, GLCM texture (scikit-image, 32 grey levels) and the power spectrum — and
:func:`view_columns` declares their bounds, which are constants of the definitions (never
estimated from data). Every value is clipped to its declared bounds as a last guard.

The view sees colour, intensity and texture statistics and, for RGB tiles, a first measure
of morphology: haematoxylin density by colour deconvolution (``skimage.color.rgb2hed``),
the share of nuclear pixels and the number of nuclear regions per pixel. It does not see
shapes or the spatial arrangement of structures larger than a few pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

GLCM_LEVELS = 32
"""Grey levels of the quantisation the GLCM texture features use."""
GLCM_DISTANCES = (1,)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
WHITE_LEVEL = 0.9
BLACK_LEVEL = 0.1
HIGH_FREQUENCY = 0.25
"""Radial frequency (cycles/pixel) above which power counts as high-frequency (Nyquist = 0.5)."""
SLOPE_BOUNDS = (-8.0, 8.0)
"""Declared bounds of the power-spectrum slope; fitted slopes are clipped to them."""
BLOCK = 256
"""Tiles processed together (bounded memory for thousands of tiles)."""
NUCLEAR_OD = 0.06
"""Haematoxylin optical density (``skimage.color.rgb2hed``, Ruifrok & Johnston 2001) above which
an RGB pixel counts as nuclear: a PUBLIC constant of the stain, never fitted to data."""

_CHANNEL_NAMES = {1: ("grey",), 3: ("r", "g", "b")}
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray weights


def view_columns(channels: int) -> dict[str, dict[str, Any]]:
    """Each feature column's PUBLIC bounds, in the metadata column format (``ColumnSpec`` fields).

    The bounds are constants implied by the definitions (intensities on [0, 1]); they depend
    only on ``channels`` (1 or 3), never on data.
    """
    if channels not in _CHANNEL_NAMES:
        raise ValueError(f"channels must be 1 or 3, not {channels}")

    def col(lo: float, hi: float, text: str) -> dict[str, Any]:
        return {"type": "float", "min": float(lo), "max": float(hi), "description": text}

    cols: dict[str, dict[str, Any]] = {}
    for c in _CHANNEL_NAMES[channels]:
        cols[f"{c}_mean"] = col(0, 1, f"mean {c} intensity on [0, 1]")
        cols[f"{c}_std"] = col(0, 0.5, f"standard deviation of {c} intensity (at most 0.5 on [0, 1])")
        for q in (5, 50, 95):
            cols[f"{c}_p{q:02d}"] = col(0, 1, f"{q}th percentile of {c} intensity on [0, 1]")
    if channels == 3:
        cols["hue_mean"] = col(0, 1, "mean HSV hue on [0, 1] (not circular: red sits at both ends)")
        cols["saturation_mean"] = col(0, 1, "mean HSV saturation on [0, 1]")
        cols["value_mean"] = col(0, 1, "mean HSV value (max of R, G, B) on [0, 1]")
        cols["grey_mean"] = col(0, 1, "mean grey (luma 0.2125 R + 0.7154 G + 0.0721 B) on [0, 1]")
        cols["haematoxylin_mean"] = col(0, 1, "mean haematoxylin optical density (rgb2hed colour deconvolution), "
                                              "clipped to [0, 1]")
        cols["nuclear_share"] = col(0, 1, f"share of pixels with haematoxylin density > {NUCLEAR_OD} (nuclei)")
        cols["nuclei_density"] = col(0, 0.5, f"connected regions of haematoxylin density > {NUCLEAR_OD} per pixel "
                                             "(nuclei count / tile area; at most 0.5)")
    cols["white_share"] = col(0, 1, f"share of pixels with grey intensity > {WHITE_LEVEL}")
    cols["black_share"] = col(0, 1, f"share of pixels with grey intensity < {BLACK_LEVEL}")
    cols["gradient_mean"] = col(0, 1, "mean Sobel gradient magnitude of grey (kernels / 8, reflected edges)")
    cols["grey_entropy"] = col(0, 1, f"Shannon entropy of the {GLCM_LEVELS}-level grey histogram / log2({GLCM_LEVELS})")
    cols["glcm_contrast"] = col(0, 1, f"GLCM contrast ({GLCM_LEVELS} grey levels, distance 1, 4 angles) / "
                                      f"{(GLCM_LEVELS - 1) ** 2}")
    cols["glcm_homogeneity"] = col(0, 1, "GLCM homogeneity (inverse difference moment)")
    cols["glcm_energy"] = col(0, 1, "GLCM energy (square root of the angular second moment)")
    cols["glcm_correlation"] = col(-1, 1, "GLCM correlation; 0 on a flat tile (where it is undefined)")
    cols["hf_energy_share"] = col(0, 1, f"share of non-DC spectral power of grey above {HIGH_FREQUENCY} cycles/pixel; "
                                        "0 on a flat tile")
    cols["spectral_slope"] = col(*SLOPE_BOUNDS, "slope of log radially averaged power vs log frequency "
                                                f"(clipped to [{SLOPE_BOUNDS[0]:g}, {SLOPE_BOUNDS[1]:g}]); "
                                                "0 on a flat tile")
    return cols


def _as_unit(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in _CHANNEL_NAMES:
        raise ValueError(f"images must be [n, H, W, 1 or 3], not {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    out = images.astype(np.float64)
    if not np.all(np.isfinite(out)) or out.min(initial=0.0) < 0 or out.max(initial=0.0) > 1:
        raise ValueError("float images must be finite and lie in [0, 1]")
    return out


def _hsv(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSV of RGB on [0, 1] (as skimage.color.rgb2hsv: hue on [0, 1), 0 for grey pixels), vectorised."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    value = x.max(axis=-1)
    delta = value - x.min(axis=-1)
    grey = delta <= 0
    safe = np.where(grey, 1.0, delta)
    saturation = np.where(value > 0, delta / np.where(value > 0, value, 1.0), 0.0)
    hue = np.where(value == r, (g - b) / safe, np.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(grey, 0.0, (hue / 6.0) % 1.0)
    return hue, saturation, value


def _gradient_mean(grey: np.ndarray) -> np.ndarray:
    p = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:] - p[:, :-2, :-2] - 2 * p[:, 1:-1, :-2] - p[:, 2:, :-2]) / 8
    gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:] - p[:, :-2, :-2] - 2 * p[:, :-2, 1:-1] - p[:, :-2, 2:]) / 8
    return np.sqrt(gx**2 + gy**2).mean(axis=(1, 2))


def _spectrum(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, h, w = grey.shape
    centred = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.sqrt(fx**2 + fy**2).ravel()
    flat = power.reshape(n, -1)
    total = flat.sum(axis=1)
    tiny = 1e-12 * h * w
    flat_tile = total <= tiny
    hf = np.where(flat_tile, 0.0, flat[:, radius > HIGH_FREQUENCY].sum(axis=1) / np.where(flat_tile, 1.0, total))
    # radial average in integer-frequency-index bins 1..min(h, w)//2
    k = np.rint(radius * min(h, w)).astype(int)
    nbins = min(h, w) // 2
    slope = np.zeros(n)
    if nbins >= 2:
        keep = np.flatnonzero((k >= 1) & (k <= nbins))
        keep = keep[np.argsort(k[keep], kind="stable")]
        starts = np.searchsorted(k[keep], np.arange(1, nbins + 1))
        counts = np.bincount(k[keep] - 1, minlength=nbins)
        # per-row sums (no matrix product): a tile's value never depends on the batch it is in
        radial = np.add.reduceat(flat[:, keep], starts, axis=1) / counts
        logf = np.log(np.arange(1, nbins + 1, dtype=np.float64))
        floor = np.maximum(total / (h * w), tiny) * 1e-12
        logp = np.log(radial + floor[:, None])
        xc = logf - logf.mean()
        slope = ((logp - logp.mean(axis=1, keepdims=True)) * xc).sum(axis=1) / (xc * xc).sum()
        slope = np.where(flat_tile, 0.0, slope)
    return hf, np.clip(slope, *SLOPE_BOUNDS)


def _glcm(grey: np.ndarray) -> np.ndarray:
    from skimage.feature import graycomatrix, graycoprops

    out = np.zeros((len(grey), 5))
    levels = np.minimum((grey * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1).astype(np.uint8)
    for i, q in enumerate(levels):
        m = graycomatrix(q, distances=list(GLCM_DISTANCES), angles=list(GLCM_ANGLES), levels=GLCM_LEVELS,
                         symmetric=True, normed=True)
        contrast = graycoprops(m, "contrast").mean() / (GLCM_LEVELS - 1) ** 2
        homogeneity = graycoprops(m, "homogeneity").mean()
        energy = graycoprops(m, "energy").mean()
        if q.min() == q.max():  # flat tile: correlation undefined (skimage says 1), defined as 0 here
            corr = 0.0
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = graycoprops(m, "correlation")
            corr = float(np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0).mean())
        hist = np.bincount(q.ravel(), minlength=GLCM_LEVELS) / q.size
        nz = hist[hist > 0]
        entropy = max(0.0, float(-(nz * np.log2(nz)).sum() / np.log2(GLCM_LEVELS)))
        out[i] = (contrast, homogeneity, energy, corr, entropy)
    return out


def _nuclei(x: np.ndarray) -> dict[str, np.ndarray]:
    """Morphology the colour statistics miss: haematoxylin density by colour deconvolution, the
    share of nuclear pixels and the count of nuclear regions per pixel (4-connected), per tile."""
    from scipy import ndimage
    from skimage.color import rgb2hed

    haematoxylin = rgb2hed(x)[..., 0]  # works on the whole [n, H, W, 3] block
    nuclear = haematoxylin > NUCLEAR_OD
    area = float(x.shape[1] * x.shape[2])
    counts = np.array([ndimage.label(tile)[1] for tile in nuclear], dtype=np.float64)
    return {"haematoxylin_mean": np.clip(haematoxylin, 0.0, 1.0).mean(axis=(1, 2)),
            "nuclear_share": nuclear.mean(axis=(1, 2)), "nuclei_density": counts / area}


def _block_features(x: np.ndarray) -> dict[str, np.ndarray]:
    n, _, _, channels = x.shape
    cols: dict[str, np.ndarray] = {}
    flat = x.reshape(n, -1, channels)
    pct = np.percentile(flat, [5, 50, 95], axis=1)  # [3, n, C]
    for j, c in enumerate(_CHANNEL_NAMES[channels]):
        cols[f"{c}_mean"] = flat[:, :, j].mean(axis=1)
        cols[f"{c}_std"] = flat[:, :, j].std(axis=1)
        for qi, q in enumerate((5, 50, 95)):
            cols[f"{c}_p{q:02d}"] = pct[qi, :, j]
    if channels == 3:
        hue, saturation, value = _hsv(x)
        cols["hue_mean"] = hue.mean(axis=(1, 2))
        cols["saturation_mean"] = saturation.mean(axis=(1, 2))
        cols["value_mean"] = value.mean(axis=(1, 2))
        grey = np.clip(x[..., 0] * _LUMA[0] + x[..., 1] * _LUMA[1] + x[..., 2] * _LUMA[2], 0.0, 1.0)
        cols["grey_mean"] = grey.mean(axis=(1, 2))
        cols.update(_nuclei(x))
    else:
        grey = x[..., 0]
    cols["white_share"] = (grey > WHITE_LEVEL).mean(axis=(1, 2))
    cols["black_share"] = (grey < BLACK_LEVEL).mean(axis=(1, 2))
    cols["gradient_mean"] = _gradient_mean(grey)
    glcm = _glcm(grey)
    cols["grey_entropy"] = glcm[:, 4]
    cols["glcm_contrast"], cols["glcm_homogeneity"], cols["glcm_energy"], cols["glcm_correlation"] = glcm[:, :4].T
    cols["hf_energy_share"], cols["spectral_slope"] = _spectrum(grey)
    return cols


def feature_view(images: np.ndarray) -> pd.DataFrame:
    """One row per tile of public-bounded features (see :func:`view_columns`); each row depends on its tile alone.

    Args:
        images: uint8 ``[n, H, W, C]`` (or ``[n, H, W]`` grey), C = 1 or 3; floats on [0, 1] are accepted too.

    Returns:
        float64 DataFrame with the columns of ``view_columns(C)``, in that order, values within their bounds.
    """
    arr = np.asarray(images)
    channels = 1 if arr.ndim == 3 else arr.shape[-1]
    spec = view_columns(channels)
    parts = []
    for start in range(0, len(arr), BLOCK):
        block = _block_features(_as_unit(arr[start:start + BLOCK]))
        parts.append(pd.DataFrame({name: block[name] for name in spec}))
    if not parts:
        return pd.DataFrame({name: pd.Series(dtype=np.float64) for name in spec})
    frame = pd.concat(parts, ignore_index=True).astype(np.float64)
    for name, s in spec.items():
        frame[name] = frame[name].clip(s["min"], s["max"])
    return frame
