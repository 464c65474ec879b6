"""Empirical privacy audit: the one-run bound, the many-run bound, canaries, power and validity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from synthrelease.audits.empirical.bounds import (
    clopper_pearson_upper,
    many_run_epsilon_lb,
    one_run_audit_bound,
    one_run_epsilon_lb,
    one_run_p_value,
)
from synthrelease.audits.empirical.canaries import make_canaries
from synthrelease.audits.empirical_privacy import run_one_run_audit
from synthrelease.errors import InternalError
from synthrelease.gan.audit_training import train_for_audit
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA

N_NUM = 40  # enough input width that 200 canaries' gradients are not nearly collinear
WIDE_METADATA = {
    "version": 1, "name": "audit-wide", "reviewed": True, "target": "label",
    "columns": {**{f"x{i}": {"type": "float", "min": -5.0, "max": 5.0} for i in range(N_NUM)},
                "label": {"type": "categorical", "categories": ["a", "b"]}},
}


def _wide_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, N_NUM))
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(N_NUM)])
    df["label"] = np.where(x[:, 0] > 0, "a", "b")
    return df


def test_p_value_delta0_is_binomial_tail():
    for m, r, v, eps in [(1000, 200, 150, 1.0), (100, 40, 39, 2.5), (50, 10, 5, 0.0)]:
        q = math.exp(eps) / (1 + math.exp(eps))
        direct = sum(stats.binom.pmf(k, r, q) for k in range(v, r + 1))
        assert one_run_p_value(eps, 0.0, m=m, r=r, v=v) == pytest.approx(direct, rel=1e-9)


def test_p_value_delta_term_matches_direct_loop():
    m, r, v, eps, delta = 500, 100, 80, 1.2, 1e-4
    q = 1 / (1 + math.exp(-eps))
    alpha = max(sum(stats.binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i for i in range(1, v + 1))
    direct = stats.binom.sf(v - 1, r, q) + alpha * delta * 2 * m
    assert one_run_p_value(eps, delta, m=m, r=r, v=v) == pytest.approx(direct, rel=1e-9)


def test_epsilon_lb_is_the_largest_eps_at_the_significance():
    m, r, v = 1000, 200, 160
    eps = one_run_epsilon_lb(m=m, r=r, v=v, delta=0.0, significance=0.05)
    q = 1 / (1 + math.exp(-eps))
    assert stats.binom.sf(v - 1, r, q) == pytest.approx(0.05, abs=1e-6)
    assert one_run_p_value(eps + 1e-3, 0.0, m=m, r=r, v=v) > 0.05
    assert one_run_epsilon_lb(m=m, r=r, v=r // 2, delta=0.0) == 0.0  # chance accuracy: no bound
    assert one_run_epsilon_lb(m=m, r=r, v=v, delta=1e-5) <= eps  # δ only weakens the bound


def test_sweep_is_bonferroni_corrected_and_random_guesses_give_nothing():
    rng = np.random.default_rng(0)
    included = rng.random(1000) < 0.5
    perfect = one_run_audit_bound(included.astype(float), included, delta=0.0, k_values=[100, 250])
    assert perfect.correct == perfect.guesses == 500
    assert perfect.epsilon_lb == pytest.approx(
        one_run_epsilon_lb(m=1000, r=500, v=500, delta=0.0, significance=0.025))
    noise = one_run_audit_bound(rng.normal(size=1000), included, delta=1e-5)
    assert noise.epsilon_lb < 0.3


def test_many_run_bound_uses_exact_clopper_pearson():
    ci = stats.binomtest(2, 50).proportion_ci(confidence_level=1 - 2 * 0.025, method="exact")
    assert clopper_pearson_upper(2, 50, 0.025) == pytest.approx(ci.high, rel=1e-7)
    out = many_run_epsilon_lb(false_pos=0, n_out=100, false_neg=0, n_in=100, delta=0.0)
    assert out["epsilon_lb"] == pytest.approx(math.log((1 - out["fpr_ub"]) / out["fnr_ub"]))
    assert many_run_epsilon_lb(false_pos=50, n_out=100, false_neg=50, n_in=100, delta=0.0)["epsilon_lb"] == 0.0


def test_canaries_are_seeded_and_inside_the_declared_domain():
    meta = Metadata.model_validate(TINY_METADATA)
    a, b = make_canaries(meta, 50, seed=3), make_canaries(meta, 50, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(meta.columns)
    assert a["age"].between(18, 90).all() and a["bmi"].between(15, 45).all() and a["bmi"].notna().all()
    assert set(a["stage"]) <= {1, 2, 3, 4} and (a["dose"] > 0).all()
    ext = (a["age"] <= 26) | (a["age"] >= 82)  # outer 10 % of the range
    assert ext.all()


def test_noise_scale_knob_needs_the_audit_callback(tiny_table, tiny_metadata):
    cfg = TrainingConfig(target_epsilon=3.0, target_delta=1e-4, batch_size=64, n_steps=2, generator_hidden=8,
                         discriminator_hidden=8, latent_dim=4)
    with pytest.raises(InternalError, match="only the empirical audit"):
        train_dp_gan(tiny_table, TableEncoder(tiny_metadata), cfg, condition_column="outcome",
                     _unsafe_noise_scale=0.0)


AUDIT_CFG = dict(target_delta=1e-4, batch_size=100, n_steps=300, generator_hidden=16, discriminator_hidden=32,
                 latent_dim=8, marginal_epsilon_share=0.0, condition_epsilon_share=0.0, discriminator_lr=2e-3)


@pytest.mark.parametrize(("noise_scale", "caught"), [(0.1, True), (1.0, False)])
def test_audit_catches_a_broken_mechanism_and_passes_the_correct_one(noise_scale, caught):
    """Seed 0, 200 rows of 40 numericals, 200 canaries, 300 steps at q = 1/2, claimed ε = 0.5.

    Noise scaled down 10× (σ 56.7 → 5.7, the accountant unaware): measured ε_lb 0.93 > 0.5.
    The correct mechanism: ε_lb 0 (101 of 200 guesses right).
    """
    meta = Metadata.model_validate(WIDE_METADATA)
    cfg = TrainingConfig(target_epsilon=0.5, **AUDIT_CFG)
    res = run_one_run_audit(_wide_table(200, 1), meta, cfg, seed=0, n_canaries=200, trainer=train_for_audit,
                            _unsafe_noise_scale=noise_scale)
    assert res.name == "empirical_privacy"
    assert set(res.metrics) == {"epsilon_lower_bound", "epsilon_claimed", "audit_correct_guesses", "audit_guesses"}
    lb, claimed = res.metrics["epsilon_lower_bound"], res.metrics["epsilon_claimed"]
    assert claimed <= 0.5 + 1e-9
    assert (lb > claimed) is caught, res.details["sweep"]
    assert "discarded" in res.details


@pytest.fixture(scope="module")
def synthetic_base() -> pd.DataFrame:
    """What a release hands the relocated audit: rows sampled from a DP generator (public)."""
    from synthrelease.gan.sampling import sample_frame

    meta = Metadata.model_validate(WIDE_METADATA)
    cfg = TrainingConfig(target_epsilon=1.0, target_delta=1e-4, batch_size=100, n_steps=60, generator_hidden=32,
                         discriminator_hidden=32, latent_dim=8, seed=0)
    model = train_dp_gan(_wide_table(200, 1), TableEncoder(meta), cfg, condition_column="label",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))  # a fixed base: a stable test
    return sample_frame(model, 200, seed=0)


@pytest.mark.parametrize(("noise_scale", "caught"), [(0.1, True), (1.0, False)])
def test_audit_on_the_synthetic_rows_keeps_its_power(synthetic_base, noise_scale, caught):
    """The release runs the canary audit on its synthetic rows (no private row: free to gate on).

    Same setting as above with the base table = 200 rows sampled from a DP generator:
    noise ÷10 is still caught and the correct mechanism still passes.
    """
    meta = Metadata.model_validate(WIDE_METADATA)
    cfg = TrainingConfig(target_epsilon=0.5, **AUDIT_CFG)
    res = run_one_run_audit(synthetic_base, meta, cfg, seed=0, n_canaries=200, _unsafe_noise_scale=noise_scale,
                            trainer=train_for_audit)
    lb, claimed = res.metrics["epsilon_lower_bound"], res.metrics["epsilon_claimed"]
    assert (lb > claimed) is caught, res.details["sweep"]


@pytest.mark.parametrize("clip_fake_rows", [False, True])
def test_residual_subtraction_is_exact_without_noise(clip_fake_rows):
    """No noise, no canary in the table: R_t = B·G̃_t − (known rows' clipped gradients) vanishes."""
    from synthrelease.gan.audit_training import TranscriptResidual

    meta = Metadata.model_validate(WIDE_METADATA)
    cfg = TrainingConfig(target_epsilon=1.0, **(AUDIT_CFG | {"n_steps": 20, "clip_fake_rows": clip_fake_rows}))
    rows = _wide_table(200, 2)
    encoder = TableEncoder(meta)
    canaries = torch.from_numpy(encoder.encode(make_canaries(meta, 10, seed=1)))
    tracker = TranscriptResidual(canaries, cfg, sample_rate=0.5)
    train_dp_gan(rows, encoder, cfg, condition_column="label", audit_callback=tracker, _unsafe_noise_scale=0.0)
    assert tracker.steps == 20
    assert max(tracker.residual_share) < 1e-6
