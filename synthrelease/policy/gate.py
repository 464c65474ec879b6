"""The release gate: every clause of the policy against the measured values.

The verdict is a function of private data (the audits read private rows). It is used
once per release attempt; it never feeds back into training or sampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from synthrelease.audits.base import AuditResult
from synthrelease.policy.schema import Policy

Comparator = Literal["<=", ">=", "<", "in"]


@dataclass(frozen=True)
class ClauseResult:
    """One clause: threshold, measured value, pass/fail and a one-line reason."""

    clause: str
    comparator: str
    threshold: float | str
    measured: float | str | None
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """Plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """The verdict: released only if every clause passed."""

    policy_name: str
    clauses: tuple[ClauseResult, ...]

    @property
    def passed(self) -> bool:
        """True when every clause passed (and there is at least one)."""
        return bool(self.clauses) and all(c.passed for c in self.clauses)

    @property
    def failed(self) -> tuple[ClauseResult, ...]:
        """The clauses that failed."""
        return tuple(c for c in self.clauses if not c.passed)


def _numeric(clause: str, comparator: Comparator, threshold: float, measured: float | None) -> ClauseResult:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return ClauseResult(clause, comparator, threshold, None, False, "not measured")
    ok = {"<=": measured <= threshold, ">=": measured >= threshold, "<": measured < threshold}[comparator]
    word = "meets" if ok else "violates"
    return ClauseResult(clause, comparator, threshold, measured, ok,
                        f"measured {measured:.4g} {word} {comparator} {threshold:g}")


def privacy_clauses(policy: Policy, *, epsilon: float, delta: float, accountant: str,
                    n_train_rows: int) -> list[ClauseResult]:
    """Clauses that can be checked before training (ε, δ, accountant, row count)."""
    pc = policy.privacy
    out = [
        _numeric("privacy.max_epsilon", "<=", pc.max_epsilon, epsilon),
        _numeric("privacy.max_delta", "<=", pc.max_delta, delta),
        _numeric("data.min_rows", ">=", float(policy.data.min_rows), float(n_train_rows)),
    ]
    if pc.require_delta_below_one_over_n:
        out.append(_numeric("privacy.require_delta_below_one_over_n", "<", 1.0 / max(n_train_rows, 1), delta))
    ok = accountant in pc.accountants
    out.append(ClauseResult("privacy.accountants", "in", ",".join(pc.accountants), accountant, ok,
                            f"accountant {accountant} {'is' if ok else 'is not'} accepted"))
    return out


def evaluate_gate(policy: Policy, *, epsilon: float, delta: float, accountant: str, n_train_rows: int,
                  audits: dict[str, AuditResult]) -> GateDecision:
    """Evaluate every clause. A clause whose metric was not measured fails."""

    def metric(audit: str, name: str) -> float | None:
        result = audits.get(audit)
        value = None if result is None else result.metrics.get(name)
        return None if value is None else float(value)

    clauses = privacy_clauses(policy, epsilon=epsilon, delta=delta, accountant=accountant,
                              n_train_rows=n_train_rows)
    if policy.fidelity is not None:
        clauses.append(_numeric("fidelity.min_quality_score", ">=", policy.fidelity.min_quality_score,
                                metric("fidelity", "quality_score")))
    if policy.utility is not None:
        clauses.append(_numeric("utility.min_tstr_trtr_ratio", ">=", policy.utility.min_tstr_trtr_ratio,
                                metric("utility", "tstr_trtr_ratio")))
    if policy.membership is not None:
        clauses.append(_numeric("membership.max_dcr_mia_auc", "<=", policy.membership.max_dcr_mia_auc,
                                metric("membership", "dcr_mia_auc")))
        clauses.append(_numeric("membership.max_exact_copy_share", "<=",
                                policy.membership.max_exact_copy_share,
                                metric("membership", "exact_copy_share")))
    return GateDecision(policy.name, tuple(clauses))
