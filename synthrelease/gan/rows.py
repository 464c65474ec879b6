"""Access to the encoded private rows: materialised once, or encoded batch by batch.

A wide table (20,000 genes × 100,000 cells encodes to ~60,000 floats per row, 24 GB)
cannot be held encoded; :class:`LazyEncodedRows` keeps only the table and encodes the
rows each Poisson batch (or each measurement chunk) asks for. Which one is used depends
only on public quantities (row count × encoded width). The encoding is the same
metadata-only :class:`~synthrelease.transforms.encoders.TableEncoder` either way, so the
privacy analysis does not change.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import torch
from torch.utils.data import Dataset

from synthrelease.transforms.encoders import TableEncoder

MATERIALISE_LIMIT_BYTES = 1 << 30
"""Encode the whole table up front when it takes at most this much memory (float32)."""


class EncodedRows(Dataset[torch.Tensor]):
    """Encoded private rows held in memory; ``__getitems__`` fetches a whole batch at once."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.width = int(x.shape[1])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]

    def __getitems__(self, idx: list[int]) -> torch.Tensor:
        return self.x[torch.as_tensor(idx, dtype=torch.long)]

    def chunks(self, rows: int) -> Iterator[torch.Tensor]:
        """Consecutive blocks of at most ``rows`` encoded rows."""
        for i in range(0, len(self), rows):
            yield self.x[i:i + rows]


class LazyEncodedRows(Dataset[torch.Tensor]):
    """The private table, encoded on demand (no full encoded copy in memory)."""

    def __init__(self, table: pd.DataFrame, encoder: TableEncoder) -> None:
        self.table = table
        self.encoder = encoder
        self.width = encoder.width

    def __len__(self) -> int:
        return len(self.table)

    def _encode(self, rows: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(self.encoder.encode(rows))

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._encode(self.table.iloc[[i]])[0]

    def __getitems__(self, idx: list[int]) -> torch.Tensor:
        return self._encode(self.table.iloc[list(idx)])

    def chunks(self, rows: int) -> Iterator[torch.Tensor]:
        """Consecutive blocks of at most ``rows`` encoded rows."""
        for i in range(0, len(self), rows):
            yield self._encode(self.table.iloc[i:i + rows])


RowSource = EncodedRows | LazyEncodedRows


def encoded_rows(table: pd.DataFrame, encoder: TableEncoder, *, limit_bytes: int | None = None) -> RowSource:
    """In-memory rows when ``n × width × 4`` bytes ≤ ``limit_bytes`` (default
    :data:`MATERIALISE_LIMIT_BYTES`), else lazily encoded rows."""
    limit = MATERIALISE_LIMIT_BYTES if limit_bytes is None else limit_bytes
    if len(table) * encoder.width * 4 <= limit:
        return EncodedRows(torch.from_numpy(encoder.encode(table)))
    return LazyEncodedRows(table, encoder)
