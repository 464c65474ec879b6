"""DP correlation matrix of the numerical columns (one Gaussian release), matched by the generator.

Per-column marginals carry no correlation, and on a table of a few hundred rows the DP
discriminator learns little of it: synthetic pairs such as ldl and total cholesterol came
out with the wrong sign. This release measures every pair's correlation at once.

Each row's numerical values (encoded on [-1, 1] over the PUBLIC bounds) become
``u_j = present·nonzero·(v_j − c_j) / s_j`` with centres ``c`` and scales ``s`` taken from
an earlier DP release (the conditional marginals: post-processing) or, without it, the
public centre 0 and scale 0.5. Missing values and structural zeros contribute 0. The row is
clipped to norm ``C = √d`` (the norm of a typical standardised row) and divided by C, so
``‖w‖ ≤ 1``. Released: Σw (L2 sensitivity ≤ ‖w‖ ≤ 1) and the upper triangle, diagonal
included, of Σ w wᵀ (Frobenius sensitivity ≤ ‖w‖² ≤ 1): together L2 sensitivity √2 under
add/remove one row, Gaussian noise of std σ·√2 per value, accounted as ``(σ, q = 1, 1 step)``.

The target correlation is post-processing: the noisy covariance over the pooled noisy
variance (the columns were standardised, so one variance serves all: √d times less noisy),
each entry soft-thresholded at its own noise level so that pairs the release cannot tell
from 0 are matched to 0, not to noise; no target (identity) when even the pooled variance
is within two noise stds of 0.

Measured (benchmarks/results/small_tables-corr*.md, ε = 1, 3 runs): on the clinical
diabetes table (10 numericals, 353 rows) a 0.2 share moved quality 0.780 → 0.798 and
strong-pair sign agreement 0.67 → 0.76 but TSTR AUC 0.96 → 0.87; on the 30-column demo
the per-pair noise (≈ σ·√2·d/n in correlation units) drowns the signal. So it is OFF by
default (``TrainingConfig.correlation_epsilon_share``), a lever for tables with few
numerical columns relative to their rows. Citation: Dwork, Talwar, Thakurta & Zhang 2014 (analyze Gauss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.privacy import collective
from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.privacy.randomness import gaussian_noise
from synthrelease.transforms.dp_marginals import MarginalMeasurements, NumericLayout, _indicator, bin_edges

SENSITIVITY = 2 ** 0.5
"""L2 sensitivity of (Σw, upper triangle of Σwwᵀ) when ‖w‖ ≤ 1."""
THRESHOLD = 1.0
"""Soft threshold of each noisy correlation, in units of its own noise std."""


@dataclass(frozen=True)
class CorrelationMeasurement:
    """The noisy moments and their accountant entry.

    Attributes:
        layout: the numerical columns (d of them).
        center, scale: float32 [d] public-or-DP centre and scale of each encoded value.
        sums: float64 [d] noisy Σw.
        second: float64 [d, d] noisy Σwwᵀ (symmetric; each upper entry measured once).
        noise_std: noise std of each released value (σ·√2).
        entry: the accounted mechanism.
    """

    layout: NumericLayout
    center: torch.Tensor
    scale: torch.Tensor
    sums: np.ndarray
    second: np.ndarray
    noise_std: float
    entry: MechanismEntry

    def target(self, n_rows: int) -> np.ndarray:
        """The soft-thresholded correlation matrix [d, d] (post-processing; ``n_rows`` public)."""
        n = float(max(n_rows, 2))
        mean = self.sums / n
        cov = self.second / n - np.outer(mean, mean)
        # the columns were standardised with DP scales, so their variances are about equal:
        # their pooled mean is √d times less noisy than each noisy diagonal entry
        d = len(mean)
        var = float(np.mean(np.diag(cov)))
        if var < 2.0 * self.noise_std / (n * d ** 0.5):  # the pooled variance is lost in its noise
            return np.eye(d)
        denom = np.full(cov.shape, var)
        raw = cov / denom
        noise = (self.noise_std / n) / denom  # std of each entry's noise, in correlation units
        shrunk = np.sign(raw) * np.maximum(np.abs(raw) - THRESHOLD * noise, 0.0)
        out = np.clip(shrunk, -1.0, 1.0)
        np.fill_diagonal(out, 1.0)
        return out


def standardised(x: torch.Tensor, layout: NumericLayout, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[n, d] rows w: standardised deviations clipped to norm √d and divided by √d (‖w‖ ≤ 1)."""
    d = len(layout.columns)
    active = _indicator(x, layout.present_idx) * _indicator(x, layout.nonzero_idx)
    u = active * (x[:, layout.value_idx] - center) / scale
    clip = d ** 0.5 * (1 + 1e-6)  # the margin keeps ‖w‖ ≤ 1 through rounding
    norm = u.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return u * (clip / norm).clamp(max=1.0) / clip


def centres_and_scales(layout: NumericLayout,
                       marginals: MarginalMeasurements | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column centre and scale of the encoded values: from the DP marginals' value bins
    (pooled over classes, post-processing), else the public centre 0 and scale 0.5."""
    d = len(layout.columns)
    if marginals is None or tuple(marginals.numeric.columns) != tuple(layout.columns):
        return torch.zeros(d), torch.full((d,), 0.5)
    counts = np.clip(marginals.numeric_counts.sum(axis=0)[:, 2:], 0.0, None) + 1e-3  # [d, bins]
    probs = counts / counts.sum(axis=1, keepdims=True)
    edges = bin_edges(marginals.n_bins).double().numpy()
    full = np.concatenate([[-1.0], edges, [1.0]])
    mids = (full[:-1] + full[1:]) / 2
    mean = probs @ mids
    std = np.sqrt(np.maximum(probs @ mids ** 2 - mean ** 2, 0.0))
    floor = 1.0 / marginals.n_bins  # half a bin width on [-1, 1]
    return (torch.as_tensor(mean, dtype=torch.float32),
            torch.as_tensor(np.maximum(std, floor), dtype=torch.float32))


def measure_correlation(chunks: Callable[[], Iterator[torch.Tensor]], layout: NumericLayout, *,
                        center: torch.Tensor, scale: torch.Tensor, noise_multiplier: float,
                        generator: torch.Generator) -> CorrelationMeasurement:
    """Release Σw and Σwwᵀ of the encoded private rows with one Gaussian mechanism.

    Reads every private row. Guarantee: L2 sensitivity √2 under add/remove one row (``centre``
    and ``scale`` must be public or DP outputs), noise std ``noise_multiplier``·√2 per value:
    the Opacus entry ``(noise_multiplier, 1.0, 1)``.
    """
    d = len(layout.columns)
    sums = torch.zeros(d, dtype=torch.float64)
    second = torch.zeros(d, d, dtype=torch.float64)
    for block in chunks():
        w = standardised(block.double(), layout, center.double(), scale.double())
        sums += w.sum(dim=0)
        second += w.T @ w
    std = noise_multiplier * SENSITIVITY
    noisy_sums = noisy_sum(sums, std, generator)  # Σ over every rank's rows, noised once
    upper = torch.triu(torch.ones(d, d, dtype=torch.bool))
    noise = torch.zeros(d, d, dtype=torch.float64)
    second = collective.current().sum(second)
    if collective.current().is_leader:  # the noise is drawn once, by rank 0 in a distributed run
        noise[upper] = gaussian_noise((int(upper.sum()),), std, generator)
    noise = collective.current().broadcast(noise)
    noise = torch.triu(noise) + torch.triu(noise, diagonal=1).T  # each pair's noise drawn once
    entry = MechanismEntry(f"numerical correlation ({d} columns, Gaussian, sensitivity sqrt(2))",
                           float(noise_multiplier), 1.0, 1)
    return CorrelationMeasurement(layout, center, scale, noisy_sums.numpy(), (second + noise).numpy(), std, entry)


class CorrelationMatcher:
    """``loss(fake)``: mean squared difference between the batch's correlation of w and the
    DP target, over the off-diagonal pairs (reads only DP outputs: no privacy cost)."""

    def __init__(self, measured: CorrelationMeasurement, *, n_rows: int) -> None:
        self.m = measured
        self.target = torch.as_tensor(measured.target(n_rows), dtype=torch.float32)
        d = self.target.shape[0]
        self.off = ~torch.eye(d, dtype=torch.bool)

    def loss(self, fake: torch.Tensor) -> torch.Tensor:
        w = standardised(fake, self.m.layout, self.m.center, self.m.scale)
        w = w - w.mean(dim=0, keepdim=True)
        cov = w.T @ w / max(fake.shape[0] - 1, 1)
        sd = cov.diagonal().clamp(min=1e-8).sqrt()
        corr = cov / (sd.unsqueeze(0) * sd.unsqueeze(1))
        return (corr - self.target)[self.off].pow(2).mean()
