"""Generator loss term: match the DP-measured conditional marginals (post-processing).

For each measured (condition × part) histogram the loss compares, per condition class,
the generator batch's distribution with the normalised noisy counts: for discrete
blocks the mean softmax probabilities, for continuous values a smoothed CDF at the
public bin edges (a differentiable Kolmogorov-Smirnov-like match). It reads only DP
outputs, so it costs no privacy.
"""

from __future__ import annotations

import numpy as np
import torch

from synthrelease.transforms.dp_marginals import MarginalMeasurements, bin_edges


class MarginalMatcher:
    """Precomputes the normalised DP targets; ``loss(fake, cond)`` is differentiable in ``fake``."""

    def __init__(self, measurements: MarginalMeasurements, *, smoothing: float = 0.02) -> None:
        self.m = measurements
        self.edges = bin_edges(measurements.n_bins)
        self.smoothing = smoothing
        self.targets: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        for t in measurements.targets:
            counts = np.clip(t.noisy_counts, 0.0, None) + 1e-3
            probs = counts / counts.sum(axis=1, keepdims=True)
            if t.kind == "continuous":
                probs = np.cumsum(probs, axis=1)[:, :-1]  # CDF at the interior edges
            self.targets.append(torch.as_tensor(probs, dtype=torch.float32))
            mass = np.clip(t.noisy_counts.sum(axis=1), 0.0, None)
            self.weights.append(torch.as_tensor(mass / max(mass.sum(), 1e-9), dtype=torch.float32))

    def loss(self, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Mean over measured parts of the class-weighted squared distribution error."""
        class_mass = cond.sum(dim=0)  # rows per class in the batch
        present = class_mass > 0
        total = fake.new_zeros(())
        for t, target, weight in zip(self.m.targets, self.targets, self.weights, strict=True):
            s = t.span
            if t.kind == "discrete":
                per_row = fake[:, s.start:s.stop]
                row_w = torch.ones(fake.shape[0], 1)
            else:
                v = fake[:, s.start:s.start + 1]
                per_row = torch.sigmoid((self.edges.unsqueeze(0) - v) / self.smoothing)
                row_w = (fake[:, t.mask_span.start + 1:t.mask_span.start + 2] if t.mask_span is not None
                         else torch.ones(fake.shape[0], 1))
            mass = cond.T @ row_w  # [classes, 1]
            dist = (cond.T @ (per_row * row_w)) / mass.clamp(min=1e-6)
            err = ((dist - target) ** 2).mean(dim=1)
            w = weight * present.float() * (mass.squeeze(1) > 1e-6).float()
            total = total + (err * w).sum() / w.sum().clamp(min=1e-9)
        return total / max(len(self.targets), 1)
