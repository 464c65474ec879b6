"""Writing sampled rows to CSV, TSV, Parquet or AnnData chunk by chunk, atomically."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from synthrelease.errors import SynthreleaseError
from synthrelease.gan.sampling import sample_chunks
from synthrelease.gan.trainer import TrainedModel
from synthrelease.io.files import atomic_output
from synthrelease.io.formats import PARQUET_ROW_GROUP_CELLS as ROW_GROUP_CELLS
from synthrelease.io.formats import TableFormat, write_h5ad_stream

SAMPLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None, ".h5ad": None}
"""The outputs a table model samples to (delimited text: its separator)."""


def write_sample_stream(model: TrainedModel, n_rows: int, output: str | os.PathLike[str], *, seed: int,
                        condition: dict[str, str] | None = None, chunk_rows: int = 50_000) -> Path:
    """Sample ``n_rows`` and stream them to ``output`` via a temp file + rename.

    ``.csv``/``.tsv``/``.parquet``: every chunk is written as it is drawn (flat memory).
    ``.h5ad``: :func:`~synthrelease.io.formats.write_h5ad_stream` — genes stream to ``X``, the
    other columns (``obs``) are held until the end; laid out as the training table was when the
    model records an AnnData layout (:attr:`TrainedModel.table_format`), else every numerical
    column becomes a gene and the others ``obs`` (:func:`h5ad_layout`).

    Raises:
        SynthreleaseError: ``output`` ends in another suffix (one line listing the accepted ones).
    """
    out = Path(output)
    suffix = out.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise SynthreleaseError(f"{out}: a table model samples to {', '.join(SAMPLE_SUFFIXES)} "
                                f"(not {repr(suffix) if suffix else 'a name without an extension'})")
    chunks = sample_chunks(model, n_rows, seed=seed, condition=condition, chunk_rows=chunk_rows)
    if suffix == ".h5ad":
        first = next(chunks)
        write_h5ad_stream(out, itertools.chain([first], chunks), h5ad_layout(model, first))
        return out
    with atomic_output(out) as tmp:
        if suffix == ".parquet":
            _write_parquet(tmp, chunks, chunk_rows)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for i, chunk in enumerate(chunks):
                    chunk.to_csv(f, sep=SAMPLE_SUFFIXES[suffix], index=False, header=(i == 0))
    return out


def h5ad_layout(model: TrainedModel, first: pd.DataFrame) -> TableFormat:
    """The AnnData layout of a sample: the model's own (trained on ``.h5ad``: the same genes and
    ``obs`` columns), or — for a model trained on another format or saved before models recorded
    it — every numerical, non-boolean column of the sample as a gene, the others as ``obs``."""
    fmt = model.table_format
    if fmt is not None and fmt.kind == "h5ad":
        return fmt
    genes = tuple(str(c) for c in first.columns if pd.api.types.is_numeric_dtype(first[c].dtype)
                  and not pd.api.types.is_bool_dtype(first[c].dtype))
    return TableFormat("h5ad", obs_columns=tuple(str(c) for c in first.columns if str(c) not in genes),
                       var_names=genes)


def _write_parquet(tmp: Path, chunks: Iterator[pd.DataFrame], chunk_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    pending: list[pa.Table] = []

    def flush() -> None:
        if pending:
            group = pa.concat_tables(pending)
            writer.write_table(group, row_group_size=group.num_rows)  # type: ignore[union-attr]
            pending.clear()

    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            pending.append(table.cast(writer.schema))
            # row groups of ≥ chunk_rows rows or ROW_GROUP_CELLS cells: a wide table's small
            # sampling chunks would otherwise pile up per-column metadata in every row group
            if sum(t.num_rows for t in pending) >= min(chunk_rows, ROW_GROUP_CELLS // table.num_columns):
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
