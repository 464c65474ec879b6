from __future__ import annotations

import numpy as np
import pytest
import torch

from synthrelease.budget.accounting import epsilon_for
from synthrelease.training.config import TrainingConfig
from synthrelease.training.mean_embedding import ClassMeanEmbedding, feature_map, random_features
from synthrelease.training.trainer import train_dp_gan
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
    from synthrelease.budget.accounting import MechanismEntry

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
