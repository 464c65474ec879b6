"""DP joint histograms of PUBLICLY chosen numerical column pairs (the metadata's ``related_columns``).

Per-column marginals cannot carry a correlation, and on a table of a few hundred rows the
DP discriminator learns little of it. When the steward declares, from domain knowledge,
groups of columns that move together, every pair within a group gets a coarse joint
histogram (``(2 + K)²`` cells: missing, zero, K equal-width bins of the public scale). One
row adds 1 to exactly one cell of each of the P histograms, so their concatenation has L2
sensitivity √P under add/remove one row: ONE Gaussian release with noise std σ·√P per
cell, accounted as ``(σ, q = 1, 1 step)``. Matching them is post-processing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.transforms.dp_marginals import NumericLayout, numeric_cell_probs
from synthrelease.transforms.marginal_loss import project_counts

PAIR_SMOOTHING = 0.02


@dataclass(frozen=True)
class NumericPairMeasurements:
    """The noisy joint histograms and their accountant entry.

    Attributes:
        pairs: (i, j) positions in ``layout.columns``.
        layout: the numerical columns involved.
        n_bins: K bins per value.
        counts: float64 [P, 2 + K, 2 + K] noisy counts (a DP release).
        entry: the accounted mechanism.
    """

    pairs: tuple[tuple[int, int], ...]
    layout: NumericLayout
    n_bins: int
    counts: np.ndarray
    entry: MechanismEntry


def pair_layout(layout: NumericLayout,
                pairs: list[tuple[str, str]]) -> tuple[NumericLayout, tuple[tuple[int, int], ...]]:
    """The sub-layout of the columns the pairs use, and the pairs as positions in it."""
    names = [c for c in layout.columns if any(c in p for p in pairs)]
    pos = [layout.columns.index(c) for c in names]
    sub = NumericLayout(tuple(names), layout.value_idx[pos], layout.present_idx[pos], layout.nonzero_idx[pos])
    return sub, tuple((names.index(a), names.index(b)) for a, b in pairs)


def measure_numeric_pairs(chunks: Callable[[], Iterator[torch.Tensor]], layout: NumericLayout,
                          pairs: tuple[tuple[int, int], ...], *, n_bins: int, noise_multiplier: float,
                          generator: torch.Generator) -> NumericPairMeasurements:
    """Release the P joint histograms of the encoded private rows with one Gaussian mechanism.

    Reads every private row. Guarantee: L2 sensitivity √P (one count per histogram per row),
    noise std ``noise_multiplier``·√P per cell: the Opacus entry ``(noise_multiplier, 1.0, 1)``.
    """
    cells = 2 + n_bins
    total = torch.zeros(len(pairs), cells, cells, dtype=torch.float64)
    a_idx = torch.tensor([a for a, _ in pairs], dtype=torch.long)
    b_idx = torch.tensor([b for _, b in pairs], dtype=torch.long)
    for block in chunks():
        one_hot = numeric_cell_probs(block.double(), layout, n_bins, smoothing=None)  # [n, C, cells]
        total += torch.einsum("npi,npj->pij", one_hot[:, a_idx], one_hot[:, b_idx])
    scale = noise_multiplier * len(pairs) ** 0.5
    noisy = noisy_sum(total, scale, generator).numpy()  # Σ over every rank's rows, noised once
    entry = MechanismEntry(f"numerical pair marginals ({len(pairs)} histograms, Gaussian, "
                           f"sensitivity sqrt({len(pairs)}))", float(noise_multiplier), 1.0, 1)
    return NumericPairMeasurements(pairs, layout, n_bins, noisy, entry)


class NumericPairMatcher:
    """``loss(fake)``: mean over pairs of the squared Hellinger distance between the batch's soft
    joint histogram and the noisy one projected onto the simplex of the row count."""

    def __init__(self, measured: NumericPairMeasurements, *, n_rows: int) -> None:
        """``n_rows``: the table's row count (public), the total every histogram sums to."""
        self.m = measured
        flat = measured.counts.reshape(len(measured.pairs), -1)
        target = project_counts(flat, np.full(len(flat), float(max(n_rows, 1)))) + 1e-3
        target = target / target.sum(axis=1, keepdims=True)
        self.target = torch.as_tensor(target.reshape(measured.counts.shape), dtype=torch.float32)
        self.a = torch.tensor([a for a, _ in measured.pairs], dtype=torch.long)
        self.b = torch.tensor([b for _, b in measured.pairs], dtype=torch.long)

    def loss(self, fake: torch.Tensor) -> torch.Tensor:
        cells = numeric_cell_probs(fake, self.m.layout, self.m.n_bins, smoothing=PAIR_SMOOTHING)
        joint = torch.einsum("npi,npj->pij", cells[:, self.a], cells[:, self.b]) / max(fake.shape[0], 1)
        return ((joint.clamp(min=0) + 1e-6).sqrt() - self.target.sqrt()).pow(2).sum(dim=(1, 2)).mean()
