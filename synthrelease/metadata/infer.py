"""Drafting a metadata file from a table, for the steward to review.

NOT DP: the draft reads the private rows (their min, max and distinct values). It is a
starting point for the steward only: the file is marked ``reviewed: false`` and carries
a warning, and training refuses it until a person has replaced every data-derived bound
and category list with public knowledge and set ``reviewed: true``.
"""

from __future__ import annotations

import math

import pandas as pd
import yaml

from synthrelease.metadata.schema import ColumnSpec, Metadata, canonical_category

MAX_INFERRED_CATEGORIES = 50

DRAFT_HEADER = """\
# DRAFT metadata inferred by `synthrelease metadata infer` from the PRIVATE table.
#
# WARNING: the min/max bounds and category lists below were read off the private
# rows. Releasing a model trained with them would leak those values outside the
# differential-privacy guarantee. Before training, replace each of them with PUBLIC
# knowledge (a code book, the instrument's range, the study protocol), widen bounds
# to round public values, check every column type, then set `reviewed: true`.
"""


def _is_integer_valued(s: pd.Series) -> bool:
    x = s.dropna().astype(float)
    return bool(len(x)) and bool((x == x.round()).all())


def infer_column(name: str, s: pd.Series) -> ColumnSpec:
    """Draft a :class:`ColumnSpec` for one column (reads private values; not DP)."""
    nullable = bool(s.isna().any())
    non_null = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return ColumnSpec(type="boolean", nullable=nullable)
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
        return ColumnSpec(type="integer" if integer else "float", nullable=nullable, min=lo, max=hi)
    cats = sorted({c for c in (canonical_category(v) for v in non_null.unique()) if c is not None})
    if len(cats) > MAX_INFERRED_CATEGORIES:
        return ColumnSpec(type="identifier", nullable=nullable,
                          description=f"more than {MAX_INFERRED_CATEGORIES} distinct values: review")
    if set(cats) <= {"True", "False"} and cats:
        return ColumnSpec(type="boolean", nullable=nullable)
    return ColumnSpec(type="categorical", nullable=nullable, categories=cats or ["unknown"])


def infer_metadata(df: pd.DataFrame, *, name: str = "dataset", target: str | None = None) -> Metadata:
    """Draft metadata for ``df``; always ``reviewed=False`` (reads private values; not DP)."""
    columns = {str(c): infer_column(str(c), df[c]) for c in df.columns}
    if target is not None and target in columns and columns[target].type not in ("categorical", "boolean"):
        cats = sorted({c for c in (canonical_category(v) for v in df[target].dropna().unique()) if c})
        columns[target] = ColumnSpec(type="categorical", categories=cats, nullable=columns[target].nullable)
    return Metadata(name=name, reviewed=False, target=target, columns=columns)


def metadata_to_yaml(metadata: Metadata, *, draft: bool) -> str:
    """Render metadata as YAML (with the draft warning header when ``draft``)."""
    body = yaml.safe_dump(metadata.to_yaml_dict(), sort_keys=False, allow_unicode=True)
    return (DRAFT_HEADER if draft else "") + body
