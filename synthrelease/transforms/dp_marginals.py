"""DP measurement of target-conditional one-way marginals (the Gaussian mechanism).

For every synthesised column c other than the condition column y, the joint histogram
of (y, cell of c) is measured once on the whole private table. The cells of a column
are mutually exclusive, so each row falls in exactly one:

* categorical / boolean: its declared categories (plus ``<missing>`` if nullable);
* numerical: ``missing`` (nullable columns), ``zero`` (zero-inflated columns), then
  ``n_bins`` equal-width bins of the encoded value over [-1, 1] — bins fixed by the
  public bounds, never by the data.

The condition's own histogram is measured too. Each row adds exactly 1 to one cell of
each of the M histograms, so the vector of all counts has L2 sensitivity √M under
add/remove one row; Gaussian noise of std σ·√M per cell makes the release one Gaussian
mechanism, accounted as the Opacus history entry ``(σ, q=1, 1 step)``.

The noisy counts feed the generator's loss (post-processing) and give the condition's
sampling frequencies. Citations: Dwork & Roth 2014 (Gaussian mechanism); McKenna et al.
2021/2022 (MST/AIM) and Chen et al. 2025 (MargNet) for marginal-guided synthesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.transforms.encoders import Span, TableEncoder

DEFAULT_BINS = 20


@dataclass(frozen=True)
class NumericLayout:
    """Where each measured numerical column lives in the encoded vector (index tensors, -1 = absent)."""

    columns: tuple[str, ...]
    value_idx: torch.Tensor
    present_idx: torch.Tensor
    nonzero_idx: torch.Tensor


@dataclass(frozen=True)
class MarginalMeasurements:
    """Every DP marginal of a run plus its ledger entry.

    Attributes:
        entry: the accounted mechanism.
        condition_counts: noisy counts of the condition's categories.
        numeric: layout of the measured numerical columns.
        numeric_counts: float64 [classes, n_numeric, 2 + n_bins] noisy counts of cells
            (missing, zero, bins; unused cells of a column are measured as structural zeros).
        discrete_spans: spans of the measured discrete columns.
        discrete_counts: float64 [classes, total width of discrete_spans] noisy counts.
        n_bins: bins per numerical value.
        noise_std: Gaussian noise std of every released count (σ·√M).
    """

    entry: MechanismEntry
    condition_counts: np.ndarray
    numeric: NumericLayout
    numeric_counts: np.ndarray
    discrete_spans: tuple[Span, ...]
    discrete_counts: np.ndarray
    n_bins: int
    noise_std: float = 0.0

    def condition_probs(self) -> np.ndarray:
        """Sampling frequencies of the condition from its noisy histogram (post-processing)."""
        noisy = np.clip(self.condition_counts, 0.0, None) + 1.0
        return noisy / noisy.sum()


def bin_edges(n_bins: int) -> torch.Tensor:
    """Interior edges of ``n_bins`` equal-width bins over the encoded range [-1, 1]."""
    return torch.linspace(-1.0, 1.0, n_bins + 1)[1:-1]


def numeric_layout(encoder: TableEncoder, condition_column: str) -> NumericLayout:
    """Index tensors of the value / present / non-zero entries of each numerical column."""
    cols = [c for c in encoder.columns if encoder.metadata.columns[c].is_numerical and c != condition_column]
    value, present, nonzero = [], [], []
    for c in cols:
        spec = encoder.metadata.columns[c]
        value.append(encoder.span(c, "value").start)
        present.append(encoder.span(c, "missing").start if spec.nullable else -1)
        nonzero.append(encoder.span(c, "zero").start + 1 if spec.zero_inflated else -1)
    as_t = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return NumericLayout(tuple(cols), as_t(value), as_t(present), as_t(nonzero))


def discrete_spans(encoder: TableEncoder, condition_column: str) -> tuple[Span, ...]:
    """Category spans of the measured discrete columns."""
    return tuple(s for s in encoder.spans if s.role == "category" and s.column != condition_column)


def _indicator(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[:, idx] with columns of idx == -1 set to 1 (the indicator is always true)."""
    out = x[:, idx.clamp(min=0)]
    return torch.where(idx.unsqueeze(0) >= 0, out, torch.ones_like(out))


def numeric_cell_probs(x: torch.Tensor, layout: NumericLayout, n_bins: int, *, smoothing: float | None) -> torch.Tensor:
    """[n, n_numeric, 2 + n_bins] cell membership: exact one-hot (smoothing None) or soft."""
    present = _indicator(x, layout.present_idx)
    nonzero = _indicator(x, layout.nonzero_idx)
    v = x[:, layout.value_idx]
    if smoothing is None:
        bins = torch.nn.functional.one_hot(torch.bucketize(v.contiguous(), bin_edges(n_bins)), n_bins).to(x.dtype)
    else:
        cdf = torch.sigmoid((bin_edges(n_bins).view(1, 1, -1) - v.unsqueeze(2)) / smoothing)
        ones = torch.ones_like(cdf[..., :1])
        cdf = torch.cat([torch.zeros_like(ones), cdf, ones], dim=2)
        bins = cdf[..., 1:] - cdf[..., :-1]
    missing = (1 - present).unsqueeze(2)
    zero = (present * (1 - nonzero)).unsqueeze(2)
    return torch.cat([missing, zero, (present * nonzero).unsqueeze(2) * bins], dim=2)


def numeric_cell_index(x: torch.Tensor, layout: NumericLayout, n_bins: int) -> torch.Tensor:
    """[n, n_numeric] long: each row's cell per numerical column (0 missing, 1 zero, 2 + bin),
    the position of the 1 in :func:`numeric_cell_probs` (exact, smoothing None)."""
    present = _indicator(x, layout.present_idx) > 0.5
    nonzero = _indicator(x, layout.nonzero_idx) > 0.5
    bins = torch.bucketize(x[:, layout.value_idx].contiguous(), bin_edges(n_bins)) + 2
    return torch.where(present, torch.where(nonzero, bins, torch.ones_like(bins)), torch.zeros_like(bins))


def _class_cell_counts(cond: torch.Tensor, x: torch.Tensor, layout: NumericLayout, n_bins: int) -> torch.Tensor:
    """[k, n_numeric, 2 + n_bins] float64 counts of rows per (condition class, column, cell):
    ``einsum("nk,ncb->kcb", cond, numeric_cell_probs(x))`` for a one-hot (or all-zero) ``cond``,
    by one integer bincount instead of a float one-hot tensor (exact: integer counts)."""
    k, n_cols, cells = cond.shape[1], len(layout.columns), n_bins + 2
    counted = cond.sum(dim=1) > 0.5  # a row without a condition class adds nothing, as in the einsum
    cls = cond.argmax(dim=1)[counted]
    index = numeric_cell_index(x[counted], layout, n_bins)
    flat = (cls.unsqueeze(1) * n_cols + torch.arange(n_cols).unsqueeze(0)) * cells + index
    return torch.bincount(flat.reshape(-1), minlength=k * n_cols * cells).view(k, n_cols, cells).double()


def count_histograms(encoder: TableEncoder, condition_column: str) -> int:
    """M: the number of histograms released (one per non-condition column, plus the condition)."""
    return sum(1 for c in encoder.columns if c != condition_column) + 1


def measure_marginals(x: torch.Tensor | Any, encoder: TableEncoder, condition_column: str, *,
                      noise_multiplier: float, generator: torch.Generator,
                      n_bins: int = DEFAULT_BINS) -> MarginalMeasurements:
    """Release noisy (condition × cell) histograms of the encoded private rows ``x``.

    ``x``: an encoded tensor [n, width], or a row source with ``chunks(rows)`` yielding
    encoded blocks (wide tables are never held encoded in full; see training.rows).

    Reads every private row. Guarantee: one Gaussian mechanism with L2 sensitivity √M and
    noise std ``noise_multiplier``·√M per cell, i.e. the Opacus entry
    ``(noise_multiplier, 1.0, 1)``, under add/remove one row. Assumes ``x`` was encoded
    with metadata-only parameters (each row lies in exactly one cell per column).
    """
    cond_span = encoder.span(condition_column, "category")
    layout = numeric_layout(encoder, condition_column)
    spans = discrete_spans(encoder, condition_column)
    m = count_histograms(encoder, condition_column)
    scale = noise_multiplier * math.sqrt(m)

    def noisy(counts: torch.Tensor) -> np.ndarray:
        return noisy_sum(counts, scale, generator).numpy()  # Σ over every rank's rows, noised once

    # exact counts, in row chunks so that [rows, columns, cells] stays ~ 32M entries
    chunk = max(1, 32_000_000 // max(1, len(layout.columns) * (n_bins + 2)))
    blocks = (x[i:i + chunk] for i in range(0, x.shape[0], chunk)) if isinstance(x, torch.Tensor) else x.chunks(chunk)
    k = cond_span.width
    cond_total = torch.zeros(k, dtype=torch.float64)
    counts = torch.zeros(k, len(layout.columns), n_bins + 2, dtype=torch.float64)
    disc_total = torch.zeros(k, sum(s.width for s in spans), dtype=torch.float64)
    for block in blocks:
        xd = block.double()
        cond = xd[:, cond_span.start:cond_span.stop]
        cond_total += cond.sum(dim=0)
        if layout.columns:
            if bool(((cond == 0) | (cond == 1)).all()) and bool((cond.sum(dim=1) <= 1).all()):
                counts += _class_cell_counts(cond, xd, layout, n_bins)  # one-hot classes: integer counts
            else:
                cells = numeric_cell_probs(xd, layout, n_bins, smoothing=None)  # [rows, C, 2 + K]
                counts += torch.einsum("nk,ncb->kcb", cond, cells)
        if spans:
            disc_total += cond.T @ torch.cat([xd[:, s.start:s.stop] for s in spans], dim=1)
    # noise drawn in a fixed order: condition, numerical cells, discrete cells
    cond_counts = noisy(cond_total)
    num_counts = noisy(counts) if layout.columns else np.zeros((k, 0, 2 + n_bins))
    disc_counts = noisy(disc_total) if spans else np.zeros((k, 0))
    entry = MechanismEntry(f"conditional marginals ({m} histograms, Gaussian, sensitivity sqrt({m}))",
                           float(noise_multiplier), 1.0, 1)
    return MarginalMeasurements(entry, cond_counts, layout, num_counts, spans, disc_counts, n_bins, float(scale))
