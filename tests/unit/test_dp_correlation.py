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
    MATCHED_ABOVE,
    SENSITIVITY,
    SUM_WEIGHT,
    TRACE_WEIGHT,
    CorrelationMatcher,
    centres,
    measure_correlation,
    signs,
)
from synthrelease.transforms.dp_marginals import NumericLayout, numeric_layout
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA, make_tiny_table


def _release(df, noise: float = 0.0):
    meta = Metadata.model_validate(TINY_METADATA)
    enc = TableEncoder(meta)
    layout = numeric_layout(enc, "outcome")
    d = len(layout.columns)
    x = torch.from_numpy(enc.encode(df)).float()
    return measure_correlation(lambda: iter([x]), layout, center=torch.zeros(d),
                               noise_multiplier=noise, generator=torch.Generator().manual_seed(0)), enc, layout


def _released_vector(m) -> np.ndarray:
    d = len(m.sums)
    return np.concatenate([m.off_diagonal[np.triu_indices(d, 1)], [TRACE_WEIGHT * m.trace], SUM_WEIGHT * m.sums])


def test_rows_lie_in_the_unit_ball():
    df = make_tiny_table(300, seed=3)
    _, enc, layout = _release(df)
    d = len(layout.columns)
    w = signs(torch.from_numpy(enc.encode(df)).float(), layout, torch.full((d,), 0.3))
    assert float(w.norm(dim=1).max()) <= 1.0 + 1e-12
    assert float(w.norm(dim=1).min()) < 1.0  # missing values contribute 0


def test_centres_are_the_median_of_the_dp_bins():
    """Without noise, the centre interpolates the pooled bins' median: a column uniform on its
    first two of four bins has its median at the first inner edge, -0.5."""
    from types import SimpleNamespace

    layout = NumericLayout(("a",), torch.tensor([0]), torch.tensor([-1]), torch.tensor([-1]))
    counts = np.array([[[0.0, 0.0, 50.0, 50.0, 0.0, 0.0]]])  # [classes, columns, missing/zero + 4 bins]
    marginals = SimpleNamespace(numeric=layout, numeric_counts=counts, n_bins=4)
    assert float(centres(layout, marginals)[0]) == pytest.approx(-0.5, abs=1e-4)
    assert float(centres(layout, None)[0]) == 0.0


def test_the_sensitivity_bound_is_tight_for_two_equal_coordinates():
    """‖w‖ = 1 split over two columns: the off-diagonal moves by 1/2, i.e. (‖w‖⁴ − Σw⁴)/2 = 1/4."""
    assert SENSITIVITY == pytest.approx((0.5 + TRACE_WEIGHT ** 2 + SUM_WEIGHT ** 2) ** 0.5)
    assert SENSITIVITY < 0.8


def test_one_row_moves_the_release_by_at_most_its_sensitivity():
    """Probe: removing an extreme, a missing or an ordinary row moves (upper off-diagonal Σwwᵀ,
    weighted Σ‖w‖², weighted Σw) by ≤ SENSITIVITY."""
    df = make_tiny_table(200, seed=1)
    df.loc[7, ["age", "bmi", "dose"]] = [90, 45, df["dose"].max()]  # an extreme row
    base = _released_vector(_release(df)[0])
    worst = 0.0
    for i in (0, 7, int(np.flatnonzero(df["bmi"].isna())[0])):
        fewer = _released_vector(_release(df.drop(index=i))[0])
        worst = max(worst, float(np.linalg.norm(base - fewer)))
    assert 0.5 < worst <= SENSITIVITY + 1e-9


def test_the_target_keeps_a_strong_correlation_and_drops_noise():
    df = make_tiny_table(2000, seed=2)
    df["bmi"] = 15 + (df["age"] - 18) / 72 * 30 + np.random.default_rng(0).normal(0, 1, len(df))
    exact, _, layout = _release(df)
    t = exact.target(len(df))
    a, b = layout.columns.index("age"), layout.columns.index("bmi")
    assert t[a, b] > 0.8
    # with overwhelming noise no eigen-component clears the noise edge: no target, no loss
    noisy, enc, _ = _release(df, noise=1e4)
    assert noisy.target(len(df)) is None
    assert CorrelationMatcher(noisy, n_rows=len(df)).loss(torch.from_numpy(enc.encode(df)).float()).item() == 0.0


def test_the_spectral_target_beats_the_entries_on_a_low_rank_table():
    """Ten columns driven by one factor (r ≈ 0.8 for every pair), 400 rows, noise σ = 15, five
    draws: the target keeps every pair's sign and puts ≥ 90 % of pairs within 0.3, ≥ 0.1 more
    than the raw noisy entries do; without noise it is unbiased (mean error < 0.01)."""
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(400, 1))
    values = factor + 0.5 * rng.normal(size=(400, 10))
    layout = NumericLayout(tuple(f"c{i}" for i in range(10)), torch.arange(10), torch.full((10,), -1),
                           torch.full((10,), -1))
    x = torch.as_tensor(values / 4, dtype=torch.float32)
    real, iu = np.corrcoef(values.T), np.triu_indices(10, 1)

    def measured(noise: float, seed: int):
        return measure_correlation(lambda: iter([x]), layout, center=torch.zeros(10), noise_multiplier=noise,
                                   generator=torch.Generator().manual_seed(seed))

    assert abs(float(np.mean(measured(1e-3, 0).target(400)[iu] - real[iu]))) < 0.01
    close_target, close_raw = [], []
    for seed in range(5):
        m = measured(15.0, seed)
        t = m.target(400)
        assert (np.sign(t[iu]) == np.sign(real[iu])).all()
        close_target.append(np.mean(np.abs(t[iu] - real[iu]) < 0.3))
        mean = m.sums / 400  # the raw noisy entries, before denoising (sign variance 1/d − mean²)
        var = np.maximum(0.1 - mean ** 2, 0.025)
        quadrant = np.clip((m.off_diagonal / 400 - np.outer(mean, mean)) / np.sqrt(np.outer(var, var)), -1, 1)
        close_raw.append(np.mean(np.abs(np.sin(np.pi / 2 * quadrant)[iu] - real[iu]) < 0.3))
    assert np.mean(close_target) >= 0.9
    assert np.mean(close_target) - np.mean(close_raw) >= 0.1


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


def test_defaults_turn_the_release_on_from_the_column_threshold():
    """Public rule: ≥ CORRELATION_MIN_NUMERICAL numerical columns (below WIDE_MIN_NUMERICAL) get the
    release instead of the related-column histograms; fewer keep them."""
    from synthrelease.api import default_training_config
    from synthrelease.gan.defaults import CORRELATION_MIN_NUMERICAL, CORRELATION_SETTINGS

    def table(n_numerical: int) -> Metadata:
        cols = {f"x{i}": {"type": "float", "min": 0.0, "max": 10.0} for i in range(n_numerical)}
        cols["label"] = {"type": "categorical", "categories": ["a", "b"]}
        return Metadata.model_validate({"version": 1, "name": "cohort", "reviewed": True, "target": "label",
                                        "related_columns": [["x0", "x1"]], "columns": cols})

    many = default_training_config(455, epsilon=1.0, delta=1e-5, seed=0, metadata=table(CORRELATION_MIN_NUMERICAL),
                                   condition_column="label")
    few = default_training_config(455, epsilon=1.0, delta=1e-5, seed=0,
                                  metadata=table(CORRELATION_MIN_NUMERICAL - 1), condition_column="label")
    assert {k: getattr(many, k) for k in CORRELATION_SETTINGS} == CORRELATION_SETTINGS
    assert few.correlation_epsilon_share == 0.0 and few.related_epsilon_share > 0
    # wide tables never get it (a gram matrix of thousands of columns), whichever their path
    from synthrelease.gan.defaults import WIDE_MIN_NUMERICAL

    for n in (455, 200_000):
        wide = default_training_config(n, epsilon=1.0, delta=1e-6, seed=0, metadata=table(WIDE_MIN_NUMERICAL),
                                       condition_column="label")
        assert wide.correlation_epsilon_share == 0.0


def test_the_matcher_gives_no_reason_to_flatten_an_uncorrelated_column():
    """Pairs whose target is ≈ 0 are not matched: a constant column (every pair r = 0) must not
    lower the loss (it did on gse7390: every synthetic time to metastasis became 0)."""
    df = make_tiny_table(800, seed=4)
    df["bmi"] = 15 + (df["age"] - 18) / 72 * 30
    m, enc, layout = _release(df)
    matcher = CorrelationMatcher(m, n_rows=len(df))
    dose = layout.columns.index("dose")
    assert (matcher.target[dose].abs()[torch.arange(len(layout.columns)) != dose] < MATCHED_ABOVE).all()
    flat = df.copy()
    flat["dose"] = float(df["dose"].median())
    as_x = lambda frame: torch.from_numpy(enc.encode(frame)).float()  # noqa: E731
    assert matcher.loss(as_x(flat)).item() == pytest.approx(matcher.loss(as_x(df)).item(), abs=1e-6)
