"""DP measurement of target-conditional one-way marginals (the Gaussian mechanism).

For every synthesised column c other than the condition column y, the joint histogram
of (y, c) is measured once on the whole private table: discrete blocks by category,
continuous values in ``n_bins`` equal-width bins of the encoded [-1, 1] range (bins are
fixed by the public metadata, never by the data). The condition's own histogram is
measured as well. Each row adds exactly 1 to one cell of each of the M histograms, so
the vector of all counts has L2 sensitivity √M under add/remove one row; Gaussian noise
of std σ·√M per cell makes the release one Gaussian mechanism, accounted as the Opacus
history entry ``(σ, q=1, 1 step)``.

The noisy counts are released to the generator's loss (post-processing); they also
give the condition's sampling frequencies. Citations: Dwork & Roth 2014 (Gaussian
mechanism); MST/AIM (McKenna et al. 2021/2022) and MargNet (Chen et al. 2025) for
marginal-guided synthesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.budget.accounting import MechanismEntry
from synthrelease.transforms.encoders import Span, TableEncoder

DEFAULT_BINS = 20


@dataclass(frozen=True)
class MarginalTarget:
    """One measured (condition × column-part) histogram, noisy, in the encoded space.

    Attributes:
        span: the encoded span it describes.
        kind: ``discrete`` (per category) or ``continuous`` (per bin of [-1, 1]).
        noisy_counts: float64 [n_condition_classes, n_cells], DP noisy counts (may be < 0).
        mask_span: for zero-inflated values, the span of the zero indicator (value counted
            only on non-zero rows); else None.
    """

    span: Span
    kind: str
    noisy_counts: np.ndarray
    mask_span: Span | None = None


@dataclass(frozen=True)
class MarginalMeasurements:
    """Every DP marginal of a run plus its ledger entry."""

    entry: MechanismEntry
    condition_counts: np.ndarray
    targets: tuple[MarginalTarget, ...]
    n_bins: int

    def condition_probs(self) -> np.ndarray:
        """Sampling frequencies of the condition from its noisy histogram (post-processing)."""
        noisy = np.clip(self.condition_counts, 0.0, None) + 1.0
        return noisy / noisy.sum()


def bin_edges(n_bins: int) -> torch.Tensor:
    """Interior edges of ``n_bins`` equal-width bins over the encoded range [-1, 1]."""
    return torch.linspace(-1.0, 1.0, n_bins + 1)[1:-1]


def _measured_parts(encoder: TableEncoder, condition_column: str) -> list[tuple[Span, Span | None]]:
    parts: list[tuple[Span, Span | None]] = []
    for s in encoder.spans:
        if s.column == condition_column:
            continue
        if s.role == "value":
            spec = encoder.metadata.columns[s.column]
            mask = encoder.span(s.column, "zero") if spec.zero_inflated else None
            parts.append((s, mask))
        else:
            parts.append((s, None))
    return parts


def _cells(x: torch.Tensor, span: Span, mask: Span | None, n_bins: int) -> torch.Tensor:
    """One-hot cell membership [n, n_cells] of each row for this part (all-zero = not counted)."""
    if span.kind == "discrete":
        return x[:, span.start:span.stop].double()
    v = x[:, span.start]
    idx = torch.bucketize(v.contiguous(), bin_edges(n_bins))
    out = torch.nn.functional.one_hot(idx, n_bins).double()
    if mask is not None:  # count only non-zero rows (second entry of the zero indicator)
        out = out * x[:, mask.start + 1:mask.start + 2].double()
    return out


def measure_marginals(x: torch.Tensor, encoder: TableEncoder, condition_column: str, *,
                      noise_multiplier: float, generator: torch.Generator,
                      n_bins: int = DEFAULT_BINS) -> MarginalMeasurements:
    """Release noisy (condition × part) histograms of the encoded private rows ``x``.

    Reads every private row. Guarantee: one Gaussian mechanism with L2 sensitivity √M
    and noise std ``noise_multiplier``·√M, i.e. the Opacus entry
    ``(noise_multiplier, 1.0, 1)``, under add/remove one row. Assumes x was encoded with
    metadata-only parameters (each row is one-hot in each part).
    """
    cond_span = encoder.span(condition_column, "category")
    cond = x[:, cond_span.start:cond_span.stop].double()
    parts = _measured_parts(encoder, condition_column)
    m = len(parts) + 1
    scale = noise_multiplier * math.sqrt(m)

    def noisy(counts: torch.Tensor) -> np.ndarray:
        noise = torch.randn(counts.shape, generator=generator, dtype=torch.float64) * scale
        return (counts + noise).numpy()

    cond_counts = noisy(cond.sum(dim=0))
    targets = []
    for span, mask in parts:
        counts = cond.T @ _cells(x, span, mask, n_bins)  # [classes, cells]
        targets.append(MarginalTarget(span, span.kind, noisy(counts), mask))
    entry = MechanismEntry(f"conditional marginals ({m} histograms, Gaussian, sensitivity √{m})",
                           float(noise_multiplier), 1.0, 1)
    return MarginalMeasurements(entry, cond_counts, tuple(targets), n_bins)


def count_histograms(encoder: TableEncoder, condition_column: str) -> int:
    """M, the number of histograms :func:`measure_marginals` releases."""
    return len(_measured_parts(encoder, condition_column)) + 1
