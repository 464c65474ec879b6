"""Sequences as positional tables: the DP-GAN's view of a sequence set (public layout only).

A sequence of at most L letters becomes L categorical columns ``pos_001 … pos_L`` over the
public alphabet plus an end token ``-`` (padding after the sequence's last letter). The
tabular DP-GAN then emits a distribution over the alphabet and the end token at every
position (Gumbel-softmax, as for any categorical column), its DP marginals are
position-specific letter frequencies per label, and a 1-D convolutional discriminator reads
the positions in order (``TrainingConfig.discriminator_kind = "conv1d"``). The layout is a
function of the metadata alone (alphabet, ``max_length``, label categories).

A categorical column ``_length`` (``min_length`` … ``max_length``) carries each sequence's
length, so the DP marginals hold the per-label length histogram and the generator emits a
length with the letters. Sampling draws the length first and then only letters at the
positions before it (:func:`consistent_logits`), so a synthetic sequence has exactly the
length drawn. Measured on amp_vs_uniprot at ε = 3 (benchmarks/results/sequences*.md):
without the length column, lengths came from scattered end tokens and their distribution
was far off (total variation 0.52 against the real one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthrelease.gan.models import POSITION_PREFIX
from synthrelease.metadata.alphabets import resolve_alphabet
from synthrelease.metadata.schema import Metadata

END = "-"
"""The end/padding token of a position."""
LENGTH_COLUMN = "_length"
"""The positional table's length column (a name no sequence table may use)."""


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
    if LENGTH_COLUMN in metadata.columns:
        raise ValueError(f"column name {LENGTH_COLUMN!r} is reserved in sequence tables")
    columns: dict[str, dict] = {c: {"type": "categorical", "categories": [*letters, END]}
                                for c in position_columns(int(spec.max_length or 1))}
    columns[LENGTH_COLUMN] = {"type": "categorical",
                              "categories": list(range(int(spec.min_length or 1), int(spec.max_length or 1) + 1))}
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
    out[LENGTH_COLUMN] = df[column].astype(str).str.len().clip(upper=max_length).to_numpy()
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


def consistent_logits(encoder: Any, metadata: Metadata) -> Any:
    """A sampling hook: given the generator's logits and a first draw, fix the drawn length and
    allow only letters before it and only the end token after it (post-processing)."""
    import torch

    column = metadata.sequence_column
    assert column is not None
    length_span = encoder.span(LENGTH_COLUMN, "category")
    lengths = torch.tensor([int(float(c)) for c in encoder.categories(LENGTH_COLUMN)])
    spans = [encoder.span(c, "category") for c in position_columns(int(metadata.columns[column].max_length or 1))]
    end = encoder.categories(spans[0].column).index(END)
    big = 1e9

    def adjust(raw: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        pick = first[:, length_span.start:length_span.stop].argmax(dim=1)
        n = raw.shape[0]
        out = raw.clone()
        out[:, length_span.start:length_span.stop] = -big
        out[torch.arange(n), length_span.start + pick] = big
        drawn = lengths[pick]
        for k, s in enumerate(spans, start=1):
            inside = drawn >= k
            out[inside, s.start + end] = -big
            block = out[~inside, s.start:s.stop]
            block[:] = -big
            block[:, end] = big
            out[~inside, s.start:s.stop] = block
        return out

    return adjust
