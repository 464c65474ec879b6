"""Numeric encoding of rows for distance-based audits, from PUBLIC metadata only.

Numericals are min-max scaled with the declared bounds (clipped to [0, 1]; dates and
datetimes as days / seconds since 1970-01-01, read with the declared format); missing
numericals become 0.5 plus a missing indicator; categoricals are one-hot over the
declared canonical categories (missing → all zeros). No parameter is fitted on rows.

Wide tables (an encoding wider than :data:`PROJECT_ABOVE_WIDTH`, e.g. 20,000 genes) are
measured in a fixed random projection (:func:`distance_embedding`): a Johnson–Lindenstrauss
map to :data:`PROJECTION_DIMS` dimensions drawn from a public constant seed, so it reads no
row. It is computed exactly: each row's image is a fixed function of that row alone, the
same bits whatever other rows are in the table (see :func:`distance_embedding`), so the
sensitivities of the DP gate's distance figures hold as on the plain encoding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.dates import column_numbers, held_as_numbers
from synthrelease.metadata.schema import Metadata, canonical_category_series

PROJECT_ABOVE_WIDTH = 1024
"""Encodings wider than this many features are measured in the random projection."""

PROJECTION_DIMS = 256
"""Dimensions of the random projection (a power of 4, so its 1/√k scale is exact)."""

PROJECTION_SEED = 20_261_130
"""Public constant seed of the ±1 projection matrix (no row, no user seed: the same map for
every table of the same encoded width)."""

QUANTUM_BITS = 24
"""Encoded values (in [0, 1]) are rounded to multiples of 2^-24 before projecting."""

GROUP_CELLS = 1 << 24
"""Columns are projected in groups of at most this many encoded cells (rows × features),
128 MiB of float64, so no copy of the whole encoded table is ever made."""


RUN_CELLS = 1 << 21
"""A run of plain numerical columns is encoded in pieces of at most this many cells (16 MiB of
float64 per temporary), beside the column group it is written into."""


def column_width(metadata: Metadata, column: str) -> int:
    """Encoded features of one metadata column (1 or 2 for a numerical, its categories otherwise)."""
    spec = metadata.columns[column]
    if spec.is_numerical:
        return 2 if spec.nullable else 1
    return len(spec.canonical_categories())


def _encode_column(df: pd.DataFrame, metadata: Metadata, column: str, out: np.ndarray) -> None:
    """Write the encoding of ``column`` into ``out`` ([n, column_width]; zeros on entry)."""
    spec = metadata.columns[column]
    if spec.is_numerical:
        x = column_numbers(df[column], spec).to_numpy(dtype=np.float64)
        lo, hi = spec.domain()
        missing = np.isnan(x)
        scaled = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        scaled[missing] = 0.5
        out[:, 0] = scaled
        if spec.nullable:
            out[:, 1] = missing
    else:
        index = {k: i for i, k in enumerate(spec.canonical_categories())}
        codes = canonical_category_series(df[column]).map(index).to_numpy()
        ok = ~pd.isna(codes)
        out[np.nonzero(ok)[0], codes[ok].astype(int)] = 1.0


def _plain_number(dtypes: pd.Series, metadata: Metadata, column: str) -> bool:
    """An integer/float column without a missing-value feature already held as numbers (``dtypes``:
    the table's): its :func:`column_numbers` is the values themselves, so a run of them encodes as one block."""
    spec = metadata.columns[column]
    return not spec.nullable and held_as_numbers(spec, dtypes[column])


def _encode_group(df: pd.DataFrame, metadata: Metadata, cols: list[str], out: np.ndarray) -> None:
    """Write the encoding of ``cols`` side by side into ``out`` (zeros on entry): runs of
    :func:`_plain_number` columns as blocks of at most :data:`RUN_CELLS` cells (the same values
    as :func:`_encode_column` gives each: (x − lo)/(hi − lo) clipped to [0, 1], missing 0.5),
    every other column on its own."""
    start = i = 0
    dtypes = df.dtypes
    longest = max(1, RUN_CELLS // max(1, len(df)))
    while i < len(cols):
        run = i
        while run < len(cols) and run - i < longest and _plain_number(dtypes, metadata, cols[run]):
            run += 1
        if run > i:
            names = cols[i:run]
            lo, hi = (np.array([metadata.columns[c].domain()[k] for c in names], dtype=np.float64) for k in (0, 1))
            x = df[names].to_numpy(dtype=np.float64, na_value=np.nan)
            scaled = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
            scaled[np.isnan(x)] = 0.5
            out[:, start:start + len(names)] = scaled
            start, i = start + len(names), run
            continue
        w = column_width(metadata, cols[i])
        _encode_column(df, metadata, cols[i], out[:, start:start + w])
        start, i = start + w, i + 1


def encode_for_distance(df: pd.DataFrame, metadata: Metadata, columns: list[str] | None = None) -> np.ndarray:
    """float32 [n, width] encoding of ``df`` for nearest-neighbour audits, filled column by column
    (no float64 copy of the table)."""
    cols = columns or metadata.model_columns
    widths = [column_width(metadata, c) for c in cols]
    out = np.zeros((len(df), sum(widths)), dtype=np.float32)
    start = 0
    for c, w in zip(cols, widths, strict=True):
        block = np.zeros((len(df), w))
        _encode_column(df, metadata, c, block)
        out[:, start:start + w] = block
        start += w
    return out


def _groups(metadata: Metadata, n_rows: int) -> Iterator[tuple[list[str], int, int]]:
    """(columns, first feature, width) groups of model columns with at most GROUP_CELLS cells."""
    limit = max(1, GROUP_CELLS // max(1, n_rows))
    group: list[str] = []
    first = width = 0
    for c in metadata.model_columns:
        w = column_width(metadata, c)
        if group and width + w > limit:
            yield group, first, width
            group, first, width = [], first + width, 0
        group.append(c)
        width += w
    if group:
        yield group, first, width


def projection_matrix(width: int) -> np.ndarray:
    """The public ±1 matrix [width, PROJECTION_DIMS] (float64) of :func:`distance_embedding`."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return np.where(rng.random((width, PROJECTION_DIMS)) < 0.5, -1.0, 1.0)


def distance_embedding(df: pd.DataFrame, metadata: Metadata, *,
                       permute: np.random.Generator | None = None) -> np.ndarray:
    """float64 rows for distance audits: the plain encoding (:func:`encode_for_distance`) up to
    :data:`PROJECT_ABOVE_WIDTH` features, its exact random projection above.

    ``permute``: each metadata column's encoded block is permuted over the rows independently
    (``permute.permutation(n)``, in model-column order) before it enters: a sample of the product
    of the column marginals (the DOMIAS reference of the DP gate).

    Projection (wide tables): each encoded value v ∈ [0, 1] is rounded to q = round(v·2^24), an
    integer; the image is (q @ R)·2^-24/√k with R the public ±1 matrix of
    :func:`projection_matrix` and k = 256. Every partial sum is an integer below 2^53 (width ·
    2^24), so float64 adds it exactly in any order and with any blocking: a row's image is a
    fixed function of the row (no dependence on the other rows, on BLAS threads or on the
    column groups), and identical rows have identical images. Distances are kept in expectation
    (E‖xR‖²/k = ‖x‖²), with a relative spread of about √(2/k) ≈ 9 % on squared distances.
    Memory: the [n, 256] result plus one column group of :data:`GROUP_CELLS` cells.
    """
    width = sum(column_width(metadata, c) for c in metadata.model_columns)
    n = len(df)
    if width <= PROJECT_ABOVE_WIDTH:
        if permute is None:
            return encode_for_distance(df, metadata).astype(np.float64)
        blocks = [encode_for_distance(df, metadata, [c]).astype(np.float64) for c in metadata.model_columns]
        return np.hstack([block[permute.permutation(n)] for block in blocks])
    matrix = projection_matrix(width)
    out = np.zeros((n, PROJECTION_DIMS))
    scale = float(2 ** QUANTUM_BITS)
    for cols, first, w in _groups(metadata, n):
        block = np.zeros((n, w))
        _encode_group(df, metadata, cols, block)
        if permute is not None:  # column by column, in model-column order
            start = 0
            for c in cols:
                cw = column_width(metadata, c)
                block[:, start:start + cw] = block[permute.permutation(n), start:start + cw]
                start += cw
        np.rint(block * scale, out=block)
        out += block @ matrix[first:first + w]
        release_mapped_pages()  # a spilled synthetic table: only this group's pages were resident
    out *= 1.0 / (scale * np.sqrt(PROJECTION_DIMS))  # 2^-24 / 16: a power of two, exact
    return out


def embedding_note(metadata: Metadata) -> str | None:
    """One line for the reports when the distances are measured in the projection, else None."""
    width = sum(column_width(metadata, c) for c in metadata.model_columns)
    if width <= PROJECT_ABOVE_WIDTH:
        return None
    return (f"{width} encoded features > {PROJECT_ABOVE_WIDTH}: distances measured in a fixed public random "
            f"projection to {PROJECTION_DIMS} dimensions (±1 Johnson-Lindenstrauss map, constant seed, values "
            f"rounded to 2^-{QUANTUM_BITS}, computed exactly; squared distances kept in expectation, spread "
            f"about 9 %)")
