"""Read and write FASTA files of sequences with ``key=value`` headers.

A record is a header line ``>id key=value key2=value2 ...`` followed by one or more sequence
lines (joined). A header that is a single token with exactly one ``|`` and no ``=``
(``>seq7|AMP``) means ``id|label``. Blank lines are ignored. Headers with free text are
refused rather than guessed (UniProt-style descriptions vary too much): rewrite them as
``key=value`` pairs.

Labels may also come from a side table joined by record id (``read_fasta(path, labels=...)``,
:mod:`synthrelease.io.fasta_labels`).

Errors name the file and a record number or line, never a sequence, an id or a header value.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from synthrelease.errors import DataValidationError, InputFileError
from synthrelease.io.files import atomic_output

FASTA_EXTENSIONS = (".fasta", ".fa", ".faa", ".fna")
"""Accepted extensions (case-insensitive), each also gzip-compressed (``.fasta.gz``)."""

ACCEPTED = ", ".join(FASTA_EXTENSIONS) + " (each optionally .gz)"
RESERVED_COLUMNS = ("id", "sequence")
LINE_WIDTH = 60
"""Sequence letters per line in written files."""


def is_fasta_path(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` ends in an accepted FASTA extension (optionally followed by ``.gz``)."""
    return _fasta_suffix(Path(path)) is not None


def _fasta_suffix(p: Path) -> tuple[str, bool] | None:
    """(extension, gzipped) of an accepted FASTA path, else None."""
    suffixes = [s.lower() for s in p.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FASTA_EXTENSIONS:
        return suffixes[-1], gz
    return None


MAX_FASTA_BYTES = 512 * 2**20
"""Largest FASTA text accepted (after decompression): 512 MiB, millions of peptides."""


def _read_text(p: Path) -> str:
    """The file's text (UTF-8, a BOM allowed); gunzipped for ``.gz``."""
    kind = _fasta_suffix(p)
    if kind is None:
        raise InputFileError(f"{p}: not a FASTA file name; accepted extensions: {ACCEPTED}")
    if not p.is_file():
        raise InputFileError(f"{p}: FASTA file not found")
    try:
        if kind[1]:
            with gzip.open(p, "rb") as f:  # bounded: a small .gz can hold gigabytes (a decompression bomb)
                data = f.read(MAX_FASTA_BYTES + 1)
        else:
            data = p.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise InputFileError(f"{p}: cannot read FASTA file: {type(e).__name__}") from None
    if len(data) > MAX_FASTA_BYTES:
        raise InputFileError(f"{p}: decompresses to more than {MAX_FASTA_BYTES // 2**20} MiB of text; a peptide or "
                             "protein set this large is not accepted (split it, or check the file)")
    if b"\x00" in data:
        raise InputFileError(f"{p}: not a text file (it holds NUL bytes); a FASTA file is plain text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(f"{p}: not a UTF-8 text file (undecodable byte at offset {e.start}); "
                             "a FASTA file is plain text") from None


def _parse_header(p: Path, header: str, record: int, line: int) -> tuple[str, dict[str, str | None]]:
    """(id, {key: value or None}) of a header line without its ``>``."""
    where = f"{p}: record {record} (line {line})"
    tokens = header.split()
    if not tokens:
        raise InputFileError(f"{where}: header has no id (expected '>id key=value ...')")
    ident, rest = tokens[0], tokens[1:]
    if not rest and "=" not in ident and ident.count("|") == 1:
        ident, label = ident.split("|")
        if not ident or not label:
            raise InputFileError(f"{where}: header 'id|label' has an empty part")
        return ident, {"label": label}
    if "=" in ident:
        raise InputFileError(f"{where}: header starts with a key=value pair; the id must come first "
                             "(expected '>id key=value ...')")
    fields: dict[str, str | None] = {}
    for position, token in enumerate(rest, start=2):
        key, eq, value = token.partition("=")
        if not eq:
            raise InputFileError(f"{where}: header word {position} is not a key=value pair (free-text "
                                 "descriptions are not accepted; expected '>id key=value ...')")
        if not key:
            raise InputFileError(f"{where}: header word {position} has an empty key")
        if key in RESERVED_COLUMNS:
            raise InputFileError(f"{where}: header key {key!r} is reserved (the columns id and sequence)")
        if key in fields:
            raise InputFileError(f"{where}: header key {key!r} appears twice")
        fields[key] = value or None  # "key=" is a missing value
    return ident, fields


def read_fasta(path: str | os.PathLike[str], *, labels: str | os.PathLike[str] | None = None,
               label_columns: Collection[str] | None = None) -> pd.DataFrame:
    """Read a FASTA file into a table (reads private rows; nothing is logged): THE reading
    function of FASTA input, for releases, training and drafts alike.

    Args:
        path: the FASTA file.
        labels: optional labels file (CSV/TSV: a column ``id`` and label columns) joined to the
            records by id (:mod:`synthrelease.io.fasta_labels`).
        label_columns: the label columns ``labels`` may hold (the metadata's), or None for any.

    Returns:
        Columns ``id``, ``sequence`` (the record's lines, each stripped, joined; case kept),
        then one column per header key in order of first appearance (strings; a record
        without the key → NaN), then the labels file's columns. ``>id|label`` fills the
        column ``label``.

    Raises:
        InputFileError: one line naming the file (and the record number and line where one
            applies): an unaccepted extension, a missing, unreadable, binary or non-UTF-8 file,
            no records, text before the first ``>``, a header without an id or with a word that
            is not ``key=value`` (or a reserved or repeated key), a record without sequence
            lines, an id used twice; and the labels file's errors
            (:func:`synthrelease.io.fasta_labels.join_labels`).
    """
    p = Path(path)
    ids, sequences, rows, header_lines = _parse_records(p, _read_text(p))
    keys: list[str] = []
    for fields in rows:
        keys.extend(k for k in fields if k not in keys)
    df = pd.DataFrame({"id": ids, "sequence": sequences}, dtype=object)
    for k in keys:
        df[k] = pd.Series([fields.get(k) for fields in rows], dtype=object)
    if labels is None:
        return df
    from synthrelease.io.fasta_labels import join_labels, read_labels

    return join_labels(df, read_labels(labels), fasta=p, labels_path=labels, header_lines=header_lines,
                       allowed=label_columns)


def _parse_records(p: Path, text: str) -> tuple[list[str], list[str], list[dict[str, str | None]], list[int]]:
    """(ids, sequences, header fields, header line numbers) of the records in ``text``."""
    ids: list[str] = []
    sequences: list[str] = []
    rows: list[dict[str, str | None]] = []
    header_lines: list[int] = []
    first_record: dict[str, int] = {}
    chunks: list[str] = []

    def close() -> None:
        if not chunks:
            raise InputFileError(f"{p}: record {len(ids)} (line {header_lines[-1]}) has no sequence lines")
        sequences.append("".join(chunks))
        chunks.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            if ids:
                close()
            record = len(ids) + 1
            ident, fields = _parse_header(p, line[1:], record, number)
            if ident in first_record:
                raise InputFileError(f"{p}: record {record} (line {number}) repeats the id of record "
                                     f"{first_record[ident]}; ids must be unique")
            first_record[ident] = record
            ids.append(ident)
            rows.append(fields)
            header_lines.append(number)
        elif not ids:
            raise InputFileError(f"{p}: line {number}: a FASTA file must start with a '>' header line")
        else:
            chunks.append("".join(line.split()))
    if not ids:
        raise InputFileError(f"{p}: no FASTA records (expected '>id key=value ...' header lines)")
    close()
    return ids, sequences, rows, header_lines


def _header_value(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def write_fasta(path: str | os.PathLike[str], df: pd.DataFrame, *, sequence_column: str,
                id_column: str | None = None, header_columns: tuple[str, ...] = ()) -> Path:
    """Write a table of sequences as FASTA, atomically (``synthrelease.io.files.atomic_output``).

    Each row becomes ``>id key=value ...`` (one pair per header column; a missing value is left
    out, so it reads back as NaN) followed by its sequence wrapped at :data:`LINE_WIDTH`
    letters. Ids default to ``syn-0``, ``syn-1``, ... The result reads back with
    :func:`read_fasta` (header values as strings). A ``.gz`` name is gzip-compressed.

    Raises:
        ValueError: an unaccepted extension, a column not in ``df``, or a header column named
            ``id``/``sequence`` or whose name is empty or holds whitespace or ``=``.
        DataValidationError: no rows, or a row (named by its 1-based number, no value) whose
            sequence is missing, empty or holds whitespace or ``>``, whose id is empty, repeated
            or holds whitespace, ``|`` or ``=``, or whose header value is empty or holds whitespace.
    """
    p = Path(path)
    gz = _check_output(p, df.columns, sequence_column, id_column, header_columns)
    if len(df) == 0:
        raise DataValidationError(f"{p}: no rows to write; a FASTA file needs at least one record")
    ids = ([f"syn-{i}" for i in range(len(df))] if id_column is None
           else [_header_value(v) for v in df[id_column].tolist()])
    lines = _record_lines(p, df, ids, sequence_column=sequence_column, header_columns=header_columns,
                          first_row=1, seen=set())
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if gz:
        data = gzip.compress(data, mtime=0)
    with atomic_output(p) as tmp:
        tmp.write_bytes(data)
    return p


def write_fasta_stream(path: str | os.PathLike[str], chunks: Iterable[pd.DataFrame], *, sequence_column: str,
                       header_columns: tuple[str, ...] = ()) -> int:
    """Write chunks of sequences as one FASTA file (ids ``syn-0``, ``syn-1``, … across chunks), atomically:
    the file appears complete or not at all, one chunk held in memory at a time. The records are
    those :func:`write_fasta` would write for the chunks concatenated.

    Returns:
        The number of records written.

    Raises:
        ValueError, DataValidationError: as :func:`write_fasta` (checked per chunk; nothing is left
            behind on an error).
    """
    p = Path(path)
    gz: bool | None = None
    done = 0
    with atomic_output(p) as tmp, open(tmp, "wb") as raw:
        out: Any = raw
        for chunk in chunks:
            if gz is None:
                gz = _check_output(p, chunk.columns, sequence_column, None, header_columns)
                if gz:
                    out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
            ids = [f"syn-{done + i}" for i in range(len(chunk))]
            lines = _record_lines(p, chunk, ids, sequence_column=sequence_column, header_columns=header_columns,
                                  first_row=done + 1, seen=None)
            if lines:
                out.write(("\n".join(lines) + "\n").encode("utf-8"))
            done += len(chunk)
        if done == 0:
            raise DataValidationError(f"{p}: no rows to write; a FASTA file needs at least one record")
        if out is not raw:
            out.close()  # the gzip trailer; the raw file stays open for the rename
    return done


def _check_output(p: Path, columns: Iterable[Any], sequence_column: str, id_column: str | None,
                  header_columns: tuple[str, ...]) -> bool:
    """Whether ``p`` is gzipped; refuses an unaccepted extension and bad column arguments (ValueError)."""
    kind = _fasta_suffix(p)
    if kind is None:
        raise ValueError(f"{p}: not a FASTA file name; accepted extensions: {ACCEPTED}")
    present = set(columns)
    for c in (sequence_column, *([id_column] if id_column is not None else []), *header_columns):
        if c not in present:
            raise ValueError(f"{p}: column {c!r} is not in the table")
    for c in header_columns:
        if not isinstance(c, str) or c in RESERVED_COLUMNS or "=" in c or len(c.split()) != 1 or c != c.strip():
            raise ValueError(f"{p}: {c!r} cannot be a header key (reserved, empty, or holds whitespace or '=')")
    return kind[1]


def _record_lines(p: Path, df: pd.DataFrame, ids: list[str | None], *, sequence_column: str,
                  header_columns: tuple[str, ...], first_row: int, seen: set[str] | None) -> list[str]:
    """The FASTA lines of ``df``'s rows (numbered from ``first_row`` in messages); ``seen``: ids so far
    (None: ids are known to be unique).

    Raises:
        DataValidationError: see :func:`write_fasta`.
    """
    lines: list[str] = []
    columns = {c: df[c].tolist() for c in header_columns}
    for i, (ident, seq) in enumerate(zip(ids, df[sequence_column].tolist(), strict=True)):
        row = first_row + i
        if not ident or any(ch.isspace() or ch in "|=" for ch in ident):
            raise DataValidationError(f"{p}: row {row}: id is empty or holds whitespace, '|' or '='")
        if seen is not None:
            if ident in seen:
                raise DataValidationError(f"{p}: row {row}: id repeats an earlier row's id; ids must be unique")
            seen.add(ident)
        if not isinstance(seq, str) or not seq or any(ch.isspace() for ch in seq) or ">" in seq:
            raise DataValidationError(f"{p}: row {row}: column {sequence_column!r} is not a sequence "
                                      "(missing, empty, or holds whitespace or '>')")
        header = [">" + ident]
        for c in header_columns:
            value = _header_value(columns[c][i])
            if value is None:
                continue
            if not value or any(ch.isspace() for ch in value):
                raise DataValidationError(f"{p}: row {row}: column {c!r} is empty or holds whitespace; "
                                          "a header value must be one word")
            header.append(f"{c}={value}")
        lines.append(" ".join(header))
        lines.extend(seq[k:k + LINE_WIDTH] for k in range(0, len(seq), LINE_WIDTH))
    return lines
