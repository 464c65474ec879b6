"""DP joint histograms of publicly declared related numerical columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.dp_marginals import numeric_layout
from synthrelease.transforms.dp_numeric_pairs import NumericPairMatcher, measure_numeric_pairs, pair_layout
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA, make_tiny_table

RELATED = {**TINY_METADATA, "related_columns": [["age", "bmi", "dose"]]}


def _measure(df, meta, noise: float = 0.0):
    enc = TableEncoder(meta)
    sub, idx = pair_layout(numeric_layout(enc, "outcome"), meta.related_pairs)
    x = torch.from_numpy(enc.encode(df))
    return measure_numeric_pairs(lambda: iter([x]), sub, idx, n_bins=4, noise_multiplier=noise,
                                 generator=torch.Generator().manual_seed(0))


def test_related_columns_are_validated_and_paired():
    meta = Metadata.model_validate(RELATED)
    assert meta.related_pairs == [("age", "bmi"), ("age", "dose"), ("bmi", "dose")]
    for bad in ([["age"]], [["age", "sex"]], [["age", "nope"]], [["age", "age"]]):
        with pytest.raises(ValueError, match="related_columns"):
            Metadata.model_validate({**TINY_METADATA, "related_columns": bad})


def test_one_row_moves_the_histograms_by_exactly_sqrt_p():
    """Sensitivity √P: every row adds one count to exactly one cell of each of the P histograms."""
    meta = Metadata.model_validate(RELATED)
    df = make_tiny_table(200, seed=1)
    base = _measure(df, meta).counts
    assert np.allclose(base.sum(axis=(1, 2)), len(df))  # missing, zero and bins cover every row
    for i in (0, 5, int(np.flatnonzero(df["bmi"].isna())[0])):
        fewer = _measure(df.drop(index=i), meta).counts
        assert np.linalg.norm((base - fewer).ravel()) == pytest.approx(np.sqrt(len(meta.related_pairs)))


def test_the_matcher_prefers_the_measured_joint_over_its_mirror():
    meta = Metadata.model_validate(RELATED)
    df = make_tiny_table(400, seed=2)
    df["bmi"] = 15 + (df["age"] - 18) / 72 * 30  # bmi rises with age
    matcher = NumericPairMatcher(_measure(df, meta), n_rows=len(df))
    enc = TableEncoder(meta)
    same = torch.from_numpy(enc.encode(df))
    mirrored = df.copy()
    mirrored["bmi"] = 45 - (df["age"] - 18) / 72 * 30  # falls with age
    assert matcher.loss(same).item() < matcher.loss(torch.from_numpy(enc.encode(mirrored))).item()


def test_the_release_is_charged_in_the_one_accountant(tiny_table):
    meta = Metadata.model_validate(RELATED)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8, related_epsilon_share=0.2)
    model = train_dp_gan(tiny_table, TableEncoder(meta), cfg, condition_column="outcome",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    labels = [e.label for e in model.privacy.entries]
    assert any(label.startswith("numerical pair marginals (3 histograms") for label in labels)
    assert model.privacy.epsilon == pytest.approx(epsilon_for(model.privacy.entries, delta=1e-4))
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0


def test_default_settings_use_the_declared_pairs():
    from synthrelease.api import RELATED_EPSILON_SHARE, default_training_config

    with_pairs = default_training_config(400, epsilon=1.0, delta=1e-5, seed=0,
                                         metadata=Metadata.model_validate(RELATED), condition_column="outcome")
    without = default_training_config(400, epsilon=1.0, delta=1e-5, seed=0,
                                      metadata=Metadata.model_validate(TINY_METADATA), condition_column="outcome")
    assert with_pairs.related_epsilon_share == RELATED_EPSILON_SHARE and without.related_epsilon_share == 0.0
