"""Sampling synthetic sequences from a saved sequence model chunk by chunk, atomically.

Post-processing of the DP model: nothing here reads private data, and the randomness is
public (the user's ``--seed``: the same seed gives the same sequences, whatever the chunk
size). Sequences are drawn in blocks of :data:`BLOCK` records, each from its own seed of a
:class:`~synthrelease.privacy.randomness.SeedTree`, and written as they come:

* ``.fasta`` (``.fa``, ``.faa``, ``.fna``, optionally ``.gz``): ``>syn-N label=…`` records;
* ``.csv``: the sequence column and the label column, with a header.

The output appears complete or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from synthrelease.errors import SynthreleaseError

BLOCK = 4096
"""Sequences drawn per seed (and per pass through the network)."""


def _fixed_class(model: Any, condition: dict[str, str] | None) -> int | None:
    """The index of the declared label ``--condition COLUMN=VALUE`` asks for (None without one)."""
    from synthrelease.gan.sampling import condition_index

    meta = model.metadata
    target = meta.target if model.inner.vocabulary.classes else None
    return condition_index(condition, target, meta.columns[target].canonical_categories() if target else [],
                           untrained="this sequence model was trained without labels: --condition does not apply")


def sequence_chunks(model: Any, n: int, *, seed: int, condition: dict[str, str] | None = None,
                    chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield ``n`` synthetic sequences (and labels) as DataFrames of at most ``chunk_rows`` rows.

    Raises:
        SynthreleaseError: bad ``n``, ``chunk_rows`` or ``condition`` (before anything is drawn).
    """
    if n < 1 or chunk_rows < 1:
        raise SynthreleaseError(f"sequences and chunk size must be >= 1, got {n} and {chunk_rows}")
    from synthrelease.modalities.sequence.modality import sample_autoregressive
    from synthrelease.privacy.randomness import SeedTree

    fixed = _fixed_class(model, condition)
    seeds = SeedTree(seed)
    pending: list[pd.DataFrame] = []
    held = 0
    for block, start in enumerate(range(0, n, BLOCK)):
        frame = sample_autoregressive(model, min(BLOCK, n - start), seed=seeds.integer(f"block-{block}"),
                                      fixed_class=fixed)
        pending.append(frame)
        held += len(frame)
        while held >= chunk_rows:
            joined = pd.concat(pending, ignore_index=True)
            yield joined.iloc[:chunk_rows].reset_index(drop=True)
            pending, held = [joined.iloc[chunk_rows:]], len(joined) - chunk_rows
    if held:
        yield pd.concat(pending, ignore_index=True)


def write_sequence_stream(model: Any, n: int, output: str | os.PathLike[str], *, seed: int,
                          condition: dict[str, str] | None = None, chunk_rows: int = 50_000) -> Path:
    """Sample ``n`` sequences from a sequence model and write them to ``output`` (FASTA or CSV by
    extension; see the module docstring), atomically.

    Raises:
        SynthreleaseError: ``output`` is neither FASTA nor CSV, or a bad ``condition`` (before anything
            is written).
    """
    from synthrelease.io.fasta import is_fasta_path, write_fasta_stream
    from synthrelease.io.files import atomic_output

    out = Path(output)
    fasta = is_fasta_path(out)
    if not fasta and out.suffix.lower() != ".csv":
        raise SynthreleaseError(f"{out}: a sequence model samples to a FASTA file (.fasta, .fa, .faa, .fna, "
                                "optionally .gz) or a .csv file")
    chunks = sequence_chunks(model, n, seed=seed, condition=condition, chunk_rows=chunk_rows)
    first = next(chunks)  # a bad condition fails here, before any file exists

    def all_chunks() -> Iterator[pd.DataFrame]:
        yield first
        yield from chunks

    meta = model.metadata
    if fasta:
        header = (meta.target,) if meta.target is not None and meta.target in first.columns else ()
        write_fasta_stream(out, all_chunks(), sequence_column=str(meta.sequence_column), header_columns=header)
        return out
    with atomic_output(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for i, chunk in enumerate(all_chunks()):
            chunk.to_csv(f, index=False, header=(i == 0))
    return out
