from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.sampling import sample_frame
from synthrelease.gan.trainer import fit_dp_synthesizer
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.privacy.dp_categories import discover_categories, map_undiscovered, threshold_for
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.validation.expectations import validate_table
from tests.conftest import TINY_METADATA, make_tiny_table

CAT_META = {**TINY_METADATA, "columns": {**TINY_METADATA["columns"],
                                         "site": {"type": "categorical", "dp_categories": {"max_categories": 10}}}}


def _with_site(n: int, seed: int) -> pd.DataFrame:
    """Tiny table plus a 'site' column: three frequent sites and a tail of one-off sites."""
    df = make_tiny_table(n, seed)
    rng = np.random.default_rng(seed)
    site = rng.choice(["north", "south", "east"], size=n).astype(object)
    rare = rng.choice(n, size=12, replace=False)
    site[rare] = [f"clinic-{i}" for i in range(12)]  # each seen once: must never be released
    return df.assign(site=site)


def test_schema_takes_categories_or_dp_categories_not_both():
    with pytest.raises(ValueError, match="not both"):
        Metadata.model_validate({**CAT_META, "columns": {**CAT_META["columns"], "site": {
            "type": "categorical", "categories": ["a"], "dp_categories": {}}}})
    with pytest.raises(ValueError, match="not integer"):
        Metadata.model_validate({**CAT_META, "columns": {**CAT_META["columns"], "site": {
            "type": "integer", "min": 0, "max": 1, "dp_categories": {}}}})
    with pytest.raises(ValueError, match="declared 'categories'"):
        Metadata.model_validate({**CAT_META, "target": "site"})


@pytest.mark.parametrize(("sigma", "k", "delta_sel"), [(1.0, 1, 1e-6), (3.0, 4, 1e-7), (0.5, 20, 1e-5)])
def test_threshold_gives_singletons_probability_delta_over_k(sigma, k, delta_sel):
    tau = threshold_for(sigma, k, delta_sel)
    assert norm.sf((tau - 1.0) / (sigma * np.sqrt(k))) == pytest.approx(delta_sel / k, rel=1e-9)


def test_frequent_values_are_released_and_singletons_are_not():
    df = _with_site(600, seed=1)
    meta = Metadata.model_validate(CAT_META)
    found = discover_categories(df, meta, noise_multiplier=2.0, threshold_delta=1e-6, generator=SeedTree(0).torch("c"))
    assert found.categories["site"] == ["east", "north", "south"]
    assert found.metadata.columns["site"].categories == ["east", "north", "south", "<other>"]
    assert found.entry is not None and found.entry.sample_rate == 1.0 and found.threshold_delta == 1e-6
    mapped = map_undiscovered(df, found, meta)
    assert set(mapped["site"]) == {"east", "north", "south", "<other>"}
    assert (mapped["site"] == "<other>").sum() == 12


def test_released_list_ignores_row_order():
    df = _with_site(600, seed=2)
    meta = Metadata.model_validate(CAT_META)
    a = discover_categories(df, meta, noise_multiplier=2.0, threshold_delta=1e-6, generator=SeedTree(0).torch("c"))
    shuffled = df.sample(frac=1.0, random_state=3)
    b = discover_categories(shuffled, meta, noise_multiplier=2.0, threshold_delta=1e-6,
                            generator=SeedTree(0).torch("c"))
    assert a.categories == b.categories


def test_max_categories_keeps_the_largest_noisy_counts():
    df = _with_site(600, seed=4)
    meta = Metadata.model_validate({**CAT_META, "columns": {**CAT_META["columns"], "site": {
        "type": "categorical", "dp_categories": {"max_categories": 1}}}})
    found = discover_categories(df, meta, noise_multiplier=0.5, threshold_delta=1e-6, generator=SeedTree(0).torch("c"))
    assert len(found.categories["site"]) == 1


def test_validation_allows_any_value_before_discovery():
    validate_table(_with_site(100, seed=5), Metadata.model_validate(CAT_META), source="t.csv")


def test_dp_categories_are_charged_in_epsilon_and_delta():
    df = _with_site(600, seed=6)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=20, generator_hidden=32,
                         discriminator_hidden=32, latent_dim=16)
    model = fit_dp_synthesizer(df, Metadata.model_validate(CAT_META), cfg, condition_column="outcome",
                               randomness=PrivateRandomness.unsafe_reproducible_for_tests(6))
    spent = model.privacy
    assert spent.entries[0].label.startswith("DP categories")
    assert spent.delta == 1e-4 and spent.threshold_delta == pytest.approx(cfg.categories_delta_share * 1e-4)
    # ε is read at the accountant's share of δ, and still meets the target within 1 %
    assert spent.epsilon == pytest.approx(epsilon_for(spent.entries, delta=1e-4 - spent.threshold_delta))
    assert 0.99 * 2.0 <= spent.epsilon <= 2.0
    released = model.encoder.metadata.columns["site"].categories
    assert released[-1] == "<other>" and not any(str(c).startswith("clinic-") for c in released)
    synth = sample_frame(model, 300, seed=0)
    assert set(synth["site"].astype(str)) <= set(map(str, released))


def test_model_file_keeps_the_threshold_delta(tmp_path):
    from synthrelease.modalities.model_files import load_model, save_model

    df = _with_site(300, seed=7)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=5, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8)
    model = fit_dp_synthesizer(df, Metadata.model_validate(CAT_META), cfg, condition_column="outcome")
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.privacy == model.privacy
