from __future__ import annotations

import warnings

import numpy as np
import pytest

from synthrelease.audits.fidelity import _prepare, run_fidelity
from synthrelease.audits.membership import run_membership
from synthrelease.audits.utility import run_utility
from tests.conftest import make_tiny_table


@pytest.fixture
def split():
    return make_tiny_table(600, seed=11), make_tiny_table(600, seed=12), make_tiny_table(600, seed=13)


def test_quality_equals_sdmetrics_own_score(tiny_metadata, split):
    train, _, fresh = split
    ours = run_fidelity(train, fresh, tiny_metadata).metrics["quality_score"]
    cols = tiny_metadata.model_columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import QualityReport

        rep = QualityReport()
        rep.generate(_prepare(train, tiny_metadata, cols), _prepare(fresh, tiny_metadata, cols),
                     tiny_metadata.to_sdmetrics(), verbose=False)
    assert round(ours, 3) == round(rep.get_score(), 3)


def test_fidelity_orders_identical_above_noise(tiny_metadata, split):
    train, _, fresh = split
    noise = fresh.copy()
    rng = np.random.default_rng(0)
    noise["age"] = rng.integers(18, 91, len(noise))
    noise["outcome"] = "sick"
    noise["sex"] = "F"
    same = run_fidelity(train, train, tiny_metadata).metrics["quality_score"]
    good = run_fidelity(train, fresh, tiny_metadata).metrics["quality_score"]
    bad = run_fidelity(train, noise, tiny_metadata).metrics["quality_score"]
    assert bad < good <= same <= 1.0


def test_utility_copy_vs_random_labels(tiny_metadata, split):
    train, hold, _ = split
    copy = run_utility(train, hold, train, tiny_metadata, target="outcome", seed=0).metrics
    assert copy["tstr_trtr_ratio"] > 0.95
    shuffled = train.copy()
    shuffled["outcome"] = np.random.default_rng(1).permutation(shuffled["outcome"].to_numpy())
    rand = run_utility(train, hold, shuffled, tiny_metadata, target="outcome", seed=0).metrics
    assert rand["tstr_auc"] < 0.65


def test_membership_copy_is_caught_fresh_is_not(tiny_metadata, split):
    """Seed 0; 600 members vs 600 non-members."""
    train, hold, fresh = split
    copied = run_membership(train, hold, train, tiny_metadata, seed=0).metrics
    assert copied["dcr_mia_auc"] > 0.95 and copied["exact_copy_share"] == 1.0
    independent = run_membership(train, hold, fresh, tiny_metadata, seed=0).metrics
    assert abs(independent["dcr_mia_auc"] - 0.5) < 0.1
    assert independent["exact_copy_share"] < 0.05
