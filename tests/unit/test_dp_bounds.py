from __future__ import annotations

import numpy as np
import pytest

from synthrelease.errors import MetadataError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import fit_dp_synthesizer
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import epsilon_for
from synthrelease.privacy.dp_bounds import estimate_bounds, search_edges
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA

DP_META = {**TINY_METADATA, "columns": {**TINY_METADATA["columns"],
                                        "age": {"type": "integer", "dp_bounds": {"search_min": 0, "search_max": 1000}},
                                        "dose": {"type": "float", "dp_bounds": {"search_min": 0, "search_max": 1e6},
                                                 "zero_inflated": True, "transform": "log1p"}}}


def test_schema_takes_bounds_or_dp_bounds_not_both():
    with pytest.raises(ValueError, match="not both"):
        Metadata.model_validate({**DP_META, "columns": {**DP_META["columns"], "age": {
            "type": "integer", "min": 1, "max": 9, "dp_bounds": {"search_min": 0, "search_max": 10}}}})
    with pytest.raises(MetadataError, match="no public bounds yet"):
        TableEncoder(Metadata.model_validate(DP_META))


@pytest.mark.parametrize(("lo", "hi"), [(0, 1e6), (-1e6, 1e6), (-5, 5), (10, 90)])
def test_search_edges_are_increasing_and_cover_range(lo, hi):
    e = search_edges(lo, hi, 64)
    assert e[0] == pytest.approx(lo) and e[-1] == pytest.approx(hi) and np.all(np.diff(e) > 0)


def test_estimated_bounds_cover_the_bulk_of_the_data(tiny_table):
    meta = Metadata.model_validate(DP_META)
    est = estimate_bounds(tiny_table, meta, noise_multiplier=2.0, generator=SeedTree(0).torch("b"))
    lo, hi = est.bounds["age"]
    inside = tiny_table["age"].between(lo, hi).mean()
    assert inside > 0.95 and lo >= 0 and hi <= 1000 and hi - lo < 500
    assert est.metadata.columns["age"].min == lo and est.metadata.columns["age"].dp_bounds is None
    assert est.entry is not None and est.entry.sample_rate == 1.0


def test_dp_bounds_are_charged_in_the_total(tiny_table):
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=64, n_steps=20, generator_hidden=32,
                         discriminator_hidden=32, latent_dim=16)
    model = fit_dp_synthesizer(tiny_table, Metadata.model_validate(DP_META), cfg, condition_column="outcome",
                               randomness=PrivateRandomness.unsafe_reproducible_for_tests(3))
    labels = [e.label for e in model.privacy.entries]
    assert labels[0].startswith("DP bounds") and any("marginals" in x for x in labels)
    assert model.privacy.epsilon == pytest.approx(epsilon_for(model.privacy.entries, delta=1e-4))
    assert 0.99 * 2.0 <= model.privacy.epsilon <= 2.0
    assert model.encoder.metadata.columns["age"].dp_bounds is None
