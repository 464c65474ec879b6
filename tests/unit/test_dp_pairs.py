"""DP two-way marginals of discrete column pairs: public pair choice, accounting, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.transforms.dp_pairs import PairMatcher, discrete_pairs, measure_pairs
from synthrelease.transforms.encoders import TableEncoder


def test_pairs_come_from_the_metadata_only(tiny_metadata):
    encoder = TableEncoder(tiny_metadata)
    names = [(a.column, b.column) for a, b in discrete_pairs(encoder, "outcome", max_cells=100)]
    assert ("sex", "smoker") in names and ("sex", "stage") in names
    assert all("outcome" not in pair for pair in names)  # the condition has its own marginals
    assert [(a.column, b.column) for a, b in discrete_pairs(encoder, "outcome", max_cells=4)] == [("sex", "smoker")]


def test_noiseless_counts_are_the_joint_table_and_the_loss_sees_a_broken_dependency(tiny_table, tiny_metadata):
    encoder = TableEncoder(tiny_metadata)
    rows = torch.from_numpy(encoder.encode(tiny_table))
    pairs = discrete_pairs(encoder, "outcome", max_cells=100)
    g = torch.Generator().manual_seed(0)
    exact = measure_pairs(lambda: iter([rows[:100], rows[100:]]), pairs, noise_multiplier=0.0, generator=g)
    i = [(a.column, b.column) for a, b in pairs].index(("sex", "stage"))
    table = tiny_table.groupby(["sex", "stage"]).size().unstack(fill_value=0)
    assert np.allclose(exact.counts[i], table.reindex(index=["F", "M"], columns=[1, 2, 3, 4], fill_value=0).to_numpy())
    matcher = PairMatcher(exact)
    same = matcher.loss(rows).item()
    shuffled = rows.clone()
    sex = pairs[i][0]
    # the same marginals with the rows' sex made the same for everyone: the joint table changes
    shuffled[:, sex.start:sex.stop] = torch.tensor([1.0, 0.0])
    assert same < 1e-3 < matcher.loss(shuffled).item()


def test_pair_release_is_charged_with_sensitivity_sqrt_p(tiny_table, tiny_metadata):
    from synthrelease.privacy.accounting import MechanismEntry

    encoder = TableEncoder(tiny_metadata)
    rows = torch.from_numpy(encoder.encode(tiny_table))
    pairs = discrete_pairs(encoder, "outcome", max_cells=100)
    out = measure_pairs(lambda: iter([rows]), pairs, noise_multiplier=2.0, generator=torch.Generator().manual_seed(0))
    assert out.entry == MechanismEntry(out.entry.label, 2.0, 1.0, 1) and f"sqrt({len(pairs)})" in out.entry.label
    noise = np.concatenate([(n - e).ravel() for n, e in zip(out.counts, measure_pairs(
        lambda: iter([rows]), pairs, noise_multiplier=0.0, generator=torch.Generator()).counts, strict=True)])
    assert noise.std() == pytest.approx(2.0 * np.sqrt(len(pairs)), rel=0.35)

    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8, pair_epsilon_share=0.2)
    model = train_dp_gan(tiny_table, encoder, cfg, condition_column="outcome")
    assert any(e.label.startswith("pair marginals") for e in model.privacy.entries)
    assert model.privacy.epsilon == pytest.approx(epsilon_for(model.privacy.entries, delta=1e-4))
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0
