"""Draft metadata for a FASTA file (reads private records: the draft is ``reviewed: false``).

The draft's alphabet and length bounds are read off the private sequences, like a table
draft's bounds: the steward replaces them with public knowledge (the assay's alphabet, the
study's length range) before setting ``reviewed: true``.
"""

from __future__ import annotations

import os

import pandas as pd

from synthrelease.metadata.alphabets import ALPHABETS
from synthrelease.metadata.infer import infer_column
from synthrelease.metadata.schema import ColumnSpec, Metadata

SEQUENCE_COLUMN = "sequence"
ID_COLUMN = "id"


def draft_alphabet(sequences: pd.Series) -> str:
    """``dna`` or ``rna`` when every letter is a nucleotide of it, else ``protein``."""
    letters = set("".join(sequences.astype(str).str.strip().str.upper()))
    for name in ("dna", "rna"):
        if letters <= set(ALPHABETS[name]):
            return name
    return "protein"


def _numbers_if_all_numeric(values: pd.Series) -> pd.Series:
    """Header values are text; a key whose every value parses as a number drafts as a number."""
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError):
        return values


def draft_fasta_metadata(path: str | os.PathLike[str], *, name: str, target: str | None) -> Metadata:
    """A draft :class:`Metadata` for the records of a FASTA file: the record id as the
    identifier, the sequence column, one column per header key (``>id|label`` → ``label``).

    Raises:
        InputFileError: the FASTA reader's one-line errors.
        MetadataError: ``target`` is not a header key of the file.
    """
    from synthrelease.errors import MetadataError
    from synthrelease.io.fasta import read_fasta

    frame = read_fasta(path)
    lengths = frame[SEQUENCE_COLUMN].astype(str).str.strip().str.len()
    columns: dict[str, ColumnSpec] = {
        ID_COLUMN: ColumnSpec(type="identifier"),
        SEQUENCE_COLUMN: ColumnSpec(type="sequence", alphabet=draft_alphabet(frame[SEQUENCE_COLUMN]),
                                    min_length=max(1, int(lengths.min())), max_length=int(lengths.max())),
    }
    for key in frame.columns.drop([ID_COLUMN, SEQUENCE_COLUMN]):
        columns[str(key)] = infer_column(str(key), _numbers_if_all_numeric(frame[key]))
    if target is not None:
        if target not in columns or target in (ID_COLUMN, SEQUENCE_COLUMN):
            raise MetadataError(f"--target: {target!r} is not a header key of {path} (e.g. '>id {target}=...')")
        categories = sorted(str(v) for v in frame[target].dropna().unique())
        columns[target] = ColumnSpec(type="categorical", categories=categories or ["unknown"],
                                     nullable=bool(frame[target].isna().any()))
    return Metadata(name=name, reviewed=False, target=target, columns=columns)
