"""Sequences as positional tables: the DP-GAN's view of a sequence set (public layout only).

A sequence of at most L letters becomes L categorical columns ``pos_001 … pos_L`` over the
public alphabet plus an end token ``-`` (padding after the sequence's last letter). The
tabular DP-GAN then emits a distribution over the alphabet and the end token at every
position (Gumbel-softmax, as for any categorical column), its DP marginals are
position-specific letter frequencies per label, and a 1-D convolutional discriminator reads
the positions in order (``TrainingConfig.discriminator_kind = "conv1d"``). The layout is a
function of the metadata alone (alphabet, ``max_length``, label categories).

Decoding drops the end tokens and keeps the letters in order, so a synthetic sequence's
length is its count of letter positions (its expectation is what the DP marginals of the
end token at each position say). Sequences shorter than ``min_length`` are not released:
the sampler draws again (post-processing of the DP model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthrelease.metadata.schema import Metadata
from synthrelease.sequences.alphabet import resolve_alphabet

END = "-"
"""The end/padding token of a position."""
POSITION_PREFIX = "pos_"


def position_columns(max_length: int) -> list[str]:
    """``pos_001`` … one column per position (zero-padded, so they sort in order)."""
    width = max(3, len(str(max_length)))
    return [f"{POSITION_PREFIX}{i:0{width}d}" for i in range(1, max_length + 1)]


def positional_metadata(metadata: Metadata) -> Metadata:
    """The positional table's public metadata: one categorical column per position, the label."""
    column = metadata.sequence_column
    if column is None:
        raise ValueError("metadata has no sequence column")
    spec = metadata.columns[column]
    letters = list(resolve_alphabet(spec.alphabet or ""))
    columns: dict[str, dict] = {c: {"type": "categorical", "categories": [*letters, END]}
                                for c in position_columns(int(spec.max_length or 1))}
    if metadata.target is not None:
        columns[metadata.target] = metadata.columns[metadata.target].model_dump(mode="json", exclude_none=True)
    return Metadata.model_validate({"version": 1, "name": metadata.name, "reviewed": metadata.reviewed,
                                    "target": metadata.target, "columns": columns})


def to_positions(df: pd.DataFrame, metadata: Metadata) -> pd.DataFrame:
    """Cleaned sequences (already validated) → the positional table (plus the label)."""
    column = metadata.sequence_column
    assert column is not None
    max_length = int(metadata.columns[column].max_length or 1)
    padded = df[column].astype(str).str.slice(0, max_length).str.ljust(max_length, END)
    chars = np.array([list(s) for s in padded], dtype=object).reshape(len(df), max_length)
    out = pd.DataFrame(chars, columns=position_columns(max_length))
    if metadata.target is not None:
        out[metadata.target] = df[metadata.target].to_numpy()
    return out


def from_positions(positional: pd.DataFrame, metadata: Metadata) -> pd.DataFrame:
    """The positional table → sequences (end tokens dropped) and the label, in the metadata's order."""
    column = metadata.sequence_column
    assert column is not None
    cols = position_columns(int(metadata.columns[column].max_length or 1))
    letters = positional[cols].astype(str).to_numpy()
    sequences = ["".join(ch for ch in row if ch != END) for row in letters]
    out = pd.DataFrame({column: sequences})
    if metadata.target is not None:
        out[metadata.target] = positional[metadata.target].to_numpy()
    return out[[c for c in metadata.model_columns if c in out.columns]]
