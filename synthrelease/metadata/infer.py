"""Drafting a metadata file from a table, for the steward to review.

NOT DP: the draft reads the private rows (their min, max and distinct values, the
format their dates are written in, the decimals of their numbers). It is a starting point
for the steward only: the file is marked ``reviewed: false`` and carries a warning, and
training refuses it until a person has replaced every data-derived bound and category
list with public knowledge and set ``reviewed: true``.

Dates: a text column whose non-missing values all parse with one of
:data:`DATE_FORMATS` (tried in that order, so ISO wins, and a column whose days never
exceed 12 is drafted day-first with a note to review) becomes ``type: date`` (or
``datetime`` for formats with a time of day) with that ``format`` and the column's
earliest and latest values as ``min``/``max``, like numerical bounds.

Sequences: a text column of protein, DNA or RNA sequences becomes ``type: sequence`` with
its alphabet and length bounds read off the values (:mod:`synthrelease.metadata.infer_sequences`),
flagged for review by a comment above the column in the YAML draft.

Modelling keys: a heavy-tailed non-negative numeric column gets ``transform: log1p``, one
with many exact zeros ``zero_inflated: true``, and without ``--target`` a column named like
a label becomes the target (the table's last column is only suggested, in a comment); each
is flagged for review by a comment in the YAML draft, as are a float column's ``decimals``
(:mod:`synthrelease.metadata.infer_modelling`).
"""

from __future__ import annotations

import math
import textwrap
from datetime import datetime

import numpy as np
import pandas as pd
import yaml

from synthrelease.metadata.dates import number_to_iso, to_numbers
from synthrelease.metadata.infer_modelling import (
    TARGET_NOTE,
    draft_target,
    numeric_review,
    numeric_shape,
    suggest_target,
)
from synthrelease.metadata.infer_sequences import looks_like_sequences, sequence_spec, settle_sequence_table
from synthrelease.metadata.schema import ColumnSpec, Metadata, canonical_category

MAX_INFERRED_CATEGORIES = 50

DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d",
                "%d.%m.%Y")
"""Formats ``infer`` recognises dates by, in order of preference (ISO first; day-first
``%d/%m/%Y`` before month-first when both read every value)."""

MAX_INFERRED_DECIMALS = 6
"""Most decimals drafted for a float column."""

DRAFT_HEADER = """\
# DRAFT metadata inferred by `synthrelease metadata infer` from the PRIVATE table.
#
# WARNING: the min/max bounds (dates included) and category lists below were read
# off the private rows (and so were date formats, decimals, transforms, zero
# inflation and a drafted target: see each REVIEW comment). Releasing a model
# trained with them would leak those values outside the differential-privacy
# guarantee. Before training, replace each of them with PUBLIC knowledge (a code
# book, the instrument's range, the study protocol), widen bounds to round public
# values, check every column type, then set `reviewed: true`. For sequences the
# alphabet and length bounds, for image tiles the size, channels and labels were
# read off the data too; a slide's tiling block is a public default to check.
"""


def _is_integer_valued(s: pd.Series) -> bool:
    x = s.dropna().astype(float)
    return bool(len(x)) and bool((x == x.round()).all())


def _date_format(values: pd.Series) -> tuple[str, bool] | None:
    """The first of :data:`DATE_FORMATS` every (non-missing, text) value parses with, and
    whether the day/month order is ambiguous (day-first and month-first both read them all)."""
    if not len(values) or not all(isinstance(v, str) for v in values):
        return None
    texts = [str(t) for t in pd.unique(values.str.strip())]
    for fmt in DATE_FORMATS:
        if _all_parse(texts, fmt):
            return fmt, fmt == "%d/%m/%Y" and _all_parse(texts, "%m/%d/%Y")
    return None


def _all_parse(texts: list[str], fmt: str) -> bool:
    """True when every text reads with ``fmt`` (pandas first; Python's strptime for dates
    outside pandas' 1677..2262 range)."""
    parsed = pd.to_datetime(pd.Series(texts, dtype=object), format=fmt, errors="coerce")
    for text in (t for t, bad in zip(texts, parsed.isna(), strict=True) if bad):
        try:
            datetime.strptime(text, fmt)
        except ValueError:
            return False
    return True


def infer_date_column(s: pd.Series) -> ColumnSpec | None:
    """A draft ``date``/``datetime`` spec when every non-missing value is a date in one of
    :data:`DATE_FORMATS` (or the column holds datetimes), else None (reads private values; not DP)."""
    nullable = bool(s.isna().any())
    non_null = s.dropna()
    note = ""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if not len(non_null):
            return None
        seconds = to_numbers(non_null, "datetime")
        kind = "date" if bool(np.all(seconds % 86400 == 0)) else "datetime"
        fmt = None
    else:
        found = _date_format(non_null)
        if found is None:
            return None
        fmt, ambiguous = found
        kind = "datetime" if "%H" in fmt else "date"
        if ambiguous:
            note = "day/month order is ambiguous in these values: check 'format'"
    x = to_numbers(non_null, kind, fmt)
    if np.isnan(x).any():
        return None
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        hi = lo + 1.0  # one day / one second
    return ColumnSpec(type=kind, nullable=nullable, min=number_to_iso(lo, kind), max=number_to_iso(hi, kind),
                      format=fmt, description=note)


def infer_decimals(values: pd.Series) -> int:
    """Decimals the values are written with: the smallest k ≤ :data:`MAX_INFERRED_DECIMALS`
    with ``round(v, k) == v`` for every value, ignoring float noise (0.30000000000000004 → 1)."""
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    x = x[np.isfinite(x)]
    for k in range(MAX_INFERRED_DECIMALS + 1):
        if np.allclose(np.round(x, k), x, rtol=1e-12, atol=1e-12):
            return k
    return MAX_INFERRED_DECIMALS


def _outward(lo: float, hi: float, decimals: int) -> tuple[float, float]:
    """``lo``/``hi`` at ``decimals`` decimals, rounded outward (float noise never puts a value outside)."""
    step = 10.0 ** -decimals
    r_lo, r_hi = round(lo, decimals), round(hi, decimals)
    if r_lo > lo:
        r_lo = round(r_lo - step, decimals)
    if r_hi < hi:
        r_hi = round(r_hi + step, decimals)
    return r_lo, r_hi


def infer_column(name: str, s: pd.Series) -> ColumnSpec:
    """Draft a :class:`ColumnSpec` for one column (reads private values; not DP)."""
    nullable = bool(s.isna().any())
    non_null = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return ColumnSpec(type="boolean", nullable=nullable)
    dated = infer_date_column(s)
    if dated is not None:
        return dated
    numeric = pd.api.types.is_numeric_dtype(s)
    n_unique = int(non_null.nunique())
    looks_like_id = n_unique == len(non_null) and len(non_null) > 20 and (
        "id" in name.lower().replace("-", "_").split("_") or not numeric
    )
    if looks_like_id:
        return ColumnSpec(type="identifier", nullable=nullable)
    if numeric and not (n_unique <= 2 and _is_integer_valued(non_null) and len(non_null) > 20):
        integer = _is_integer_valued(non_null)
        lo, hi = (float(non_null.min()), float(non_null.max())) if len(non_null) else (0.0, 1.0)
        if not math.isfinite(lo) or not math.isfinite(hi):
            lo, hi = 0.0, 1.0
        if hi <= lo:
            hi = lo + 1.0
        if integer:
            return numeric_shape(non_null, ColumnSpec(type="integer", nullable=nullable, min=lo, max=hi))
        decimals = infer_decimals(non_null)
        lo, hi = _outward(lo, hi, decimals)
        return numeric_shape(non_null, ColumnSpec(type="float", nullable=nullable, min=lo, max=hi,
                                                  decimals=decimals))
    cats = sorted({c for c in (canonical_category(v) for v in non_null.unique()) if c is not None})
    if len(cats) > MAX_INFERRED_CATEGORIES:
        return ColumnSpec(type="identifier", nullable=nullable,
                          description=f"more than {MAX_INFERRED_CATEGORIES} distinct values: review")
    if set(cats) <= {"True", "False"} and cats:
        return ColumnSpec(type="boolean", nullable=nullable)
    return ColumnSpec(type="categorical", nullable=nullable, categories=cats or ["unknown"])


def infer_metadata(df: pd.DataFrame, *, name: str = "dataset", target: str | None = None) -> Metadata:
    """Draft metadata for ``df``; always ``reviewed=False`` (reads private values; not DP).

    A text column of protein/DNA/RNA sequences (:func:`~synthrelease.metadata.infer_sequences.looks_like_sequences`)
    is drafted as ``type: sequence`` when the table can be a sequence table (one sequence
    column, one label, identifiers: :func:`~synthrelease.metadata.infer_sequences.settle_sequence_table`).
    Without ``target``, a column named like a label becomes it
    (:func:`~synthrelease.metadata.infer_modelling.draft_target`).
    """
    columns = {str(c): sequence_spec(df[c]) if looks_like_sequences(df[c]) else infer_column(str(c), df[c])
               for c in df.columns}
    if target is not None and target in columns and columns[target].type not in ("categorical", "boolean"):
        cats = sorted({c for c in (canonical_category(v) for v in df[target].dropna().unique()) if c})
        columns[target] = ColumnSpec(type="categorical", categories=cats, nullable=columns[target].nullable)
    columns, target = settle_sequence_table(columns, target)
    columns, target = draft_target(columns, target)
    return Metadata(name=name, reviewed=False, target=target, columns=columns)


def metadata_to_yaml(metadata: Metadata, *, draft: bool) -> str:
    """Render metadata as YAML (with the draft warning header when ``draft``).

    A column lists its ``type``, ``nullable`` and every field that differs from the schema's
    default (a ``transform: none`` or an empty description is left out); it reads back equal.
    """
    data = metadata.to_yaml_dict()
    data["columns"] = {name: _without_defaults(spec) for name, spec in data["columns"].items()}
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if not draft:
        return body
    for name, spec in metadata.columns.items():
        if spec.type == "sequence":
            body = _comment_before_column(body, name, SEQUENCE_REVIEW)
        review = numeric_review(spec)
        if review is not None:
            body = _comment_before_column(body, name, review)
    return DRAFT_HEADER + _target_comment(body, metadata)


def _target_comment(body: str, metadata: Metadata) -> str:
    """``body`` with a ``# REVIEW`` comment above a target the draft set by name, or, without
    a target, a commented suggestion (``# target: ...``) below ``reviewed``."""
    lines = body.split("\n")
    target = metadata.target
    if target is not None and metadata.columns[target].description == TARGET_NOTE:
        i = next(i for i, line in enumerate(lines) if line.startswith("target:"))
        lines[i:i] = _comments(f"REVIEW: target {target!r} was drafted because its name reads like a label "
                               "(a categorical column with 2-20 categories): check it is the column to predict "
                               "(utility audits, the generator's condition), or delete this line")
        return "\n".join(lines)
    found = suggest_target(metadata.columns) if target is None else None
    if found is None:
        return body
    i = next(i for i, line in enumerate(lines) if line.startswith("reviewed:")) + 1
    line = yaml.safe_dump({"target": found[0]}, allow_unicode=True, width=10**6).rstrip("\n")
    lines[i:i] = [*_comments(f"REVIEW: no target set. Suggested: {found[0]!r}, the table's last column (a "
                             "categorical column with 2-20 categories): uncomment the line below if it is the "
                             "column to predict"), f"# {line}"]
    return "\n".join(lines)


def _comments(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {part}" for part in textwrap.wrap(text, 90)]


SEQUENCE_REVIEW = ("REVIEW: alphabet, min_length and max_length were read off the PRIVATE sequences: replace "
                   "them with public knowledge (the assay's alphabet, the study's length range)")
"""The comment a draft puts above each sequence column."""


def _comment_before_column(body: str, column: str, comment: str) -> str:
    """``body`` (a metadata YAML) with ``# comment`` on the line above column ``column``'s key."""
    key = yaml.safe_dump({column: 0}, allow_unicode=True, width=10**6).rstrip("\n")[:-len(" 0")]
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if line == f"  {key}":
            lines[i:i] = _comments(comment, "  ")
            break
    return "\n".join(lines)


def _without_defaults(column: dict) -> dict:
    kept = ("type", "nullable")
    return {key: value for key, value in column.items()
            if key in kept or key not in ColumnSpec.model_fields or value != ColumnSpec.model_fields[key].default}
