"""The gate: every clause of a full (v3) policy can fail it, alone, with threshold and measured value.

Audit clauses read the DP gate's noisy figures, never exact audit metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthrelease.audits.base import AuditResult
from synthrelease.errors import PolicyError
from synthrelease.gate.verdict import EMPIRICAL_FAULT, check_signing_key, evaluate_gate
from synthrelease.policy.schema import Policy, load_policy

REPO = Path(__file__).resolve().parents[2]
RULE_IDS = ("radius_physiological", "diagnosis_codes", "mean_radius_below_worst", "mean_area_below_worst",
            "measurements_non_negative", "malignant_radius")


def good_audits() -> dict[str, AuditResult]:
    """Synthetic-only audits (plausibility) and the empirical audit that pass consortium-strict.yaml."""
    return {
        "empirical_privacy": AuditResult("empirical_privacy", {"epsilon_lower_bound": 0.2, "epsilon_claimed": 0.9}),
        "plausibility": AuditResult("plausibility", {f"violation_share:{r}": 0.0 for r in RULE_IDS}),
    }


def good_figures() -> dict[str, float | None]:
    """Noisy DP figures that pass every clause of consortium-strict.yaml."""
    return {"quality_score": 0.9, "coverage": 0.8, "missing_category_share": 0.0, "tstr_accuracy": 0.9,
            "tstr_auc": 0.9, "dcr_mia_auc": 0.5, "exact_copy_share": 0.0, "mia_auc_max": 0.52,
            "tpr_at_fpr_0.01_max": 0.006}


PRIV = dict(epsilon=0.9, delta=1e-7, accountant="prv", n_train_rows=5000, epsilon_spent_before=1.0)


@pytest.fixture(scope="module")
def strict() -> Policy:
    return load_policy(REPO / "policies" / "consortium-strict.yaml")[0]


def _patch(audit: str, **metrics: float | None) -> dict[str, AuditResult]:
    base = good_audits()[audit]
    return {audit: AuditResult(audit, {**base.metrics, **metrics})}


def _fig(**values: float | None) -> dict[str, float | None]:
    return {k.replace("_0_01_", "_0.01_"): v for k, v in values.items()}


# (override of the privacy figures, DP figure patch, audit patch, the one clause that must fail)
CASES = [
    ({"epsilon": 1.5}, {}, {}, "privacy.max_epsilon"),
    ({"delta": 1e-5}, {}, {}, "privacy.max_delta"),
    ({"accountant": "rdp-typo"}, {}, {}, "privacy.accountants"),
    ({"epsilon_spent_before": 2.5}, {}, {}, "privacy.lifetime_epsilon_cap"),
    ({"epsilon_spent_before": None}, {}, {}, "privacy.lifetime_epsilon_cap"),
    ({}, {}, _patch("empirical_privacy", epsilon_lower_bound=1.3), "privacy.empirical_audit"),
    ({}, {}, _patch("empirical_privacy", epsilon_lower_bound=None), "privacy.empirical_audit"),
    ({"n_train_rows": 400}, {}, {}, "data.min_rows"),
    ({}, _fig(quality_score=0.5), {}, "fidelity.min_quality_score"),
    ({}, _fig(coverage=0.1), {}, "fidelity.min_prdc_coverage"),
    ({}, _fig(coverage=None), {}, "fidelity.min_prdc_coverage"),
    ({}, _fig(missing_category_share=0.2), {}, "fidelity.max_missing_category_share"),
    ({}, _fig(tstr_accuracy=0.5), {}, "utility.min_tstr_accuracy"),
    ({}, _fig(tstr_auc=0.6), {}, "utility.min_tstr_auc"),
    ({}, _fig(dcr_mia_auc=0.7), {}, "membership.max_dcr_mia_auc"),
    ({}, _fig(exact_copy_share=0.02), {}, "membership.max_exact_copy_share"),
    ({}, _fig(mia_auc_max=0.6), {}, "membership.max_mia_auc"),
    ({}, _fig(tpr_at_fpr_0_01_max=0.05), {}, "membership.max_tpr_at_fpr_1pct"),
    ({}, _fig(tpr_at_fpr_0_01_max=None), {}, "membership.max_tpr_at_fpr_1pct"),
    *[({}, {}, _patch("plausibility", **{f"violation_share:{r}": 0.5}), f"plausibility.{r}") for r in RULE_IDS],
    ({}, {}, _patch("plausibility", **{"violation_share:diagnosis_codes": None}), "plausibility.diagnosis_codes"),
]


def _gate(policy: Policy, figures: dict | None = None, audits: dict | None = None, **priv):
    return evaluate_gate(policy, dp_figures={**good_figures(), **(figures or {})},
                         audits={**good_audits(), **(audits or {})}, **{**PRIV, **priv})


def test_all_good_passes_every_clause(strict):
    decision = _gate(strict)
    assert decision.passed, [c.reason for c in decision.failed]
    names = {c.clause for c in decision.clauses}
    assert {clause for *_, clause in CASES} <= names
    assert "privacy.require_delta_below_one_over_n" in names
    assert not any("shadow" in n for n in names)  # the shadow attack never gates (not DP)


@pytest.mark.parametrize(("override", "figure_patch", "audit_patch", "clause"), CASES,
                         ids=[f"{c}-{i}" for i, (*_, c) in enumerate(CASES)])
def test_every_clause_can_fail_the_gate(strict, override, figure_patch, audit_patch, clause):
    decision = _gate(strict, figure_patch, audit_patch, **override)
    assert not decision.passed
    assert [c.clause for c in decision.failed] == [clause]
    failed = decision.failed[0]
    assert failed.threshold is not None and failed.reason
    if failed.measured is None:
        assert failed.reason.startswith("not measured")


def test_exact_audit_metrics_never_reach_the_gate(strict):
    """An exact audit figure that would fail a clause changes nothing: only DP figures count."""
    exact = {"membership": AuditResult("membership", {"dcr_mia_auc": 0.99, "exact_copy_share": 1.0}),
             "fidelity": AuditResult("fidelity", {"quality_score": 0.0})}
    assert _gate(strict, audits=exact).passed


def test_delta_above_one_over_n_fails(strict):
    decision = _gate(strict, delta=9e-7, n_train_rows=2_000_000)
    assert [c.clause for c in decision.failed] == ["privacy.require_delta_below_one_over_n"]


def test_missing_required_audit_fails_as_not_measured(strict):
    for audit, clause in [("empirical_privacy", "privacy.empirical_audit"), ("plausibility", None)]:
        audits = {k: v for k, v in good_audits().items() if k != audit}
        failed = evaluate_gate(strict, dp_figures=good_figures(), audits=audits, **PRIV).failed
        assert failed and all(c.reason.startswith("not measured") for c in failed)
        if clause is not None:
            assert [c.clause for c in failed] == [clause]
        else:
            assert {c.clause for c in failed} == {f"plausibility.{r}" for r in RULE_IDS}


def test_empirical_fault_reason_names_the_implementation_fault(strict):
    (failed,) = _gate(strict, audits=_patch("empirical_privacy", epsilon_lower_bound=2.0)).failed
    assert failed.reason.startswith(EMPIRICAL_FAULT)
    assert failed.threshold == 0.9 and failed.measured == 2.0


def test_reason_shows_threshold_and_measured_value(strict):
    (failed,) = _gate(strict, {"mia_auc_max": 0.61}).failed
    assert failed.reason == "measured 0.61 violates <= 0.55"
    assert failed.to_dict()["threshold"] == 0.55 and failed.to_dict()["measured"] == 0.61



def test_signing_key_must_be_allowed(strict):
    allowed = "ab" * 32
    policy = strict.model_copy(update={"signing": strict.signing.model_copy(
        update={"allowed_key_fingerprints": [allowed]})})
    check_signing_key(policy, allowed.upper(), "k.pem")
    with pytest.raises(PolicyError, match=r"k\.pem: signing key .* is not among policy 'consortium-strict'") as err:
        check_signing_key(policy, "cd" * 32, "k.pem")
    assert err.value.exit_code == 2
    default = load_policy(REPO / "policies" / "default.yaml")[0]
    check_signing_key(default, "cd" * 32, "k.pem")  # no list: any key
