"""The DP release gate: one accounted Gaussian release of the figures the policy needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from opacus.accountants.analysis import rdp as rdp_analysis

from synthrelease.audits import dp_figures
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.gate import dp_gate
from synthrelease.policy.schema import load_policy
from synthrelease.privacy.accounting import epsilon_for, histogram_noise_for
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.encoders import TableEncoder

REPO = Path(__file__).resolve().parents[2]
ORDERS = [1.5, 2.0, 4.0, 8.0, 32.0]


@pytest.fixture(scope="module")
def default_policy():
    return load_policy(REPO / "policies" / "default.yaml")[0]


def test_figures_needed_come_from_the_policy_alone(default_policy):
    assert dp_gate.figures_needed(default_policy) == ["quality_score", "tstr_accuracy", "dcr_mia_auc",
                                                      "exact_copy_share"]
    strict = load_policy(REPO / "policies" / "consortium-strict.yaml")[0]
    assert set(dp_gate.figures_needed(strict)) == {"quality_score", "coverage", "missing_category_share",
                                                   "tstr_accuracy", "tstr_auc", "dcr_mia_auc", "exact_copy_share",
                                                   "mia_auc_max", "tpr_at_fpr_0.01_max"}
    assert set(dp_gate.figures_needed(strict)) <= set(dp_gate.CLAUSE_FIGURES.values())


def test_gate_takes_its_share_of_the_renyi_curve(default_policy):
    """z = z₁/√s: the gate's RDP is s × that of one Gaussian release spending the whole ε."""
    entry = dp_gate.gate_entry(default_policy, epsilon=3.0, delta=1e-5, accountant="rdp")
    whole = histogram_noise_for(epsilon=3.0, delta=1e-5)
    share = default_policy.privacy.audit_budget_share
    gate_rdp = rdp_analysis.compute_rdp(q=1.0, noise_multiplier=entry.noise_multiplier, steps=1, orders=ORDERS)
    whole_rdp = rdp_analysis.compute_rdp(q=1.0, noise_multiplier=whole.noise_multiplier, steps=1, orders=ORDERS)
    np.testing.assert_allclose(gate_rdp, share * whole_rdp, rtol=1e-9)
    assert (entry.sample_rate, entry.steps) == (1.0, 1) and "DP release gate (4 figures" in entry.label


def test_training_makes_room_for_the_gate_in_one_accountant(default_policy, tiny_table, tiny_metadata):
    entry = dp_gate.gate_entry(default_policy, epsilon=2.0, delta=1e-4, accountant="rdp")
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=30)
    model = train_dp_gan(tiny_table, TableEncoder(tiny_metadata), cfg, condition_column="outcome",
                         reserved_entries=(entry,))
    assert entry in model.privacy.entries
    total = epsilon_for(model.privacy.entries, delta=1e-4)
    assert model.privacy.epsilon == pytest.approx(total) and 0.99 * 2.0 <= total <= 2.0
    without = epsilon_for([e for e in model.privacy.entries if e is not entry], delta=1e-4)
    assert without < 0.97 * total  # the gate's entry really costs budget


def test_released_figures_carry_calibrated_noise_and_hide_the_exact_value():
    fig = dp_figures.Figure("dcr_mia_auc", np.array([0.5]), 0.01, lambda v: float(np.clip(v[0], 0, 1)), "m", "d")
    entry = dp_gate.MechanismEntry("gate", 4.0, 1.0, 1)
    draws = [dp_gate.release_figures({"dcr_mia_auc": fig, "quality_score": None},
                                     ["dcr_mia_auc", "quality_score"], entry, PrivateRandomness())
             for _ in range(1500)]
    values = np.array([d["dcr_mia_auc"].value for d in draws])
    expected = 4.0 * np.sqrt(2) * 0.01  # z · √B · Δ
    assert draws[0]["dcr_mia_auc"].noise_std == pytest.approx(expected)
    assert values.std() == pytest.approx(expected, rel=0.08) and values.mean() == pytest.approx(0.5, abs=0.01)
    assert len(set(values.round(12))) == len(values)  # fresh noise every release
    public = draws[0]["dcr_mia_auc"].public()
    assert set(public) == {"value", "noise_std", "l2_sensitivity"}  # no exact value
    # a figure that cannot be computed releases its public worst value, which fails its clause
    missing = draws[0]["quality_score"]
    assert not missing.computable and missing.exact is None and missing.value == 0.0
