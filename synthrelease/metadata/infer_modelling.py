"""Drafting what the model needs to do well: numeric transforms, zero inflation, the target.

NOT DP: like every draft (:mod:`synthrelease.metadata.infer`), these functions read the
private values (their skewness, their share of zeros). What they draft is data-derived: the
steward keeps it only where public knowledge agrees (a code book saying a column is a
sampling weight or an amount most people report as zero) before setting ``reviewed: true``;
the YAML draft flags each drafted key in a ``# REVIEW`` comment above the column.

Rules, for an ``integer`` or ``float`` column with at least :data:`MIN_SHAPE_VALUES`
non-missing values, none negative, at least three distinct ones:

- ``transform: log1p`` when its sample skewness (pandas' adjusted Fisher–Pearson
  coefficient, zeros included) is at least :data:`HEAVY_TAIL_SKEWNESS`, the usual mark
  of a "highly skewed" distribution (Bulmer 1979). On UCI Adult: fnlwgt 1.4,
  capital-gain 12, capital-loss 4.6 get it; age 0.6, hours-per-week 0.2 and
  education-num −0.3 do not, as in the curated ``benchmarks/metadata/adult.yaml``.
- ``zero_inflated: true`` when at least :data:`ZERO_INFLATED_SHARE` of its values are
  exactly zero and some are positive (Adult's capital-gain: 92 %, capital-loss: 95 %).

Target (only when none was given and the table is not a sequence or image table):
:func:`suggest_target` picks a ``categorical``/``boolean`` column with
:data:`MIN_TARGET_CATEGORIES`–:data:`MAX_TARGET_CATEGORIES` categories whose name reads like
a label (:data:`LABEL_NAMES`: the whole name, or its last word such as ``disease_outcome``;
the last such column when several do). The draft sets it as ``target`` with a ``# REVIEW``
comment. Failing that, the table's last column, when it qualifies, is only *suggested*: the
draft carries a commented ``# target: ...`` line, since a column's place alone is weak evidence.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from synthrelease.metadata.schema import ColumnSpec

MIN_SHAPE_VALUES = 20
"""Fewest non-missing values a column needs before its shape drafts a transform or zero inflation."""

HEAVY_TAIL_SKEWNESS = 1.0
"""Least sample skewness of a non-negative column drafted with ``transform: log1p``."""

ZERO_INFLATED_SHARE = 0.3
"""Least share of exact zeros of a non-negative column drafted with ``zero_inflated: true``."""

MIN_TARGET_CATEGORIES = 2
MAX_TARGET_CATEGORIES = 20
"""Category counts of a column drafted or suggested as the target."""

LABEL_NAMES = frozenset({"income", "label", "class", "target", "outcome", "diagnosis", "y", "response",
                         "cell_type", "celltype"})
"""Column names (lower case, words split on ``_ - . space``) that read like a label. ``cell_type``
is the label field of single-cell tables (CELLxGENE's schema; pbmc68k's annotation)."""

TARGET_NOTE = "drafted as the target: its name reads like a label; review"
"""The description the draft gives a target it set by name."""

_SPLIT = re.compile(r"[\s_.\-]+")


def numeric_shape(values: pd.Series, spec: ColumnSpec) -> ColumnSpec:
    """``spec`` (an integer/float draft of ``values``) with the transform and zero inflation
    the module's rules draft (reads private values; not DP)."""
    if spec.type not in ("integer", "float"):
        return spec
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < MIN_SHAPE_VALUES or x.min() < 0 or len(np.unique(x)) < 3:
        return spec
    update: dict[str, object] = {}
    skewness = float(pd.Series(x).skew())
    if np.isfinite(skewness) and skewness >= HEAVY_TAIL_SKEWNESS:
        update["transform"] = "log1p"
    if float(np.mean(x == 0)) >= ZERO_INFLATED_SHARE:
        update["zero_inflated"] = True
    return spec.model_copy(update=update) if update else spec


def _words(name: str) -> list[str]:
    return [w for w in _SPLIT.split(name.strip().lower()) if w]


def _label_like(name: str) -> int:
    """2 when the whole name is a label name, 1 when its last word is one (not ``y``), else 0."""
    words = _words(name)
    if "_".join(words) in LABEL_NAMES or "".join(words) in LABEL_NAMES:
        return 2
    return 1 if len(words) > 1 and words[-1] in LABEL_NAMES - {"y"} else 0


def _can_be_target(spec: ColumnSpec) -> bool:
    if spec.type == "boolean":
        return True
    return spec.type == "categorical" and spec.categories is not None and \
        MIN_TARGET_CATEGORIES <= len(spec.categories) <= MAX_TARGET_CATEGORIES


def suggest_target(columns: dict[str, ColumnSpec]) -> tuple[str, bool] | None:
    """The column to draft as the target and whether its name reads like a label (then the
    draft sets it; otherwise it is the table's last column and only suggested), or None.

    None for sequence and image tables (their own drafting settles the label).
    """
    if any(s.type in ("sequence", "image") for s in columns.values()):
        return None
    named = [(_label_like(c), i, c) for i, (c, s) in enumerate(columns.items()) if _can_be_target(s)]
    named = [t for t in named if t[0] > 0]
    if named:
        return max(named)[2], True
    if columns:
        last = list(columns)[-1]
        if _can_be_target(columns[last]):
            return last, False
    return None


def draft_target(columns: dict[str, ColumnSpec], target: str | None) -> tuple[dict[str, ColumnSpec], str | None]:
    """Without ``target``, set the column :func:`suggest_target` finds by name as the target
    (noted for review in its description). Returns the columns and the target."""
    if target is not None:
        return columns, target
    found = suggest_target(columns)
    if found is None or not found[1]:
        return columns, None
    name = found[0]
    out = dict(columns)
    out[name] = out[name].model_copy(update={"description": TARGET_NOTE})
    return out, name


def numeric_review(spec: ColumnSpec) -> str | None:
    """The ``# REVIEW`` comment a draft puts above a numeric column with drafted keys, or None."""
    if spec.type not in ("integer", "float"):
        return None
    found = []
    if spec.transform != "none":
        found.append(f"transform: {spec.transform} (skewness ≥ {HEAVY_TAIL_SKEWNESS:g})")
    if spec.zero_inflated:
        found.append(f"zero_inflated (≥ {ZERO_INFLATED_SHARE:.0%} exact zeros)")
    if spec.decimals is not None:
        found.append(f"decimals: {spec.decimals} (as the values are written)")
    if not found:
        return None
    return (f"REVIEW: {'; '.join(found)} read off the PRIVATE values: keep only what public knowledge "
            "(a code book, what the column measures) supports")
