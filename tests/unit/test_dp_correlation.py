"""DP correlation matrix of the numerical columns: sensitivity probe, target, matcher, accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.dp_correlation import (
    SENSITIVITY,
    CorrelationMatcher,
    measure_correlation,
    standardised,
)
from synthrelease.transforms.dp_marginals import numeric_layout
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA, make_tiny_table


def _release(df, noise: float = 0.0):
    meta = Metadata.model_validate(TINY_METADATA)
    enc = TableEncoder(meta)
    layout = numeric_layout(enc, "outcome")
    d = len(layout.columns)
    x = torch.from_numpy(enc.encode(df)).float()
    return measure_correlation(lambda: iter([x]), layout, center=torch.zeros(d), scale=torch.full((d,), 0.3),
                               noise_multiplier=noise, generator=torch.Generator().manual_seed(0)), enc, layout


def _released_vector(m) -> np.ndarray:
    d = len(m.sums)
    return np.concatenate([m.sums, m.second[np.triu_indices(d)]])


def test_rows_are_clipped_to_the_unit_ball():
    df = make_tiny_table(300, seed=3)
    _, enc, layout = _release(df)
    d = len(layout.columns)
    w = standardised(torch.from_numpy(enc.encode(df)).float(), layout, torch.zeros(d), torch.full((d,), 0.01))
    assert float(w.norm(dim=1).max()) <= 1.0 + 1e-6


def test_one_row_moves_the_release_by_at_most_sqrt_2():
    """Probe: removing an extreme, a missing or an ordinary row moves (Σw, upper Σwwᵀ) by ≤ √2."""
    df = make_tiny_table(200, seed=1)
    df.loc[7, ["age", "bmi", "dose"]] = [90, 45, df["dose"].max()]  # an extreme row
    base = _released_vector(_release(df)[0])
    worst = 0.0
    for i in (0, 7, int(np.flatnonzero(df["bmi"].isna())[0])):
        fewer = _released_vector(_release(df.drop(index=i))[0])
        worst = max(worst, float(np.linalg.norm(base - fewer)))
    assert 0.5 < worst <= SENSITIVITY + 1e-9


def test_the_target_keeps_a_strong_correlation_and_shrinks_noise_to_zero():
    df = make_tiny_table(2000, seed=2)
    df["bmi"] = 15 + (df["age"] - 18) / 72 * 30 + np.random.default_rng(0).normal(0, 1, len(df))
    exact, _, layout = _release(df)
    t = exact.target(len(df))
    a, b = layout.columns.index("age"), layout.columns.index("bmi")
    assert t[a, b] > 0.8
    # with overwhelming noise the soft threshold matches (almost) every pair to 0
    noisy, _, _ = _release(df, noise=1e4)
    off = ~np.eye(len(layout.columns), dtype=bool)
    assert np.abs(noisy.target(len(df))[off]).max() < 0.2


def test_the_matcher_prefers_the_measured_sign():
    df = make_tiny_table(800, seed=4)
    df["bmi"] = 15 + (df["age"] - 18) / 72 * 30
    m, enc, _ = _release(df)
    matcher = CorrelationMatcher(m, n_rows=len(df))
    mirrored = df.copy()
    mirrored["bmi"] = 45 - (df["age"] - 18) / 72 * 30
    same = matcher.loss(torch.from_numpy(enc.encode(df)).float()).item()
    assert same < matcher.loss(torch.from_numpy(enc.encode(mirrored)).float()).item()


def test_the_release_is_charged_in_the_one_accountant(tiny_table):
    meta = Metadata.model_validate(TINY_METADATA)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8, correlation_epsilon_share=0.2)
    model = train_dp_gan(tiny_table, TableEncoder(meta), cfg, condition_column="outcome",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    labels = [e.label for e in model.privacy.entries]
    assert any(label.startswith("numerical correlation (") for label in labels)
    assert model.privacy.epsilon == pytest.approx(epsilon_for(model.privacy.entries, delta=1e-4))
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0
