"""Counted KS statistics of float16 columns (synthrelease/audits/float16_shapes.py) against
sdmetrics' KSComplement, on every column of real matrices and on the edge cases of float16."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sdmetrics.single_column import KSComplement

from synthrelease.audits import dp_figures as dpf
from synthrelease.audits import fidelity
from synthrelease.audits.float16_shapes import ks_statistics, order_keys
from synthrelease.metadata.schema import Metadata

DATA = Path(__file__).resolve().parents[2] / "synthrelease" / "data" / "breast_cancer.csv"
PBMC = Path(__file__).resolve().parents[3] / "shared" / "data" / "pbmc68k_reduced.csv"
TOL = 1e-9


def _sdmetrics_ks(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """1 − KSComplement per column, sdmetrics on float64 copies of the float16 values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([1.0 - KSComplement.compute(pd.Series(real[:, j].astype(np.float64)),
                                                    pd.Series(synthetic[:, j].astype(np.float64)))
                         for j in range(real.shape[1])])


def _halves(values: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A real matrix's rows split in two, the second half jittered (a 'synthetic' table), float16."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(values))
    half = len(values) // 2
    real = values[rows[:half]]
    synthetic = values[rows[half:]] * rng.choice([1.0, 1.01, 0.97], size=values[rows[half:]].shape)
    return real.astype(np.float16), synthetic.astype(np.float16)


def test_equals_sdmetrics_on_every_column_of_the_bundled_table() -> None:
    values = pd.read_csv(DATA).select_dtypes("number").to_numpy(dtype=np.float64)
    real, synthetic = _halves(values, seed=0)
    assert real.shape[1] >= 30
    np.testing.assert_allclose(ks_statistics(real, synthetic), _sdmetrics_ks(real, synthetic), rtol=0, atol=TOL)


def test_equals_sdmetrics_on_every_gene_of_pbmc68k() -> None:
    if not PBMC.exists():
        pytest.skip(f"{PBMC} is absent (the shared datasets are not bundled)")
    values = pd.read_csv(PBMC).select_dtypes("number").to_numpy(dtype=np.float64)
    real, synthetic = _halves(values, seed=1)
    assert real.shape[1] >= 700
    np.testing.assert_allclose(ks_statistics(real, synthetic), _sdmetrics_ks(real, synthetic), rtol=0, atol=TOL)


def test_signed_zeros_infinities_missing_and_empty_columns() -> None:
    rng = np.random.default_rng(2)
    real = rng.standard_normal((300, 6)).astype(np.float16)
    synthetic = rng.standard_normal((200, 6)).astype(np.float16)
    real[:100, 0] = 0.0
    synthetic[:50, 0] = -0.0  # equal to +0: one value
    real[:3, 1], synthetic[:4, 1] = np.inf, -np.inf
    real[rng.random(300) < 0.3, 2] = np.nan
    synthetic[:, 3] = np.nan  # empty after dropping: NaN, as sdmetrics
    real[:, 4] = np.float16(65504.0)  # the largest float16
    synthetic[:, 5] = np.float16(2.0 ** -24)  # the smallest subnormal
    got, want = ks_statistics(real, synthetic), _sdmetrics_ks(real, synthetic)
    assert np.isnan(got[3]) and np.isnan(want[3])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_order_keys_follow_the_float_order() -> None:
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    numbers = every[~np.isnan(every)]
    keys = order_keys(numbers)
    by_value = np.argsort(numbers.astype(np.float64), kind="stable")
    assert np.all(np.diff(keys[by_value]) >= 0)  # monotone
    assert len(np.unique(keys)) == len(np.unique(numbers.astype(np.float64)))  # equal iff equal values
    assert order_keys(np.array([np.nan], dtype=np.float16))[0] == 1 << 16


def test_missing_lowest_is_the_sentinel_below_every_number() -> None:
    rng = np.random.default_rng(3)
    real = rng.uniform(0, 10, (250, 4)).astype(np.float16)
    synthetic = rng.uniform(0, 11, (180, 4)).clip(0, 10).astype(np.float16)
    real[rng.random(250) < 0.2, 1] = np.nan
    synthetic[rng.random(180) < 0.6, 1] = np.nan
    sentinel = -11.0
    want = _sdmetrics_ks(np.where(np.isnan(real), sentinel, real), np.where(np.isnan(synthetic), sentinel, synthetic))
    np.testing.assert_allclose(ks_statistics(real, synthetic, missing_lowest=True), want, rtol=0, atol=TOL)


def _float_table(n: int, seed: int, dtype: type) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"g{j}": rng.gamma(1 + j, 1.0, n).clip(0, 10) for j in range(5)})
    frame.loc[rng.random(n) < 0.1, "g2"] = np.nan
    frame = frame.astype(dtype)
    frame["kind"] = rng.choice(["a", "b"], n)
    return frame


META = Metadata.model_validate({"version": 1, "columns": {
    **{f"g{j}": {"type": "float", "min": 0, "max": 10} for j in range(5)},
    "kind": {"type": "categorical", "categories": ["a", "b"]}}})


def test_audits_and_dp_figure_score_float16_tables_as_their_float64_copies() -> None:
    """The wide audit's Column Shapes and the DP gate's per-column scores: a float16 table (counted)
    and its exact float64 copy (sdmetrics per column) give the same scores."""
    real16, syn16 = _float_table(400, 4, np.float16), _float_table(350, 5, np.float16)
    real64 = real16.astype({f"g{j}": np.float64 for j in range(5)})
    syn64 = syn16.astype({f"g{j}": np.float64 for j in range(5)})
    cols = META.model_columns
    sdmeta = {"columns": {**{f"g{j}": {"sdtype": "numerical"} for j in range(5)}, "kind": {"sdtype": "categorical"}}}
    from sdmetrics.reports.single_table._properties import ColumnShapes

    got = fidelity._column_shapes_in_blocks(real16, syn16, META, cols, sdmeta, ColumnShapes)
    want = fidelity._column_shapes_in_blocks(real64, syn64, META, cols, sdmeta, ColumnShapes)
    assert got[0] == pytest.approx(want[0], abs=TOL)
    assert got[1]["Column"].tolist() == want[1]["Column"].tolist() == cols
    np.testing.assert_allclose(got[1]["Score"], want[1]["Score"], rtol=0, atol=TOL)
    np.testing.assert_allclose(dpf.column_shape_scores(real16, syn16, META),
                               dpf.column_shape_scores(real64, syn64, META), rtol=0, atol=TOL)
