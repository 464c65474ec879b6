"""Frozen value types for privacy parameters.

The privacy unit throughout synthrelease is *one row = one person* (or one person with
at most m rows, when the metadata caps rows per person), under the add/remove-one-person
neighbouring relation (the relation Opacus' accountants assume for Poisson-sampled
DP-SGD). Under that relation row counts are private: they leave a release only through
the DP count release (privacy/dp_counts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from synthrelease.errors import PrivacyParameterError

PRIVACY_UNIT = "one row = one person; neighbouring tables differ by adding or removing one row"


def privacy_unit_text(unit_column: str | None, rows_per_person: int) -> str:
    """The manifest's privacy unit: :data:`PRIVACY_UNIT`, or the person with their capped rows."""
    if unit_column is None or rows_per_person <= 1:
        return PRIVACY_UNIT
    return (f"one person (column {unit_column!r}) with at most {rows_per_person} rows, bounded together; "
            "neighbouring tables differ by adding or removing one person's rows")


@dataclass(frozen=True)
class PrivacyLoss:
    """An (ε, δ) pair. ε never travels without its δ.

    Raises:
        PrivacyParameterError: ε is not a positive finite number or δ is not in [0, 1).
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon)):
            raise PrivacyParameterError(f"epsilon must be a finite number, got {self.epsilon!r}")
        if self.epsilon <= 0:
            raise PrivacyParameterError(f"epsilon must be > 0, got {self.epsilon}")
        if not (isinstance(self.delta, (int, float)) and math.isfinite(self.delta)):
            raise PrivacyParameterError(f"delta must be a finite number, got {self.delta!r}")
        if not 0 <= self.delta < 1:
            raise PrivacyParameterError(f"delta must be in [0, 1), got {self.delta}")

    def check_delta_for_rows(self, n_rows: int) -> None:
        """Refuse δ ≥ 1/n: such a δ allows releasing one whole row in the clear.

        Raises:
            PrivacyParameterError: δ ≥ 1/n_rows.
        """
        if n_rows > 0 and self.delta >= 1.0 / n_rows:
            raise PrivacyParameterError(
                f"delta={self.delta:g} must be below 1/n = {1.0 / n_rows:.3g} "
                f"for the {n_rows} training rows (choose e.g. delta=1e-5 or smaller)"
            )


DEFAULT_DELTA = 1e-6
"""The δ of a release or training run that names none (capped by the policy's ``max_delta``).

Public and fixed: a δ derived from the table's row count would publish (a function of) a
private count, and δ calibrates the noise of every mechanism, so it must be chosen before
any private count is released. The row-count clause ``privacy.require_delta_below_one_over_n``
then checks δ < 1/n against the DP count; tables of a million rows or more need a smaller
``--delta``."""


def public_default_delta(max_delta: float | None = None) -> float:
    """:data:`DEFAULT_DELTA`, or the policy's ``max_delta`` when that is smaller (public inputs only)."""
    return DEFAULT_DELTA if max_delta is None else min(DEFAULT_DELTA, max_delta)


def default_delta(n_rows: int) -> float:
    """A conventional δ for n rows: the largest power of ten not above 1/(10·n).

    Only for a PUBLIC n (e.g. the empirical audit's canary run on synthetic rows); a release
    or a training run on private rows uses :func:`public_default_delta`."""
    if n_rows <= 0:
        return 1e-6
    return 10.0 ** math.floor(math.log10(1.0 / (10.0 * n_rows)))
