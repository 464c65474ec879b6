"""DP estimation of numerical bounds the metadata leaves undeclared (the Gaussian mechanism).

A column declared with ``dp_bounds: {search_min: A, search_max: B}`` instead of
``min``/``max`` gets its bounds from the private rows through a DP histogram: the
public search range [A, B] is cut into ``n_bins`` fixed bins (log-spaced away from 0 on
each side when the range spans several orders of magnitude, linear otherwise); each
row adds 1 to one bin per such column, so the k histograms have L2 sensitivity √k; the
Gaussian noise (std σ·√k) makes the release the Opacus entry ``(σ, q=1, 1 step)``,
composed with the rest of the run in one accountant. The lower bound is the left edge
of the first bin (from the left) whose noisy cumulative count exceeds a threshold
τ = 3σ√k + trim·n (n public); the upper bound symmetrically. Post-processing only
after the noise; nothing else about the rows is used.

Citations: Dwork & Roth 2014 (Gaussian mechanism); the histogram-based approach to DP
bounds is standard (e.g. smartnoise-sdk's approx_bounds uses a Laplace histogram).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import current, noisy_sum

DEFAULT_BINS = 64
DEFAULT_TRIM = 0.001


@dataclass(frozen=True)
class DPBounds:
    """DP-estimated bounds, the metadata completed with them, and the ledger entry."""

    bounds: dict[str, tuple[float, float]]
    metadata: Metadata
    entry: MechanismEntry | None


def search_edges(lo: float, hi: float, n_bins: int) -> np.ndarray:
    """``n_bins + 1`` public bin edges over [lo, hi]: log-spaced when the range is wide."""
    if lo >= 0 and hi / max(lo, 1e-12) > 1e3:
        start = max(lo, hi * 1e-9)
        inner = np.geomspace(start, hi, n_bins)
        return np.concatenate([[lo], inner]) if lo < start else np.geomspace(lo, hi, n_bins + 1)
    if lo < 0 < hi and max(-lo, hi) / max(min(-lo, hi), 1e-12) < 1e3 and (hi - lo) < 1e4:
        return np.linspace(lo, hi, n_bins + 1)
    if lo < 0 < hi:
        half = n_bins // 2
        neg = -np.geomspace(-lo, max(-lo, hi) * 1e-9, half)
        pos = np.geomspace(max(-lo, hi) * 1e-9, hi, n_bins - half)
        return np.concatenate([neg, [0.0], pos])
    return np.linspace(lo, hi, n_bins + 1)


def columns_needing_bounds(metadata: Metadata) -> list[str]:
    """Numerical columns declared with ``dp_bounds`` instead of public ``min``/``max``."""
    return [c for c in metadata.model_columns if metadata.columns[c].dp_bounds is not None]


def estimate_bounds(df: pd.DataFrame, metadata: Metadata, *, noise_multiplier: float, generator: torch.Generator,
                    n_bins: int = DEFAULT_BINS, trim: float = DEFAULT_TRIM) -> DPBounds:
    """Estimate the undeclared bounds of ``metadata`` from the private rows ``df``.

    Reads the private values of the ``dp_bounds`` columns. Guarantee: one Gaussian
    mechanism, Opacus entry ``(noise_multiplier, 1.0, 1)``, add/remove one row. Assumes
    n (the row count) is public. Returns the metadata with ``min``/``max`` filled in.
    """
    cols = columns_needing_bounds(metadata)
    if not cols:
        return DPBounds({}, metadata, None)
    scale = noise_multiplier * math.sqrt(len(cols))
    collective = current()
    n_rows = float(collective.sum(torch.tensor([float(len(df))])).item())  # all ranks' rows (public n)
    tau = 3.0 * scale + trim * n_rows
    bounds: dict[str, tuple[float, float]] = {}
    for c in cols:
        spec = metadata.columns[c]
        lo, hi = spec.dp_bounds.search_min, spec.dp_bounds.search_max  # type: ignore[union-attr]
        edges = search_edges(lo, hi, n_bins)
        x = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        x = np.clip(x[~np.isnan(x)], lo, hi)
        counts = np.histogram(x, bins=edges)[0].astype(float)
        noisy = noisy_sum(counts, scale, generator)  # over every rank's rows, noised once
        left = np.nonzero(np.cumsum(noisy) > tau)[0]
        right = np.nonzero(np.cumsum(noisy[::-1]) > tau)[0]
        b_lo = float(edges[left[0]]) if len(left) else lo
        b_hi = float(edges[len(edges) - 1 - right[0]]) if len(right) else hi
        if not b_lo < b_hi:
            b_lo, b_hi = lo, hi
        if spec.type == "integer":
            b_lo, b_hi = math.floor(b_lo), math.ceil(b_hi)
        bounds[c] = (b_lo, b_hi)
    raw = metadata.model_dump(mode="json")
    for c, (b_lo, b_hi) in bounds.items():
        raw["columns"][c].update(min=b_lo, max=b_hi, dp_bounds=None)
    entry = MechanismEntry(f"DP bounds ({len(cols)} histograms, Gaussian, sensitivity sqrt({len(cols)}))",
                           float(noise_multiplier), 1.0, 1)
    return DPBounds(bounds, Metadata.model_validate(raw), entry)
