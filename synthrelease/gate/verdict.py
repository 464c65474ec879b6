"""The release gate: every clause of the policy against DIFFERENTIALLY PRIVATE figures.

The audit clauses compare noisy figures released by :mod:`synthrelease.gate.dp_gate`
(one accounted Gaussian mechanism); the plausibility clauses read the synthetic rows only
and the empirical privacy audit runs on the synthetic rows only (both post-processing of
the DP generator). The verdict is therefore post-processing of DP outputs: it is covered by
the release's (ε, δ). It is used once per release attempt and never feeds back into
training or sampling.

=========================================  ==========================================
clause                                     compared value
=========================================  ==========================================
privacy.max_epsilon / max_delta            ε and δ spent (accountant, gate included)
privacy.require_delta_below_one_over_n     δ < 1/n
privacy.accountants                        accountant used
privacy.lifetime_epsilon_cap               ε spent before on this dataset + this ε
privacy.empirical_audit                    ε lower bound (audit on synthetic rows) ≤ ε claimed
data.min_rows                              training rows
fidelity.min_quality_score                 DP figure quality_score
fidelity.min_prdc_coverage                 DP figure coverage
fidelity.max_missing_category_share        DP figure missing_category_share
utility.min_tstr_accuracy                  DP figure tstr_accuracy
utility.min_tstr_auc                       DP figure tstr_auc
membership.max_dcr_mia_auc                 DP figure dcr_mia_auc
membership.max_exact_copy_share            DP figure exact_copy_share
membership.max_mia_auc                     DP figure mia_auc_max
membership.max_tpr_at_fpr_1pct             DP figure tpr_at_fpr_0.01_max
membership.max_tpr_at_fpr_0_1pct           DP figure tpr_at_fpr_0.001_max
plausibility.<rule id>                     plausibility: violation_share:<rule id> (synthetic rows)
=========================================  ==========================================

A clause whose value was not measured fails with the reason "not measured". The
signing clause is not a gate clause: a key the policy does not allow is refused before
training (:func:`check_signing_key`, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from synthrelease.audits.base import AuditResult
from synthrelease.errors import PolicyError
from synthrelease.policy.schema import Policy

Comparator = Literal["<=", ">=", "<", "in"]

EMPIRICAL_FAULT = "empirical lower bound exceeds the claimed ε: likely an implementation fault"


@dataclass(frozen=True)
class ClauseResult:
    """One clause: threshold, measured value, pass/fail and a one-line reason."""

    clause: str
    comparator: str
    threshold: float | str
    measured: float | str | None
    passed: bool
    reason: str

    @property
    def name(self) -> str:
        """The clause's name, ``section.key`` (e.g. ``fidelity.min_quality_score``)."""
        return self.clause

    @property
    def hint(self) -> str:
        """One sentence on what to change when this clause fails (public text)."""
        from synthrelease.gate.advice import advice_for

        return advice_for(self.clause)

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


def _numeric(clause: str, comparator: Comparator, threshold: float, measured: float | None,
             *, absent: str = "not measured") -> ClauseResult:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return ClauseResult(clause, comparator, threshold, None, False, absent)
    ok = {"<=": measured <= threshold, ">=": measured >= threshold, "<": measured < threshold}[comparator]
    word = "meets" if ok else "violates"
    return ClauseResult(clause, comparator, threshold, measured, ok,
                        f"measured {measured:.4g} {word} {comparator} {threshold:g}")


def privacy_clauses(policy: Policy, *, epsilon: float, delta: float, accountant: str,
                    n_train_rows: float | None, epsilon_spent_before: float | None = None) -> list[ClauseResult]:
    """Clauses that can be checked before training (ε, δ, accountant, row count, lifetime cap).

    Args:
        n_train_rows: the DP (noisy) count of training units, never the exact count: the
            row-count clauses ``data.min_rows`` and ``privacy.require_delta_below_one_over_n``
            compare it (post-processing of the count release). None: those two clauses are
            left out (checked once the counts are released).
        epsilon_spent_before: ε already spent on this dataset, from the ledger. Only read
            when the policy sets ``lifetime_epsilon_cap``; then None fails "not measured".
    """
    pc = policy.privacy
    out = [
        _numeric("privacy.max_epsilon", "<=", pc.max_epsilon, epsilon),
        _numeric("privacy.max_delta", "<=", pc.max_delta, delta),
    ]
    if n_train_rows is not None:
        out.append(_numeric("data.min_rows", ">=", float(policy.data.min_rows), float(n_train_rows)))
    if n_train_rows is not None and pc.require_delta_below_one_over_n:
        out.append(_numeric("privacy.require_delta_below_one_over_n", "<", 1.0 / max(float(n_train_rows), 1.0),
                            delta))
    ok = accountant in pc.accountants
    out.append(ClauseResult("privacy.accountants", "in", ",".join(pc.accountants), accountant, ok,
                            f"accountant {accountant} {'is' if ok else 'is not'} accepted"))
    if pc.lifetime_epsilon_cap is not None:
        total = None if epsilon_spent_before is None else epsilon_spent_before + epsilon
        out.append(_numeric("privacy.lifetime_epsilon_cap", "<=", pc.lifetime_epsilon_cap, total,
                            absent="not measured: no ledger figure for the ε already spent on this dataset"))
    return out


def _empirical_clause(audits: Mapping[str, AuditResult]) -> ClauseResult:
    result = audits.get("empirical_privacy")
    lb = _value(result, "epsilon_lower_bound")
    claimed = _value(result, "epsilon_claimed")
    if lb is None or claimed is None:
        return ClauseResult("privacy.empirical_audit", "<=", "epsilon_claimed" if claimed is None else claimed,
                            lb, False, "not measured")
    ok = lb <= claimed
    reason = f"measured lower bound {lb:.4g} meets <= claimed ε {claimed:g}" if ok else \
        f"{EMPIRICAL_FAULT} (lower bound {lb:.4g} > claimed {claimed:g})"
    return ClauseResult("privacy.empirical_audit", "<=", claimed, lb, ok, reason)


def _value(result: AuditResult | None, name: str) -> float | None:
    value = None if result is None else result.metrics.get(name)
    return None if value is None else float(value)


def evaluate_gate(policy: Policy, *, epsilon: float, delta: float, accountant: str, n_train_rows: float | None,
                  dp_figures: Mapping[str, float | None], audits: Mapping[str, AuditResult],
                  epsilon_spent_before: float | None = None,
                  figure_stds: Mapping[str, float] | None = None) -> GateDecision:
    """Evaluate every clause of ``policy``. A clause whose value is missing fails "not measured".

    ``dp_figures``: the NOISY figures (:func:`synthrelease.gate.dp_gate.noisy_values`) —
    never exact audit metrics. ``figure_stds``: their public noise stds; a figure clause
    passes when the noisy value clears its limit by ``privacy.audit_clear_by_stds`` of them
    (0: the noisy value itself). ``audits``: read only for the plausibility rules (synthetic
    rows) and the empirical privacy audit (run on synthetic rows).
    """
    clauses = privacy_clauses(policy, epsilon=epsilon, delta=delta, accountant=accountant,
                              n_train_rows=n_train_rows, epsilon_spent_before=epsilon_spent_before)
    if policy.privacy.empirical_audit is not None and (policy.empirical_audit_required
                                                       or "empirical_privacy" in audits):
        clauses.append(_empirical_clause(audits))
    wanted = _figure_clauses(policy)
    k = policy.privacy.audit_clear_by_stds
    clauses.extend(_figure_clause(clause, comparator, limit, dp_figures, figure_stds or {}, k)
                   for clause, comparator, limit in wanted)
    for rule in policy.rules:
        clauses.append(_numeric(f"plausibility.{rule.id}", "<=", rule.max_violation_share,
                                _value(audits.get("plausibility"), f"violation_share:{rule.id}")))
    return GateDecision(policy.name, tuple(clauses))


def _figure_clauses(policy: Policy) -> list[tuple[str, Comparator, float]]:
    """(clause, comparator, limit) of every DP-figure clause the policy sets, in report order."""
    out: list[tuple[str, Comparator, float]] = []
    fc, uc, mc = policy.fidelity, policy.utility, policy.membership
    if fc is not None:
        out.append(("fidelity.min_quality_score", ">=", fc.min_quality_score))
        if fc.min_prdc_coverage is not None:
            out.append(("fidelity.min_prdc_coverage", ">=", fc.min_prdc_coverage))
        if fc.max_missing_category_share is not None:
            out.append(("fidelity.max_missing_category_share", "<=", fc.max_missing_category_share))
    if uc is not None:
        out.extend((f"utility.{key}", ">=", limit) for key, limit in
                   (("min_tstr_accuracy", uc.min_tstr_accuracy), ("min_tstr_auc", uc.min_tstr_auc))
                   if limit is not None)
    if mc is not None:
        out.append(("membership.max_dcr_mia_auc", "<=", mc.max_dcr_mia_auc))
        out.append(("membership.max_exact_copy_share", "<=", mc.max_exact_copy_share))
        out.extend((f"membership.{key}", "<=", limit) for key, limit in
                   (("max_mia_auc", mc.max_mia_auc), ("max_tpr_at_fpr_1pct", mc.max_tpr_at_fpr_1pct),
                    ("max_tpr_at_fpr_0_1pct", mc.max_tpr_at_fpr_0_1pct)) if limit is not None)
    return out


def _figure_clause(clause: str, comparator: Comparator, limit: float, noisy: Mapping[str, float | None],
                   stds: Mapping[str, float], clear_by_stds: float) -> ClauseResult:
    """One DP-figure clause: the noisy figure against its limit moved by ``clear_by_stds`` noise stds
    (towards the stricter side for k > 0); the reason names both when they differ."""
    from synthrelease.gate.dp_gate import CLAUSE_FIGURES

    name = CLAUSE_FIGURES[clause]
    value = noisy.get(name)
    std = float(stds.get(name, 0.0))
    shift = clear_by_stds * std * (1 if comparator == ">=" else -1)
    result = _numeric(clause, comparator, limit + shift, None if value is None else float(value))
    if shift == 0 or result.measured is None:
        return result
    return ClauseResult(clause, comparator, result.threshold, result.measured, result.passed,
                        f"{result.reason} (the limit {limit:g} moved by {clear_by_stds:g} noise std {std:.3g}, "
                        "privacy.audit_clear_by_stds)")


def check_signing_key(policy: Policy, fingerprint: str, key_path: str) -> None:
    """Refuse a signing key the policy does not allow (call before training).

    Raises:
        PolicyError: (exit 2) naming the key file, its fingerprint and the policy.
    """
    allowed = policy.signing.allowed_key_fingerprints if policy.signing is not None else None
    if allowed is None or fingerprint.lower() in allowed:
        return
    raise PolicyError(f"{key_path}: signing key (SHA-256 fingerprint {fingerprint}) is not among "
                      f"policy '{policy.name}' signing.allowed_key_fingerprints "
                      f"({len(allowed)} allowed); use an allowed key or change the policy")
