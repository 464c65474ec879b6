from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from synthrelease.errors import PrivacyParameterError
from synthrelease.privacy.accounting import (
    MechanismEntry,
    budget_share_noise,
    calibrate_noise_multiplier,
    epsilon_for,
    histogram_noise_for,
)


def test_epsilon_matches_opacus_prv_exactly():
    entry = MechanismEntry("sgd", 1.1, 0.01, 500)
    acc = PRVAccountant()
    acc.history = [entry.as_history()]
    assert epsilon_for([entry], delta=1e-5, accountant="prv") == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)


def test_epsilon_matches_opacus_rdp_and_is_never_looser():
    entry = MechanismEntry("sgd", 1.1, 0.01, 500)
    acc = RDPAccountant()
    acc.history = [entry.as_history()]
    ours, theirs = epsilon_for([entry], delta=1e-5, accountant="rdp"), acc.get_epsilon(1e-5)
    assert ours <= theirs + 1e-12  # more RDP orders can only tighten the bound
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_known_answer_abadi_mnist_setting():
    # Abadi et al. 2016 / Opacus tutorials: sigma=1.1, q=256/60000, 60 epochs, delta=1e-5 → ε ≈ 2.9 (RDP)
    q = 256 / 60000
    steps = int(60 / q)
    eps = epsilon_for([MechanismEntry("sgd", 1.1, q, steps)], delta=1e-5, accountant="rdp")
    assert 2.5 < eps < 3.3


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize(("target", "q", "steps"), [(1.0, 0.02, 1000), (3.0, 0.2, 300), (10.0, 0.05, 200)])
def test_calibration_hits_target_within_one_percent(accountant, target, q, steps):
    e = calibrate_noise_multiplier(target_epsilon=target, target_delta=1e-5, sample_rate=q, steps=steps,
                                   accountant=accountant)
    spent = epsilon_for([e], delta=1e-5, accountant=accountant)
    assert spent <= target
    assert spent >= 0.99 * target


def test_calibration_agrees_with_opacus_get_noise_multiplier():
    ours = calibrate_noise_multiplier(target_epsilon=2.0, target_delta=1e-5, sample_rate=0.02, steps=800,
                                      accountant="prv").noise_multiplier
    with warnings.catch_warnings():
        # Opacus' own search warns about its RDP orders; that is its business, not ours.
        warnings.simplefilter("ignore", UserWarning)
        theirs = get_noise_multiplier(target_epsilon=2.0, target_delta=1e-5, sample_rate=0.02, steps=800,
                                      accountant="prv")
    assert ours == pytest.approx(theirs, rel=0.03)


@settings(max_examples=8, deadline=None)
@given(target=st.floats(0.3, 20), q=st.floats(0.005, 0.5), steps=st.integers(10, 2000))
def test_calibrated_sigma_never_overshoots(target, q, steps):
    prior = [MechanismEntry("hist", 50.0, 1.0, 1)]
    try:
        e = calibrate_noise_multiplier(target_epsilon=target, target_delta=1e-6, sample_rate=q, steps=steps,
                                       prior=prior)
    except PrivacyParameterError:
        return  # the prior alone spends the budget: refused, never overspent
    assert epsilon_for([*prior, e], delta=1e-6) <= target


def test_composition_costs_more_than_each_part():
    h = histogram_noise_for(epsilon=0.2, delta=1e-5)
    s = MechanismEntry("sgd", 1.0, 0.02, 300)
    both = epsilon_for([h, s], delta=1e-5)
    assert both > epsilon_for([h], delta=1e-5) and both > epsilon_for([s], delta=1e-5)


def test_prior_spending_whole_budget_is_refused():
    h = histogram_noise_for(epsilon=1.0, delta=1e-5)
    with pytest.raises(PrivacyParameterError, match="already spend"):
        calibrate_noise_multiplier(target_epsilon=0.5, target_delta=1e-5, sample_rate=0.1, steps=10, prior=[h])


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_budget_shares_summing_to_one_spend_the_whole_budget_and_no_more(accountant):
    """Full-data Gaussian releases at budget shares spend together what one release at their sum would."""
    whole = [budget_share_noise(1.0, epsilon=3.0, delta=1e-5, accountant=accountant)]
    parts = [budget_share_noise(w, epsilon=3.0, delta=1e-5, accountant=accountant) for w in (0.2, 0.175, 0.525, 0.1)]
    spent = epsilon_for(parts, delta=1e-5, accountant=accountant)
    assert spent <= 3.0 and spent == pytest.approx(epsilon_for(whole, delta=1e-5, accountant=accountant), rel=0.01)
    assert epsilon_for(parts[:3], delta=1e-5, accountant=accountant) < spent  # a share left for DP-SGD
    with pytest.raises(PrivacyParameterError, match="budget share"):
        budget_share_noise(0.0, epsilon=3.0, delta=1e-5)
