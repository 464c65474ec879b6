"""Declared precision of float columns (``decimals``): schema, decoding, infer, a tiny training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from synthrelease.errors import MetadataError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.sampling import sample_frame
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.infer import infer_column, infer_decimals, infer_metadata
from synthrelease.metadata.load import load_metadata
from synthrelease.metadata.schema import ColumnSpec, Metadata, rounded_bounds
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import TINY_METADATA, make_tiny_table


def _decimals_of(v: float) -> int:
    return next(k for k in range(17) if round(v, k) == v)


def test_float_columns_declare_decimals():
    spec = ColumnSpec(type="float", min=0.05, max=0.95, decimals=1)
    assert spec.decimals == 1 and spec.rounded_domain() == (0.1, 0.9)
    assert ColumnSpec(type="float", min=15, max=45, decimals=0).rounded_domain() == (15, 45)
    assert ColumnSpec(type="float", min=0, max=1).rounded_domain() == (0, 1)
    assert rounded_bounds(0.07, 0.3, 2) == (0.07, 0.3)  # bounds already at that precision stay
    assert rounded_bounds(-1.25, 1.25, 1) == (-1.2, 1.2)


@pytest.mark.parametrize(("column", "needle"), [
    ({"type": "integer", "min": 0, "max": 9, "decimals": 1}, "decimals applies to float columns, not integer"),
    ({"type": "categorical", "categories": ["a"], "decimals": 1}, "not categorical"),
    ({"type": "date", "min": "2001-01-01", "max": "2002-01-01", "decimals": 1}, "not date"),
    ({"type": "float", "min": 0, "max": 1, "decimals": 13}, "less than or equal to 12"),
    ({"type": "float", "min": 0, "max": 1, "decimals": -1}, "greater than or equal to 0"),
    ({"type": "float", "min": 0.111, "max": 0.119, "decimals": 2}, "no value with 2 decimal(s) lies within"),
])
def test_bad_decimals_are_one_line_errors_naming_the_column(tmp_path, column, needle):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**TINY_METADATA, "columns": {**TINY_METADATA["columns"], "bmi": column}}))
    with pytest.raises(MetadataError) as err:
        load_metadata(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: metadata field 'columns.bmi") and needle in msg and "\n" not in msg


@pytest.mark.parametrize(("lo", "hi", "decimals", "transform"), [
    (0.05, 0.95, 1, "none"), (15.0, 45.0, 1, "none"), (0.0, 100.0, 2, "log1p"), (-3.14159, 2.71828, 3, "none"),
    (0.0, 1.0, 0, "none"), (1e-4, 9.99999, 6, "log1p"),
])
def test_decoding_rounds_inside_the_bounds(lo, hi, decimals, transform):
    meta = Metadata.model_validate({"columns": {"x": {"type": "float", "min": lo, "max": hi, "decimals": decimals,
                                                      "transform": transform, "nullable": True}}})
    enc = TableEncoder(meta)
    rng = np.random.default_rng(0)
    x = np.zeros((2000, enc.width), dtype=np.float32)
    x[:, enc.span("x", "value").start] = np.concatenate([rng.uniform(-1.2, 1.2, 1994), [-1, 1, -1.5, 1.5, 0, 0]])
    miss = enc.span("x", "missing")
    x[:, miss.start] = 1.0
    x[:3, miss.start], x[:3, miss.start + 1] = 0.0, 1.0  # three missing
    values = enc.decode(x)["x"]
    assert values[:3].isna().all()
    v = values[3:].to_numpy()
    assert (v >= lo).all() and (v <= hi).all()
    assert max(_decimals_of(float(a)) for a in v) <= decimals
    r_lo, r_hi = rounded_bounds(lo, hi, decimals)
    assert v.min() == r_lo and v.max() == r_hi  # the extremes land on the inward-rounded bounds


def test_zero_inflated_column_keeps_its_zeros():
    meta = Metadata.model_validate({"columns": {"dose": {"type": "float", "min": 0.0, "max": 100.0, "decimals": 1,
                                                         "zero_inflated": True, "transform": "log1p"}}})
    enc = TableEncoder(meta)
    df = pd.DataFrame({"dose": [0.0, 0.0, 12.345, 99.99, 100.0, 0.04]})
    back = enc.decode(enc.encode(df))["dose"].tolist()
    assert back[:2] == [0.0, 0.0] and back[4] == 100.0
    assert back[2] == pytest.approx(12.3, abs=0.11) and _decimals_of(back[2]) <= 1


def test_infer_drafts_decimals_from_how_values_are_written():
    assert infer_decimals(pd.Series([1.5, 2.25, 3.0])) == 2
    assert infer_decimals(pd.Series([0.1 + 0.2, 1.7])) == 1  # float noise ignored
    assert infer_decimals(pd.Series([np.pi, 1.0])) == 6  # at most 6
    assert infer_decimals(pd.Series([2.0, np.nan])) == 0
    spec = infer_column("v", pd.Series([0.1 + 0.2, 1.25, 2.5] * 10))
    assert (spec.type, spec.decimals) == ("float", 2)
    assert spec.min == 0.3 and spec.max == 2.5  # rounded outward at that precision, never inward
    noisy = infer_column("w", pd.Series([0.29999999999999993, 1.0, 1.5]))
    assert noisy.decimals == 1 and noisy.min <= 0.29999999999999993
    meta = infer_metadata(make_tiny_table(200, seed=1), name="x", target="outcome")
    assert meta.columns["bmi"].decimals == 1 and meta.columns["dose"].decimals == 2
    assert meta.columns["age"].decimals is None  # integers round anyway


def test_tiny_dp_gan_writes_values_with_the_declared_decimals():
    doc = {**TINY_METADATA, "columns": {**TINY_METADATA["columns"]}}
    doc["columns"]["bmi"] = {**doc["columns"]["bmi"], "decimals": 1, "min": 15.05, "max": 44.95}
    doc["columns"]["dose"] = {**doc["columns"]["dose"], "decimals": 2}
    meta = Metadata.model_validate(doc)
    df = make_tiny_table(200, seed=3)
    df["bmi"] = df["bmi"].clip(15.05, 44.95)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=32, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8)
    model = train_dp_gan(df, TableEncoder(meta), cfg, condition_column="outcome",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    syn = sample_frame(model, 300, seed=2)
    bmi, dose = syn["bmi"].dropna(), syn["dose"]
    assert bmi.between(15.1, 44.9).all() and max(_decimals_of(v) for v in bmi) <= 1
    assert dose.between(0, 100).all() and max(_decimals_of(v) for v in dose) <= 2
    assert syn["age"].dtype == np.int64
