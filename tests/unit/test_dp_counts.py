"""The DP part sizes (privacy/dp_counts.py) and the gate's public slots (gate/dp_gate.py).

Row counts are private under add/remove-one-person neighbours: these tests check that the
count release is a Gaussian mechanism with the stated share of the budget, that a clause on
it behaves as DP (by repetition, for neighbouring tables straddling the limit), and that a
gate figure computed over public slots moves by at most its stated sensitivity when one
slot's record changes (the slot multisets of neighbouring inputs differ in one record).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from synthrelease.audits import dp_figures
from synthrelease.gate.dp_gate import slot_rows
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import epsilon_for, histogram_noise_for
from synthrelease.privacy.dp_counts import NoisySizes, count_entry, release_sizes
from synthrelease.privacy.randomness import PrivateRandomness


def test_count_entry_takes_its_share_of_the_renyi_curve() -> None:
    whole = histogram_noise_for(epsilon=3.0, delta=1e-6).noise_multiplier
    entry = count_entry(0.05, epsilon=3.0, delta=1e-6, accountant="rdp")
    assert entry.noise_multiplier == pytest.approx(whole / math.sqrt(0.05))
    assert (entry.sample_rate, entry.steps) == (1.0, 1)
    # its ε alone is far below the whole ε (a 5 % share of the RDP curve)
    assert epsilon_for([entry], delta=1e-6) < 0.35 * 3.0


def test_the_released_sizes_carry_the_stated_noise() -> None:
    entry = count_entry(0.05, epsilon=1.0, delta=1e-6, accountant="rdp")
    draws = np.array([[s.train, s.holdout_labelled, s.holdout_unlabelled] for s in
                      (release_sizes(400, 90, 10, entry, PrivateRandomness()) for _ in range(3000))])
    assert np.allclose(draws.mean(axis=0), [400, 90, 10], atol=4 * entry.noise_multiplier / math.sqrt(3000) + 0.1)
    assert np.allclose(draws.std(axis=0), entry.noise_multiplier, rtol=0.06)
    assert not np.any(draws == np.round(draws))  # continuous: never an exact integer count


def test_a_min_rows_verdict_on_neighbours_is_within_e_to_the_epsilon() -> None:
    """Neighbouring tables straddling data.min_rows = 100 (100 and 99 training rows): the clause
    passes with probabilities whose ratio is bounded by the count release's (ε, δ). On exact
    counts it would pass always on one and never on the other."""
    delta = 1e-6
    entry = count_entry(0.05, epsilon=3.0, delta=delta, accountant="rdp")
    eps_counts = epsilon_for([entry], delta=delta)
    runs = 4000
    passed = {}
    for n in (100, 99):
        passed[n] = np.mean([release_sizes(n, 20, 0, entry, PrivateRandomness()).train >= 100 for _ in range(runs)])
    exact = {n: 1 - norm.cdf((100 - n) / entry.noise_multiplier) for n in (100, 99)}
    slack = 4 * math.sqrt(0.25 / runs)
    for n, p in passed.items():
        assert abs(p - exact[n]) < slack
    assert 0 < passed[99] < passed[100] < 1
    assert passed[100] <= math.exp(eps_counts) * passed[99] + delta + slack
    assert (1 - passed[99]) <= math.exp(eps_counts) * (1 - passed[100]) + delta + slack


def test_derived_settings_are_functions_of_the_noisy_sizes_only() -> None:
    sizes = NoisySizes(train=447.3, holdout_labelled=110.2, holdout_unlabelled=1.4, noise_std=7.0)
    assert sizes.rows_for_defaults == 447
    assert sizes.synthetic_rows(0.2) == math.ceil((447.3 + 111.6) * 0.8)
    k1, k0 = sizes.gate_slots()
    assert k1 == math.floor(447.3 - 7.0)
    assert k0 == math.floor(111.6 - math.sqrt(2) * 7.0)
    assert NoisySizes(-30.0, -5.0, 0.0, 7.0).gate_slots() == (2, 2)
    public = sizes.public()
    assert public["train"] == 447.3 and public["gate_slots"] == {"train": k1, "holdout": k0}


# --------------------------------------------------------------------------- slots


def _part(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": ["a", "b"] * (n // 2) + ["a"] * (n % 2)})


def test_slots_are_exactly_k_records() -> None:
    stand_in = pd.DataFrame({"x": [-1.0], "y": ["b"]})
    secret = PrivateRandomness()
    many = slot_rows(_part(50), 20, stand_in, secret, "t")
    assert len(many) == 20 and set(many["x"]) <= set(range(50))
    few = slot_rows(_part(5), 8, stand_in, secret, "t", blank="y")
    assert len(few) == 8
    assert sorted(few["x"].tolist()[:5]) == [0, 1, 2, 3, 4]
    assert few["x"].tolist()[5:] == [-1.0] * 3 and few["y"].iloc[5:].isna().all()


def test_neighbouring_slots_differ_in_one_record() -> None:
    """The coupling behind the sensitivity: with the added row inserted into the same order, the
    slot multisets differ by one replacement (or a stand-in replaced)."""
    stand_in = pd.DataFrame({"x": [-1.0], "y": ["b"]})
    hook = PrivateRandomness.unsafe_reproducible_for_tests
    for n, k in ((30, 12), (10, 12), (12, 12)):
        part = _part(n)
        base = slot_rows(part, k, stand_in, hook(5), "t")
        order = hook(5).numpy("t").permutation(n)
        for position in range(n + 1):  # the added row's place in the neighbour's order
            bigger = pd.concat([part, pd.DataFrame({"x": [999.0], "y": ["a"]})], ignore_index=True)
            order_b = np.insert(order, position, n)
            chosen = bigger.iloc[np.sort(order_b[:k])]
            fill = k - len(chosen)
            neighbour = sorted(chosen["x"].tolist() + [-1.0] * fill)
            diff = (pd.Series(sorted(base["x"].tolist())).value_counts()
                    .sub(pd.Series(neighbour).value_counts(), fill_value=0))
            assert diff.abs().sum() <= 2  # one record out, one in


META = Metadata.model_validate({
    "version": 1, "name": "slots", "reviewed": True, "target": "label",
    "columns": {"a": {"type": "float", "min": 0.0, "max": 1.0}, "b": {"type": "float", "min": 0.0, "max": 1.0},
                "label": {"type": "categorical", "categories": ["p", "q", "r"], "nullable": True}},
})


def _records(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.choice(["p", "q", "r"], n)
    shift = pd.Series(label).map({"p": 0.0, "q": 0.3, "r": 0.6}).to_numpy()
    return pd.DataFrame({"a": np.clip(rng.random(n) * 0.4 + shift, 0, 1), "b": rng.random(n), "label": label})


@pytest.mark.parametrize("replacement", [
    {"a": 1.0, "b": 0.0, "label": "p"}, {"a": 0.0, "b": 1.0, "label": "r"}, {"a": 0.5, "b": 0.5, "label": None}])
def test_slotted_tstr_auc_moves_at_most_its_sensitivity(replacement) -> None:
    """TSTR AUC over k public slots, normalised by k: replacing one slot's record (a labelled one
    by an extreme one, or by an unlabelled stand-in) moves the vector by at most 2√3/k in L2."""
    synthetic, holdout = _records(300, 1), _records(40, 2)
    k = len(holdout)
    base = dp_figures.tstr_auc(holdout, synthetic, META, target="label", seed=0, total=k)
    assert base.l2_sensitivity == pytest.approx(2 * math.sqrt(3) / k)
    assert base.finish(base.values) == pytest.approx(
        dp_figures.tstr_auc(holdout, synthetic, META, target="label", seed=0).finish(
            dp_figures.tstr_auc(holdout, synthetic, META, target="label", seed=0).values))
    worst = 0.0
    for i in range(k):
        changed = holdout.copy()
        changed.loc[i, list(replacement)] = list(replacement.values())
        other = dp_figures.tstr_auc(changed, synthetic, META, target="label", seed=0, total=k)
        worst = max(worst, float(np.linalg.norm(other.values - base.values)))
    assert 0 < worst <= base.l2_sensitivity


def test_slotted_figures_state_sensitivities_of_public_slot_counts_only() -> None:
    for name in ("quality_score", "coverage", "exact_copy_share", "tstr_accuracy", "dcr_mia_auc", "tstr_auc",
                 "tpr_at_fpr_0.01_max"):
        a = dp_figures.sensitivity_for(name, n_train=400, n_holdout=100, slotted=True)
        assert a == dp_figures.sensitivity_for(name, n_train=400, n_holdout=100, slotted=True) > 0
    assert dp_figures.sensitivity_for("tstr_auc", n_train=400, n_holdout=100, slotted=True) == pytest.approx(
        2 * math.sqrt(3) / 100)
