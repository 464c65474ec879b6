"""Labels for FASTA records from a side table (CSV/TSV), joined by record id.

A labels file has a column ``id`` (the FASTA record ids) and one or more label columns,
e.g. ``id,activity``. Every record of the FASTA file must have exactly one row; rows for
ids the FASTA file does not hold are ignored (a labels table may cover a larger cohort).
Values are read as text, as header values are (an empty cell or ``NA`` is missing); the
metadata types them later.

Errors are one line naming the labels file and a column, a row (its line in the file) or
a FASTA record (its number and header line), never an id or a label value: ids and labels
are private.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from synthrelease.errors import InputFileError
from synthrelease.io.formats import detect_format

ID_COLUMN = "id"
RESERVED = ("sequence",)


def read_labels(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The labels table at ``path`` (CSV or TSV, optionally compressed), every value as text.

    Raises:
        InputFileError: one line naming the file: missing, not CSV/TSV, unparsable, empty, no
            ``id`` column or no label column, a reserved column, a row without an id, an id on
            two rows (both line numbers).
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: labels file not found")
    fmt = detect_format(p)
    if fmt.kind not in ("csv", "tsv"):
        raise InputFileError(f"{p}: a labels file is CSV or TSV text (columns id and the labels)")
    try:
        df = pd.read_csv(p, sep=fmt.sep, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{p}: labels file is empty (expected columns id and the labels)") from None
    except Exception as e:  # any parser failure (binary, bad encoding, ragged rows) is bad input
        raise InputFileError(f"{p}: cannot parse the labels file: {type(e).__name__}") from None
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(p, df)
    df[ID_COLUMN] = df[ID_COLUMN].str.strip()
    _check_ids(p, df[ID_COLUMN])
    return df


def _check_columns(p: Path, df: pd.DataFrame) -> None:
    if ID_COLUMN not in df.columns:
        raise InputFileError(f"{p}: no column 'id'; a labels file has a column id (the FASTA record ids) and one "
                             "or more label columns")
    labels = [c for c in df.columns if c != ID_COLUMN]
    if not labels:
        raise InputFileError(f"{p}: no label column besides 'id'")
    for c in df.columns:
        if c in RESERVED or not c or c.startswith("Unnamed: "):
            raise InputFileError(f"{p}: column {c!r} cannot be a label (reserved or unnamed)")
    if len(df) == 0:
        raise InputFileError(f"{p}: labels file has no rows")


def _check_ids(p: Path, ids: pd.Series) -> None:
    missing = ids.isna() | (ids == "")
    if missing.any():
        raise InputFileError(f"{p}: line {_line(int(missing.to_numpy().argmax()))}: no id; every row needs one")
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        first, second = (int(i) for i in repeated.to_numpy().nonzero()[0][:2])
        if ids.iloc[first] != ids.iloc[second]:  # report two rows of the SAME id
            same = (ids == ids.iloc[first]).to_numpy().nonzero()[0]
            first, second = int(same[0]), int(same[1])
        raise InputFileError(f"{p}: lines {_line(first)} and {_line(second)} have the same id; ids must be unique")


def _line(position: int) -> int:
    """The file line of the row at 0-based ``position`` (line 1 is the header)."""
    return position + 2


def join_labels(records: pd.DataFrame, labels: pd.DataFrame, *, fasta: str | os.PathLike[str],
                labels_path: str | os.PathLike[str], header_lines: list[int],
                allowed: Collection[str] | None = None) -> pd.DataFrame:
    """``records`` (``read_fasta``'s table) with the label columns of its row in ``labels`` (by ``id``).

    Args:
        records: the FASTA table (columns ``id``, ``sequence``, header keys).
        labels: :func:`read_labels`'s table.
        fasta, labels_path: the two files, for messages.
        header_lines: each record's header line in the FASTA file, for messages.
        allowed: the label columns accepted (the metadata's columns), or None for any.

    Raises:
        InputFileError: a label column that is not ``allowed`` or that the FASTA headers also
            give; a record without a row in the labels file (named by record number and line,
            with how many records lack one).
    """
    lp = Path(labels_path)
    columns = [c for c in labels.columns if c != ID_COLUMN]
    for c in columns:
        if allowed is not None and c not in allowed:
            raise InputFileError(f"{lp}: column {c!r} is not declared in the metadata")
        if c in records.columns:
            raise InputFileError(f"{lp}: column {c!r} also comes from the headers of {fasta}; give each label in "
                                 "one place")
    indexed = labels.set_index(ID_COLUMN)
    found = records[ID_COLUMN].isin(indexed.index).to_numpy()
    if not found.all():
        k = int((~found).argmax())
        more = f"; {int((~found).sum())} records in all have none" if (~found).sum() > 1 else ""
        raise InputFileError(f"{lp}: no row for record {k + 1} of {fasta} (line {header_lines[k]}){more}; every "
                             "record needs a row with its id")
    joined = indexed.loc[records[ID_COLUMN], columns].reset_index(drop=True)
    return pd.concat([records.reset_index(drop=True), joined.astype(object)], axis=1)
