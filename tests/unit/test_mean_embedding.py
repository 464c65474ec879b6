from __future__ import annotations

import numpy as np
import pytest
import torch

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.mean_embedding import ClassMeanEmbedding, feature_map, random_features
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.encoders import TableEncoder


def test_every_row_has_unit_feature_norm():
    """‖φ(x)‖ = 1 whatever the row: the per-class sums have L2 sensitivity 1."""
    freqs = random_features(30, 200, generator=torch.Generator().manual_seed(0))
    x = torch.randn(500, 30) * torch.logspace(-3, 3, 500)[:, None]
    assert torch.allclose(feature_map(x, freqs).norm(dim=1), torch.ones(500), atol=1e-5)
    assert torch.allclose(feature_map(x, None).norm(dim=1), torch.ones(500), atol=1e-5)  # linear kernel


def test_linear_kernel_matches_class_mean_profiles():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 6)
    cond = torch.nn.functional.one_hot(torch.arange(300) % 3, 3).float()
    rows = torch.cat([x, cond], dim=1)
    emb = ClassMeanEmbedding.measure([rows], slice(6, 9), width=9, n_features=100, noise_multiplier=0.0,
                                     feature_generator=g, noise_generator=g, kernel="linear")
    assert emb.freqs is None and emb.sums.shape == (3, 9) and "linear" in emb.entries[0].label
    counts = cond.sum(dim=0).numpy()
    assert emb.loss(rows, cond, counts).item() == pytest.approx(0.0, abs=1e-6)
    assert emb.loss(torch.cat([x * torch.tensor([3.0, 1, 1, 1, 1, 1]), cond], dim=1), cond, counts).item() > 1e-3


def test_noiseless_embedding_loss_is_zero_on_the_real_rows_and_positive_elsewhere():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 6)
    cond = torch.nn.functional.one_hot(torch.arange(300) % 3, 3).float()
    rows = torch.cat([x, cond], dim=1)
    emb = ClassMeanEmbedding.measure([rows[:150], rows[150:]], slice(6, 9), width=9, n_features=100,
                                     noise_multiplier=0.0, feature_generator=g, noise_generator=g)
    counts = cond.sum(dim=0).numpy()
    assert emb.loss(rows, cond, counts).item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.cat([x + 0.5, cond], dim=1)
    assert emb.loss(shifted, cond, counts).item() > 1e-3


def test_embedding_release_is_charged_in_the_total(tiny_table, tiny_metadata):
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8, embedding_epsilon_share=0.2, embedding_features=64)
    model = train_dp_gan(tiny_table, TableEncoder(tiny_metadata), cfg, condition_column="outcome")
    labels = [e.label for e in model.privacy.entries]
    assert any(lbl.startswith("class mean embeddings") for lbl in labels)
    assert model.privacy.epsilon == pytest.approx(epsilon_for(model.privacy.entries, delta=1e-4))
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0
    assert np.isfinite([h["g_loss"] for h in model.history]).all()


def test_centered_kernel_spends_exactly_the_budget_of_one_release():
    """Center + sums at σ/√w and σ/√(1−w) have the RDP of one Gaussian release at σ."""
    from synthrelease.privacy.accounting import MechanismEntry

    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 6) + 2.0
    cond = torch.nn.functional.one_hot(torch.arange(300) % 3, 3).float()
    rows = torch.cat([x, cond], dim=1)
    emb = ClassMeanEmbedding.measure(lambda: iter([rows[:100], rows[100:]]), slice(6, 9), width=9, n_features=2,
                                     noise_multiplier=3.0, feature_generator=g, noise_generator=g,
                                     kernel="centered", n_rows=300)
    assert len(emb.entries) == 2 and emb.center is not None
    one = epsilon_for([MechanismEntry("one", 3.0, 1.0, 1)], delta=1e-5)
    assert epsilon_for(list(emb.entries), delta=1e-5) == pytest.approx(one, rel=1e-9)
    assert torch.allclose(feature_map(rows, None, emb.center).norm(dim=1), torch.ones(300), atol=1e-5)
    exact = ClassMeanEmbedding.measure([rows], slice(6, 9), width=9, n_features=2, noise_multiplier=0.0,
                                       feature_generator=g, noise_generator=g, kernel="centered", n_rows=300)
    assert exact.loss(rows, cond, cond.sum(dim=0).numpy()).item() == pytest.approx(0.0, abs=1e-6)


def _values_setup(tiny_table, tiny_metadata):
    from synthrelease.transforms.dp_marginals import numeric_layout

    encoder = TableEncoder(tiny_metadata)
    rows = torch.from_numpy(encoder.encode(tiny_table))
    span = encoder.span("outcome", "category")
    return encoder, rows, slice(span.start, span.stop), numeric_layout(encoder, "outcome")


def test_values_kernel_reads_numerical_values_on_their_public_scale(tiny_table, tiny_metadata):
    """u = value on [0, 1] over the declared bounds, 0 for a zero or missing entry; ‖φ‖ ≤ 1."""
    from synthrelease.gan.mean_embedding import numeric_values

    _, rows, _, layout = _values_setup(tiny_table, tiny_metadata)
    u = numeric_values(rows, layout)
    assert list(layout.columns) == ["age", "bmi", "dose"]
    age = (tiny_table["age"].to_numpy() - 18) / (90 - 18)
    assert np.allclose(u[:, 0].numpy(), age, atol=1e-5)
    bmi = tiny_table["bmi"].to_numpy()
    assert np.allclose(u[:, 1].numpy(), np.where(np.isnan(bmi), 0.0, (bmi - 15) / 30), atol=1e-5)
    assert (u[:, 2].numpy()[tiny_table["dose"].to_numpy() == 0] == 0).all()
    at_minimum = torch.zeros(3, rows.shape[1])
    at_minimum[:, layout.value_idx] = -1.0  # every value at its lower bound: u = 0, φ = (c, 0, ...)
    assert torch.allclose(feature_map(at_minimum, None, layout=layout), torch.tensor([[0.5, 0, 0, 0]] * 3))
    assert (feature_map(torch.rand(200, rows.shape[1]), None, layout=layout).norm(dim=1) <= 1 + 1e-6).all()


def test_values_kernel_spends_one_release_and_anchors_the_scale(tiny_table, tiny_metadata):
    """Norm histogram + class sums at σ/√w, σ/√(1−w): one Gaussian release's RDP. The
    loss is ≈ 0 on the real rows and grows when every value is halved (a unit-norm
    kernel alone cannot see that)."""
    from synthrelease.gan.mean_embedding import numeric_values
    from synthrelease.privacy.accounting import MechanismEntry

    _, rows, cond_slice, layout = _values_setup(tiny_table, tiny_metadata)
    g = torch.Generator().manual_seed(0)
    noisy = ClassMeanEmbedding.measure([rows], cond_slice, width=rows.shape[1], n_features=2, noise_multiplier=2.0,
                                       feature_generator=g, noise_generator=g, kernel="values", layout=layout)
    assert len(noisy.entries) == 2 and "row norms" in noisy.entries[0].label
    one = epsilon_for([MechanismEntry("one", 2.0, 1.0, 1)], delta=1e-5)
    assert epsilon_for(list(noisy.entries), delta=1e-5) == pytest.approx(one, rel=1e-9)

    exact = ClassMeanEmbedding.measure([rows], cond_slice, width=rows.shape[1], n_features=2, noise_multiplier=0.0,
                                       feature_generator=g, noise_generator=g, kernel="values", layout=layout)
    true_norm = float(numeric_values(rows, layout).norm(dim=1).mean())
    assert exact.mean_norm == pytest.approx(true_norm, rel=0.08)  # bin centres of 48 log bins
    cond = rows[:, cond_slice]
    counts = cond.sum(dim=0).numpy()
    halved = rows.clone()
    halved[:, layout.value_idx] = (rows[:, layout.value_idx] + 1) / 2 - 1  # every value on [0, 1] halved
    assert exact.loss(rows, cond, counts).item() < 0.01
    assert exact.loss(halved, cond, counts).item() > 0.1
    with pytest.raises(ValueError, match="layout"):
        ClassMeanEmbedding.measure([rows], cond_slice, width=rows.shape[1], n_features=2, noise_multiplier=1.0,
                                   feature_generator=g, noise_generator=g, kernel="values")


def test_shrinkage_soft_thresholds_class_deviations_at_their_noise_scale():
    rows = torch.cat([torch.rand(300, 4), torch.nn.functional.one_hot(torch.arange(300) % 3, 3).float()], dim=1)
    g = torch.Generator().manual_seed(0)
    emb = ClassMeanEmbedding.measure([rows], slice(4, 7), width=7, n_features=2, noise_multiplier=5.0,
                                     feature_generator=g, noise_generator=g, kernel="linear")
    counts = torch.full((3,), 100.0)
    raw = emb.target(counts)
    assert torch.allclose(raw, emb.sums / 100.0)
    emb.shrinkage = 1e6  # every deviation below threshold: all classes get the overall mean
    overall = emb.sums.sum(dim=0) / 300.0
    assert torch.allclose(emb.target(counts), overall.expand(3, -1), atol=1e-6)
    emb.shrinkage = 1.0  # deviations move towards the overall mean by at most σ/n, never past it
    dev_raw, dev = raw - overall, emb.target(counts) - overall
    assert ((dev.abs() <= dev_raw.abs() + 1e-6) & (dev * dev_raw >= 0)).all()
    assert ((dev_raw.abs() - dev.abs()) <= 5.0 / 100.0 + 1e-6).all()


def test_values_kernel_gives_the_condition_frequencies_without_another_release(tiny_table, tiny_metadata):
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8, marginal_epsilon_share=0.0,
                         embedding_epsilon_share=0.8, embedding_kernel="values", embedding_shrinkage=2.5)
    model = train_dp_gan(tiny_table, TableEncoder(tiny_metadata), cfg, condition_column="outcome",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(4))
    labels = [e.label for e in model.privacy.entries]
    assert not any(lbl.startswith("condition histogram") for lbl in labels)
    assert sum(lbl.startswith("class mean embeddings") for lbl in labels) == 2
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0
    true = tiny_table["outcome"].value_counts(normalize=True).reindex(["healthy", "sick"]).to_numpy()
    assert model.condition_probs is not None and model.condition_probs.sum() == pytest.approx(1.0)
    assert np.abs(model.condition_probs - true).max() < 0.1  # σ/c ≈ 2.6 rows of noise on ~hundreds


def test_wide_tables_default_to_class_mean_profiles():
    """From public quantities only: many columns per row → kernel 'values', marginals off."""
    from synthrelease.api import WIDE_TABLE_SETTINGS, default_training_config
    from synthrelease.metadata.schema import Metadata
    from tests.conftest import TINY_METADATA

    wide = Metadata.model_validate({
        "version": 1, "name": "wide", "reviewed": True, "target": "label",
        "columns": {**{f"g{i}": {"type": "float", "min": 0.0, "max": 10.0, "zero_inflated": True} for i in range(300)},
                    "label": {"type": "categorical", "categories": list("abcde")}}})
    cfg = default_training_config(500, epsilon=1.0, delta=1e-5, seed=0, metadata=wide, condition_column="label")
    assert {k: getattr(cfg, k) for k in WIDE_TABLE_SETTINGS} == WIDE_TABLE_SETTINGS
    tiny = Metadata.model_validate(TINY_METADATA)
    cfg = default_training_config(20000, epsilon=1.0, delta=1e-5, seed=0, metadata=tiny, condition_column="outcome")
    assert cfg.marginal_epsilon_share == 0.5 and cfg.embedding_epsilon_share == 0.0


def test_values_kernel_can_also_match_the_share_of_zeros(tiny_table, tiny_metadata):
    """zero_weight > 0: the non-zero indicators join the profile; ‖φ‖ ≤ 1 still, and a
    table with the same values but no exact zeros is told apart."""
    _, rows, cond_slice, layout = _values_setup(tiny_table, tiny_metadata)
    g = torch.Generator().manual_seed(0)
    phi = feature_map(rows, None, layout=layout, zero_weight=0.4)
    assert phi.shape[1] == 1 + 3 + 1 and (phi.norm(dim=1) <= 1 + 1e-6).all()
    nonzero = (tiny_table["dose"].to_numpy() != 0).astype(float)
    assert np.allclose(phi[:, -1].numpy() / np.sqrt(0.75 * 0.4), nonzero, atol=1e-6)
    exact = ClassMeanEmbedding.measure([rows], cond_slice, width=rows.shape[1], n_features=2, noise_multiplier=0.0,
                                       feature_generator=g, noise_generator=g, kernel="values", layout=layout,
                                       zero_weight=0.4)
    cond = rows[:, cond_slice]
    counts = cond.sum(dim=0).numpy()
    no_zeros = rows.clone()
    z = layout.nonzero_idx[layout.nonzero_idx >= 0]
    no_zeros[:, z] = 1.0  # P(non-zero) = 1 everywhere, P(zero) = 0
    no_zeros[:, z - 1] = 0.0
    base = exact.loss(rows, cond, counts).item()
    assert base < 0.01 and exact.loss(no_zeros, cond, counts).item() > base + 0.01
