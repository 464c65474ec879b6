"""DP two-way marginals of discrete column pairs (one Gaussian release) and their generator loss.

The conditional marginals (:mod:`synthrelease.transforms.dp_marginals`) tie every column
to the condition only; a dependency between two other columns (relationship × sex in a
census table) is left to the DP discriminator, which at small ε does not learn it. This
module releases the joint histogram of every pair of discrete non-condition columns
whose joint table has at most ``max_cells`` cells — a choice made from the PUBLIC
metadata only (category counts), never from the rows.

Guarantee: each row adds 1 to one cell of each of the P pair histograms, so the
concatenated counts have L2 sensitivity √P under add/remove one row; Gaussian noise of
std σ·√P per cell is the Opacus entry ``(σ, 1.0, 1)``. The loss reads only the noisy
counts (post-processing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.transforms.encoders import Span, TableEncoder


def discrete_pairs(encoder: TableEncoder, condition_column: str | None, max_cells: int) -> list[tuple[Span, Span]]:
    """Pairs of category spans (condition excluded) whose joint table has ≤ ``max_cells`` cells."""
    spans = [s for s in encoder.spans if s.role == "category" and s.column != condition_column]
    return [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a.width * b.width <= max_cells]


@dataclass(frozen=True)
class PairMeasurements:
    """Noisy joint counts [width_a, width_b] per pair, and the accounted mechanism."""

    pairs: tuple[tuple[Span, Span], ...]
    counts: tuple[np.ndarray, ...]
    entry: MechanismEntry


def measure_pairs(chunks: Callable[[], Iterable[torch.Tensor]], pairs: list[tuple[Span, Span]], *,
                  noise_multiplier: float, generator: torch.Generator) -> PairMeasurements:
    """Release the noisy joint histograms of ``pairs`` over the encoded private rows.

    Reads every private row (``chunks()`` yields encoded blocks). Guarantee: see the module
    docstring — one Gaussian mechanism, entry ``(noise_multiplier, 1.0, 1)``.
    """
    if not pairs:
        raise ValueError("no column pairs to measure")
    exact = [torch.zeros(a.width, b.width, dtype=torch.float64) for a, b in pairs]
    for block in chunks():
        x = block.double()
        for total, (a, b) in zip(exact, pairs, strict=True):
            total += x[:, a.start:a.stop].T @ x[:, b.start:b.stop]
    scale = noise_multiplier * math.sqrt(len(pairs))
    noisy = tuple(noisy_sum(t, scale, generator).numpy() for t in exact)  # Σ over every rank, noised once
    entry = MechanismEntry(f"pair marginals ({len(pairs)} histograms, Gaussian, sensitivity sqrt({len(pairs)}))",
                           float(noise_multiplier), 1.0, 1)
    return PairMeasurements(tuple(pairs), noisy, entry)


class PairMatcher:
    """``loss(fake)``: mean over pairs of the squared Hellinger distance (×2) between the
    batch's joint distribution (products of the soft one-hots) and the normalised noisy
    counts; unlike a squared error on probabilities, a small cell that should be (near)
    empty still pulls."""

    def __init__(self, measured: PairMeasurements) -> None:
        self.pairs = measured.pairs
        targets = []
        for c in measured.counts:
            p = np.clip(c, 0.0, None) + 1e-3
            targets.append(torch.as_tensor(p / p.sum(), dtype=torch.float32))
        self.targets = targets

    def loss(self, fake: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros(())
        n = max(fake.shape[0], 1)
        for (a, b), target in zip(self.pairs, self.targets, strict=True):
            joint = fake[:, a.start:a.stop].T @ fake[:, b.start:b.stop] / n
            total = total + ((joint.clamp(min=0) + 1e-6).sqrt() - target.sqrt()).pow(2).sum()
        return total / len(self.pairs)
