"""Public sequence alphabets and the checks that hold a sequence column to them.

The alphabet and the length bounds of a sequence column are PUBLIC (declared by the data
steward, never learnt from the rows). :func:`check_sequences` reads private rows; its
errors name the source, the column and a row number, never a sequence or a letter of one.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from synthrelease.errors import DataValidationError

ALPHABETS: dict[str, str] = {"protein": "ACDEFGHIKLMNPQRSTVWY", "dna": "ACGT", "rna": "ACGU"}
"""Named alphabets: the 20 standard amino acids, and the DNA and RNA nucleotides."""

TOO_LONG_CHOICES = ("refuse", "clip")

_LETTERS = re.compile(r"[A-Z]+")


def resolve_alphabet(spec: str) -> str:
    """The letters of an alphabet, sorted: a name of :data:`ALPHABETS` or an explicit string of letters.

    A name is matched case-insensitively after stripping spaces (``"protein"``, ``"DNA"``), so
    names win over explicit letters (``"DNA"`` is the DNA alphabet, not the letters A, D, N).
    Anything else must be distinct upper-case letters A-Z (``"ACGTN"``); they are returned
    sorted, so a resolved alphabet resolves to itself.

    Raises:
        ValueError: not a string, empty, a character other than A-Z, or a letter given twice.
    """
    if not isinstance(spec, str):
        raise ValueError(f"alphabet must be a name ({', '.join(ALPHABETS)}) or a string of letters, "
                         f"not {type(spec).__name__}")
    s = spec.strip()
    if s.lower() in ALPHABETS:
        return ALPHABETS[s.lower()]
    if not _LETTERS.fullmatch(s):
        raise ValueError(f"alphabet {spec!r} is neither a name ({', '.join(ALPHABETS)}) nor a string of "
                         "upper-case letters A-Z")
    repeated = sorted({c for c in s if s.count(c) > 1})
    if repeated:
        raise ValueError(f"alphabet {spec!r} gives letter(s) {''.join(repeated)} more than once")
    return "".join(sorted(s))


def check_sequences(sequences: pd.Series, alphabet: str, *, min_length: int, max_length: int,
                    too_long: str = "refuse", source: str, column: str) -> pd.Series:
    """Clean a column of sequences and hold it to its public alphabet and length bounds (reads private rows).

    Each value is stripped of surrounding whitespace and upper-cased. A value is refused when it
    is missing or empty, is not text, holds a character outside the alphabet (inner spaces
    included), is shorter than ``min_length``, or (``too_long="refuse"``) longer than
    ``max_length``; with ``too_long="clip"`` a longer sequence keeps its first ``max_length``
    letters.

    Args:
        sequences: the column (any index; rows are numbered 1, 2, ... by position).
        alphabet: a name or explicit letters (see :func:`resolve_alphabet`).
        min_length, max_length: public length bounds, 1 ≤ min_length ≤ max_length.
        too_long: ``"refuse"`` or ``"clip"``.
        source: what the column comes from (a file name), for the error message.
        column: the column's name, for the error message.

    Returns:
        The cleaned sequences (``object`` dtype of ``str``), same index and name.

    Raises:
        DataValidationError: one line naming ``source``, ``column``, the FIRST bad row's number
            (1-based position), its problem and how many rows are bad; never a sequence or a letter.
        ValueError: bad bounds or ``too_long``.
    """
    letters = resolve_alphabet(alphabet)
    _check_bounds(min_length, max_length)
    if too_long not in TOO_LONG_CHOICES:
        raise ValueError(f"too_long must be one of {TOO_LONG_CHOICES}, not {too_long!r}")
    values = sequences.tolist()
    cleaned: list[str] = []
    problems: list[tuple[int, str]] = []  # (1-based row, problem); no values
    outside = re.compile(f"[^{letters}]")
    for row, value in enumerate(values, start=1):
        if not isinstance(value, str):
            missing = value is None or (isinstance(value, float | np.floating) and np.isnan(value)) or value is pd.NA
            problems.append((row, "missing sequence" if missing else "not a text value"))
            cleaned.append("")
            continue
        s = value.strip().upper()
        if not s:
            problems.append((row, "empty sequence"))
        elif outside.search(s):
            problems.append((row, "letter outside the alphabet"))
        elif len(s) < min_length:
            problems.append((row, f"shorter than the minimum length {min_length}"))
        elif len(s) > max_length:
            if too_long == "refuse":
                problems.append((row, f"longer than the maximum length {max_length} (too_long='clip' truncates)"))
            else:
                s = s[:max_length]
        cleaned.append(s)
    if problems:
        row, problem = problems[0]
        more = f"; {len(problems)} bad row(s) in all" if len(problems) > 1 else ""
        raise DataValidationError(f"{source}: column {column!r}, row {row}: {problem}{more}",
                                  [f"{source}: column {column!r}, row {r}: {p}" for r, p in problems[:100]])
    return pd.Series(cleaned, index=sequences.index, name=sequences.name, dtype=object)


def _check_bounds(min_length: int, max_length: int) -> None:
    for name, v in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"{name} must be an integer, not {type(v).__name__}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"length bounds must satisfy 1 <= min_length <= max_length (got {min_length}, {max_length})")
