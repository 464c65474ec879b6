"""Generator loss term: match the DP-measured conditional marginals (post-processing).

Per condition class, the generator batch's distribution over each column's cells is
compared with the normalised noisy counts: discrete columns by their mean softmax
probabilities, numerical columns by the cumulative distribution over (missing, zero,
soft bins) — a differentiable Kolmogorov-Smirnov-like match. All columns are handled
in a few tensor operations, so wide tables (thousands of genes) stay fast. It reads
only DP outputs and costs no privacy.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.isotonic import isotonic_regression

from synthrelease.transforms.dp_marginals import MarginalMeasurements, NumericLayout, numeric_cell_probs


def project_counts(noisy: np.ndarray, totals: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Least-squares non-negative counts summing to ``totals``: the Euclidean projection of each
    noisy histogram (last axis) onto {c ≥ 0, Σc = total} (post-processing of a DP release).

    Clipping noisy counts at zero instead adds about σ/√(2π) to every empty cell, which on a
    small table turns a concentrated histogram into a near-uniform one (the synthetic column
    then spreads to its declared bounds); the projection subtracts one common threshold and
    clips, removing that bias (Duchi et al. 2008's simplex projection). ``allowed``: cells
    that can hold mass (structural zeros excluded). ``totals``: broadcastable to the leading axes.
    """
    x = np.asarray(noisy, dtype=np.float64)
    ok = np.ones_like(x, dtype=bool) if allowed is None else np.broadcast_to(allowed, x.shape)
    t = np.maximum(np.broadcast_to(np.asarray(totals, dtype=np.float64), x.shape[:-1])[..., None], 1e-9)
    v = np.where(ok, x, -np.inf)
    srt = -np.sort(-v, axis=-1)  # descending
    finite = np.isfinite(srt)
    css = np.cumsum(np.where(finite, srt, 0.0), axis=-1) - t
    k = np.arange(1, x.shape[-1] + 1)
    cond = finite & (srt - css / k > 0)
    rho = np.maximum(cond.sum(axis=-1, keepdims=True), 1)  # conditions hold for a prefix
    theta = np.take_along_axis(css, rho - 1, axis=-1) / rho
    return np.where(ok, np.maximum(x - theta, 0.0), 0.0)


UNIMODAL_MAX_HISTOGRAMS = 5_000
"""Above this many (class, numerical column) histograms the unimodal fit is skipped (its cost
is 2·bins isotonic fits per histogram; such wide tables use class profiles by default)."""


def _unimodal_fit(v: np.ndarray) -> np.ndarray:
    """Least-squares unimodal fit of one histogram: the best of, for each mode position, an
    increasing isotonic fit up to it and a decreasing one after it."""
    best, best_sse = v, np.inf
    for mode in range(len(v)):
        up = isotonic_regression(v[:mode + 1], increasing=True)
        down = isotonic_regression(v[mode:], increasing=False)
        fit = np.concatenate([up[:-1], [max(up[-1], down[0])], down[1:]])
        sse = float(((fit - v) ** 2).sum())
        if sse < best_sse:
            best, best_sse = fit, sse
    return best


def unimodal_where_consistent(bins: np.ndarray, noise_std: float) -> np.ndarray:
    """Replace each noisy histogram (last axis) by its least-squares unimodal fit where the
    fit is consistent with the release's noise: residual sum of squares ≤ noise_std²·(K +
    2√(2K)), about the 98th percentile of χ²_K (post-processing of a DP release).

    Why: noise of std σ on every bin, then the simplex projection, leaves isolated positive
    spikes in empty tail bins, and a generator that follows them spreads every column (the
    demo's targets came out with std 1.59× the true one, diabetes' 1.38×; with the fit 1.05×
    and 1.01×: ``python benchmarks/marginal_spread.py``). A unimodal histogram plus noise
    passes the test; a clearly multimodal one (adult's education years, measured on 26,000
    rows) fails it and is kept as measured.
    """
    out = np.array(bins, dtype=np.float64, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    k = flat.shape[1]
    if noise_std <= 0 or k < 3 or flat.shape[0] > UNIMODAL_MAX_HISTOGRAMS:
        return out
    limit = noise_std ** 2 * (k + 2.0 * (2.0 * k) ** 0.5)
    for row in flat:
        fit = _unimodal_fit(row)
        if float(((fit - row) ** 2).sum()) <= limit:
            row[:] = fit
    return out


def _normalise(counts: np.ndarray, groups: list[slice], totals: np.ndarray | None = None) -> np.ndarray:
    out = np.asarray(counts, dtype=np.float64).copy()
    for g in groups:
        block = out[..., g]
        if totals is not None:
            block = project_counts(block, totals)
        block = np.clip(block, 0.0, None) + 1e-3
        out[..., g] = block / block.sum(axis=-1, keepdims=True)
    return out


class MarginalMatcher:
    """Precomputes normalised DP targets; ``loss(fake, cond)`` is differentiable in ``fake``."""

    def __init__(self, measurements: MarginalMeasurements, *, smoothing: float = 0.02,
                 columns_per_step: int = 0, generator: torch.Generator | None = None) -> None:
        """``columns_per_step`` > 0: each call matches a fresh random subset of that many
        numerical columns (drawn with ``generator``), an unbiased estimate of the full
        term that keeps [batch × columns × cells] small on very wide tables."""
        self.m = measurements
        self.smoothing = smoothing
        self.columns_per_step = columns_per_step
        self.generator = generator
        # each row falls in exactly one cell of every column: a class's cells sum to its
        # (noisy, DP) count, so the noisy histograms are projected onto that simplex
        class_totals = np.clip(measurements.condition_counts, 1.0, None)
        totals = class_totals[:, None]
        layout = measurements.numeric
        allowed = np.ones(measurements.numeric_counts.shape[1:], dtype=bool)
        if layout.columns:  # structural cells (a missing cell of a non-nullable column...) hold nothing
            allowed[(layout.present_idx < 0).numpy(), 0] = False
            allowed[(layout.nonzero_idx < 0).numpy(), 1] = False
        counts = measurements.numeric_counts.copy()
        counts[..., 2:] = unimodal_where_consistent(counts[..., 2:], measurements.noise_std)  # value bins only
        num = project_counts(counts, totals, allowed) + 1e-3 * allowed
        num = num / num.sum(axis=2, keepdims=True)
        self.num_target = torch.as_tensor(np.cumsum(num, axis=2), dtype=torch.float32)
        spans = measurements.discrete_spans
        groups, pos = [], 0
        for s in spans:
            groups.append(slice(pos, pos + s.width))
            pos += s.width
        self.disc_index = torch.tensor([i for s in spans for i in range(s.start, s.stop)], dtype=torch.long)
        self.disc_target = torch.as_tensor(_normalise(measurements.discrete_counts, groups, class_totals),
                                           dtype=torch.float32)
        self.n_disc_columns = len(spans)
        total = np.clip(measurements.condition_counts, 0.0, None)
        self.class_weight = torch.as_tensor(total / max(total.sum(), 1e-9), dtype=torch.float32)

    def loss(self, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Class-weighted mean squared error between batch and DP distributions, per column."""
        mass = cond.sum(dim=0)  # rows per class in the batch
        w = self.class_weight * (mass > 0).float()
        w = w / w.sum().clamp(min=1e-9)
        inv = 1.0 / mass.clamp(min=1.0)
        total = fake.new_zeros(())
        n_cols = 0
        if self.m.numeric.columns:
            layout, target = self.m.numeric, self.num_target
            n_num = len(layout.columns)
            if 0 < self.columns_per_step < n_num:
                sel = torch.randperm(n_num, generator=self.generator)[: self.columns_per_step].sort().values
                layout = NumericLayout(tuple(layout.columns[i] for i in sel.tolist()), layout.value_idx[sel],
                                       layout.present_idx[sel], layout.nonzero_idx[sel])
                target = target[:, sel]
            cells = numeric_cell_probs(fake, layout, self.m.n_bins, smoothing=self.smoothing)
            dist = torch.einsum("nk,ncb->kcb", cond, cells) * inv.view(-1, 1, 1)
            per_column = ((dist.cumsum(dim=2) - target) ** 2).mean(dim=2)  # [classes, columns]
            # sum over the columns; for a subset, its mean scaled to the full column count
            err = per_column.sum(dim=1) if target is self.num_target else per_column.mean(dim=1) * n_num
            total = total + (err * w).sum()
            n_cols += n_num
        if self.n_disc_columns:
            dist = (cond.T @ fake[:, self.disc_index]) * inv.view(-1, 1)
            err = ((dist - self.disc_target) ** 2).sum(dim=1)  # summed over cells of all columns
            total = total + (err * w).sum()
            n_cols += self.n_disc_columns
        return total / max(n_cols, 1)
