"""Fidelity audit: sdmetrics' own single-table QualityReport behind our AuditResult.

Reads private rows (the real training table). NOT differentially private: the result is
internal-only (it goes to the steward's internal report); only coarse, rounded figures
may be released.

The scoring follows the peers' independent evaluator (``shared/peers/evaluate.py``,
``fidelity``) so that our numbers and the peers' numbers are comparable:

* categorical/boolean values are canonical strings (``1``, ``1.0`` and ``"1"`` are one
  category) and a missing value is its own category ``"<NA>"``; numericals are floats with
  NaN for missing values (sdmetrics drops those); dates and datetimes are numericals (days /
  seconds since 1970-01-01, read with the declared format, identically on both tables);
* sdmetrics' default pair thresholds (only pairs with real |Pearson r| > 0.5 or real
  Cramér's V > 0.3 count towards Column Pair Trends);
* tables with more than 60 synthesised columns: Column Shapes over every column, Column
  Pair Trends over a deterministic subset of columns, overall = mean of the two.

One deliberate difference: sdmetrics subsamples 50,000 rows *without a seed* for the
contingency pairs of larger tables; we switch that off (``num_rows_subsample = None``), so
the score is deterministic and exact. Below 50,000 rows nothing changes.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.audits.float16_shapes import column_blocks, counted_columns, ks_statistics
from synthrelease.errors import DataValidationError
from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.dates import column_numbers, held_as_numbers
from synthrelease.metadata.schema import Metadata, canonical_category_series
from synthrelease.progress import ProgressCallback, ProgressEvent

WIDE_COLUMNS = 60
"""Above this many synthesised columns, Column Pair Trends uses a column subset."""

SHAPE_BLOCK_CELLS = 1 << 24
"""Wide tables: Column Shapes runs on blocks of columns holding at most this many cells
(rows of the longer table × columns, at least one column), so the typed float64 copy for
sdmetrics is one block (128 MiB), never the whole table. The score is the same: Column
Shapes is a mean over per-column scores."""

VARIANCE_BLOCK_CELLS = 1 << 17
"""The Column Pair Trends subset's variances run on blocks of at most this many cells (1 MiB of
float64; pandas makes a few temporaries of that size): the report's plot data calls it too,
and must stay far below one float64 copy of a wide table."""

NAN_TOKEN = "<NA>"
"""The category a missing categorical/boolean value becomes (as in the peers' evaluator)."""

_DECIMALS = 4


def _prepare(df: pd.DataFrame, metadata: Metadata, cols: list[str], what: str) -> pd.DataFrame:
    """Typed copy of ``df[cols]`` for sdmetrics (reads private rows; no value leaves this audit).

    Numericals → float (unparseable → NaN); categoricals and booleans → canonical strings,
    missing → ``"<NA>"``.
    """
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"fidelity audit: the {what} table lacks column(s) {missing}")
    out: dict[str, pd.Series] = {}
    for c in cols:
        if metadata.columns[c].is_numerical:
            out[c] = column_numbers(df[c], metadata.columns[c])
        else:
            out[c] = canonical_category_series(df[c]).fillna(NAN_TOKEN)
    # by position: ``df`` may carry any index (filtered rows, duplicate labels); aligning the
    # series on a RangeIndex by label would silently turn rows into NaN
    return pd.DataFrame({c: v.to_numpy() for c, v in out.items()}, index=pd.RangeIndex(len(df)))


def _column_shapes_in_blocks(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str],
                             sdmeta: dict[str, Any], shapes_property: type) -> tuple[float, pd.DataFrame]:
    """sdmetrics' Column Shapes score and details over ``cols``, computed on column blocks of at
    most :data:`SHAPE_BLOCK_CELLS` cells (reads private rows). Equal to one call on all columns:
    the score is the mean of the per-column scores (NaN skipped, as sdmetrics). Float16 columns
    get the same ``KSComplement`` by counting (:mod:`synthrelease.audits.float16_shapes`)."""
    counted = counted_columns(real, synthetic, metadata, cols)
    skip = set(counted)
    rest = [c for c in cols if c not in skip]
    blocks = [_counted_shape_details(real, synthetic, counted)] if counted else []
    width = max(1, SHAPE_BLOCK_CELLS // max(1, len(real), len(synthetic)))
    for lo in range(0, len(rest), width):
        block = rest[lo:lo + width]
        prop = shapes_property()
        prop.get_score(_prepare(real, metadata, block, "real"), _prepare(synthetic, metadata, block, "synthetic"),
                       {"columns": {c: sdmeta["columns"][c] for c in block}})
        blocks.append(prop.details)
        release_mapped_pages()  # a spilled synthetic table: only this block's pages were resident
    details = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=["Column", "Metric", "Score"])
    if counted and rest:  # back to table order
        order = {c: i for i, c in enumerate(cols)}
        details = details.iloc[np.argsort(details["Column"].map(order).to_numpy(), kind="stable")]
        details = details.reset_index(drop=True)
    if "Error" in details.columns and details["Error"].isna().all():
        details = details.drop(columns="Error")
    return float(details["Score"].mean()), details


def _counted_shape_details(real: pd.DataFrame, synthetic: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Column Shapes details rows (``KSComplement``, NaN missing values dropped) of float16 columns."""
    scores = [1.0 - ks_statistics(r, s) for _, r, s in column_blocks(real, synthetic, cols)]
    return pd.DataFrame({"Column": cols, "Metric": "KSComplement", "Score": np.concatenate(scores)})


def pair_columns(real: pd.DataFrame, metadata: Metadata, max_columns: int) -> list[str]:
    """The deterministic column subset for Column Pair Trends on wide tables.

    Reads private rows (the variances of the real columns); NOT differentially private; the
    subset is internal-only (recorded in the internal report).

    As the peers' evaluator: the target, then the categorical/boolean columns in table
    order, then the numerical columns with the highest variance after min-max scaling —
    except that the scaling uses the metadata's declared public bounds (``domain()``), not
    the data's min/max. Ties in variance keep table order (stable sort). Returned in
    table order.
    """
    cols = metadata.model_columns
    target = metadata.target if metadata.target in cols else None
    cats = [c for c in cols if not metadata.columns[c].is_numerical and c != target]
    chosen = ([target] if target is not None else []) + cats
    chosen = chosen[:max_columns]
    nums = [c for c in cols if metadata.columns[c].is_numerical]
    if nums and len(chosen) < max_columns:
        var = _scaled_variances(real, metadata, nums).fillna(0.0)  # ddof=1, NaN skipped, as pandas in evaluate.py
        var = var.sort_values(ascending=False, kind="stable")
        chosen += list(var.index[: max_columns - len(chosen)])
    keep = set(chosen)
    return [c for c in cols if c in keep]


def _scaled_variances(real: pd.DataFrame, metadata: Metadata, nums: list[str]) -> pd.Series:
    """pandas' variance (ddof=1, NaN skipped) of each numerical column scaled by its declared
    bounds, in blocks of :data:`VARIANCE_BLOCK_CELLS` cells (no float64 copy of a wide table)."""
    width = max(1, VARIANCE_BLOCK_CELLS // max(1, len(real)))
    dtypes = real.dtypes
    parts = []
    for start in range(0, len(nums), width):
        block = nums[start:start + width]
        if all(held_as_numbers(metadata.columns[c], dtypes[c]) for c in block):
            frame = real[block].astype(np.float64)  # column_numbers would return these values
        else:
            frame = pd.DataFrame({c: column_numbers(real[c], metadata.columns[c]).to_numpy() for c in block})
        low, high = (np.array([metadata.columns[c].domain()[k] for c in block], dtype=np.float64) for k in (0, 1))
        parts.append(((frame - low) / (high - low)).var())
    return pd.concat(parts) if parts else pd.Series(dtype=np.float64)


def _plain(value: Any) -> Any:
    """A JSON-able scalar: numpy → Python, NaN/NA → None, floats rounded to 4 decimals."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, _DECIMALS)
    return value


def _records(details: pd.DataFrame) -> list[dict[str, Any]]:
    """sdmetrics' details table as a list of dicts with snake_case keys (reads private rows' scores)."""
    keys = {c: c.lower().replace("?", "").strip().replace(" ", "_") for c in details.columns}
    return [{keys[k]: _plain(v) for k, v in row.items()} for row in details.to_dict(orient="records")]


def _finite(x: Any) -> float | None:
    """``float(x)``, or None when it is NaN/inf (sdmetrics' mean of no pairs is NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class _Scores:
    """sdmetrics' scores (in [0, 1], NaN when undefined) and detail tables. INTERNAL: from private rows."""

    overall: float
    shapes: float
    trends: float
    shape_details: pd.DataFrame
    pair_details: pd.DataFrame
    correlation_threshold: float
    """Real |Pearson r| a numerical pair must exceed to count towards Column Pair Trends."""
    association_threshold: float
    """Real Cramér's V a categorical pair must exceed to count towards Column Pair Trends."""
    pair_columns: list[str]
    """The columns pairs were formed from."""


def _check_columns(real: pd.DataFrame, synthetic: pd.DataFrame, cols: list[str]) -> None:
    """DataValidationError naming the synthesised columns the real (checked first) or synthetic table lacks."""
    for frame, what in ((real, "real"), (synthetic, "synthetic")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataValidationError(f"fidelity audit: the {what} table lacks column(s) {missing}")


def _full_quality_report(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str],
                         sdmeta: dict[str, Any], emit: ProgressCallback, quality_report: type) -> _Scores:
    """sdmetrics' own QualityReport on every synthesised column, exact (no unseeded 50k-row subsample).

    Reads private rows; INTERNAL. Emits ``audit:fidelity`` step 0 of 1.
    """
    emit(ProgressEvent("audit:fidelity", 0, 1, message=f"quality report on {len(cols)} columns"))
    r = _prepare(real, metadata, cols, "real")
    s = _prepare(synthetic, metadata, cols, "synthetic")
    report = quality_report()
    report.num_rows_subsample = None  # exact: no unseeded 50k-row subsample
    report.generate(r, s, sdmeta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return _Scores(overall=report.get_score(), shapes=props["Column Shapes"], trends=props["Column Pair Trends"],
                   shape_details=report.get_details("Column Shapes"),
                   pair_details=report.get_details("Column Pair Trends"),
                   correlation_threshold=report.real_correlation_threshold,
                   association_threshold=report.real_association_threshold, pair_columns=cols)


def _wide_quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str],
                         sdmeta: dict[str, Any], max_pair_columns: int, emit: ProgressCallback,
                         quality_report: type) -> _Scores:
    """Wide tables: Column Shapes over every column (in blocks), Column Pair Trends (sdmetrics' default
    thresholds, exact) over :func:`pair_columns`, overall = their mean, NaN skipped.

    Reads private rows; INTERNAL. Emits ``audit:fidelity`` steps 0 and 1 of 2.
    """
    from sdmetrics.reports.single_table._properties import ColumnPairTrends, ColumnShapes

    emit(ProgressEvent("audit:fidelity", 0, 2, message=f"column shapes on {len(cols)} columns"))
    shapes, shape_details = _column_shapes_in_blocks(real, synthetic, metadata, cols, sdmeta, ColumnShapes)
    subset = pair_columns(real, metadata, max_pair_columns)
    emit(ProgressEvent("audit:fidelity", 1, 2, message=f"column pair trends on {len(subset)} of {len(cols)} columns"))
    defaults = quality_report()  # only for sdmetrics' default thresholds
    pair_prop = ColumnPairTrends()
    pair_prop.real_correlation_threshold = corr_t = defaults.real_correlation_threshold
    pair_prop.real_association_threshold = assoc_t = defaults.real_association_threshold
    pair_prop.num_rows_subsample = None
    r = _prepare(real, metadata, subset, "real")
    s = _prepare(synthetic, metadata, subset, "synthetic")
    trends = pair_prop.get_score(r, s, {"columns": {c: sdmeta["columns"][c] for c in subset}})
    finite = [float(x) for x in (shapes, trends) if math.isfinite(x)]
    overall = sum(finite) / len(finite) if finite else math.nan  # sdmetrics' nanmean
    return _Scores(overall=overall, shapes=shapes, trends=trends, shape_details=shape_details,
                   pair_details=pair_prop.details, correlation_threshold=corr_t, association_threshold=assoc_t,
                   pair_columns=subset)


def _quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str],
                    sdmeta: dict[str, Any], *, wide: bool, max_pair_columns: int, emit: ProgressCallback) -> _Scores:
    """sdmetrics' scores of ``cols``, the full report or (``wide``) the column-subset variant, with every
    warning silenced. Reads private rows; INTERNAL."""
    with warnings.catch_warnings():
        # sdmetrics 0.32 warns (FutureWarning, at import) that the single-table report is
        # deprecated in favour of the unified one; we keep it because it is what the peers
        # were scored with. It and scipy/pandas also warn on constant columns. An audit must
        # not write to the console; the per-item errors sdmetrics catches stay in the details.
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import QualityReport

        if not wide:
            return _full_quality_report(real, synthetic, metadata, cols, sdmeta, emit, QualityReport)
        return _wide_quality_scores(real, synthetic, metadata, cols, sdmeta, max_pair_columns, emit,
                                    QualityReport)


def _fidelity_metrics(scores: _Scores) -> dict[str, float | None]:
    """``quality_score``, ``column_shapes``, ``column_pair_trends`` as floats, None when not finite."""
    return {"quality_score": _finite(scores.overall), "column_shapes": _finite(scores.shapes),
            "column_pair_trends": _finite(scores.trends)}


def _fidelity_details(real: pd.DataFrame, synthetic: pd.DataFrame, cols: list[str], scores: _Scores,
                      wide: bool) -> dict[str, Any]:
    """JSON-able details: version, counts, thresholds, per-column and per-pair records (floats rounded
    to 4 decimals), and notes on the wide-table subset and on a missing pair score. INTERNAL."""
    shape_details, pair_details = scores.shape_details, scores.pair_details
    meets = pair_details["Meets Threshold?"].astype("boolean").fillna(False) if len(pair_details) else []
    errors = sum(int(d["Error"].notna().sum()) for d in (shape_details, pair_details) if "Error" in d.columns)
    details: dict[str, Any] = {
        "sdmetrics_version": version("sdmetrics"),
        "n_columns": len(cols), "n_rows_real": len(real), "n_rows_synthetic": len(synthetic),
        "pair_subsampled": wide,
        "pair_columns": list(scores.pair_columns),
        "n_pairs": len(pair_details), "n_pairs_meeting_threshold": int(np.sum(meets)),
        "real_correlation_threshold": scores.correlation_threshold,
        "real_association_threshold": scores.association_threshold,
        "n_errors": errors,
        "column_shapes": _records(shape_details),
        "column_pair_trends": _records(pair_details),
    }
    if wide:
        details["note"] = (f"{len(cols)} columns > {WIDE_COLUMNS}: Column Pair Trends on {len(scores.pair_columns)} "
                           "columns (target, categoricals, highest-variance numericals scaled by declared bounds); "
                           "Column Shapes on all columns; overall = mean of the two")
    if _finite(scores.trends) is None:
        details["pair_note"] = "no column pair meets sdmetrics' real-correlation/association thresholds"
    return details


def run_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                 max_pair_columns: int = 40, progress: ProgressCallback | None = None,
                 coverage: bool = True, seed: int = 0) -> AuditResult:
    """sdmetrics QualityReport of the synthetic table against the real training rows.

    Reads private rows (``real``); NOT differentially private; the result is internal-only
    (it goes to the steward's internal report; only coarse figures may be released).

    Scores the synthesised columns (``metadata.model_columns``) with
    ``metadata.to_sdmetrics()``. Up to 60 columns: sdmetrics' own single-table
    ``QualityReport``. Wider tables: sdmetrics' Column Shapes over every column, its Column
    Pair Trends (default thresholds) over :func:`pair_columns` (``max_pair_columns``
    columns), overall = mean of the two, as the peers' evaluator does. Nothing is printed;
    sdmetrics' warnings are silenced inside this call (per-column/per-pair errors are kept
    in the details).

    Metrics: ``quality_score`` (overall), ``column_shapes``, ``column_pair_trends`` (None
    when no pair meets sdmetrics' thresholds; then overall = column shapes, as sdmetrics).
    Details: ``column_shapes`` and ``column_pair_trends`` (lists of dicts, floats rounded to
    4 decimals), ``pair_columns`` (the columns pairs were formed from), counts, thresholds.

    Args:
        real: the real training rows (private).
        synthetic: the synthetic rows.
        metadata: public metadata; its ``model_columns`` are scored.
        max_pair_columns: size of the pair-trends column subset on wide tables.
        progress: optional callback for ``audit:fidelity`` progress events.
        coverage: also compute PRDC and per-category coverage (audits/coverage.py): metrics
            ``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage``,
            ``missing_category_share``; details ``coverage``.
        seed: seeds the coverage subsample (at most 5,000 rows per side).

    Returns:
        AuditResult named ``fidelity`` (``internal_only``; ``runtime_s`` from ``time.perf_counter``).

    Raises:
        DataValidationError: a synthesised column is missing from either table.
        ValueError: ``max_pair_columns`` < 2.
    """
    started = time.perf_counter()
    if max_pair_columns < 2:
        raise ValueError(f"max_pair_columns must be at least 2, got {max_pair_columns}")
    emit = progress or (lambda event: None)
    cols = metadata.model_columns
    sdmeta = metadata.to_sdmetrics()
    _check_columns(real, synthetic, cols)
    wide = len(cols) > WIDE_COLUMNS
    scores = _quality_scores(real, synthetic, metadata, cols, sdmeta, wide=wide, max_pair_columns=max_pair_columns,
                             emit=emit)
    metrics = _fidelity_metrics(scores)
    details = _fidelity_details(real, synthetic, cols, scores, wide)
    if coverage:
        from synthrelease.audits.coverage import run_coverage

        cov_metrics, details["coverage"] = run_coverage(real, synthetic, metadata, seed=seed)
        metrics.update(cov_metrics)
    runtime = time.perf_counter() - started
    emit(ProgressEvent("audit:fidelity", 2 if wide else 1, 2 if wide else 1,
                       metrics={k: v for k, v in metrics.items() if v is not None}, message="done"))
    return AuditResult("fidelity", metrics, details, runtime)
