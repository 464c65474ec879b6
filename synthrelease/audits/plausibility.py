"""Plausibility audit: the policy's public domain rules on the SYNTHETIC rows, through GX.

Each rule of the policy's ``plausibility`` section becomes Great Expectations 1.24
expectations (tagged ``meta.rule_id``):

=============  ==================================================================
rule kind      expectation
=============  ==================================================================
range          ExpectColumnValuesToBeBetween(column, min_value, max_value)
in_set         ExpectColumnValuesToBeInSet(column, value_set)
less_than      ExpectColumnPairValuesAToBeGreaterThanB(column_A=b, column_B=a,
               or_equal, ignore_row_if="either_value_is_missing")
before         the same, on two date/datetime columns
non_negative   ExpectColumnValuesToBeBetween(column, min_value=0), one per column
conditional    the ``then`` expectation with ``row_condition`` = a GX Condition
               (``Column(c) == v`` or ``Column(c).is_in([...])``); string
               conditions with ``condition_parser`` are deprecated in GX ≥ 1.9
=============  ==================================================================

Violation share of an expectation = violating rows / rows with a value in its domain
(GX's ``unexpected_count / (element_count - missing_count)``: missing values are not
violations; a conditional rule counts only the rows meeting its condition; 0 when the
domain is empty). A rule's share is the worst of its expectations. Each expectation
carries ``mostly = 1 - max_violation_share``, so GX's own ``success`` agrees with the
gate. Categorical values are compared as canonical strings (``1``, ``1.0`` and ``"1"``
are one category); numerical values as floats; dates and datetimes as seconds since
1970-01-01 (read with the declared format; a date is its midnight), so that ``before``
and ``less_than`` order two date columns, or a date and a datetime, as points in time.
Date columns take part only in ``before`` and ``less_than`` rules: their public bounds
are the metadata's ``min``/``max``, already enforced on every synthetic value.

Guarantee: this audit reads only the synthetic rows (the DP output) and the public
metadata and policy, so its result is post-processing of the DP release. GX's result
JSON is kept with value lists capped at :data:`MAX_LISTED_VALUES` synthetic values and
row indices dropped. Rules over more than ``WIDE_NUMERIC_COLUMNS`` columns
(``non_negative`` on gene-expression matrices) run as one vectorised numpy pass with
the same semantics instead of one GX expectation per column.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.errors import PolicyError
from synthrelease.metadata.dates import UNIT_SECONDS
from synthrelease.metadata.schema import Metadata, canonical_category
from synthrelease.policy.schema import (
    ALL_NUMERICAL,
    BeforeRule,
    ConditionalRule,
    InSetRule,
    LessThanRule,
    NonNegativeRule,
    RangeRule,
    line_of,
)
from synthrelease.validation.expectations import WIDE_NUMERIC_COLUMNS, _gx, checked_frame, ephemeral_context

MAX_LISTED_VALUES = 10
_DROPPED_KEYS = ("partial_unexpected_index_list", "unexpected_index_list", "unexpected_list", "unexpected_rows",
                 "unexpected_index_query")


def rule_columns(rule: Any, metadata: Metadata) -> list[str]:
    """Every column a rule reads (``all numerical`` resolved from the metadata)."""
    if isinstance(rule, RangeRule | InSetRule):
        return [rule.column]
    if isinstance(rule, LessThanRule | BeforeRule):
        return [rule.column_a, rule.column_b]
    if isinstance(rule, NonNegativeRule):
        if rule.columns == ALL_NUMERICAL:
            return [c for c in metadata.numerical_columns if c in metadata.model_columns]
        return list(rule.columns)
    if isinstance(rule, ConditionalRule):
        return [rule.if_.column, rule.then.column]
    raise TypeError(f"unknown rule type {type(rule).__name__}")


def check_rules(rules: list[Any], metadata: Metadata, *,
                policy_path: str | os.PathLike[str] | None = None) -> None:
    """Check every rule's columns and values against the metadata (call before training).

    Raises:
        PolicyError: (exit 2) naming the policy file, line and rule id: an undeclared
            or identifier column, a numerical rule on a non-numerical column, a ``before``
            rule on a column that is not a date/datetime, a date column in a rule other
            than ``before``/``less_than`` (or ``less_than`` between a date and a number),
            or a non-numeric value for a numerical column.
    """
    text = None
    if policy_path is not None and Path(policy_path).is_file():
        text = Path(policy_path).read_text(encoding="utf-8")
    for i, rule in enumerate(rules):
        problem = _rule_problem(rule, metadata)
        if problem is None:
            continue
        line = line_of(text, ("plausibility", "rules", i)) if text is not None else None
        where = f"{policy_path}:{line}: " if line else (f"{policy_path}: " if policy_path else "")
        raise PolicyError(f"{where}plausibility rule '{rule.id}': {problem}")


def _rule_problem(rule: Any, metadata: Metadata) -> str | None:
    cols = rule_columns(rule, metadata)
    if isinstance(rule, NonNegativeRule) and not cols:
        return "'all numerical' but the metadata declares no numerical column"
    for c in cols:
        spec = metadata.columns.get(c)
        if spec is None:
            return f"column '{c}' is not declared in the metadata '{metadata.name}'"
        if spec.type == "identifier":
            return f"column '{c}' is an identifier and is not synthesised"
    if isinstance(rule, BeforeRule):
        for c in cols:
            if not metadata.columns[c].is_temporal:
                return f"column '{c}' is {metadata.columns[c].type}; a before rule needs two date or datetime columns"
        return None
    if isinstance(rule, LessThanRule):
        temporal = [metadata.columns[c].is_temporal for c in cols]
        if any(temporal) and not all(temporal):
            a, b = cols
            return (f"less_than compares two numerical columns or two date/datetime columns, not '{a}' "
                    f"({metadata.columns[a].type}) with '{b}' ({metadata.columns[b].type})")
    else:
        for c in cols:
            if metadata.columns[c].is_temporal:
                return (f"column '{c}' is {metadata.columns[c].type}; date columns take part only in before and "
                        "less_than rules (their bounds are the metadata's min/max)")
    numeric_needed: list[str] = []
    if isinstance(rule, RangeRule | LessThanRule | NonNegativeRule):
        numeric_needed = cols
    elif isinstance(rule, ConditionalRule) and rule.then.kind == "range":
        numeric_needed = [rule.then.column]
    for c in numeric_needed:
        if not metadata.columns[c].is_numerical:
            return f"column '{c}' is {metadata.columns[c].type}; a {rule.kind} rule needs a numerical column"
    value_lists: list[tuple[str, list[Any]]] = []
    if isinstance(rule, InSetRule):
        value_lists.append((rule.column, rule.values))
    if isinstance(rule, ConditionalRule):
        cond = rule.if_
        value_lists.append((cond.column, cond.in_set if cond.in_set is not None else [cond.equals]))
        if rule.then.kind == "in_set":
            value_lists.append((rule.then.column, rule.then.values))
    for c, values in value_lists:
        if metadata.columns[c].is_numerical and not all(_is_number(v) for v in values):
            return f"column '{c}' is numerical; its values must be numbers"
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _values(metadata: Metadata, column: str, values: list[Any]) -> list[Any]:
    if metadata.columns[column].is_numerical:
        return [float(v) for v in values]
    return [canonical_category(v) for v in values]


def _expectations(rule: Any, metadata: Metadata, columns: list[str]) -> list[Any]:
    """GX expectations of one rule (each tagged with the rule id)."""
    gx = _gx()
    from great_expectations.expectations.row_conditions import Column

    e = gx.expectations
    common: dict[str, Any] = {"mostly": 1.0 - rule.max_violation_share, "meta": {"rule_id": rule.id}}
    if isinstance(rule, RangeRule):
        return [e.ExpectColumnValuesToBeBetween(column=rule.column, min_value=rule.min, max_value=rule.max,
                                                **common)]
    if isinstance(rule, InSetRule):
        return [e.ExpectColumnValuesToBeInSet(column=rule.column,
                                              value_set=_values(metadata, rule.column, rule.values), **common)]
    if isinstance(rule, LessThanRule | BeforeRule):
        return [e.ExpectColumnPairValuesAToBeGreaterThanB(column_A=rule.column_b, column_B=rule.column_a,
                                                          or_equal=rule.or_equal,
                                                          ignore_row_if="either_value_is_missing", **common)]
    if isinstance(rule, NonNegativeRule):
        return [e.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, **common) for c in columns]
    cond = rule.if_
    if cond.in_set is not None:
        condition = Column(cond.column).is_in(_values(metadata, cond.column, cond.in_set))
    else:
        condition = Column(cond.column) == _values(metadata, cond.column, [cond.equals])[0]
    then = rule.then
    if then.kind == "range":
        return [e.ExpectColumnValuesToBeBetween(column=then.column, min_value=then.min, max_value=then.max,
                                                row_condition=condition, **common)]
    return [e.ExpectColumnValuesToBeInSet(column=then.column, value_set=_values(metadata, then.column, then.values),
                                          row_condition=condition, **common)]


def _share(result: dict[str, Any]) -> float | None:
    """Violating rows / rows with a value, from one GX expectation result (None if it errored)."""
    if (result.get("exception_info") or {}).get("raised_exception"):
        return None
    r = result.get("result") or {}
    if r.get("unexpected_count") is None:
        return None
    domain = int(r.get("element_count") or 0) - int(r.get("missing_count") or 0)
    return float(r["unexpected_count"]) / domain if domain > 0 else 0.0


def _scrub(gx_result: dict[str, Any]) -> dict[str, Any]:
    """Drop row indices and the batch fingerprint; cap value lists."""
    for r in gx_result.get("results", []):
        res = r.get("result") or {}
        for key in _DROPPED_KEYS:
            res.pop(key, None)
        for key in ("partial_unexpected_list", "partial_unexpected_counts"):
            if isinstance(res.get(key), list):
                res[key] = res[key][:MAX_LISTED_VALUES]
        info = r.get("exception_info") or {}
        if info.get("exception_traceback"):
            info["exception_traceback"] = None  # long, and names paths of this machine
    gx_result.get("meta", {}).pop("batch_markers", None)
    return gx_result


def _wide_non_negative(frame: pd.DataFrame, columns: list[str]) -> tuple[float, dict[str, Any]]:
    x = frame[columns].to_numpy(dtype=float)
    present = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        negative = (x < 0) & present
    n = present.sum(axis=0)
    shares = np.divide(negative.sum(axis=0), n, out=np.zeros(len(columns)), where=n > 0)
    worst = np.argsort(-shares, kind="stable")[:MAX_LISTED_VALUES]
    return float(shares.max()), {
        "engine": f"numpy (more than {WIDE_NUMERIC_COLUMNS} columns; GX semantics: missing values ignored)",
        "columns_checked": len(columns), "columns_violating": int((shares > 0).sum()),
        "worst_columns": [{"column": columns[j], "violation_share": float(shares[j])} for j in worst
                          if shares[j] > 0],
    }


def run_plausibility(synthetic: pd.DataFrame, metadata: Metadata, rules: list[Any]) -> AuditResult:
    """Check the policy's plausibility rules on the synthetic rows.

    Returns:
        AuditResult ``plausibility``: metrics ``violation_share:<rule id>`` per rule (None
        when GX raised on it) and ``max_violation_share``; details hold the GX
        validation result JSON (``gx_result``), per-rule summaries, and the vectorised
        results of wide rules. Reads no private rows (``internal_only`` is False).

    Raises:
        PolicyError: a rule names a column the metadata lacks (see :func:`check_rules`).
    """
    t0 = time.perf_counter()
    check_rules(rules, metadata)
    frame = checked_frame(synthetic, metadata)
    for c in metadata.date_columns:  # one unit (seconds) for every date/datetime comparison
        if c in frame.columns:
            frame[c] = frame[c] * UNIT_SECONDS[metadata.columns[c].type]
    gx = _gx()
    suite = gx.ExpectationSuite(name="synthrelease-plausibility")
    ephemeral_context()
    shares: dict[str, float | None] = {}
    wide: dict[str, Any] = {}
    n_expectations: dict[str, int] = {}
    for rule in rules:
        cols = rule_columns(rule, metadata)
        if isinstance(rule, NonNegativeRule) and len(cols) > WIDE_NUMERIC_COLUMNS:
            shares[rule.id], wide[rule.id] = _wide_non_negative(frame, cols)
            continue
        expectations = _expectations(rule, metadata, cols)
        n_expectations[rule.id] = len(expectations)
        for exp in expectations:
            suite.add_expectation(exp)
    gx_result: dict[str, Any] = {"results": [], "success": True}
    if suite.expectations:
        context = ephemeral_context()
        asset = context.data_sources.add_pandas("synthetic").add_dataframe_asset("synthetic_rows")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_LISTED_VALUES}
        gx_result = _scrub(batch.validate(suite, result_format=result_format).to_json_dict())
    per_rule: dict[str, list[float | None]] = {rid: [] for rid in n_expectations}
    for r in gx_result.get("results", []):
        rid = (r.get("expectation_config", {}).get("meta") or {}).get("rule_id")
        if rid in per_rule:
            per_rule[rid].append(_share(r))
    for rid, values in per_rule.items():
        complete = len(values) == n_expectations[rid] and all(v is not None for v in values)
        shares[rid] = max(v for v in values if v is not None) if complete and values else None
    ordered = {r.id: shares.get(r.id) for r in rules}
    measured = [v for v in ordered.values() if v is not None]
    metrics: dict[str, float | None] = {f"violation_share:{rid}": v for rid, v in ordered.items()}
    metrics["max_violation_share"] = max(measured) if len(measured) == len(ordered) and measured else None
    details = {
        "rows": len(synthetic),
        "rules": [{"id": r.id, "kind": r.kind, "max_violation_share": r.max_violation_share,
                   "violation_share": ordered[r.id],
                   "passed": ordered[r.id] is not None and ordered[r.id] <= r.max_violation_share}
                  for r in rules],
        "share_definition": "violating rows / rows with a value in the rule's domain (worst column for "
                            "multi-column rules; rows meeting the condition for conditional rules)",
        "wide_rules": wide,
        "gx_result": gx_result,
        "note": "computed on synthetic rows only; listed values are synthetic (at most "
                f"{MAX_LISTED_VALUES} per expectation)",
    }
    return AuditResult("plausibility", metrics, details, time.perf_counter() - t0, internal_only=False)
