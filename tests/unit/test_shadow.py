"""The shadow-modelling attack works: AUC ≈ 1 on a copying 'synthesizer', ≈ 0.5 on fresh data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits._encoding import encode_for_distance
from synthrelease.audits.shadow import run_shadow_attack, vulnerable_rows
from synthrelease.errors import PrivacyParameterError
from synthrelease.gan import trainer
from synthrelease.gan.config import TrainingConfig
from synthrelease.modalities.table.modality import table_modality
from tests.conftest import make_tiny_table


def copy_rows(rows: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """A 'synthesizer' that publishes its training rows."""
    del n_rows, seed
    return rows


def fresh_rows(rows: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """A 'synthesizer' that ignores its input: fresh rows from the same distribution."""
    del rows
    return make_tiny_table(n_rows, seed=seed)


@pytest.fixture
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_tiny_table(200, seed=1), make_tiny_table(200, seed=2)


def test_vulnerable_rows_rank_planted_outliers_first():
    x = np.random.default_rng(0).normal(size=(300, 4))
    x[[40, 7]] = [[9.0, 9.0, 9.0, 9.0], [-6.0, 6.0, -6.0, 6.0]]
    positions, scores = vulnerable_rows(x, 3)
    assert list(positions[:2]) == [40, 7] and len(positions) == 3
    assert np.all(np.diff(scores) <= 0)


def test_copying_synthesizer_is_caught_and_the_release_scored_as_member(split, tiny_metadata):
    train, holdout = split
    res = run_shadow_attack(train, holdout, tiny_metadata, None, seed=0, n_targets=2, n_shadow_pairs=8,
                            shadow_rows=150, synthesizer=copy_rows, released=train)
    assert res.name == "shadow" and res.internal_only
    assert res.metrics["shadow_mia_auc"] >= 0.9 and res.metrics["shadow_mia_auc_mean"] >= 0.9
    assert res.details["n_fits"] == 8 * (1 + 2)
    expected, _ = vulnerable_rows(encode_for_distance(train, tiny_metadata), 2)
    assert [t["train_row_position"] for t in res.details["targets"]] == list(expected)
    # the release contains every target: the forests call each of them a member
    assert all(t["released_p_member"] > 0.5 for t in res.details["targets"])


def test_fresh_data_synthesizer_gives_chance_auc(split, tiny_metadata):
    train, holdout = split
    res = run_shadow_attack(train, holdout, tiny_metadata, None, seed=0, n_targets=2, n_shadow_pairs=60,
                            shadow_rows=100, synthesizer=fresh_rows)
    aucs = [t["auc"] for t in res.details["targets"]]
    assert all(0.3 <= a <= 0.7 for a in aucs), aucs
    assert res.metrics["shadow_mia_auc"] == max(aucs)


def test_seeded_runs_are_identical(split, tiny_metadata):
    train, holdout = split
    kw = dict(n_targets=1, n_shadow_pairs=3, shadow_rows=50, synthesizer=fresh_rows)
    a = run_shadow_attack(train, holdout, tiny_metadata, None, seed=3, **kw)
    b = run_shadow_attack(train, holdout, tiny_metadata, None, seed=3, **kw)
    assert a.metrics == b.metrics and a.details["targets"] == b.details["targets"]


@pytest.mark.parametrize(("kw", "match"), [
    (dict(n_shadow_pairs=1, synthesizer=copy_rows), "n_shadow_pairs must be >= 2"),
    (dict(n_targets=0, synthesizer=copy_rows), "n_targets must be >= 1"),
    (dict(shadow_rows=10_000, synthesizer=copy_rows), "shadow_rows=10000"),
    (dict(), "shadow_synthesizer"),  # issue 27: the audits import no trainer; the caller hands it
])
def test_bad_settings_are_refused(split, tiny_metadata, kw, match):
    with pytest.raises(PrivacyParameterError, match=match):
        run_shadow_attack(*split, tiny_metadata, None, seed=0, **kw)


def test_dp_gan_shadow_fits_run_end_to_end_at_the_release_sample_rate(split, tiny_metadata, monkeypatch):
    train, holdout = split
    # batch = all rows (q = 1) keeps the RDP accountant cheap; the shadow fits must keep q = 1 too
    config = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=len(train), n_steps=20,
                            generator_hidden=16, discriminator_hidden=16, latent_dim=8, seed=5)
    seen: list[tuple[int, TrainingConfig]] = []
    real_fit = trainer.fit_dp_synthesizer

    def spy(rows, metadata, cfg, **kw):
        seen.append((len(rows), cfg))
        return real_fit(rows, metadata, cfg, **kw)

    monkeypatch.setattr(trainer, "fit_dp_synthesizer", spy)
    q = trainer.sample_rate_for(len(train), config.batch_size)
    synthesizer = table_modality().shadow_synthesizer(tiny_metadata, config, sample_rate=q,
                                                      condition_column=tiny_metadata.target)
    res = run_shadow_attack(train, holdout, tiny_metadata, config, seed=0, n_targets=1, n_shadow_pairs=2,
                            shadow_rows=60, synthetic_rows=60, synthesizer=synthesizer)
    assert res.details["n_fits"] == len(seen) == 4
    assert 0.0 <= res.metrics["shadow_mia_auc"] <= 1.0
    q = trainer.sample_rate_for(len(train), config.batch_size)
    assert {n for n, _ in seen} == {60, 61}
    assert all(trainer.sample_rate_for(n, c.batch_size) == q for n, c in seen)
    assert len({c.seed for _, c in seen}) == 4 and all(c.target_epsilon == 2.0 for _, c in seen)

