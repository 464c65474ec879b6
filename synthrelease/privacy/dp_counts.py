"""DP part sizes: the one release of row (person) counts that everything size-dependent is derived from.

Under add/remove-one-person neighbours the exact sizes of a private table are private: an
output equal to n on one table and n − 1 on its neighbour has disjoint supports, so no
finite ε covers it. A release therefore never publishes an exact count, nor anything
computed from one (a batch size, a sample rate, a δ, a synthetic row count, a noise
scale, a threshold). It releases the part sizes once, here, and derives every such
quantity from these noisy counts or from public declarations.

The mechanism. The private units (rows, or persons with ``max_rows_per_person``) fall
into disjoint cells: training units, holdout units with a declared label, holdout units
without one (without a target, every holdout unit is in the last cell). One unit added
or removed changes exactly one cell by one, so the count vector has L2 sensitivity 1,
and it is released as ONE Gaussian mechanism, N(0, z²) per cell, z = z₁/√s, with z₁ the
noise multiplier of one Gaussian release spending the whole ε at δ and s the policy's
``privacy.count_budget_share``: the entry ``(z, q = 1, 1 step)`` takes the share s of the
release's Rényi-DP curve in the same accountant as training and the gate. The noise is
drawn from the release's secret randomness (fresh OS entropy).

What is derived (post-processing): the row count the training defaults see
(:attr:`NoisySizes.rows_for_defaults`), the default synthetic row count, the clauses
``data.min_rows`` and ``privacy.require_delta_below_one_over_n``, and the public slot
counts of the DP gate (:meth:`NoisySizes.gate_slots`): the gate computes each figure over
exactly k public slots, so its sensitivity is a function of k alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthrelease.privacy.accounting import MechanismEntry, histogram_noise_for
from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

COUNT_LABEL = "DP part sizes (Gaussian, sensitivity 1)"

TRAIN_COUNT_SHARE = 0.05
"""Share of the Rényi-DP curve for the row count of ``synthrelease train`` (no policy there):
its shareable model's batch size and sample rate come from that DP count."""
"""Accountant label of the count release."""

SLOT_MARGIN_STDS = 1.0
"""The gate's slot count of a part is its noisy size minus this many noise stds (rounded
down). The part then holds at least that many units with probability ≈ 0.84; otherwise the
missing slots are filled with public stand-in records (:func:`synthrelease.gate.dp_gate.slot_rows`),
on average 0.08 noise stds of them (E[(Z − 1)⁺] for a standard normal Z). A wider margin
makes stand-ins rarer but every figure noisier: on a 150-row table at ε = 3 (count noise
std 7.4) two stds leave about 9 of the 30 holdout rows as slots, one std about 19."""

MIN_SLOTS = 2
"""Fewest slots a gate part gets (a figure over fewer is not computable)."""


def count_entry(share: float, *, epsilon: float, delta: float, accountant: str) -> MechanismEntry:
    """The accountant entry of the count release: noise multiplier z₁/√``share``.

    z₁ is the σ of one sensitivity-1 Gaussian release that alone spends ``epsilon`` at
    ``delta``; the entry has exactly ``share`` times its Rényi-DP curve.
    """
    whole = histogram_noise_for(epsilon=epsilon, delta=delta, accountant=accountant).noise_multiplier
    return MechanismEntry(COUNT_LABEL, whole / math.sqrt(share), 1.0, 1)


@dataclass(frozen=True)
class NoisySizes:
    """The released part sizes (DP: public once released) and what is derived from them.

    Attributes:
        train: noisy number of training units (rows, or persons).
        holdout_labelled: noisy number of holdout units with a declared label.
        holdout_unlabelled: noisy number of holdout units without one.
        noise_std: std of the Gaussian noise on each cell (units).
    """

    train: float
    holdout_labelled: float
    holdout_unlabelled: float
    noise_std: float

    @property
    def holdout(self) -> float:
        """Noisy number of holdout units (sum of its two cells; noise std √2 × ``noise_std``)."""
        return self.holdout_labelled + self.holdout_unlabelled

    @property
    def total(self) -> float:
        """Noisy number of units in the table."""
        return self.train + self.holdout

    @property
    def rows_for_defaults(self) -> int:
        """The training-size the default settings are scaled to (batch size, sample rate, bins):
        the noisy training count rounded, at least 2."""
        return max(2, round(self.train))

    def synthetic_rows(self, holdout_fraction: float) -> int:
        """Default synthetic row count: ⌈noisy table size × (1 − holdout fraction)⌉, at least 1."""
        return max(1, math.ceil(self.total * (1.0 - holdout_fraction)))

    def gate_slots(self) -> tuple[int, int]:
        """(training slots, holdout slots) of the DP gate: each noisy size minus
        :data:`SLOT_MARGIN_STDS` noise stds, rounded down, at least :data:`MIN_SLOTS`."""
        k1 = math.floor(self.train - SLOT_MARGIN_STDS * self.noise_std)
        k0 = math.floor(self.holdout - SLOT_MARGIN_STDS * math.sqrt(2.0) * self.noise_std)
        return max(MIN_SLOTS, k1), max(MIN_SLOTS, k0)

    def public(self) -> dict[str, Any]:
        """What the manifest may carry: the noisy sizes (rounded to one decimal) and the noise std."""
        return {"train": round(self.train, 1), "holdout": round(self.holdout, 1),
                "noise_std_per_cell": float(f"{self.noise_std:.4g}"),
                "gate_slots": dict(zip(("train", "holdout"), self.gate_slots(), strict=True))}


def release_sizes(n_train: int, n_holdout_labelled: int, n_holdout_unlabelled: int, entry: MechanismEntry,
                  randomness: PrivateRandomness) -> NoisySizes:
    """Release the three cell counts with one Gaussian mechanism (``entry``, already in the accountant).

    Reads private counts: the counts must be of units (persons when the metadata caps rows
    per person), so that one neighbour changes one cell by one. Guarantee: the returned
    sizes are the output of the Gaussian mechanism of ``entry``; everything computed from
    them alone is post-processing.
    """
    std = float(entry.noise_multiplier)
    exact = np.array([n_train, n_holdout_labelled, n_holdout_unlabelled], dtype=np.float64)
    noisy = exact + gaussian_noise((3,), std, randomness.torch("count-noise")).numpy()
    return NoisySizes(float(noisy[0]), float(noisy[1]), float(noisy[2]), std)


def slot_order(n_units: int, randomness: PrivateRandomness, stream: str) -> np.ndarray:
    """A uniformly random order of ``n_units`` units from a SECRET stream (never stored)."""
    return randomness.numpy(stream).permutation(n_units)
