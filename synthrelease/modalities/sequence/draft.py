"""Draft metadata for a FASTA file (reads private records: the draft is ``reviewed: false``).

The draft's alphabet and length bounds are read off the private sequences, like a table
draft's bounds (the same functions: :mod:`synthrelease.metadata.infer_sequences`): the
steward replaces them with public knowledge (the assay's alphabet, the study's length
range) before setting ``reviewed: true``.
"""

from __future__ import annotations

import os

import pandas as pd

from synthrelease.metadata.infer import infer_column
from synthrelease.metadata.infer_sequences import sequence_spec, settle_sequence_table
from synthrelease.metadata.schema import ColumnSpec, Metadata

SEQUENCE_COLUMN = "sequence"
ID_COLUMN = "id"

def _numbers_if_all_numeric(values: pd.Series) -> pd.Series:
    """Header values are text; a key whose every value parses as a number drafts as a number."""
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError):
        return values


def draft_fasta_metadata(path: str | os.PathLike[str], *, name: str, target: str | None,
                         labels: str | os.PathLike[str] | None = None) -> Metadata:
    """A draft :class:`Metadata` for the records of a FASTA file: the record id as the
    identifier, the sequence column, one column per header key (``>id|label`` → ``label``)
    and per column of the ``labels`` CSV (joined by record id: :func:`synthrelease.io.fasta.read_fasta`).
    Without ``target``, a single categorical label becomes the target (noted for review); other
    label columns are drafted as identifiers, with a note.

    Raises:
        InputFileError: the FASTA (and labels) reader's one-line errors.
        MetadataError: ``target`` is not a header key or label column of the file.
    """
    from synthrelease.errors import MetadataError
    from synthrelease.io.fasta import read_fasta

    frame = read_fasta(path, labels=labels)
    columns: dict[str, ColumnSpec] = {ID_COLUMN: ColumnSpec(type="identifier"),
                                      SEQUENCE_COLUMN: sequence_spec(frame[SEQUENCE_COLUMN])}
    for key in frame.columns.drop([ID_COLUMN, SEQUENCE_COLUMN]):
        columns[str(key)] = infer_column(str(key), _numbers_if_all_numeric(frame[key]))
    if target is not None:
        if target not in columns or target in (ID_COLUMN, SEQUENCE_COLUMN):
            where = f"{path} (e.g. '>id {target}=...')" + (f" nor a column of {labels}" if labels else "")
            raise MetadataError(f"--target: {target!r} is not a header key of {where}")
        categories = sorted(str(v) for v in frame[target].dropna().unique())
        columns[target] = ColumnSpec(type="categorical", categories=categories or ["unknown"],
                                     nullable=bool(frame[target].isna().any()))
    columns, target = settle_sequence_table(columns, target, keep_sequence=True)
    return Metadata(name=name, reviewed=False, target=target, columns=columns)
