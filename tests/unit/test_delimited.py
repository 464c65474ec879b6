"""Delimited writing in row blocks: byte for byte what one ``DataFrame.to_csv`` writes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthrelease.io import delimited


def wide(n: int, lead: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every float16 bit pattern (NaN, ±inf, subnormals) spread over 70 trailing float16 columns."""
    codes = np.resize(rng.permutation(1 << 16).astype(np.uint16), n * 70).reshape(n, 70)
    df = pd.DataFrame(codes.view(np.float16), columns=[f"g{i}" for i in range(70)])
    if lead >= 1:  # missing, quoted and spaced labels
        df.insert(0, "cell_type", np.where(rng.random(n) < 0.2, None, rng.choice(["a", 'b,"c"', "d e"], n)))
    if lead >= 2:
        df.insert(0, "obs_id", [f"s{i}" for i in range(n)])
    return df


@pytest.mark.parametrize("lead", [0, 1, 2])
@pytest.mark.parametrize("sep", [",", "\t"])
def test_lookup_path_writes_what_pandas_writes(tmp_path, monkeypatch, lead, sep):
    monkeypatch.setattr(delimited, "BLOCK_CELLS", 7_000)  # ~100 rows per block, a short last one
    df = wide(1_000, lead, np.random.default_rng(lead))
    assert delimited._trailing_float16(df) == lead
    delimited.write_delimited(tmp_path / "fast.csv", df, sep)
    df.to_csv(tmp_path / "pandas.csv", sep=sep, index=False)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_a_line_break_in_a_leading_field_falls_back_to_pandas(tmp_path, monkeypatch):
    monkeypatch.setattr(delimited, "BLOCK_CELLS", 7_000)
    df = wide(300, 2, np.random.default_rng(9))
    df.loc[150, "cell_type"] = "two\nlines"
    calls: list[bool] = []
    fast = delimited._fast_block
    monkeypatch.setattr(delimited, "_fast_block", lambda *a: calls.append((r := fast(*a)) is None) or r)
    delimited.write_delimited(tmp_path / "fast.csv", df, ",")
    df.to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert calls.count(True) == 1 and len(calls) == 4  # only the block holding the break went to pandas


@pytest.mark.parametrize("frame", ["narrow", "interleaved", "float32", "empty"])
def test_other_tables_are_written_by_pandas_in_blocks(tmp_path, monkeypatch, frame):
    monkeypatch.setattr(delimited, "BLOCK_CELLS", 50)
    rng = np.random.default_rng(3)
    df = wide(120, 2, rng)
    if frame == "narrow":
        df = df.iloc[:, :10]
    elif frame == "interleaved":
        df.insert(40, "note", "x")
    elif frame == "float32":
        df = df.astype({c: np.float32 for c in df.columns[2:]})
    else:
        df = df.iloc[:0]
    assert delimited._trailing_float16(df) is None or frame == "empty"
    delimited.write_delimited(tmp_path / "out.csv", df, ",")
    df.to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
