"""CSV/TSV writing in row blocks, byte for byte what ``DataFrame.to_csv(index=False)`` writes.

A wide synthetic expression table (80,000 × 20,000 float16 genes) takes pandas about 20
minutes to format (~7 MB/s: a Python string per cell). A float16 has only 65,536 bit
patterns, so its text can be looked up instead of formatted: :func:`write_delimited` formats
a trailing run of at least :data:`FAST_MIN_COLUMNS` float16 columns through one table of the
exact strings pandas writes (NumPy's shortest repr; NaN as an empty field), gathered and joined
with NumPy; the leading columns of each row are still formatted by pandas. Anything else, and
any block whose leading columns hold a line break, is written by pandas itself.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from synthrelease.io.spill import release_mapped_pages

BLOCK_CELLS = 1 << 22
"""Cells per row block (the fast path's temporary: ~13 bytes per cell)."""

FAST_MIN_COLUMNS = 64
"""Trailing float16 columns from which the lookup path is used."""


def write_delimited(path: Path, df: pd.DataFrame, sep: str) -> None:
    """Write ``df`` as delimited text (no index, header, UTF-8, ``os.linesep`` lines) to ``path``,
    a row block at a time; a spilled table's pages are let go after each block."""
    trailing = _trailing_float16(df)
    fast = trailing is not None and os.linesep == "\n" and len(sep) == 1 and sep not in "0123456789.-+eEinf\"\n\r"
    first = trailing or 0
    step = max(1, BLOCK_CELLS // max(1, df.shape[1]))
    with open(path, "wb") as handle:
        handle.write(df.iloc[:0].to_csv(sep=sep, index=False).encode("utf-8"))
        for lo in range(0, len(df), step):
            block = df.iloc[lo:lo + step]
            text = _fast_block(block, first, sep) if fast else None
            handle.write(text if text is not None else block.to_csv(sep=sep, index=False, header=False).encode("utf-8"))
            release_mapped_pages()


def _trailing_float16(df: pd.DataFrame) -> int | None:
    """Position of the first of the trailing float16 columns when there are enough of them."""
    dtypes = list(df.dtypes)
    first = len(dtypes)
    while first > 0 and dtypes[first - 1] == np.float16:
        first -= 1
    return first if len(dtypes) - first >= FAST_MIN_COLUMNS else None


@lru_cache(maxsize=4)
def _float16_table(sep: str) -> tuple[np.ndarray, np.ndarray]:
    """(bytes [65536, width] of each float16 bit pattern's text followed by ``sep``, lengths)."""
    values = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    texts = [("" if np.isnan(v) else str(s)) + sep for v, s in zip(values, values.astype(str), strict=True)]
    encoded = [t.encode("ascii") for t in texts]
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    table = np.zeros((len(encoded), int(lengths.max())), dtype=np.uint8)
    for i, b in enumerate(encoded):
        table[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
    return table, lengths


def _fast_block(block: pd.DataFrame, first: int, sep: str) -> bytes | None:
    """The block's rows as pandas writes them, or None when its leading columns hold a line break."""
    n = len(block)
    lead: list[str] = []
    if first:
        # a constant last column, cut off again: a lone empty field would be quoted ('""'),
        # which pandas does not do inside a wider row
        leading = block.iloc[:, :first].copy(deep=False)
        leading.insert(first, "end", 0, allow_duplicates=True)
        text = leading.to_csv(sep=sep, index=False, header=False, lineterminator="\n")
        lead = [line[:-2] for line in text.split("\n")[:-1]]
        if len(lead) != n:  # a quoted field with a line break: let pandas write this block
            return None
    codes = np.ascontiguousarray(block.iloc[:, first:].to_numpy(dtype=np.float16)).view(np.uint16)
    table, lengths = _float16_table(sep)
    cell_lengths = lengths[codes]
    cells = table[codes]
    flat = cells[np.arange(table.shape[1]) < cell_lengths[..., None]]
    ends = np.cumsum(cell_lengths.sum(axis=1))
    flat[ends - 1] = ord("\n")  # each row's last separator ends the line
    data = flat.tobytes()
    if not first:
        return data
    starts = np.concatenate([[0], ends[:-1]])
    pieces: list[bytes] = []
    for row, s, e in zip(lead, starts.tolist(), ends.tolist(), strict=True):
        pieces += [row.encode("utf-8"), sep.encode("ascii"), data[s:e]]
    return b"".join(pieces)
