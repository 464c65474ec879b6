"""Drafting sequence columns: which text columns hold protein/DNA/RNA sequences, and their spec.

NOT DP: like every draft (:mod:`synthrelease.metadata.infer`), these functions read the
private values (their letters and lengths). The alphabet and the ``min_length`` /
``max_length`` they draft are data-derived: the steward replaces them with public knowledge
(the assay's alphabet, the study's length range) before setting ``reviewed: true``; the
YAML draft flags them in a comment beside the column.

A table column is drafted as ``type: sequence`` (:func:`looks_like_sequences`) only when
every value is one word of letters A–Z in one case (no digit, space or punctuation: ids
such as ``pep0001``, free text and Title-Case names stay out), its median length is at
least :data:`MIN_MEDIAN_LENGTH` (short codes stay out), at least :data:`MIN_DISTINCT_SHARE`
of its values are distinct (categories stay out), no value is missing, and at least
:data:`MIN_ALPHABET_SHARE` of its letters belong to one named alphabet (English words, with
their O, U, B, J, X and Z, stay out).
"""

from __future__ import annotations

import re

import pandas as pd

from synthrelease.metadata.alphabets import ALPHABETS
from synthrelease.metadata.schema import ColumnSpec

MIN_MEDIAN_LENGTH = 5
"""Shortest median length (letters) of a column drafted as sequences."""

MIN_DISTINCT_SHARE = 0.5
"""Least share of distinct values among a sequence column's values."""

MIN_ALPHABET_SHARE = 0.99
"""Least share of a column's letters inside one named alphabet ("almost all"); the few others
are added to the drafted alphabet as explicit letters (``ACGNT``: DNA with N)."""

_WORD = re.compile(r"[A-Za-z]+")


def draft_alphabet(sequences: pd.Series) -> str:
    """The alphabet to draft for ``sequences`` (reads private letters; not DP).

    Tried in the order DNA, RNA, protein: ``dna``/``rna``/``protein`` when every letter belongs
    to it; when :data:`MIN_ALPHABET_SHARE` of the letters do, its letters plus the few others,
    written out (``ACGNT``: DNA with N);
    otherwise ``protein`` plus every other letter A–Z of the values (a FASTA file is
    sequences by definition; :func:`sequence_alphabet` returns None there instead).
    """
    found = sequence_alphabet(sequences)
    if found is not None:
        return found
    letters = _letters(sequences)
    return "".join(sorted(set(ALPHABETS["protein"]) | set(letters))) if letters else "protein"


def sequence_alphabet(sequences: pd.Series) -> str | None:
    """The drafted alphabet when (almost) every letter of ``sequences`` belongs to a named one, else None.

    Reads private letters (not DP): see :func:`draft_alphabet` for the order of preference.
    """
    letters = _letters(sequences)
    if not letters:
        return None
    present = set(letters)
    for name in ("dna", "rna", "protein"):  # nucleotides first: every DNA letter is an amino acid too
        named = set(ALPHABETS[name])
        if present <= named:
            return name
        if sum(ch in named for ch in letters) >= MIN_ALPHABET_SHARE * len(letters):
            return "".join(sorted(named | present))
    return None


def _letters(sequences: pd.Series) -> str:
    """Every letter A–Z of the values, upper-cased, in order (other characters dropped)."""
    text = "".join(sequences.dropna().astype(str)).upper()
    return "".join(ch for ch in text if "A" <= ch <= "Z")


def looks_like_sequences(values: pd.Series) -> bool:
    """True when a table column holds sequences by the rules of the module docstring (reads private values)."""
    if len(values) == 0 or values.isna().any() or not all(isinstance(v, str) for v in values):
        return False
    words = values.str.strip()
    if not all(_WORD.fullmatch(w) and (w.isupper() or w.islower()) for w in words):
        return False
    if words.str.len().median() < MIN_MEDIAN_LENGTH or words.nunique() < MIN_DISTINCT_SHARE * len(words):
        return False
    return sequence_alphabet(words) is not None


def sequence_spec(sequences: pd.Series) -> ColumnSpec:
    """The draft ``type: sequence`` spec of ``sequences``: alphabet and min/max length read off them (not DP)."""
    lengths = sequences.dropna().astype(str).str.strip().str.len()
    low, high = (max(1, int(lengths.min())), max(1, int(lengths.max()))) if len(lengths) else (1, 1)
    return ColumnSpec(type="sequence", alphabet=draft_alphabet(sequences), min_length=low, max_length=high)


def settle_sequence_table(columns: dict[str, ColumnSpec], target: str | None, *,
                          keep_sequence: bool = False) -> tuple[dict[str, ColumnSpec], str | None]:
    """Make a draft with sequence columns a valid sequence table, or draft them as identifiers.

    A sequence table holds one sequence column, its label (the target) and identifiers. The
    first sequence column is kept (any other becomes an identifier, with a note); without
    ``target``, a single categorical or boolean column left becomes the target (noted for
    review); if other columns still remain, the sequence column becomes an identifier with a
    note saying why (``keep_sequence``, for a FASTA file: those columns become identifiers,
    with a note). Returns the columns and the target.
    """
    sequences = [c for c, s in columns.items() if s.type == "sequence"]
    if not sequences:
        return columns, target
    keep, out = sequences[0], dict(columns)
    for extra in sequences[1:]:
        out[extra] = ColumnSpec(type="identifier", description=f"also looks like sequences; a table holds one "
                                f"sequence column ({keep!r}): review")
    others = [c for c, s in out.items() if s.type != "identifier" and c not in (keep, target)]
    if target is None and len(others) == 1 and out[others[0]].type in ("categorical", "boolean"):
        target = others[0]
        out[target] = out[target].model_copy(update={"description": "drafted as the label of the sequences "
                                                                    "(target): review"})
        others = []
    if others and keep_sequence:
        for c in others:
            out[c] = ColumnSpec(type="identifier", nullable=out[c].nullable, description=(
                "a sequence table holds the sequence, one label (target) and identifiers: choose the target, or "
                "drop this column"))
    elif others:
        out[keep] = ColumnSpec(type="identifier", description=(
            f"looks like sequences, but a sequence table holds only the sequence, one label (target) and "
            f"identifiers (here also {', '.join(repr(c) for c in others)}): drop those columns to release it "
            "as sequences"))
    return out, target
