"""The DP gate's noise allocation and decision rule under noise (issue 30): every allocation is
the same Gaussian mechanism, the default refuses good releases least, the dry run's refusal
probability is what releases show, and a policy can ask the noisy figure to clear its limit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthrelease.audits import dp_figures
from synthrelease.errors import InternalError
from synthrelease.gate import dp_gate
from synthrelease.gate.verdict import evaluate_gate
from synthrelease.policy.schema import load_policy
from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.randomness import PrivateRandomness

REPO = Path(__file__).resolve().parents[2]
ENTRY = MechanismEntry("gate", 6.0, 1.0, 1)
# the default policy's figures at 800 training and 180 holdout slots
SENS = dp_gate.public_sensitivities(["quality_score", "tstr_accuracy", "dcr_mia_auc", "exact_copy_share"],
                                    n_train_slots=800, n_holdout_slots=180)


def _combined_refusal(stds: dict[str, float], margin: float = 0.05, k: float = 0.0) -> float:
    return 1 - float(np.prod([1 - p for p in dp_gate.refusal_probability(stds, margin, k).values()]))


@pytest.mark.parametrize("allocation", dp_gate.ALLOCATIONS)
def test_every_allocation_is_the_same_gaussian_mechanism(allocation):
    """Σ (Δ_i / s_i)² = 1/z²: the rescaled, stacked figures have L2 sensitivity 1/z, whatever the split."""
    stds = dp_gate.noise_stds(SENS, ENTRY, allocation)
    assert sum((SENS[n] / stds[n]) ** 2 for n in SENS) == pytest.approx(1 / ENTRY.noise_multiplier ** 2, rel=1e-6)


def test_least_refusal_refuses_good_releases_least_at_its_design_margin():
    refusal = {a: _combined_refusal(dp_gate.noise_stds(SENS, ENTRY, a)) for a in dp_gate.ALLOCATIONS}
    assert refusal["least_refusal"] <= min(refusal.values()) + 1e-9
    assert refusal["least_refusal"] < refusal["proportional"] - 0.02  # a real gain at this size
    policy = load_policy(REPO / "policies" / "default.yaml")[0]  # the default keeps the allocation it had
    assert policy.privacy.audit_noise_allocation == "proportional" and policy.privacy.audit_clear_by_stds == 0


def test_the_refusal_probability_is_what_released_figures_show():
    """Scalar figures 0.05 inside their limits, released 3,000 times through the gate's code."""
    figures = {"quality_score": dp_figures._scalar("quality_score", 0.65, SENS["quality_score"], "m", "d"),
               "dcr_mia_auc": dp_figures._scalar("dcr_mia_auc", 0.65, SENS["dcr_mia_auc"], "m", "d")}
    sens = {n: SENS[n] for n in figures}
    stds = dp_gate.noise_stds(sens, ENTRY, "least_refusal")
    predicted = dp_gate.refusal_probability(stds, 0.05)
    randomness = PrivateRandomness()
    draws = [dp_gate.release_figures(figures, list(figures), ENTRY, randomness, sensitivities=sens,
                                     allocation="least_refusal") for _ in range(3000)]
    quality = np.mean([d["quality_score"].value < 0.6 for d in draws])
    attack = np.mean([d["dcr_mia_auc"].value > 0.7 for d in draws])
    assert quality == pytest.approx(predicted["quality_score"], abs=0.03)
    assert attack == pytest.approx(predicted["dcr_mia_auc"], abs=0.03)
    assert draws[0]["dcr_mia_auc"].noise_std == pytest.approx(stds["dcr_mia_auc"])


def test_an_allocation_other_than_proportional_needs_the_public_sensitivities():
    fig = dp_figures._scalar("quality_score", 0.7, 0.01, "m", "d")
    with pytest.raises(InternalError, match="public sensitivities"):
        dp_gate.release_figures({"quality_score": fig}, ["quality_score"], ENTRY, PrivateRandomness(),
                                allocation="equalised")
    with pytest.raises(InternalError, match="above the public"):  # a figure may not claim more than was calibrated
        dp_gate.release_figures({"quality_score": fig}, ["quality_score"], ENTRY, PrivateRandomness(),
                                sensitivities={"quality_score": 0.001}, allocation="equalised")


def test_a_policy_can_ask_the_noisy_figure_to_clear_its_limit():
    policy = load_policy(REPO / "policies" / "default.yaml")[0]
    strict = policy.model_copy(update={"privacy": policy.privacy.model_copy(update={"audit_clear_by_stds": 2.0})})
    figures = {"quality_score": 0.63, "tstr_accuracy": 0.9, "dcr_mia_auc": 0.5, "exact_copy_share": 0.0}
    stds = {"quality_score": 0.02, "tstr_accuracy": 0.01, "dcr_mia_auc": 0.01, "exact_copy_share": 0.01}
    priv = dict(epsilon=1.0, delta=1e-6, accountant="rdp", n_train_rows=5000)
    point = evaluate_gate(policy, dp_figures=figures, audits={}, figure_stds=stds, **priv)
    assert point.passed  # 0.63 ≥ 0.6
    cleared = evaluate_gate(strict, dp_figures=figures, audits={}, figure_stds=stds, **priv)
    failed = [c for c in cleared.clauses if not c.passed]
    assert [c.clause for c in failed] == ["fidelity.min_quality_score"]  # 0.63 < 0.6 + 2 · 0.02
    assert math.isclose(failed[0].threshold, 0.64) and "audit_clear_by_stds" in failed[0].reason
    attack = next(c for c in cleared.clauses if c.clause == "membership.max_dcr_mia_auc")
    assert attack.passed and math.isclose(attack.threshold, 0.68)  # the max clause moves down


def test_refusal_probability_direction():
    stds = {"a": 0.05}
    assert dp_gate.refusal_probability(stds, 0.0)["a"] == pytest.approx(0.5)  # on the limit: a coin
    assert dp_gate.refusal_probability(stds, 0.05)["a"] == pytest.approx(0.1587, abs=1e-3)  # one std inside
    assert dp_gate.refusal_probability(stds, 0.05, 1.0)["a"] == pytest.approx(0.5)  # ... with k = 1
    assert dp_gate.refusal_probability(stds, -0.05)["a"] == pytest.approx(0.8413, abs=1e-3)  # a bad release
