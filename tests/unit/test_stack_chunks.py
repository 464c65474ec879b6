"""Sampled chunks stacked into one frame: equal to pd.concat, without its second copy on wide tables."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from synthrelease.errors import SynthreleaseError
from synthrelease.gan.sampling import stack_chunks


def chunks_of(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    out = []
    for lo in range(0, len(df), size):
        part = df.iloc[lo:lo + size].copy()
        part.index = pd.RangeIndex(lo, lo + len(part))  # as sample_chunks numbers them
        out.append(part)
    return out


def mixed(n: int, rng: np.random.Generator) -> pd.DataFrame:
    cols: dict[str, object] = {"kind": rng.choice(["a", "b"], n).astype(object)}
    cols |= {f"g{j}": rng.random(n).astype(np.float16) for j in range(70)}
    cols["age"] = rng.integers(0, 90, n)
    cols |= {f"h{j}": rng.random(n).astype(np.float16) for j in range(5)}
    cols["stage"] = pd.Categorical(rng.choice(["1", "2"], n), categories=["1", "2"])
    cols |= {f"x{j}": rng.random(n).astype(np.float32) for j in range(3)}
    cols["note"] = np.where(rng.random(n) < 0.3, None, "ok").astype(object)
    return pd.DataFrame(cols)


@pytest.mark.parametrize("size", [1, 7, 50])
def test_stacked_chunks_equal_concat(size):
    df = mixed(50, np.random.default_rng(0))
    parts = chunks_of(df, size)
    expected = pd.concat(parts, axis=0)
    got = stack_chunks(iter(parts), 50)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == list(df.columns)


def test_narrow_tables_are_concatenated_as_before():
    df = mixed(30, np.random.default_rng(1)).iloc[:, :20]  # 19 float16 columns < 64
    parts = chunks_of(df, 8)
    pd.testing.assert_frame_equal(stack_chunks(iter(parts), 30), pd.concat(parts, axis=0))


def test_wide_chunks_are_not_held_twice():
    rng = np.random.default_rng(2)
    df = pd.DataFrame(rng.random((4000, 300)).astype(np.float16), columns=[f"g{j}" for j in range(300)])
    df.insert(0, "kind", rng.choice(["a", "b"], 4000).astype(object))
    size = df.memory_usage(deep=True).sum()
    parts = chunks_of(df, 250)
    del df

    def measure(stack) -> tuple[float, pd.DataFrame]:
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            out = stack(p.copy() for p in parts)  # the chunks arrive one by one, as from the sampler
            return (tracemalloc.get_traced_memory()[1] - start) / size, out
        finally:
            tracemalloc.stop()

    ours, got = measure(lambda it: stack_chunks(it, 4000))
    theirs, expected = measure(lambda it: pd.concat(list(it), axis=0))
    pd.testing.assert_frame_equal(got, expected)
    assert ours < 1.3 and theirs > 1.8  # result + one chunk, against chunks + their concatenation


def test_a_short_sample_is_an_error():
    df = mixed(20, np.random.default_rng(3))
    with pytest.raises(SynthreleaseError, match="20 rows, 25 were asked"):
        stack_chunks(iter(chunks_of(df, 6)), 25)


def test_large_blocks_are_spilled_to_an_unnamed_file_and_equal_concat(monkeypatch):
    from synthrelease.io import spill

    monkeypatch.setattr(spill, "SPILL_ABOVE_BYTES", 1)
    df = mixed(40, np.random.default_rng(3))
    parts = chunks_of(df, 9)
    got = stack_chunks(iter(parts), 40)
    pd.testing.assert_frame_equal(got, pd.concat(parts, axis=0))
    assert spill.is_spilled(got["g3"].to_numpy())  # a view of the spilled block, not a copy
    assert not spill.is_spilled(got["age"].to_numpy())
