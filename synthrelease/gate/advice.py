"""What to change when a gate clause fails: one sentence per clause (public text)."""

from __future__ import annotations

ADVICE: dict[str, str] = {
    "privacy.max_epsilon": "ask for a smaller --epsilon, or use a policy that allows more",
    "privacy.max_delta": "pass a smaller --delta (or leave it out: the default is below 1/(10 n))",
    "privacy.require_delta_below_one_over_n": "pass a smaller --delta: it must be below 1/n of the training rows",
    "privacy.accountants": "pass --accountant with one the policy accepts",
    "privacy.lifetime_epsilon_cap": "this dataset's budget is used up: stop releasing it, or ask for less ε",
    "privacy.empirical_audit": "likely an implementation fault: do not release; report it with the internal report",
    "data.min_rows": "the table is too small for this policy: collect more rows or use a policy with a lower min_rows",
    "fidelity.min_quality_score": "more ε (the generator gets more signal), or a looser threshold; check the "
                                  "per-column scores in the internal report for columns whose bounds are far too wide",
    "fidelity.min_prdc_coverage": "more ε or tighter public bounds (values spread towards wide bounds miss the data)",
    "fidelity.max_missing_category_share": "more ε, or merge rare categories in the metadata",
    "utility.min_tstr_accuracy": "more ε; make sure the target is the policy's target column; a threshold above the "
                                 "most frequent class's share",
    "utility.min_tstr_auc": "more ε, a larger holdout, or gate on min_tstr_accuracy (its noise is smaller)",
    "membership.max_dcr_mia_auc": "on a small holdout this DP figure is noisy: raise privacy.audit_budget_share or "
                                  "the limit; if the exact value is high too, use a smaller ε",
    "membership.max_exact_copy_share": "a smaller ε, or declare identifier columns so they are not synthesised",
    "membership.max_mia_auc": "as max_dcr_mia_auc: a noisy figure on small tables; otherwise a smaller ε",
    "membership.max_tpr_at_fpr_1pct": "needs tens of thousands of holdout rows to be precise; loosen it on small "
                                      "tables",
    "membership.max_tpr_at_fpr_0_1pct": "needs hundreds of thousands of holdout rows; drop it on small tables",
}
"""What to change for each failed clause (shown with a rejection and in the internal report)."""


def advice_for(clause: str) -> str:
    """One sentence on what to change when ``clause`` fails."""
    if clause.startswith("plausibility."):
        return ("look at the rejected sample in the internal report folder; more ε, or DP pair marginals "
                "(TrainingConfig.pair_epsilon_share) for rules on two discrete columns, or a looser "
                "max_violation_share")
    return ADVICE.get(clause, "see the internal report")
