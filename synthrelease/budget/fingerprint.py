"""A content fingerprint of a private table, for the privacy ledger's lifetime caps.

The ledger matches a release to earlier ones by dataset name, by the file's SHA-256 and by
this fingerprint, so that renaming a dataset and re-exporting its file (a trailing newline,
other quoting, CSV → Parquet) does not escape its cap.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.errors import DataValidationError
from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import Metadata, canonical_category

FINGERPRINT_VERSION = b"synthrelease-table-fingerprint/1\n"
_MISSING, _NUMBER, _TEXT = 0, 1, 2
_CELL = 17  # bytes per cell: a tag, then 16 bytes (a little-endian float64 and 8 zeros, or 16 bytes of SHA-256)
_CHUNK_BYTES = 1 << 27  # rows are hashed in blocks of about 128 MiB of cells (wide tables: few blocks)


def _cell(value: Any) -> bytes:
    """The fixed-width encoding of one value (any type, as read from CSV or Parquet)."""
    canon = canonical_category(value)  # None: missing (None, NaN, "", "nan"); strings stripped
    if canon is None:
        return bytes(_CELL)
    number: float | None = None
    if isinstance(value, bool | np.bool_):
        number = float(bool(value))
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        low = canon.lower()
        if low in ("true", "false"):
            number = 1.0 if low == "true" else 0.0
        else:
            try:
                number = float(canon)
            except (ValueError, OverflowError):
                number = None
    if number is not None:
        if math.isnan(number):
            return bytes(_CELL)
        return bytes([_NUMBER]) + struct.pack("<d", number + 0.0) + bytes(8)  # + 0.0: -0.0 → 0.0
    digest = hashlib.sha256(canon.encode("utf-8", "surrogatepass")).digest()[:16]
    return bytes([_TEXT]) + digest


def _numeric_cells(x: np.ndarray) -> np.ndarray:
    """Cells of a float64 array (same encoding as :func:`_cell`), shape (len(x), 17)."""
    x = np.asarray(x, dtype=np.float64)
    missing = np.isnan(x)
    clean = np.where(missing, 0.0, x) + 0.0  # -0.0 → 0.0
    cells = np.zeros((len(x), _CELL), dtype=np.uint8)
    cells[:, 0] = np.where(missing, _MISSING, _NUMBER)
    cells[:, 1:9] = clean.astype("<f8").view(np.uint8).reshape(len(x), 8)
    return cells


class _Column:
    """One column, ready to give the cells of any block of rows.

    A numeric column keeps its own array (float32 stays float32; converted to float64 a
    block at a time), so a wide expression matrix is not copied as float64.
    """

    def __init__(self, series: pd.Series) -> None:
        self.numbers: np.ndarray | None = None
        self.codes: np.ndarray | None = None
        self.table: np.ndarray | None = None
        dtype = series.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
            self.numbers = series.to_numpy()  # no copy when the frame holds the column as one array
        elif pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                                   and not pd.api.types.is_complex_dtype(dtype)):
            self.numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            codes, uniques = pd.factorize(series.astype(object).to_numpy(), use_na_sentinel=True)
            table = np.zeros((len(uniques) + 1, _CELL), dtype=np.uint8)  # last row: missing (code -1)
            for i, value in enumerate(uniques):
                table[i] = np.frombuffer(_cell(value), dtype=np.uint8)
            self.codes, self.table = codes, table

    def cells(self, start: int, stop: int) -> np.ndarray:
        if self.numbers is not None:
            return _numeric_cells(self.numbers[start:stop])
        assert self.codes is not None and self.table is not None
        return self.table[self.codes[start:stop]]  # code -1 picks the last row: missing

    def key(self, n_rows: int) -> bytes:
        """SHA-256 of the column's sorted cells: its multiset of values, independent of its name.

        Computed from the distinct cells and their counts (equal cells are equal bytes, so
        sorting the distinct cells and repeating each by its count gives the same bytes as
        sorting every cell), which is fast on columns with few distinct values (zeros of an
        expression matrix, categories).
        """
        if self.numbers is not None:
            x = np.asarray(self.numbers[:n_rows], dtype=np.float64)
            missing = np.isnan(x)
            values = x[~missing] + 0.0  # -0.0 → 0.0, as in the cells
            nonzero = values[values != 0.0]
            distinct, counts = np.unique(nonzero, return_counts=True)
            extra_values = [0.0] if len(nonzero) < len(values) else []
            extra_counts = [len(values) - len(nonzero)] if extra_values else []
            distinct_cells = _numeric_cells(np.concatenate([distinct, np.asarray(extra_values, np.float64)]))
            counts = np.concatenate([counts, np.asarray(extra_counts, dtype=counts.dtype)])
            n_missing = int(missing.sum())
            if n_missing:
                distinct_cells = np.vstack([distinct_cells, np.zeros((1, _CELL), np.uint8)])
                counts = np.append(counts, n_missing)
        else:
            assert self.codes is not None and self.table is not None
            counts = np.bincount(self.codes[:n_rows] + 1, minlength=len(self.table))  # bin 0: missing (-1)
            distinct_cells = np.vstack([self.table[-1:], self.table[:-1]])
        order = np.argsort(np.ascontiguousarray(distinct_cells).view(f"V{_CELL}").ravel(), kind="stable")
        cells = np.repeat(distinct_cells[order], counts[order], axis=0)
        return hashlib.sha256(np.ascontiguousarray(cells).tobytes()).digest()


def table_fingerprint(df: pd.DataFrame, metadata: Metadata) -> str:
    """SHA-256 (hex) of the multiset of rows of ``df`` over the synthesised columns.

    What it covers: the columns training reads, ``metadata.model_columns`` (identifier
    columns are dropped before training, so re-numbering or adding identifiers cannot change
    it). Each value is canonicalised whatever the file format made of it: a number (integers,
    floats, numeric strings, booleans as 1/0, "true"/"false") is its float64, with -0.0 = 0.0;
    any other value is :func:`~synthrelease.metadata.schema.canonical_category`'s string
    (surrounding spaces ignored); a date or datetime column's value is its number of days /
    seconds since 1970-01-01 (read with the declared format, so an ISO re-export or a
    Parquet datetime column gives the same cells); a missing value (None, NaN, NA, "",
    "nan") is one fixed token. Each row's cells are hashed in a canonical column order (columns sorted by the
    hash of their own sorted values, ties in metadata order); the sorted row hashes are
    hashed with the row and column counts.

    So it is the same for the same rows whatever the CSV quoting, whitespace around values,
    line endings, trailing newline, row order, column order in the file or in the metadata,
    column names, and file format (CSV or Parquet), and whether a column is declared integer,
    float or categorical-of-numbers.

    What it cannot catch: any change to the rows' content gives an unrelated fingerprint —
    one value changed, a row added or removed (a sample, a subset or a superset of the
    cohort), a column added, dropped or declared an identifier, values rounded or recoded.
    A near-duplicate table is a different table here; a steward who wants "the same cohort"
    protection across such versions must keep the dataset name (the ledger's primary key).
    Rare exception: two columns with the same multiset of values that are swapped in the
    metadata *and* renamed may give another fingerprint (their tie is broken by metadata order).

    Raises:
        DataValidationError: a declared synthesised column is missing from ``df``.
    """
    columns = list(metadata.model_columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(f"table fingerprint: declared column(s) missing from the table: "
                                  f"{', '.join(repr(c) for c in missing)}")
    n = len(df)
    prepared = [_Column(column_numbers(df[c], metadata.columns[c]) if metadata.columns[c].is_temporal else df[c])
                for c in columns]
    keys = [col.key(n) for col in prepared]
    ordered = [prepared[i] for i in sorted(range(len(prepared)), key=lambda i: keys[i])]  # stable: ties keep order
    step = max(1, _CHUNK_BYTES // max(1, _CELL * len(ordered)))
    blocks: list[bytes] = []
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = np.ascontiguousarray(np.concatenate([col.cells(start, stop) for col in ordered], axis=1))
        blocks.append(b"".join(hashlib.sha256(row).digest() for row in block))
    row_digests = np.frombuffer(b"".join(blocks), dtype="V32")
    h = hashlib.sha256(FINGERPRINT_VERSION)
    h.update(struct.pack("<QQ", n, len(ordered)))
    h.update(np.sort(row_digests).tobytes())
    return h.hexdigest()
