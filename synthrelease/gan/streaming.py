"""Writing sampled rows to CSV or Parquet chunk by chunk, in flat memory, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from synthrelease.errors import SynthreleaseError
from synthrelease.gan.sampling import sample_chunks
from synthrelease.gan.trainer import TrainedModel
from synthrelease.io.files import atomic_output
from synthrelease.io.formats import PARQUET_ROW_GROUP_CELLS as ROW_GROUP_CELLS


def write_sample_stream(model: TrainedModel, n_rows: int, output: str | os.PathLike[str], *, seed: int,
                        condition: dict[str, str] | None = None, chunk_rows: int = 50_000) -> Path:
    """Sample ``n_rows`` and stream them to ``output`` (.csv or .parquet) via a temp file + rename."""
    out = Path(output)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SynthreleaseError(f"{out}: output must end in .csv or .parquet")
    chunks = sample_chunks(model, n_rows, seed=seed, condition=condition, chunk_rows=chunk_rows)
    with atomic_output(out) as tmp:
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for i, chunk in enumerate(chunks):
                    chunk.to_csv(f, index=False, header=(i == 0))
        else:
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
    return out
