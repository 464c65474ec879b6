from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from synthrelease.audits.attack_metrics import attack_summary, bootstrap_aucs, clopper_pearson, tpr_at_fpr
from synthrelease.audits.membership import run_membership
from synthrelease.metadata.schema import Metadata
from tests.conftest import TINY_METADATA, make_tiny_table

META = Metadata.model_validate(TINY_METADATA)
ATTACKS = ("dcr", "nndr", "domias")


def _auc(result, attack):
    return result.metrics["dcr_mia_auc" if attack == "dcr" else f"{attack}_mia_auc"]


def test_attacks_find_a_synthesizer_that_copies_its_training_rows():
    train, holdout = make_tiny_table(600, seed=1), make_tiny_table(600, seed=2)
    result = run_membership(train, holdout, train.copy(), META, seed=0)
    for attack in ATTACKS:
        assert _auc(result, attack) >= 0.95, attack
    assert result.metrics["exact_copy_share"] == 1.0
    assert result.metrics["mia_auc_max"] >= 0.95 and result.metrics["tpr_at_fpr_1pct_max"] >= 0.5


def test_attacks_see_nothing_in_fresh_data_from_the_same_distribution():
    train, holdout, fresh = make_tiny_table(1000, seed=1), make_tiny_table(1000, seed=2), make_tiny_table(2000, 3)
    result = run_membership(train, holdout, fresh, META, seed=0)
    for attack in ATTACKS:
        assert abs(_auc(result, attack) - 0.5) <= 0.1, (attack, _auc(result, attack))
    assert result.metrics["exact_copy_share"] <= 0.01  # discrete columns: a few fresh rows coincide with real ones
    assert result.metrics["tpr_at_fpr_1pct_max"] <= 0.1


def test_tpr_at_fpr_on_hand_made_scores():
    nonmembers = np.arange(100, dtype=float)  # 0..99: at FPR 1 % one of them may sit above the threshold
    members = np.array([99.5, 98.5, 97.0, 50.0])
    tpr, hits, achieved = tpr_at_fpr(members, nonmembers, 0.01)
    assert (tpr, hits, achieved) == (0.5, 2, 0.01)  # threshold 98: 99.5, 98.5 and one non-member (99) above
    tpr, hits, achieved = tpr_at_fpr(members, nonmembers, 0.001)  # k = 0: threshold = max non-member
    assert (tpr, hits, achieved) == (0.25, 1, 0.0)


@pytest.mark.parametrize(("k", "n"), [(0, 50), (3, 50), (50, 50), (17, 1000)])
def test_clopper_pearson_equals_scipy_exact(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_summary_intervals_contain_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(0)
    m, nm = rng.normal(0.3, 1, 800), rng.normal(0, 1, 800)
    a, b = attack_summary(m, nm, seed=5), attack_summary(m, nm, seed=5)
    assert a == b
    assert a["auc_ci"][0] <= a["auc"] <= a["auc_ci"][1]
    for fpr in ("1pct", "0_1pct"):
        lo, hi = a[f"tpr_at_fpr_{fpr}_ci"]
        assert lo <= a[f"tpr_at_fpr_{fpr}"] <= hi


def test_bootstrap_aucs_equal_sklearn_on_the_same_resamples_ties_included():
    rng = np.random.default_rng(1)
    members, nonmembers = np.round(rng.normal(0.3, 1, 300), 1), np.round(rng.normal(0, 1, 400), 1)  # many ties
    labels = np.r_[np.ones(300), np.zeros(400)]
    draws = np.random.default_rng(7)
    want = [roc_auc_score(labels, np.r_[draws.choice(members, 300), draws.choice(nonmembers, 400)])
            for _ in range(30)]
    assert np.allclose(bootstrap_aucs(members, nonmembers, np.random.default_rng(7), 30), want, rtol=0, atol=1e-12)
