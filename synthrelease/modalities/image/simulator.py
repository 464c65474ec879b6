"""A procedural tissue-tile simulator: a PUBLIC prior for histology image tiles.

:func:`render_tiles` draws stained tissue tiles from 23 normalised parameters
(:data:`PARAMETER_NAMES`, each on [0, 1]) and one integer seed per tile. The parameters fix
what the tissue looks like (cellularity, nucleus size and shape, stain strengths, collagen
fibres, empty space, focus, noise, colour); the seed fixes where things are (nuclei
positions, fibre and lumen patterns, sensor noise). The same (parameters, seed) always gives
the same tile, whatever else is in the batch, and a small change of the parameters gives a
similar tile with the same layout (every parameter acts smoothly; nuclei fade in and out).

Privacy: this is a PUBLIC prior. The rendering model and every parameter range come from
published knowledge (stain optical densities, textbook cell sizes, microscope optics) and
were checked against the public CC0 test slide CMU-1-Small-Region (OpenSlide test data),
never against a steward's private pixels. Drawing parameters and rendering tiles costs no
privacy budget (ε = 0); only what is later FITTED to private data has to be accounted.

Geometry. Every tile shows the same square field of :data:`FIELD_UM` = 32 µm (a 64-px tile
at 0.5 µm/px, i.e. 20× scanning; a 32-px tile is that field at 1 µm/px), so ``size``
(16–64 px) only changes the sampling: the same (parameters, seed) shows the same tissue at
every size. Tiles under 32 px are drawn at twice the resolution and block-averaged.

Rendering. Stain concentration maps (optical density, OD) are composed from nuclei (soft
ellipses placed by best-candidate sampling, with chromatin texture and slightly ragged
outlines), cell bodies (discs of twice the nuclear radius), stroma with collagen fibres
(band-pass noise oriented in the Fourier domain, warped to make them wavy, with retraction
cracks) and lumen (smooth blobs of empty background). Bright-field stains are turned into
RGB by Beer–Lambert, ``I = I0 · 10^(−Σ_s c_s · v_s)``, through unit stain OD vectors v_s:
haematoxylin (nuclei, blue-purple) and eosin (stroma and cytoplasm, pink) interpolated
between Ruifrok & Johnston (2001, Anal. Quant. Cytol. Histol. 23:291–299; skimage's
``rgb_from_hed``) and the reference vectors of Macenko et al. (2009, ISBI) by
``stain_hue``, and DAB (brown) from Ruifrok & Johnston. "ihc_dab" uses a paler
haematoxylin counterstain and no eosin; DAB marks the positive nuclei and cell bodies.
"fluorescence" adds emission on a dark background instead (``255·(1 − e^(−signal))``):
DAPI-like blue nuclei, a green cytoplasm/stroma channel (cytoplasmic marker or
autofluorescence) and a red marker around the positive cells. Focus blur is a Gaussian PSF
applied to the concentration maps (exactly for the noise fields, through their spectra;
through the soft edge width for nuclei and lumen). Sensor noise is Gaussian with a shot-noise
term, added last.

Parameters (normalised value 0 → 1; linear unless marked p²):

======================  =====================================  ===============================================
name                    physical range                         source / rationale
======================  =====================================  ===============================================
nuclei_density          0 – 16 nuclei per 1000 µm² (p²),       sparse dermis to packed lymphoid tissue (7 µm
                        ±35 % between tiles                    cells hexagonally packed ≈ 23 per 1000 µm²)
nucleus_radius          1.75 – 5.5 µm (mean radius)            lymphocyte nucleus ≈ 7 µm across, epithelial
                                                               8–12 µm, large tumour nuclei ≈ 11 µm and more
nucleus_radius_spread   0 – 0.4 (log-normal CV of the radius)  uniform lymphocytes to pleomorphic tumour
nucleus_elongation      aspect 1 – 3 (mean major/minor)        round lymphocytes to spindle fibroblasts
chromatin_texture       0 – 0.7 relative OD modulation,        fine to coarse (clumped) chromatin; unresolved
                        1.6 µm grain                           below ≈ 1 µm/px, as in real scans
nuclear_stain           0.5 – 1.6 OD (haematoxylin; DAB × 0.8  OD norm of nuclei on H&E scans (CMU-1 at
                        and DAPI brightness in the others)     1 µm/px: ≈ 1.3)
stroma_stain            0.1 – 0.8 OD (eosin; the pale          stroma OD norms 0.2–0.55 on CMU-1
                        counterstain in IHC; green emission)
cytoplasm               0 – 0.35 OD in the cell bodies         stromal cells (none) to epithelium (purple)
fibre_density           0 – 80 % of the stroma in fibres       loose to dense irregular connective tissue
fibre_width             1 – 4 µm                               collagen fibres (1–3 µm) to thin bundles
fibre_coherence         angular s.d. 60° – 15°                 wavy random to parallel fibres; elongated
                                                               nuclei follow the fibre direction
lumen_fraction          0 – 60 % of the tile empty             vessels, ducts, tears (tissue filters keep
                                                               tiles with ≥ 40–50 % tissue)
ihc_positivity          0 – 100 % positive cells               labelling index (ihc_dab; red marker in
                                                               fluorescence; no effect in he)
blur                    Gaussian PSF σ 0.2 – 1.2 µm (p²)       diffraction-limited (NA 0.75) to visibly out
                                                               of focus; most scanned tiles are in focus
noise                   0 – 8 DN s.d. (8-bit)                  scanner read and shot noise
stain_hue               0 = Ruifrok & Johnston 2001 vectors,   between-lab stain colour variation; the CMU-1
                        1 = Macenko et al. 2009 reference      slide sits near 1; emission hues in
                        vectors (interpolated)                 fluorescence
brightness              background I0 225 – 252 DN (bright     illumination / white balance (CMU-1
                        field); exposure gain 0.5 – 1.6 (fl.)  background ≈ 245)
fibril_contrast         0.05 – 0.6 relative stroma OD          smooth to finely striated collagen (fibrils
                        modulation at 1.5 µm                   ≈ 0.05–0.5 µm, bundled in 1–3 µm fibres)
fibre_sharpness         bundle edge width 0.6 – 0.08 (field    soft, loose connective tissue to crisp dense
                        s.d.; decreasing)                      bundles with sharp borders (dermis)
crack_share             0 – 30 % of the stroma in retraction   freezing and dehydration artefacts open thin
                        cracks                                 white gaps between collagen bundles
fibre_irregularity      0.35 – 1.0 s.d. of the fibre band in   regular, evenly spaced fibres to irregular
                        log-frequency                          sheets of bundles of many widths
red_cells               0 – 25 % of the tile (p²)              erythrocytes (7–8 µm discs, no nucleus, deep
                                                               eosin red; clustered in vessels and
                                                               haemorrhage; none in most tiles)
stroma_basophilia       0 – 0.3 haematoxylin OD per unit of    ground substance, mucin and fibroblast
                        stroma OD, modulated at 1.6 µm         processes take up haematoxylin: purple grain
                                                               in pink stroma
======================  =====================================  ===============================================

Not modelled: tissue architecture beyond a tile (glands, epidermal layers, vessel walls),
cell-cell contacts, mitoses, nucleoli, the biconcave pallor of red cells, pigments (melanin), membranous or
granular IHC patterns (DAB fills positive nuclei and cell bodies), tissue folds, marking
ink and debris, JPEG artefacts, DAB's departure from Beer–Lambert at high density,
illumination gradients and vignetting, and, in fluorescence, bleed-through, bleaching and
spectral unmixing. Colours come from the two published stain-vector pairs and their
interpolation only, so stain colours outside that family are out of reach of the prior.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.special import erf, expit, ndtri
from skimage.color import rgb_from_hed

STAIN_FAMILIES: tuple[str, ...] = ("he", "ihc_dab", "fluorescence")
"""Stain families :func:`render_tiles` renders."""

_RANGES: dict[str, tuple[float, float]] = {
    "nuclei_density": (0.0, 16.0),  # nuclei per 1000 µm² (quadratic)
    "nucleus_radius": (1.75, 5.5),  # µm
    "nucleus_radius_spread": (0.0, 0.4),  # log-normal coefficient of variation
    "nucleus_elongation": (1.0, 3.0),  # mean aspect ratio
    "chromatin_texture": (0.0, 0.7),  # relative OD modulation
    "nuclear_stain": (0.5, 1.6),  # OD
    "stroma_stain": (0.1, 0.8),  # OD
    "cytoplasm": (0.0, 0.35),  # OD
    "fibre_density": (0.0, 0.8),  # share of stroma
    "fibre_width": (1.0, 4.0),  # µm
    "fibre_coherence": (np.deg2rad(60.0), np.deg2rad(15.0)),  # angular s.d. (radians), decreasing
    "lumen_fraction": (0.0, 0.6),  # share of the tile
    "ihc_positivity": (0.0, 1.0),  # share of positive cells
    "blur": (0.2, 1.2),  # PSF σ, µm (quadratic)
    "noise": (0.0, 8.0),  # DN
    "stain_hue": (0.0, 1.0),  # position between the colour end points
    "brightness": (0.0, 1.0),  # mapped per stain family (background DN or exposure)
    "fibril_contrast": (0.05, 0.6),  # relative stroma OD modulation by the fine fibrils
    "fibre_sharpness": (0.6, 0.08),  # edge width of the bundles (s.d. of their field), decreasing
    "crack_share": (0.0, 0.3),  # share of the stroma opened by retraction cracks
    "fibre_irregularity": (0.35, 1.0),  # s.d. of the fibre band in log-frequency
    "red_cells": (0.0, 0.25),  # share of the tile covered by erythrocytes (quadratic)
    "stroma_basophilia": (0.0, 0.3),  # haematoxylin OD per unit of stroma OD, grainy
}

_QUADRATIC = ("nuclei_density", "blur", "red_cells")  # mapped as lo + (hi − lo)·p², the others linearly

PARAMETER_NAMES: tuple[str, ...] = tuple(_RANGES)
"""Names of the normalised parameters, in column order of a parameter array (new ones are appended)."""
N_PARAMETERS: int = len(PARAMETER_NAMES)

FIELD_UM = 32.0
"""Side of the field every tile shows, µm (whatever its size in pixels)."""
MIN_SIZE, MAX_SIZE = 16, 64
"""Tile sizes (pixels) :func:`render_tiles` renders."""

_K = 32  # candidate nuclei per tile: the densest setting has at most 16 · 1.444 · 1.35 ≈ 31.2 in the padded field
_M = 6  # best-candidate trials per nucleus (blue-noise spacing)
_MARGIN = 3.0  # µm: nuclei centred up to this far outside the field still show partly
_PADDED_AREA = (FIELD_UM + 2 * _MARGIN) ** 2 / 1000.0  # 1000 µm² where nuclei are centred
_K_LADDER = (0, 4, 8, 12, 16, 24, _K)  # nuclei drawn per tile: the smallest rung above its possible count
_G = 64  # fibre/texture noise grid over the field (Nyquist at MAX_SIZE)
_LG = 16  # low-frequency noise grid (lumen, stroma density, fibre warp)
_COARSE = 32  # pixels of the grid the smooth fields are computed on
_CELL = 2.0  # cell radius / nucleus radius
_LUMEN_SCALE = 5.0  # µm, correlation length of the lumen blobs
_STROMA_SCALE = 8.0  # µm, correlation length of the stroma density variation
_TEXTURE_UM = 1.6  # µm, chromatin grain
_STREAK_UM = 1.5  # µm, width of the fine fibrils inside collagen bundles
_RED_CELL_UM = 9.0  # µm, spacing of the red-cell blobs (erythrocytes are 7–8 µm discs)
_RED_CELL_OD = 0.9  # eosin OD of an erythrocyte (deeper than any stroma)
_FIBRE_BAND = 0.55  # s.d. of the fibre filter in log-frequency
_WARP_SCALE = 6.0  # µm, correlation length of the displacement that makes fibres wavy
_WARP_UM = 2.0  # µm, s.d. of that displacement
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 (Pillow's RGB → L)

# Stain OD vectors (R, G, B absorbance, unit norm). stain_hue 0: Ruifrok & Johnston 2001 (skimage's
# rgb_from_hed); stain_hue 1: the reference H&E vectors of Macenko et al. 2009 as shipped with its common
# implementations (mitkovetta/staining-normalization, torchstain). The public CMU-1 slide's k-means OD
# clusters (nuclei 0.55/0.72/0.43, stroma 0.35/0.80/0.49) lie near the Macenko end.
_H_RJ, _E_RJ, _DAB = (np.asarray(v, dtype=np.float64) for v in rgb_from_hed)
_H_PURPLE = np.array([0.5626, 0.7201, 0.4062])
_E_PURPLE = np.array([0.2159, 0.8012, 0.5581])

# Fluorescence emission colours (display RGB) at stain_hue 0 and 1.
_DAPI = (np.array([0.10, 0.30, 1.00]), np.array([0.25, 0.55, 1.00]))
_GREEN = (np.array([0.10, 1.00, 0.10]), np.array([0.40, 1.00, 0.20]))
_RED = (np.array([1.00, 0.10, 0.25]), np.array([1.00, 0.35, 0.05]))

_CHUNK_ELEMENTS = 1 << 21  # nuclei footprint elements per chunk (bounded memory, cache friendly)


# ----------------------------------------------------------------------------------------------- parameters
def random_parameters(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` parameter vectors from the public prior: uniform on [0, 1] per normalised parameter.

    The physical ranges (module docstring) are chosen so that uniform draws cover plausible
    tissue; nothing here depends on data.

    Returns:
        float64 ``[n, N_PARAMETERS]`` on [0, 1].
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, not {n!r}")
    return rng.random((int(n), N_PARAMETERS))


def perturb_parameters(params: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``params`` plus Gaussian noise of standard deviation ``scale`` (normalised units), clipped to [0, 1].

    Args:
        params: float ``[..., N_PARAMETERS]`` on [0, 1].
        scale: noise standard deviation, ≥ 0.

    Returns:
        float64 array of the same shape, on [0, 1].
    """
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != N_PARAMETERS:
        raise ValueError(f"params must have shape [..., {N_PARAMETERS}] ({', '.join(PARAMETER_NAMES)}), "
                         f"not {arr.shape}")
    _check_unit_interval(arr)
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number ≥ 0, not {scale!r}")
    return np.clip(arr + rng.normal(0.0, float(scale), size=arr.shape), 0.0, 1.0)


def _check_unit_interval(arr: np.ndarray) -> None:
    if arr.size and not (np.all(np.isfinite(arr)) and arr.min() >= 0.0 and arr.max() <= 1.0):
        bad = np.argwhere(~((arr >= 0.0) & (arr <= 1.0)))[0]
        name = PARAMETER_NAMES[bad[-1]]
        raise ValueError(f"params must lie in [0, 1]; {name} is {float(arr[tuple(bad)])!r} "
                         f"at index {tuple(bad.tolist())}")


def _physical(params: np.ndarray) -> dict[str, np.ndarray]:
    """Map normalised parameters ``[n, P]`` to physical values ``{name: [n]}`` (linear in each range)."""
    out = {name: lo + (hi - lo) * params[:, i] for i, (name, (lo, hi)) in enumerate(_RANGES.items())}
    for name in _QUADRATIC:  # most tissue is not packed, most tiles are in focus
        lo, hi = _RANGES[name]
        out[name] = lo + (hi - lo) * params[:, PARAMETER_NAMES.index(name)] ** 2
    return {name: v.astype(np.float32) for name, v in out.items()}


# ------------------------------------------------------------------------------------------------- layouts
@dataclass
class _Layout:
    """The seed-determined part of a chunk of tiles (everything but the noise size-independent, in µm)."""

    candidates: np.ndarray  # [n, K, M, 2] candidate nucleus centres, µm
    radius_z: np.ndarray  # [n, K] standard normal (radius)
    gain_z: np.ndarray  # [n, K] standard normal (nucleus stain intensity)
    aspect_u: np.ndarray  # [n, K] uniform (elongation)
    angle_u: np.ndarray  # [n, K] uniform (orientation jitter)
    positive_u: np.ndarray  # [n, K] uniform (IHC status)
    count_u: np.ndarray  # [n] uniform (cellularity of this tile)
    theta: np.ndarray  # [n] fibre axis, radians
    spectrum: np.ndarray  # [n, 3, G, G//2+1] complex64 white noise (fibres, chromatin, red cells)
    low_spectrum: np.ndarray  # [n, 4, LG, LG//2+1] complex64 white noise (lumen, stroma density, warp y, x)
    noise: np.ndarray  # [n, S, S, 3] float32 standard normal (sensor noise; size-dependent)


_N_UNIFORM = _K * _M * 2 + 3 * _K + 2
_N_SPECTRA = 3  # fine noise fields per tile: fibres, fibrils/chromatin, red cells
_N_NORMAL = 2 * _K + _N_SPECTRA * 2 * _G * (_G // 2 + 1) + 4 * 2 * _LG * (_LG // 2 + 1)


def _draw_layouts(seeds: np.ndarray, size: int) -> _Layout:
    """One ``np.random.default_rng(seed)`` per tile, two draws in a fixed order (the size-dependent noise last)."""
    n = len(seeds)
    uni = np.empty((n, _N_UNIFORM), dtype=np.float32)
    nor = np.empty((n, _N_NORMAL + size * size * 3), dtype=np.float32)
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        uni[i] = rng.random(_N_UNIFORM, dtype=np.float32)
        nor[i] = rng.standard_normal(nor.shape[1], dtype=np.float32)
    c = _K * _M * 2
    span = FIELD_UM + 2 * _MARGIN
    at = 2 * _K + _N_SPECTRA * 2 * _G * (_G // 2 + 1)
    spec = nor[:, 2 * _K:at].reshape(n, _N_SPECTRA, 2, _G, _G // 2 + 1)
    low = nor[:, at:_N_NORMAL].reshape(n, 4, 2, _LG, _LG // 2 + 1)
    return _Layout(
        candidates=uni[:, :c].reshape(n, _K, _M, 2) * np.float32(span) - np.float32(_MARGIN),
        aspect_u=uni[:, c:c + _K], angle_u=uni[:, c + _K:c + 2 * _K], positive_u=uni[:, c + 2 * _K:c + 3 * _K],
        count_u=uni[:, -2], theta=uni[:, -1] * np.float32(np.pi),
        radius_z=np.clip(nor[:, :_K], -2.0, 2.0), gain_z=np.clip(nor[:, _K:2 * _K], -2.5, 2.5),
        spectrum=spec[:, :, 0] + np.complex64(1j) * spec[:, :, 1],
        low_spectrum=low[:, :, 0] + np.complex64(1j) * low[:, :, 1],
        noise=nor[:, _N_NORMAL:].reshape(n, size, size, 3),
    )


def _best_candidate_order(candidates: np.ndarray, count: int) -> np.ndarray:
    """Mitchell's best-candidate sampling, all tiles in lock step: ``[n, K, M, 2]`` → first centres ``[n, count, 2]``.

    Nucleus k is the candidate farthest from nuclei 0..k−1, so every prefix of the sequence is
    evenly spread (blue noise): the first N nuclei rarely overlap, whatever N the density gives,
    and a prefix does not depend on ``count``.
    """
    n = len(candidates)
    rows = np.arange(n)
    out = np.empty((n, count, 2), dtype=candidates.dtype)
    out[:, 0] = candidates[:, 0, 0]
    for k in range(1, count):
        cand = candidates[:, k]  # [n, M, 2]
        d2 = ((cand[:, :, None, :] - out[:, None, :k, :]) ** 2).sum(-1).min(-1)  # [n, M]
        out[:, k] = cand[rows, d2.argmax(1)]
    return out


# -------------------------------------------------------------------------------------------------- fields
def _frequencies(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer frequencies (cycles per field) of the rows and columns of a ``size`` × ``size`` rfft spectrum."""
    return np.fft.fftfreq(size, 1.0 / size).round().astype(int), np.arange(size // 2 + 1)


def _crop_spectrum(spec: np.ndarray, grid: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-grid a ``[..., grid, grid//2+1]`` white spectrum of the field onto a ``size`` × ``size`` sampling.

    Frequencies above the tile's Nyquist are dropped (no aliasing), missing ones are zero; a
    half-pixel phase shift samples at pixel centres. Returns (spectrum, fy, fx) with fy, fx in
    cycles/µm, broadcastable to ``[size, size//2+1]``.
    """
    ky, kx = _frequencies(size)
    out = np.zeros((*spec.shape[:-2], size, size // 2 + 1), dtype=np.complex64)
    rows = np.abs(ky) < grid // 2
    cols = kx < grid // 2
    out[..., np.flatnonzero(rows)[:, None], np.flatnonzero(cols)[None, :]] = \
        spec[..., (ky[rows] % grid)[:, None], kx[cols][None, :]]
    shift = np.exp(1j * np.pi * (ky[:, None] + kx[None, :]) / size).astype(np.complex64)
    return out * shift, (ky / FIELD_UM)[:, None], (kx / FIELD_UM)[None, :]


def _spectral_weight(grid: int) -> np.ndarray:
    """Variance weight of each ``grid`` rfft coefficient in the real field, as :func:`_crop_spectrum` keeps them.

    1 on the self-conjugate column 0, 4 on the others; the Nyquist row and column are dropped (0).
    """
    ky, kx = _frequencies(grid)
    w = np.where(kx == 0, 1.0, 4.0)[None, :] * np.ones((grid, 1))
    w[:, kx == grid // 2] = 0.0
    w[ky == -(grid // 2), :] = 0.0
    return w


def _fibre_filter(fy: np.ndarray, fx: np.ndarray, phys: dict[str, np.ndarray], theta: np.ndarray,
                  width: np.ndarray | None = None, band: np.ndarray | None = None) -> np.ndarray:
    """Oriented band-pass: energy across the fibre axis ``theta`` at 1/(2·width), angular s.d. from coherence,
    log-frequency s.d. ``band`` (the fibre irregularity; default the tile's own)."""
    f = np.hypot(fy, fx)
    across = (theta + np.pi / 2)[:, None, None]
    delta = (np.arctan2(fy, fx)[None] - across + np.pi / 2) % np.pi - np.pi / 2
    spread = phys["fibre_coherence"][:, None, None]
    f0 = (0.5 / (phys["fibre_width"] if width is None else width))[:, None, None]
    sd = (phys["fibre_irregularity"] if band is None else band)[:, None, None]
    with np.errstate(divide="ignore"):
        radial = np.exp(-np.log(np.maximum(f, 1e-9)[None] / f0) ** 2 / (2 * sd**2))
    return (np.exp(-(delta**2) / (2 * spread**2)) * radial * (f > 0)[None]).astype(np.float32)


def _fibre_norm(width: np.ndarray, spread: np.ndarray, band: np.ndarray) -> np.ndarray:
    """S.d. of the field :func:`_fibre_filter` makes from the white spectrum, in closed form ``[n, 1, 1]``.

    2·F²·∫∫|filter|² over the frequency plane: the angular integral is 2·κ√π·erf(π/2κ), the
    radial one f0²·σ√π·e^{σ²} (log-normal band). Within 2–8 % of the sum over the ``_G`` grid.
    """
    f0 = 0.5 / width
    angular = 2.0 * spread * np.sqrt(np.pi) * erf(np.pi / (2.0 * spread))
    radial = f0**2 * band * np.sqrt(np.pi) * np.exp(band**2)
    return np.sqrt(2.0 * FIELD_UM**2 * angular * radial).astype(np.float32)[:, None, None]


def _texture_filter(fy: np.ndarray, fx: np.ndarray, period_um: float = _TEXTURE_UM, band: float = 0.45) -> np.ndarray:
    """Isotropic log-normal band-pass around ``period_um`` (chromatin grain; red-cell spacing)."""
    f = np.hypot(fy, fx)
    f0 = 1.0 / period_um
    with np.errstate(divide="ignore"):
        return (np.exp(-np.log(np.maximum(f, 1e-9) / f0) ** 2 / (2 * band**2)) * (f > 0)).astype(np.float32)


def _lowpass_filter(fy: np.ndarray, fx: np.ndarray, scale: float) -> np.ndarray:
    f2 = fy**2 + fx**2
    return (np.exp(-2 * np.pi**2 * scale**2 * f2) * (f2 > 0)).astype(np.float32)


@functools.cache
def _constant_norms() -> tuple[float, ...]:
    """S.d. of the parameter-free fields (chromatin, lumen, stroma, warp y, warp x, red cells) on their full grids."""
    gy, gx = (k / FIELD_UM for k in np.ix_(*_frequencies(_G)))
    ly, lx = (k / FIELD_UM for k in np.ix_(*_frequencies(_LG)))
    out = [np.sqrt((_texture_filter(gy, gx) ** 2 * _spectral_weight(_G)).sum())]
    for scale in (_LUMEN_SCALE, _STROMA_SCALE, _WARP_SCALE, _WARP_SCALE):
        out.append(np.sqrt((_lowpass_filter(ly, lx, scale) ** 2 * _spectral_weight(_LG)).sum()))
    out.append(np.sqrt((_texture_filter(gy, gx, _RED_CELL_UM, 0.35) ** 2 * _spectral_weight(_G)).sum()))
    return tuple(float(v) for v in out)


def _fields(layout: _Layout, phys: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Noise fields ``[n, size, size]``: fibre bundles, fine fibrils, chromatin, lumen and stroma density.

    Each is white noise from the tile's seed shaped by a filter in the Fourier domain, blurred
    by the focus PSF there too (its transfer function), and scaled to unit s.d. as the unblurred
    field has on the full ``_G`` grid — so a coarse tile loses the detail it cannot resolve.
    The fibre fields are then warped by a smooth displacement (wavy, not straight, fibres).
    """
    n = len(phys["blur"])
    fine = np.full(n, _STREAK_UM, dtype=np.float32)
    fine_band = np.full(n, _FIBRE_BAND, dtype=np.float32)
    spec, fy, fx = _crop_spectrum(layout.spectrum, _G, size)
    otf = np.exp(-2 * np.pi**2 * phys["blur"][:, None, None] ** 2 * (fy**2 + fx**2)[None]).astype(np.float32)
    spread = phys["fibre_coherence"]
    stack = np.empty((n, 4, size, size // 2 + 1), dtype=np.complex64)
    stack[:, 0] = spec[:, 0] * (_fibre_filter(fy, fx, phys, layout.theta) * otf
                                / _fibre_norm(phys["fibre_width"], spread, phys["fibre_irregularity"]))
    # the fibrils share the chromatin noise: the two never overlap in a tile
    stack[:, 1] = spec[:, 1] * (_fibre_filter(fy, fx, phys, layout.theta, fine, fine_band) * otf
                                / _fibre_norm(fine, spread, fine_band))
    stack[:, 2] = spec[:, 1] * (_texture_filter(fy, fx) * otf / _constant_norms()[0])
    stack[:, 3] = spec[:, 2] * (_texture_filter(fy, fx, _RED_CELL_UM, 0.35) / _constant_norms()[5])
    out = scipy.fft.irfft2(stack, s=(size, size), norm="forward").astype(np.float32)
    # the smooth fields are computed on a 32-px grid (they have no detail finer than ≈ 4 µm) and resampled
    low, fy, fx = _crop_spectrum(layout.low_spectrum, _LG, _COARSE)
    otf = np.exp(-2 * np.pi**2 * phys["blur"][:, None, None] ** 2 * (fy**2 + fx**2)[None]).astype(np.float32)
    stack = np.empty((n, 4, _COARSE, _COARSE // 2 + 1), dtype=np.complex64)
    for j, scale in enumerate((_LUMEN_SCALE, _STROMA_SCALE, _WARP_SCALE, _WARP_SCALE)):
        filt = _lowpass_filter(fy, fx, scale) / _constant_norms()[1 + j]
        stack[:, j] = low[:, j] * (filt * otf if j < 2 else filt)
    smooth = _resample(scipy.fft.irfft2(stack, s=(_COARSE, _COARSE), norm="forward").astype(np.float32), size)
    shift = smooth[:, 2:4] * np.float32(_WARP_UM * size / FIELD_UM)  # pixels
    wavy = _warp(out[:, 0:2], shift)
    return {"fibre": wavy[:, 0], "streak": wavy[:, 1], "texture": out[:, 2], "lumen": smooth[:, 0],
            "stroma": smooth[:, 1], "red": out[:, 3]}


def _resample(fields: np.ndarray, size: int) -> np.ndarray:
    """Periodic bilinear resampling of ``[..., c, c]`` pixel-centred fields to ``[..., size, size]``."""
    c = fields.shape[-1]
    if c == size:
        return fields
    pos = (np.arange(size) + 0.5) * c / size - 0.5
    i0 = np.floor(pos).astype(np.intp)
    w = pos - i0
    interp = np.zeros((size, c), dtype=np.float32)  # two taps per row
    np.add.at(interp, (np.arange(size), i0 % c), 1 - w)
    np.add.at(interp, (np.arange(size), (i0 + 1) % c), w)
    return interp @ fields @ interp.T


def _warp(fields: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Sample periodic fields ``[n, c, S, S]`` at (y + shift[:, 0], x + shift[:, 1]), bilinear, wrapping around."""
    n, c, size, _ = fields.shape
    y = np.arange(size, dtype=np.float32)[:, None] + shift[:, 0]
    x = np.arange(size, dtype=np.float32)[None, :] + shift[:, 1]
    y0, x0 = np.floor(y), np.floor(x)
    wy, wx = y - y0, x - x0
    y0, x0 = y0.astype(np.intp) % size, x0.astype(np.intp) % size
    y1, x1 = (y0 + 1) % size, (x0 + 1) % size
    base = (np.arange(n) * size * size)[:, None, None]
    corners = [base + yy * size + xx for yy in (y0, y1) for xx in (x0, x1)]  # flat indices [n, S, S]
    weights = [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]
    out = np.empty_like(fields)
    for j in range(c):
        flat = np.ascontiguousarray(fields[:, j]).reshape(-1)
        out[:, j] = sum(np.take(flat, idx) * w for idx, w in zip(corners, weights, strict=True))
    return out


# -------------------------------------------------------------------------------------------------- nuclei
def _nuclei(layout: _Layout, phys: dict[str, np.ndarray], size: int, ragged: np.ndarray, tissue: np.ndarray,
            count: int) -> dict[str, np.ndarray]:
    """Nucleus and cell-body maps ``[n, size, size]``: all cells and the IHC-positive ones.

    Nucleus k of a tile is drawn with weight clip(λ − k, 0, 1) (λ the expected count, ±35 %
    from tile to tile), so the count changes smoothly with the density and the first nuclei
    keep their places. Only the first ``count`` candidates are drawn: the caller guarantees
    that the others have weight 0 (:func:`_nuclei_needed`). Each is a
    soft ellipse whose edge ramp widens with the blur and whose outline is made irregular by the
    ``ragged`` field ``[n, S, S]`` (±6 % of the radius); cells are discs of twice the radius.
    A cell is weighted by the ``tissue`` mask at its centre: cells in a lumen vanish whole,
    cells at its edge stay whole.
    """
    n = len(layout.count_u)
    zero = np.zeros((n, size, size), dtype=np.float32)
    if count == 0:
        return {"nuclei": zero, "nuclei_pos": zero, "cells": zero, "cells_pos": zero}
    pix = FIELD_UM / size
    centres = _best_candidate_order(layout.candidates, count)  # [n, k, 2] µm (x, y)
    lam = phys["nuclei_density"] * _PADDED_AREA * (0.65 + 0.7 * layout.count_u)
    present = np.clip(lam[:, None] - np.arange(count, dtype=np.float32)[None, :], 0.0, 1.0)  # [n, k]
    pixel = np.clip((centres / pix).astype(np.intp), 0, size - 1)  # [n, k, 2] (x, y)
    present *= tissue[np.arange(n)[:, None], pixel[..., 1], pixel[..., 0]]
    weight = present * np.exp(0.2 * layout.gain_z[:, :count])
    positive = expit((phys["ihc_positivity"][:, None] - layout.positive_u[:, :count]) / 0.02)

    radius = phys["nucleus_radius"][:, None] * np.exp(phys["nucleus_radius_spread"][:, None]
                                                      * layout.radius_z[:, :count])
    aspect = 1.0 + (phys["nucleus_elongation"][:, None] - 1.0) * (0.5 + layout.aspect_u[:, :count])
    a, b = radius * np.sqrt(aspect), radius / np.sqrt(aspect)  # semi-axes, µm
    coherence = 1.0 - (phys["fibre_coherence"][:, None] - _RANGES["fibre_coherence"][1]) / (
        _RANGES["fibre_coherence"][0] - _RANGES["fibre_coherence"][1])
    angle = layout.theta[:, None] + (layout.angle_u[:, :count] - 0.5) * np.pi * (1.05 - coherence)
    cos, sin = np.cos(angle), np.sin(angle)
    qa = (cos**2 / a**2 + sin**2 / b**2).astype(np.float32)
    qc = (sin**2 / a**2 + cos**2 / b**2).astype(np.float32)
    qb = (2 * sin * cos * (1 / a**2 - 1 / b**2)).astype(np.float32)
    ramp = 2.5 * np.sqrt((0.4 * pix) ** 2 + phys["blur"] ** 2)  # µm, edge width of a PSF-blurred step
    gain = (radius / ramp[:, None]).astype(np.float32)  # (1 − d) · gain ≈ distance inside the edge / ramp

    grid = ((np.arange(size) + 0.5) * pix).astype(np.float32)
    dx = grid[None, None, :] - centres[:, :, 0, None].astype(np.float32)  # [n, K, S]
    dy = grid[None, None, :] - centres[:, :, 1, None].astype(np.float32)
    d2 = (qa[..., None] * dx**2)[:, :, None, :] + (qc[..., None] * dy**2)[:, :, :, None]
    d2 += (qb[..., None] * dx)[:, :, None, :] * dy[:, :, :, None]
    d = np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2).reshape(n, count, size * size)  # [n, k, P]
    d *= (1.0 + 0.06 * ragged).reshape(n, 1, size * size)
    g = gain[..., None]
    nuc = np.clip((1.0 - d) * g + 0.5, 0.0, 1.0)
    cell = np.clip((_CELL - d) * (0.35 * g) + 0.5, 0.0, 1.0)  # cell bodies fade out softly
    w_nuc = np.stack([weight, weight * positive], axis=1).astype(np.float32)  # [n, 2, K]
    w_cell = np.stack([present, present * positive], axis=1).astype(np.float32)
    nuc_maps = np.matmul(w_nuc, nuc).reshape(n, 2, size, size)
    cell_maps = np.minimum(np.matmul(w_cell, cell).reshape(n, 2, size, size), 1.0)
    return {"nuclei": nuc_maps[:, 0], "nuclei_pos": nuc_maps[:, 1],
            "cells": cell_maps[:, 0], "cells_pos": cell_maps[:, 1]}


# --------------------------------------------------------------------------------------------- composition
def _stain_vectors(hue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin OD vectors ``[n, 3]`` (unit norm) for stain_hue values ``[n]``."""
    t = hue[:, None].astype(np.float64)
    h = _H_RJ + t * (_H_PURPLE - _H_RJ)  # interpolated, then renormalised
    e = _E_RJ + t * (_E_PURPLE - _E_RJ)
    h, e = h / np.linalg.norm(h, axis=1, keepdims=True), e / np.linalg.norm(e, axis=1, keepdims=True)
    return h.astype(np.float32), e.astype(np.float32)


def _tissue(fields: dict[str, np.ndarray], phys: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Tissue mask (1 − lumen), stroma density (relative; 0 in lumen), chromatin modulation, red cells and
    the stromal grain, ``[n, S, S]``."""
    pix = FIELD_UM / size
    col = {k: v[:, None, None] for k, v in phys.items()}
    lumen_thr = ndtri(1.0 - np.clip(col["lumen_fraction"], 1e-6, 1.0 - 1e-6))
    soft = 0.15 * np.hypot(pix, 2.5 * col["blur"])  # ≈ one pixel or the PSF ramp at the blob edges
    # lumen edges follow the fibres a little (ragged, not round); the mix keeps unit variance
    tissue = 1.0 - expit((0.95 * fields["lumen"] + 0.3 * fields["fibre"] - lumen_thr) / soft)
    share = np.clip(col["fibre_density"], 1e-6, 1.0 - 1e-6)
    g = fields["fibre"]
    bundles = expit((g - ndtri(1.0 - share)) / col["fibre_sharpness"])
    streak = fields["streak"]
    # retraction cracks: thin white gaps where both the bundles and the fibrils are weakest
    crack_thr = ndtri(1.0 - np.clip(col["crack_share"], 1e-6, 1.0 - 1e-6))
    cracks = expit((-(0.8 * g + 0.6 * streak) - crack_thr) / np.minimum(0.3, col["fibre_sharpness"]))
    density = ((0.25 + 0.75 * bundles) * np.clip(1.0 + col["fibril_contrast"] * streak, 0.2, None)
               * np.clip(1.0 + 0.25 * fields["stroma"], 0.3, None) * (1.0 - 0.9 * cracks))
    modulation = np.clip(1.0 + col["chromatin_texture"] * fields["texture"], 0.15, 2.5)
    # erythrocytes: discrete discs from the thresholded red-cell field, in tissue and lumen (vessels) alike
    red_thr = ndtri(1.0 - np.clip(col["red_cells"], 1e-6, 1.0 - 1e-6))
    red = expit((fields["red"] - red_thr) / (0.2 + 0.5 * col["blur"]))
    return {"tissue": tissue.astype(np.float32), "stroma": (density * tissue).astype(np.float32),
            "chromatin": modulation.astype(np.float32), "red": red.astype(np.float32),
            "grain": fields["texture"]}


def _bright_field(cells: dict[str, np.ndarray], tis: dict[str, np.ndarray], phys: dict[str, np.ndarray],
                  stain: str) -> np.ndarray:
    """Beer–Lambert: ``I = I0 · 10^(−OD)`` with OD = Σ concentration × stain vector. Returns ``[n, S, S, 3]`` DN."""
    col = {k: v[:, None, None] for k, v in phys.items()}
    h_od, e_od, c_od = col["nuclear_stain"], col["stroma_stain"], col["cytoplasm"]
    nuclei = np.minimum(cells["nuclei"], 1.25) * tis["chromatin"]  # overlapping nuclei: bounded OD
    cell = cells["cells"]
    # cell bodies and nuclei displace stroma
    stroma = e_od * tis["stroma"] * (1.0 - 0.6 * cell * (c_od / _RANGES["cytoplasm"][1]))
    stroma *= 1.0 - 0.7 * np.minimum(cells["nuclei"], 1.0)
    red = tis["red"]
    if stain == "he":
        grain = np.clip(1.0 + tis["grain"], 0.0, None)
        hema = h_od * nuclei + 0.35 * c_od * cell + (0.03 + col["stroma_basophilia"] * grain) * stroma
        eosin = stroma + 0.75 * c_od * cell + 0.25 * e_od * np.minimum(cells["nuclei"], 1.0)
        hema, eosin = hema * (1.0 - red), eosin * (1.0 - red) + red * (_RED_CELL_OD + 0.5 * e_od)
        dab = np.zeros_like(hema)
    else:  # ihc_dab: haematoxylin counterstain (paler), DAB on positive nuclei and cell bodies, no eosin
        negative = np.clip(cells["nuclei"] - 0.6 * cells["nuclei_pos"], 0.0, 1.25) * tis["chromatin"]
        hema = 0.75 * h_od * negative + 0.4 * stroma + 0.3 * c_od * cell
        eosin = np.zeros_like(hema)
        dab = 0.8 * h_od * (np.minimum(cells["nuclei_pos"], 1.25) * tis["chromatin"] + 0.3 * cells["cells_pos"])
        dab += 0.02 * tis["stroma"]  # faint non-specific background
        hema, dab = hema * (1.0 - red) + 0.08 * red, dab * (1.0 - red) + 0.15 * red  # pale, unstained cells
    v_h, v_e = _stain_vectors(phys["stain_hue"])
    od = (hema[..., None] * v_h[:, None, None, :] + eosin[..., None] * v_e[:, None, None, :]
          + dab[..., None] * _DAB.astype(np.float32))
    white = 225.0 + 27.0 * phys["brightness"]
    return white[:, None, None, None].astype(np.float32) * np.power(np.float32(10.0), -od)


def _fluorescence(cells: dict[str, np.ndarray], tis: dict[str, np.ndarray], phys: dict[str, np.ndarray]) -> np.ndarray:
    """Emission on a dark background: DAPI nuclei, green cytoplasm/stroma, red marker on positive cells (DN)."""
    col = {k: v[:, None, None] for k, v in phys.items()}
    nucleus = np.minimum(cells["nuclei"], 1.0)
    blue = col["nuclear_stain"] * np.minimum(cells["nuclei"], 1.25) * tis["chromatin"]
    # cytoplasmic markers: around the nuclei, not on them
    green = (0.4 * col["stroma_stain"] * tis["stroma"] + 1.2 * col["cytoplasm"] * cells["cells"]) * (1 - nucleus)
    green = green * (1.0 - tis["red"]) + 0.3 * tis["red"]  # erythrocyte autofluorescence
    red = 0.6 * cells["cells_pos"] * (1 - nucleus)
    t = phys["stain_hue"][:, None]
    colours = [(1 - t) * lo + t * hi for lo, hi in (_DAPI, _GREEN, _RED)]  # each [n, 3]
    signal = sum(ch[..., None] * c[:, None, None, :].astype(np.float32)
                 for ch, c in zip((blue, green, red), colours, strict=True))
    gain = (0.5 + 1.1 * phys["brightness"])[:, None, None, None].astype(np.float32)
    return 255.0 * (1.0 - np.exp(-(0.03 + gain * signal)))


# --------------------------------------------------------------------------------------------------- render
def _check_render_inputs(params: np.ndarray, seeds: np.ndarray, size: int, stain: str,
                         channels: int) -> tuple[np.ndarray, np.ndarray]:
    if stain not in STAIN_FAMILIES:
        raise ValueError(f"unknown stain {stain!r}; expected one of {', '.join(STAIN_FAMILIES)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, not {size!r}")
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_PARAMETERS:
        raise ValueError(f"params must have shape [n, {N_PARAMETERS}] ({', '.join(PARAMETER_NAMES)}), not {p.shape}")
    _check_unit_interval(p)
    s = np.asarray(seeds)
    if s.shape != (len(p),) or (s.size and s.dtype.kind not in "iu"):
        raise ValueError(f"seeds must be a 1-D integer array of length {len(p)} (one per tile), "
                         f"not {s.dtype} {s.shape}")
    if s.size and s.min() < 0:
        raise ValueError("seeds must be non-negative integers")
    return p, s


def _nuclei_needed(params: np.ndarray) -> np.ndarray:
    """Per tile, the rung of :data:`_K_LADDER` that holds every nucleus it can draw (from its params alone).

    A tile's rendering never depends on the other tiles of the batch: its rung is fixed by
    its own parameters, and the nuclei beyond its expected count have weight 0 anyway.
    """
    density = _RANGES["nuclei_density"][1] * params[:, PARAMETER_NAMES.index("nuclei_density")] ** 2
    most = np.ceil(density * _PADDED_AREA * 1.35 + 1e-3)
    ladder = np.asarray(_K_LADDER)
    return ladder[np.searchsorted(ladder, np.minimum(most, _K))]


def _render_chunk(params: np.ndarray, seeds: np.ndarray, size: int, stain: str, count: int) -> np.ndarray:
    """Render one chunk (tiles drawing ``count`` nuclei) as float RGB ``[n, size, size, 3]`` (DN, before rounding)."""
    # below 32 px the tissue is drawn at twice the resolution and block-averaged (no aliasing of fine detail)
    factor = 2 if size < 32 else 1
    fine = size * factor
    phys = _physical(params)
    layout = _draw_layouts(seeds, size)
    fields = _fields(layout, phys, fine)
    tis = _tissue(fields, phys, fine)
    cells = _nuclei(layout, phys, fine, fields["fibre"], tis["tissue"], count)
    rgb = _fluorescence(cells, tis, phys) if stain == "fluorescence" else _bright_field(cells, tis, phys, stain)
    if factor > 1:
        rgb = rgb.reshape(len(rgb), size, factor, size, factor, 3).mean(axis=(2, 4))
    sd = phys["noise"][:, None, None, None].astype(np.float32)
    return rgb + sd * np.sqrt(0.3 + 0.7 * np.clip(rgb, 0.0, 255.0) / 255.0) * layout.noise


def render_tiles(params: np.ndarray, seeds: np.ndarray, *, size: int, stain: str, channels: int = 3) -> np.ndarray:
    """Render one tissue tile per parameter row.

    Tile i is drawn from ``params[i]`` with its layout (nuclei positions, fibre and lumen
    patterns, sensor noise) from ``np.random.default_rng(int(seeds[i]))``: the same
    (params, seed) always gives the same tile, whatever else is in the batch, and a small
    change of params gives a similar tile with the same layout. Every tile shows the same
    :data:`FIELD_UM` µm field, so ``size`` only changes the sampling.

    Args:
        params: float ``[n, N_PARAMETERS]`` on [0, 1] (columns :data:`PARAMETER_NAMES`).
        seeds: non-negative integers ``[n]``.
        size: tile side in pixels, 16–64.
        stain: one of :data:`STAIN_FAMILIES`.
        channels: 3 (RGB) or 1 (ITU-R BT.601 luma of the RGB tile).

    Returns:
        uint8 ``[n, size, size, channels]``.

    Raises:
        ValueError: params of the wrong shape or outside [0, 1], seeds not one non-negative
            integer per tile, an unknown stain, a size outside 16–64 or channels not 1 or 3.
    """
    p, s = _check_render_inputs(params, seeds, size, stain, channels)
    size = int(size)
    out = np.empty((len(p), size, size, channels), dtype=np.uint8)
    fine = size * (2 if size < 32 else 1)
    needed = _nuclei_needed(p)
    for count in np.unique(needed):
        rows = np.flatnonzero(needed == count)
        chunk = max(8, _CHUNK_ELEMENTS // (max(int(count), 8) * fine * fine))
        for start in range(0, len(rows), chunk):
            idx = rows[start:start + chunk]
            rgb = _render_chunk(p[idx], s[idx], size, stain, int(count))
            if channels == 1:
                rgb = (rgb @ _LUMA.astype(np.float32))[..., None]
            out[idx] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out
