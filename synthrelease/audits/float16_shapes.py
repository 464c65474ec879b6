"""Exact Kolmogorov–Smirnov statistics of float16 columns by counting their 65,536 bit patterns.

A float16 column takes at most 65,536 values. Mapped to an order-preserving integer key, each
column's empirical CDF is a cumulative count over those keys, so the two-sample KS statistic
of a whole block of columns is one ``bincount`` and one ``cumsum`` — no sort, no per-column
Python call. The statistic is *exactly* scipy's ``ks_2samp(...).statistic`` (which sdmetrics'
``KSComplement`` returns one minus): both CDFs are right-continuous step functions, so their
largest gap over the observed values equals the largest gap over all keys, and each CDF value
is the same integer count divided by the same row count. sdmetrics first rounds to 14
decimals, which merges no two float16 values (their smallest spacing is 2⁻²⁴ ≈ 6·10⁻⁸).

These statistics read private rows: the audits keep them internal, the DP gate releases only
their noisy mean (``audits.dp_figures``).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.schema import Metadata

CODES = 1 << 16
"""Distinct float16 bit patterns: keys 0 … CODES − 1; key CODES is the missing-value slot."""
BLOCK_CELLS = 1 << 21
"""Cells of a block: columns × max(rows, CODES + 1); each int64 array of a block is ≤ 16 MiB."""
GATHER_CELLS = 1 << 24
"""Cells of the float16 blocks read out of a table at a time (32 MiB): fewer, larger pandas reads."""


def _key_table() -> np.ndarray:
    """int64 key of each of the 65,536 float16 bit patterns (see :func:`order_keys`)."""
    bits = np.arange(CODES, dtype=np.int64)
    keys = np.where(bits >= 0x8000, 0x7FFF - (bits & 0x7FFF), bits + 0x8000)
    keys[0x8000] = keys[0]  # −0 == +0
    keys[np.isnan(bits.astype(np.uint16).view(np.float16))] = CODES
    return keys


_KEYS = _key_table()


def order_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving int64 keys in [0, CODES] of float16 ``values`` (any shape).

    ``a < b`` ⇔ ``key(a) < key(b)`` and ``a == b`` ⇔ equal keys (−0 and +0 share one key);
    NaN gets ``CODES``, above every number.
    """
    return _KEYS[np.ascontiguousarray(values, dtype=np.float16).view(np.uint16)]


def _compressed(real_keys: np.ndarray, synthetic_keys: np.ndarray,
                missing_lowest: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(real slots, synthetic slots, slots): the keys renumbered 0 … slots − 1 over the values
    either block holds (order kept), the missing slot last — or first with ``missing_lowest``.
    A block of a few thousand rows then counts over its few distinct values, not all 65,537."""
    used = (np.bincount(real_keys.ravel(), minlength=CODES + 1)
            + np.bincount(synthetic_keys.ravel(), minlength=CODES + 1)) > 0
    used[CODES] = True
    slot = np.cumsum(used) - 1
    slots = int(slot[CODES]) + 1
    if missing_lowest:
        slot = (slot + 1) % slots
    return slot[real_keys], slot[synthetic_keys], slots


def _cdf_counts(slots: np.ndarray, size: int, dropped: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative counts ``[columns, size]`` in value order, rows counted per column) of slots
    ``[rows, columns]``, the ``dropped`` slot (missing values) left out."""
    cols = slots.shape[1]
    offsets = np.arange(cols, dtype=np.int64) * size
    counts = np.bincount((slots + offsets).ravel(), minlength=cols * size).reshape(cols, size)
    if dropped is not None:
        counts[:, dropped] = 0
    return np.cumsum(counts, axis=1), counts.sum(axis=1)


def ks_statistics(real: np.ndarray, synthetic: np.ndarray, *, missing_lowest: bool = False) -> np.ndarray:
    """Two-sample KS statistic per column of float16 blocks ``real [n, k]`` and ``synthetic [m, k]``.

    ``missing_lowest=False``: NaN rows are dropped per column (sdmetrics' ``KSComplement``); a
    column left empty on either side gets NaN (sdmetrics returns NaN there too).
    ``missing_lowest=True``: NaN is one value below every number (the DP quality figure's sentinel).
    Unit: sup-distance of the two empirical CDFs, in [0, 1].
    """
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError("ks_statistics needs two 2-D blocks with the same number of columns")
    cols = real.shape[1]
    out = np.empty(cols, dtype=np.float64)
    width = max(1, BLOCK_CELLS // max(1, real.shape[0], synthetic.shape[0], CODES + 1))
    for lo in range(0, cols, width):
        r_slots, s_slots, size = _compressed(order_keys(real[:, lo:lo + width]),
                                             order_keys(synthetic[:, lo:lo + width]), missing_lowest)
        dropped = None if missing_lowest else size - 1
        r_cdf, r_n = _cdf_counts(r_slots, size, dropped)
        s_cdf, s_n = _cdf_counts(s_slots, size, dropped)
        # the largest gap, found exactly in integers (F_r − F_s = (R·m − S·n) / (n·m)), then
        # evaluated there as scipy does: R / n − S / m in floating point
        at = np.abs(r_cdf * s_n[:, None] - s_cdf * r_n[:, None]).argmax(axis=1)
        rows = np.arange(len(at))
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = np.abs(r_cdf[rows, at] / r_n - s_cdf[rows, at] / s_n)
        stat[(r_n == 0) | (s_n == 0)] = np.nan
        out[lo:lo + width] = stat
    return out


def counted_columns(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str]) -> list[str]:
    """The ``float`` columns of ``cols`` held as float16 in both tables, whose KS statistic
    :func:`ks_statistics` counts (every other column keeps sdmetrics' per-column metric)."""
    real_types, synthetic_types = real.dtypes, synthetic.dtypes  # one lookup table, not a Series per column
    return [c for c in cols if metadata.columns[c].type == "float"
            and real_types[c] == np.float16 and synthetic_types[c] == np.float16]


def column_blocks(real: pd.DataFrame, synthetic: pd.DataFrame,
                  cols: list[str]) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """``(columns, real [n, k], synthetic [m, k])`` float16 blocks of ``cols`` of at most
    ``GATHER_CELLS`` cells each (a spilled synthetic table lets go of each block's pages after)."""
    width = max(1, GATHER_CELLS // max(1, len(real), len(synthetic)))
    for lo in range(0, len(cols), width):
        block = cols[lo:lo + width]
        yield block, real[block].to_numpy(dtype=np.float16), synthetic[block].to_numpy(dtype=np.float16)
        release_mapped_pages()
