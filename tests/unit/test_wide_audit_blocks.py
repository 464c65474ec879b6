"""Block paths of the wide-table audits equal their per-column definitions exactly: the
distance encoding of runs of plain numerical columns (audits/_encoding.py) and the scaled
variances that choose the Column Pair Trends subset (audits/fidelity.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits import _encoding, fidelity
from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import Metadata


def _mixed_table(n: int = 600) -> tuple[pd.DataFrame, Metadata]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"g{j}": rng.gamma(1 + j % 4, 1.5, n).astype(np.float16 if j % 2 else np.float32)
                          for j in range(12)})
    frame.loc[rng.random(n) < 0.1, "g5"] = np.nan
    frame.loc[:3, "g6"] = 99.0  # outside the declared bounds: clipped
    frame["g7"] = frame["g3"]  # a tie in variance
    frame["n"] = rng.integers(0, 50, n)
    frame["k"] = rng.choice(["a", "b", None], n)
    frame["d"] = pd.Series(rng.uniform(0, 10, n)).where(rng.random(n) > 0.2)
    frame["s"] = rng.integers(0, 9, n).astype(str)  # numbers held as text
    columns = {**{f"g{j}": {"type": "float", "min": 0, "max": 10} for j in range(12)},
               "n": {"type": "integer", "min": 0, "max": 60},
               "k": {"type": "categorical", "categories": ["a", "b"], "nullable": True},
               "d": {"type": "float", "min": 0, "max": 10, "nullable": True},
               "s": {"type": "integer", "min": 0, "max": 9}}
    return frame, Metadata.model_validate({"version": 1, "columns": columns})


@pytest.mark.parametrize("run_columns", [None, 5])
def test_encoded_groups_equal_the_columns_encoded_one_by_one(run_columns: int | None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    frame, meta = _mixed_table()
    if run_columns:  # runs split into pieces of 5 columns
        monkeypatch.setattr(_encoding, "RUN_CELLS", len(frame) * run_columns)
    cols = meta.model_columns
    widths = [_encoding.column_width(meta, c) for c in cols]
    one_by_one = np.zeros((len(frame), sum(widths)))
    start = 0
    for c, w in zip(cols, widths, strict=True):
        _encoding._encode_column(frame, meta, c, one_by_one[:, start:start + w])
        start += w
    grouped = np.zeros_like(one_by_one)
    _encoding._encode_group(frame, meta, cols, grouped)
    assert np.array_equal(grouped, one_by_one)


def test_scaled_variances_equal_pandas_per_column() -> None:
    frame, meta = _mixed_table()
    nums = [c for c in meta.model_columns if meta.columns[c].is_numerical]

    def one(c: str) -> float:
        lo, hi = meta.columns[c].domain()
        return ((column_numbers(frame[c], meta.columns[c]).astype(np.float64) - lo) / (hi - lo)).var()

    got = fidelity._scaled_variances(frame, meta, nums)
    assert got.index.tolist() == nums
    assert got.tolist() == [one(c) for c in nums]
