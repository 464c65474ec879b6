"""DP correlation matrix of the numerical columns (one Gaussian release), matched by the generator.

Per-column marginals carry no correlation, and on a table of a few hundred rows the DP
discriminator learns little of it: synthetic pairs such as ldl and total cholesterol came
out with the wrong sign. This release measures every pair's correlation at once.

The statistic is the quadrant (sign) correlation, which needs no scale: each row's numerical
values (encoded on [-1, 1] over the PUBLIC bounds) become ``w_j = present·nonzero·sign(v_j −
c_j) / √d`` with centres ``c`` (medians) read off an earlier DP release (the conditional
marginals: post-processing) or, without it, the public centre 0. Missing values and
structural zeros contribute 0, so ‖w‖ ≤ 1 with no clipping, and every column carries the
largest signal that norm allows (a standardised value clipped to norm √d loses the heavy
tails' rows and, with a DP scale k times too large, 1 − 1/k² of the signal). Released, as
one vector with one Gaussian mechanism:

* the off-diagonal upper triangle of Σ w wᵀ: one row moves it by
  √(Σ_{i<j} w_i² w_j²) = √((‖w‖⁴ − Σ w_i⁴) / 2) ≤ 1/√2;
* ``TRACE_WEIGHT``·Σ‖w‖² (moved by ≤ ``TRACE_WEIGHT``) and ``SUM_WEIGHT``·Σw (≤ ``SUM_WEIGHT``):
  the variances and the centring need far less precision than the pairs, so they are
  released down-weighted (their own noise is 1/weight times larger, still small next to n);

together L2 sensitivity ``SENSITIVITY`` = √(1/2 + 0.25² + 0.25²) ≈ 0.79 under add/remove one
row (the diagonal is not released). Noise std σ·``SENSITIVITY`` per released value,
accounted as ``(σ, q = 1, 1 step)``.

The target is post-processing: the noisy sign covariance over the noisy sign variances,
denoised by its spectrum — a symmetric noise matrix of entry std s has its eigenvalues within
±2s√d, so uncorrelated columns (I + noise) have theirs within 1 ± 2s√d, and only the
eigen-components above 1 + 2s√d are kept (hard thresholding; Dwork, Talwar, Thakurta & Zhang
2014, "analyze Gauss", and the low-rank structure of clinical measurements: size, lipid or
blood-count panels move together); no component above that edge: no target, and the
generator is not asked to match anything (matching the identity would erase correlations).
The kept quadrant correlation q becomes a Pearson correlation by Greiner's relation
r = sin(πq/2) (exact for a Gaussian copula).

Measured end to end in ``benchmarks/results/small_tables-five-*.md`` (README, "DP correlation
matrix"); the unit tests check the sensitivity by removing rows and the denoising's gain over
the raw entries on a one-factor table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.transforms.dp_marginals import MarginalMeasurements, NumericLayout, _indicator, bin_edges
from synthrelease.transforms.marginal_loss import project_counts

TRACE_WEIGHT = 0.25
"""Weight of Σ‖w‖² in the released vector (its noise std is σ·SENSITIVITY / TRACE_WEIGHT)."""
SUM_WEIGHT = 0.25
"""Weight of Σw in the released vector (its noise std is σ·SENSITIVITY / SUM_WEIGHT)."""
SENSITIVITY = (0.5 + TRACE_WEIGHT ** 2 + SUM_WEIGHT ** 2) ** 0.5
"""L2 sensitivity of (upper off-diagonal Σwwᵀ, TRACE_WEIGHT·Σ‖w‖², SUM_WEIGHT·Σw) when ‖w‖ ≤ 1."""
EDGE = 2.0
"""Spectral edge of a symmetric noise matrix of entry std s: eigenvalues within ±EDGE·s·√d."""


@dataclass(frozen=True)
class CorrelationMeasurement:
    """The noisy moments and their accountant entry.

    Attributes:
        layout: the numerical columns (d of them).
        center: float32 [d] public-or-DP centre (median) of each encoded value.
        sums: float64 [d] noisy Σw.
        off_diagonal: float64 [d, d] noisy Σwwᵀ off the diagonal (symmetric, each pair measured
            once; the diagonal is 0: not released).
        trace: noisy Σ‖w‖².
        noise_std: noise std of each released off-diagonal value (σ·SENSITIVITY).
        entry: the accounted mechanism.
    """

    layout: NumericLayout
    center: torch.Tensor
    sums: np.ndarray
    off_diagonal: np.ndarray
    trace: float
    noise_std: float
    entry: MechanismEntry

    def target(self, n_rows: int) -> np.ndarray | None:
        """The denoised Pearson correlation matrix [d, d] (post-processing; ``n_rows`` public), or
        None when no eigen-component clears the noise edge: matching the identity instead would
        erase the correlations the other terms teach the generator."""
        n = float(max(n_rows, 2))
        d = len(self.sums)
        mean = self.sums / n
        cov = self.off_diagonal / n - np.outer(mean, mean)
        # E[w_j²] = 1/d for a column without missing values or zeros; the pooled noisy trace
        # covers the ones with them (their share of active cells)
        second = min(self.trace / (n * d), 1.0 / d)
        var = np.maximum(second - mean ** 2, 0.25 / d)  # a column on one side of its centre: floor
        entry_std = self.noise_std / (n * float(np.mean(var)))  # each pair's noise, in correlation units
        if second <= 0 or entry_std > 1.0:  # every pair is lost in noise
            return None
        quadrant = cov / np.sqrt(np.outer(var, var))
        np.fill_diagonal(quadrant, 1.0)
        values, vectors = np.linalg.eigh(quadrant)
        keep = values > 1.0 + EDGE * entry_std * d ** 0.5  # uncorrelated columns: I + noise
        if not keep.any():
            return None
        # each column's own variance (1 − its communality) sits in every eigenvalue: remove the
        # discarded components' mean level, as a factor model does (trace d is preserved)
        unique = float(values[~keep].mean()) if (~keep).any() else 0.0
        low_rank = (vectors[:, keep] * (values[keep] - unique)) @ vectors[:, keep].T
        out = np.sin(np.pi / 2 * np.clip(low_rank, -1.0, 1.0))  # Greiner: quadrant → Pearson
        np.fill_diagonal(out, 1.0)
        return out


def signs(x: torch.Tensor, layout: NumericLayout, center: torch.Tensor) -> torch.Tensor:
    """[n, d] rows w = present·nonzero·sign(v − centre) / √d: ‖w‖ ≤ 1 without clipping."""
    d = len(layout.columns)
    active = _indicator(x, layout.present_idx) * _indicator(x, layout.nonzero_idx)
    return active * torch.sign(x[:, layout.value_idx] - center) / d ** 0.5


def centres(layout: NumericLayout, marginals: MarginalMeasurements | None) -> torch.Tensor:
    """Per-column median of the encoded values: from the DP marginals' value bins (pooled over
    classes, projected onto the simplex, interpolated within the median's bin: post-processing),
    else the public centre 0."""
    d = len(layout.columns)
    if marginals is None or tuple(marginals.numeric.columns) != tuple(layout.columns):
        return torch.zeros(d)
    noisy = marginals.numeric_counts.sum(axis=0)[:, 2:]  # [d, bins]
    # projected, not clipped: clipping adds ≈ σ/√(2π) to every empty bin and drags the median
    # towards the middle of the bounds
    counts = project_counts(noisy, np.maximum(noisy.sum(axis=1), 1.0)) + 1e-6
    cdf = np.cumsum(counts / counts.sum(axis=1, keepdims=True), axis=1)
    edges = np.concatenate([[-1.0], bin_edges(marginals.n_bins).double().numpy(), [1.0]])
    k = np.minimum((cdf < 0.5).sum(axis=1), cdf.shape[1] - 1)  # the median's bin
    rows = np.arange(d)
    below = np.where(k > 0, cdf[rows, np.maximum(k - 1, 0)], 0.0)
    share = (0.5 - below) / np.maximum(cdf[rows, k] - below, 1e-12)
    out = edges[k] + share * (edges[k + 1] - edges[k])
    return torch.as_tensor(out, dtype=torch.float32)


def released_vector(w: torch.Tensor) -> torch.Tensor:
    """(upper off-diagonal Σwwᵀ, TRACE_WEIGHT·Σ‖w‖², SUM_WEIGHT·Σw) of rows ``w`` [n, d]: what
    one release adds noise to (L2 sensitivity ``SENSITIVITY`` when every ‖w‖ ≤ 1)."""
    d = w.shape[1]
    iu = torch.triu_indices(d, d, offset=1)
    gram = w.T @ w
    return torch.cat([gram[iu[0], iu[1]], (TRACE_WEIGHT * gram.diagonal().sum()).reshape(1),
                      SUM_WEIGHT * w.sum(dim=0)])


def measure_correlation(chunks: Callable[[], Iterator[torch.Tensor]], layout: NumericLayout, *,
                        center: torch.Tensor, noise_multiplier: float,
                        generator: torch.Generator) -> CorrelationMeasurement:
    """Release the pair moments of the encoded private rows with one Gaussian mechanism.

    Reads every private row. Guarantee: L2 sensitivity ``SENSITIVITY`` under add/remove one row
    (``center`` must be public or a DP output), noise std
    ``noise_multiplier``·SENSITIVITY per released value: the Opacus entry ``(noise_multiplier, 1.0, 1)``.
    """
    d = len(layout.columns)
    total = torch.zeros(d * (d - 1) // 2 + 1 + d, dtype=torch.float64)
    for block in chunks():
        total += released_vector(signs(block.double(), layout, center.double()))
    std = noise_multiplier * SENSITIVITY
    noisy = noisy_sum(total, std, generator).numpy()  # Σ over every rank's rows, noised once
    pairs = d * (d - 1) // 2
    off = np.zeros((d, d))
    off[np.triu_indices(d, 1)] = noisy[:pairs]
    entry = MechanismEntry(f"numerical correlation ({d} columns, Gaussian, sensitivity {SENSITIVITY:.3f})",
                           float(noise_multiplier), 1.0, 1)
    return CorrelationMeasurement(layout, center, sums=noisy[pairs + 1:] / SUM_WEIGHT,
                                  off_diagonal=off + off.T, trace=float(noisy[pairs]) / TRACE_WEIGHT,
                                  noise_std=std, entry=entry)


MATCHED_ABOVE = 0.1
"""Only pairs whose target |r| reaches this are matched: asked to keep a pair at r ≈ 0, the
generator found it cheapest to make a column constant (gse7390: every synthetic time to
metastasis became 0, a column with no correlation to anything)."""


class CorrelationMatcher:
    """``loss(fake)``: mean squared difference between the batch's Pearson correlation of the
    numerical values (missing and structural zeros as 0, as the release saw them) and the DP
    target, over the off-diagonal pairs whose target reaches ``MATCHED_ABOVE`` (reads only DP
    outputs: no privacy cost)."""

    def __init__(self, measured: CorrelationMeasurement, *, n_rows: int) -> None:
        self.m = measured
        target = measured.target(n_rows)
        self.target = None if target is None else torch.as_tensor(target, dtype=torch.float32)
        d = len(measured.layout.columns)
        self.off = ~torch.eye(d, dtype=torch.bool)
        if self.target is not None:  # only the pairs the release found correlated
            self.off &= self.target.abs() >= MATCHED_ABOVE

    def loss(self, fake: torch.Tensor) -> torch.Tensor:
        if self.target is None or not self.off.any():  # nothing cleared the noise: no term
            return fake.new_zeros(())
        layout = self.m.layout
        active = _indicator(fake, layout.present_idx) * _indicator(fake, layout.nonzero_idx)
        w = active * (fake[:, layout.value_idx] - self.m.center)
        w = w - w.mean(dim=0, keepdim=True)
        cov = w.T @ w / max(fake.shape[0] - 1, 1)
        sd = cov.diagonal().clamp(min=1e-8).sqrt()
        corr = cov / (sd.unsqueeze(0) * sd.unsqueeze(1))
        return (corr - self.target)[self.off].pow(2).mean()
