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


def _normalise(counts: np.ndarray, groups: list[slice]) -> np.ndarray:
    out = np.clip(counts, 0.0, None) + 1e-3
    for g in groups:
        out[..., g] = out[..., g] / out[..., g].sum(axis=-1, keepdims=True)
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
        num = np.clip(measurements.numeric_counts, 0.0, None) + 1e-3
        # structural cells (a missing cell of a non-nullable column...) are forced to zero
        layout = measurements.numeric
        if layout.columns:
            num[:, (layout.present_idx < 0).numpy(), 0] = 0.0
            num[:, (layout.nonzero_idx < 0).numpy(), 1] = 0.0
        num = num / num.sum(axis=2, keepdims=True)
        self.num_target = torch.as_tensor(np.cumsum(num, axis=2), dtype=torch.float32)
        spans = measurements.discrete_spans
        groups, pos = [], 0
        for s in spans:
            groups.append(slice(pos, pos + s.width))
            pos += s.width
        self.disc_index = torch.tensor([i for s in spans for i in range(s.start, s.stop)], dtype=torch.long)
        self.disc_target = torch.as_tensor(_normalise(measurements.discrete_counts.copy(), groups),
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
