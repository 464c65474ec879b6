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
        num = project_counts(measurements.numeric_counts, totals, allowed) + 1e-3 * allowed
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
