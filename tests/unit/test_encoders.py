from __future__ import annotations

import numpy as np
import pandas as pd

from synthrelease.transforms.encoders import TableEncoder


def test_round_trip_preserves_values(tiny_metadata, tiny_table):
    enc = TableEncoder(tiny_metadata)
    x = enc.encode(tiny_table)
    assert x.shape == (len(tiny_table), enc.width) and x.dtype == np.float32
    back = enc.decode(x)
    assert list(back.columns) == tiny_metadata.model_columns
    assert (back["age"].to_numpy() == tiny_table["age"].to_numpy()).all()
    np.testing.assert_allclose(back["bmi"].to_numpy(), tiny_table["bmi"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(back["dose"].to_numpy(), tiny_table["dose"].to_numpy(), rtol=1e-4, atol=1e-4)
    assert (back["dose"] == 0).sum() == (tiny_table["dose"] == 0).sum()
    for c in ("sex", "outcome"):
        assert (back[c] == tiny_table[c]).all()
    assert (back["stage"].astype(int) == tiny_table["stage"]).all()
    assert (back["smoker"] == tiny_table["smoker"]).all()


def test_parameters_come_only_from_metadata(tiny_metadata, tiny_table):
    """Changing the private rows changes no transform parameter."""
    before = TableEncoder(tiny_metadata).parameters()
    enc = TableEncoder(tiny_metadata)
    enc.encode(tiny_table)
    other = tiny_table.sample(frac=1.0, random_state=3).head(50).copy()
    other["age"] = 90
    enc.encode(other)
    assert enc.parameters() == before


def test_out_of_domain_values_are_clipped(tiny_metadata, tiny_table):
    enc = TableEncoder(tiny_metadata)
    row = tiny_table.head(1).copy()
    row["age"] = 500
    back = enc.decode(enc.encode(row))
    assert back["age"].iloc[0] == 90


def test_from_parameters_round_trip(tiny_metadata):
    enc = TableEncoder(tiny_metadata)
    params = enc.parameters()
    params["metadata"]["columns"] = dict(sorted(params["metadata"]["columns"].items()))  # JSON sort_keys
    again = TableEncoder.from_parameters(params)
    assert again.spans == enc.spans


def test_decode_types(tiny_metadata):
    enc = TableEncoder(tiny_metadata)
    out = enc.decode(np.random.default_rng(0).uniform(-1, 1, (30, enc.width)).astype(np.float32))
    assert out["age"].between(18, 90).all()
    assert pd.api.types.is_bool_dtype(out["smoker"])
    assert set(out["sex"]) <= {"F", "M"}
