"""One plain sentence and a good direction for every clause, audit metric and DP gate figure.

The sentences are fixed text (no data): they may appear in the internal report and, for
the DP figures, on the public release card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower", "half", "info", "limit"]

DIRECTION_TEXT: dict[str, str] = {
    "higher": "↑ higher is better",
    "lower": "↓ lower is better",
    "half": "≈ 0.5 is best",
    "info": "for information",
    "limit": "must stay within the limit",
}


@dataclass(frozen=True)
class Explanation:
    """What a number means (one sentence) and which way is good."""

    sentence: str
    direction: Direction

    @property
    def direction_text(self) -> str:
        """The direction in words, e.g. ``↑ higher is better``."""
        return DIRECTION_TEXT[self.direction]


def _e(sentence: str, direction: Direction) -> Explanation:
    return Explanation(sentence, direction)


FIGURES: dict[str, Explanation] = {
    "quality_score": _e("How closely the synthetic columns and column pairs follow the real training rows' "
                        "distributions (1 = identical).", "higher"),
    "coverage": _e("Share of real training rows that have synthetic rows nearby: low values mean whole regions "
                   "of the data are missing.", "higher"),
    "missing_category_share": _e("Share of training rows whose category the synthetic rows never take "
                                 "(a sign of mode collapse).", "lower"),
    "tstr_accuracy": _e("Accuracy on real holdout rows of a model trained only on synthetic rows: how well the "
                        "synthetic data teaches the task.", "higher"),
    "tstr_auc": _e("ROC AUC on real holdout rows of a model trained only on synthetic rows (0.5 = guessing).",
                   "higher"),
    "dcr_mia_auc": _e("How well closeness to a synthetic row tells training rows from holdout rows "
                      "(0.5 = not at all, 1 = always).", "lower"),
    "exact_copy_share": _e("Share of training rows that appear verbatim among the synthetic rows.", "lower"),
    "mia_auc_max": _e("The strongest of three membership attacks, as ROC AUC (0.5 = no signal).", "lower"),
    "tpr_at_fpr_0.01_max": _e("Share of training rows the strongest attack finds while wrongly accusing at most "
                              "1 % of outsiders (about 0.005 = no signal).", "lower"),
    "tpr_at_fpr_0.001_max": _e("Share of training rows the strongest attack finds while wrongly accusing at most "
                               "0.1 % of outsiders (about 0.0005 = no signal).", "lower"),
}
"""The DP gate's figures (see :data:`synthrelease.gate.dp_gate.CLAUSE_FIGURES`)."""

CLAUSES: dict[str, Explanation] = {
    "privacy.max_epsilon": _e("The total privacy loss ε of the release (training and gate) stays under the "
                              "policy's cap.", "lower"),
    "privacy.max_delta": _e("δ, the small probability that the ε bound fails, stays under the policy's cap.",
                            "lower"),
    "privacy.require_delta_below_one_over_n": _e("δ is below 1/n, so no single row could be published in the "
                                                 "clear.", "lower"),
    "privacy.accountants": _e("The privacy accountant that computed ε is one the policy trusts.", "limit"),
    "privacy.lifetime_epsilon_cap": _e("All releases of this dataset together, this one included, stay under the "
                                       "dataset's lifetime ε cap.", "lower"),
    "privacy.empirical_audit": _e("A canary experiment did not find more privacy loss than claimed (a higher "
                                  "lower bound would mean an implementation fault).", "lower"),
    "data.min_rows": _e("There are enough training rows for DP noise not to drown the signal.", "higher"),
    "fidelity.min_quality_score": FIGURES["quality_score"],
    "fidelity.min_prdc_coverage": FIGURES["coverage"],
    "fidelity.max_missing_category_share": FIGURES["missing_category_share"],
    "utility.min_tstr_accuracy": FIGURES["tstr_accuracy"],
    "utility.min_tstr_auc": FIGURES["tstr_auc"],
    "membership.max_dcr_mia_auc": FIGURES["dcr_mia_auc"],
    "membership.max_exact_copy_share": FIGURES["exact_copy_share"],
    "membership.max_mia_auc": FIGURES["mia_auc_max"],
    "membership.max_tpr_at_fpr_1pct": FIGURES["tpr_at_fpr_0.01_max"],
    "membership.max_tpr_at_fpr_0_1pct": FIGURES["tpr_at_fpr_0.001_max"],
}

METRICS: dict[str, dict[str, Explanation]] = {
    "fidelity": {
        "quality_score": _e("sdmetrics' overall quality: mean of column shapes and column pair trends "
                            "(1 = identical).", "higher"),
        "column_shapes": _e("How well each column's distribution matches (KS or total-variation complement, "
                            "averaged).", "higher"),
        "column_pair_trends": _e("How well correlations between strongly related columns are kept.", "higher"),
        "prdc_precision": _e("Share of synthetic rows that look like some real row (realism).", "higher"),
        "prdc_recall": _e("Share of real rows that some synthetic row resembles (diversity).", "higher"),
        "prdc_density": _e("How densely synthetic rows crowd around real rows (about 1 is typical).", "higher"),
        "prdc_coverage": _e("Share of real rows with a synthetic row in their neighbourhood.", "higher"),
        "missing_category_share": FIGURES["missing_category_share"],
    },
    "utility": {
        "tstr_auc": _e("ROC AUC on the real holdout of a model trained on synthetic rows.", "higher"),
        "trtr_auc": _e("The same model trained on the real training rows: the reference to reach.", "info"),
        "tstr_trtr_ratio": _e("TSTR as a share of TRTR (1 = synthetic data teaches as well as real data).",
                              "higher"),
        "tstr_accuracy": FIGURES["tstr_accuracy"],
        "trtr_accuracy": _e("Accuracy of the same model trained on real rows: the reference.", "info"),
        "tstr_auc_linear": _e("TSTR ROC AUC of a simpler, linear model.", "higher"),
        "trtr_auc_linear": _e("TRTR ROC AUC of the linear model: its reference.", "info"),
        "importance_rank_agreement": _e("Whether models trained on synthetic and on real rows rely on the same "
                                        "features (rank correlation, 1 = same order).", "higher"),
        "tstr_r2": _e("R² on the real holdout of a regressor trained on synthetic rows.", "higher"),
        "trtr_r2": _e("R² of the same regressor trained on real rows: the reference.", "info"),
        "tstr_mae": _e("Mean absolute error of the synthetic-trained regressor, in the target's units.", "lower"),
        "trtr_mae": _e("Mean absolute error of the real-trained regressor: the reference.", "info"),
        "tstr_r2_linear": _e("TSTR R² of a ridge regression.", "higher"),
        "trtr_r2_linear": _e("TRTR R² of the ridge regression: its reference.", "info"),
    },
    "membership": {
        "dcr_mia_auc": FIGURES["dcr_mia_auc"],
        "exact_copy_share": _e("Share of synthetic rows identical to a training row.", "lower"),
        "median_dcr_train": _e("Typical distance from a training row to its closest synthetic row; compare "
                               "with the holdout's.", "info"),
        "median_dcr_holdout": _e("Typical distance from a holdout row to its closest synthetic row.", "info"),
        "dcr_share": _e("Share of synthetic rows closer to training rows than to holdout rows.", "half"),
        "mia_auc_max": FIGURES["mia_auc_max"],
    },
    "plausibility": {
        "max_violation_share": _e("The worst rule's share of synthetic rows breaking it.", "lower"),
    },
    "empirical_privacy": {
        "epsilon_lower_bound": _e("ε that a canary experiment proves at 95 % confidence; above the claim means "
                                  "an implementation fault.", "lower"),
        "epsilon_claimed": _e("The ε the accountant claims for the audited training run.", "info"),
        "audit_correct_guesses": _e("Canary memberships guessed right by the audit.", "info"),
        "audit_guesses": _e("Canary memberships guessed.", "info"),
        "audit_runs": _e("Training runs of the many-run audit.", "info"),
    },
    "shadow": {
        "shadow_mia_auc": _e("Best AUC of shadow-model attacks on the most isolated rows (0.5 = no signal).",
                             "lower"),
        "shadow_mia_auc_mean": _e("Mean AUC of the shadow-model attacks over the targets.", "lower"),
        "shadow_released_mean_p_member": _e("Mean probability the shadow attack gives that a target is in the "
                                            "released data.", "half"),
    },
}

_ATTACKS = {"dcr": "distance to the closest synthetic row", "nndr": "nearest-neighbour distance ratio",
            "domias": "density ratio (DOMIAS)"}
_FPRS = {"1pct": "1 %", "0_1pct": "0.1 %"}
_UNKNOWN = _e("See the audit's documentation.", "info")


def explain_figure(name: str, meaning: str | None = None) -> Explanation:
    """A DP gate figure; ``meaning`` (``GateFigure.meaning``) is preferred when given."""
    base = FIGURES.get(name, _UNKNOWN)
    return Explanation(meaning, base.direction) if meaning else base


def explain_clause(clause: str) -> Explanation:
    """A gate clause, e.g. ``fidelity.min_quality_score`` or ``plausibility.<rule id>``."""
    if clause.startswith("plausibility."):
        return _e(f"Share of synthetic rows breaking the public rule '{clause.split('.', 1)[1]}' stays under its "
                  "limit.", "lower")
    return CLAUSES.get(clause, _UNKNOWN)


def explain_metric(audit: str, name: str) -> Explanation:
    """An audit metric (exact, INTERNAL: read from the internal report)."""
    known = METRICS.get(audit, {}).get(name)
    if known is not None:
        return known
    if name.startswith("violation_share:"):
        return _e(f"Share of synthetic rows breaking the rule '{name.split(':', 1)[1]}'.", "lower")
    m = re.fullmatch(r"(dcr|nndr|domias)_mia_auc", name)
    if m:
        return _e(f"ROC AUC of the {_ATTACKS[m[1]]} attack (0.5 = no signal).", "lower")
    m = re.fullmatch(r"(?:(dcr|nndr|domias)_)?tpr_at_fpr_(1pct|0_1pct)(_max)?", name)
    if m:
        who = "the strongest attack" if m[3] else f"the {_ATTACKS.get(m[1] or '', 'attack')} attack"
        return _e(f"Share of training rows {who} finds at a {_FPRS[m[2]]} false-positive rate.", "lower")
    return _UNKNOWN


def explained_metrics(audit: str, metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows for a metrics table: name, value, sentence and direction."""
    rows = []
    for name, value in metrics.items():
        ex = explain_metric(audit, name)
        rows.append({"name": name, "value": value, "sentence": ex.sentence, "direction": ex.direction_text})
    return rows
