"""Bounded plot data for the internal report. INTERNAL: computed on private rows, NOT DP.

:func:`collect_plot_data` summarises the real training rows against the synthetic rows
so that the internal report can be drawn again from its JSON alone (``synthrelease
report``): per-column histograms (worst-matching columns first, at most
:data:`MAX_DETAIL_COLUMNS`), a per-column score summary for wide tables, association
matrices of real and synthetic rows, and a 2-D PCA sample of both coloured by class.
Everything here reads private rows: it belongs in the steward's internal report only and
must never go into a bundle, a manifest or a release card.

Sizes are bounded whatever the table: ≤ :data:`MAX_BINS` bins or
:data:`MAX_CATEGORIES` categories per column, ≤ :data:`MAX_MATRIX_COLUMNS` columns in the
matrices, ≤ :data:`MAX_EMBEDDING_POINTS` points per side in the embedding, and at most
:data:`MAX_SUMMARY_COLUMNS` per-column scores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.io.spill import release_mapped_pages, take_rows
from synthrelease.metadata.dates import TEMPORAL_TYPES, column_numbers
from synthrelease.metadata.schema import Metadata, canonical_category

MAX_BINS = 30
MAX_CATEGORIES = 30
MAX_DETAIL_COLUMNS = 30
MAX_MATRIX_COLUMNS = 30
MAX_EMBEDDING_POINTS = 1000
MAX_SUMMARY_COLUMNS = 5000
MISSING = "<missing>"
OTHER = "<other>"

NOTICE = ("INTERNAL: computed on the private training rows (histograms, association matrices, a sample of "
          "real rows projected to 2-D); not differentially private; never part of a bundle")


def collect_plot_data(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                      audits: Mapping[str, Any], *, seed: int, target: str | None = None) -> dict[str, Any]:
    """The internal report's ``plots`` entry (JSON-able, bounded). INTERNAL: reads private rows.

    Args:
        train: the real training rows (private).
        holdout: the real holdout rows (private; unused for now: membership plots come from
            the membership audit's own details).
        synthetic: the synthetic rows.
        metadata: public metadata (column kinds, declared bounds and categories).
        audits: audit results by name (``AuditResult`` or their dicts); fidelity's per-column
            scores order the columns when present.
        seed: seeds the embedding's subsample and PCA.
        target: the class column colouring the embedding (default: the metadata's target).
    """
    del holdout  # the signature names every private input the report may one day need
    cols = [c for c in metadata.model_columns if c in train.columns and c in synthetic.columns]
    scores = _column_scores(train, synthetic, metadata, cols, _fidelity_scores(audits))
    worst = [s["column"] for s in scores[:MAX_DETAIL_COLUMNS]]
    matrix = _matrix_columns(train, metadata, cols)
    shown = [c for c in cols if c in set(worst) | set(matrix)]  # typed copies of these columns only
    real, syn = _prepared(train, metadata, shown), _prepared(synthetic, metadata, shown)
    return {
        "notice": NOTICE,
        "column_scores": scores[:MAX_SUMMARY_COLUMNS],
        "n_columns": len(cols),
        "columns": [_histogram(real[c], syn[c], metadata, c) | {"score": _score_of(scores, c)} for c in worst],
        "association": {"columns": matrix, "measure": ASSOCIATION_MEASURE,
                        "real": _association(real, matrix), "synthetic": _association(syn, matrix)},
        "embedding": embedding_sample(train, synthetic, metadata, seed=seed,
                                      target=target if target is not None else metadata.target),
    }


def _details(audit: Any) -> dict[str, Any]:
    if audit is None:
        return {}
    details = getattr(audit, "details", None)
    return details if isinstance(details, dict) else dict(audit.get("details") or {})


def _fidelity_scores(audits: Mapping[str, Any]) -> dict[str, tuple[str, float]]:
    """column → (metric, score) from sdmetrics' Column Shapes details, when the fidelity audit ran."""
    out: dict[str, tuple[str, float]] = {}
    for rec in _details(audits.get("fidelity")).get("column_shapes", []):
        score = rec.get("score")
        if isinstance(score, int | float) and math.isfinite(score) and rec.get("column"):
            out[str(rec["column"])] = (str(rec.get("metric", "")), float(score))
    return out


def _score_of(scores: list[dict[str, Any]], column: str) -> float | None:
    return next((s["score"] for s in scores if s["column"] == column), None)


def _categories(series: pd.Series) -> np.ndarray:
    """Canonical category strings (object array), missing → ``<missing>``; canonicalises unique values only."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    labels = np.array([canonical_category(u) or MISSING for u in uniques] + [MISSING], dtype=object)
    return labels[codes]


def _prepared(df: pd.DataFrame, metadata: Metadata, cols: list[str]) -> dict[str, np.ndarray]:
    """Each column once: floats (NaN missing) for numericals (dates: days / seconds since
    1970-01-01), canonical strings for the others."""
    return {c: column_numbers(df[c], metadata.columns[c]).to_numpy(dtype=np.float64)
            if metadata.columns[c].is_numerical else _categories(df[c]) for c in cols}


def _ks_complement(a: np.ndarray, b: np.ndarray) -> float:
    """1 − Kolmogorov–Smirnov statistic of the non-missing values (1 when either side is empty)."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if len(a) == 0 or len(b) == 0:
        return 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(1.0 - np.max(np.abs(cdf_a - cdf_b)))


def _tv_complement(a: np.ndarray, b: np.ndarray) -> float:
    """1 − total variation distance of the category frequencies (missing is a category)."""
    pa, pb = pd.Series(a).value_counts(normalize=True), pd.Series(b).value_counts(normalize=True)
    keys = pa.index.union(pb.index)
    return float(1.0 - 0.5 * np.abs(pa.reindex(keys, fill_value=0) - pb.reindex(keys, fill_value=0)).sum())


def _column_scores(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str],
                   known: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    """Per-column similarity, worst first: sdmetrics' score when known, else our KS / TV complement
    (each column typed on its own: no copy of a wide table)."""
    out = []
    for c in cols:
        numerical = metadata.columns[c].is_numerical
        if c in known:
            metric, score = known[c]
        else:
            real, syn = _prepared(train, metadata, [c])[c], _prepared(synthetic, metadata, [c])[c]
            metric, score = (("KSComplement", _ks_complement(real, syn)) if numerical
                             else ("TVComplement", _tv_complement(real, syn)))
            release_mapped_pages()
        out.append({"column": c, "kind": "numerical" if numerical else "categorical", "metric": metric,
                    "score": round(score, 4)})
    return sorted(out, key=lambda s: (s["score"], cols.index(s["column"])))


def column_histogram(real: pd.Series, synthetic: pd.Series, metadata: Metadata, column: str) -> dict[str, Any]:
    """Shares of real and synthetic rows per bin (numerical) or category, missing values apart. INTERNAL."""
    prep = _prepared(pd.DataFrame({column: real}), metadata, [column])[column]
    return _histogram(prep, _prepared(pd.DataFrame({column: synthetic}), metadata, [column])[column], metadata, column)


def _histogram(real: np.ndarray, syn: np.ndarray, metadata: Metadata, column: str) -> dict[str, Any]:
    """A column's bins or categories; a date/datetime column's bin edges are days/seconds since
    1970-01-01 and its entry says so (``temporal``: the column type) for the plot's date axis."""
    spec = metadata.columns[column]
    if spec.is_numerical:
        hist = _numeric_histogram(real, syn, spec.domain(), column)
        return hist | ({"temporal": spec.type} if spec.type in TEMPORAL_TYPES else {})
    return _category_histogram(real, syn, column)


def _numeric_histogram(real: np.ndarray, syn: np.ndarray, domain: tuple[float, float], column: str
                       ) -> dict[str, Any]:
    finite = np.concatenate([real[np.isfinite(real)], syn[np.isfinite(syn)]])
    lo, hi = (float(np.min(finite)), float(np.max(finite))) if len(finite) else domain
    lo, hi = max(lo, domain[0]), min(hi, domain[1])
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, MAX_BINS + 1)

    def shares(x: np.ndarray) -> tuple[list[float], float]:
        n = max(len(x), 1)
        counts, _ = np.histogram(np.clip(x[np.isfinite(x)], lo, hi), bins=edges)
        return [round(float(v) / n, 5) for v in counts], round(float(np.mean(~np.isfinite(x))) if len(x) else 0.0, 5)

    (r, r_missing), (s, s_missing) = shares(real), shares(syn)
    return {"column": column, "kind": "numerical", "edges": [float(f"{e:.6g}") for e in edges],
            "real": r, "synthetic": s, "missing_real": r_missing, "missing_synthetic": s_missing}


def _category_histogram(real: np.ndarray, syn: np.ndarray, column: str) -> dict[str, Any]:
    pr, ps = pd.Series(real).value_counts(normalize=True), pd.Series(syn).value_counts(normalize=True)
    order = list(pr.index) + [k for k in ps.index if k not in pr.index]
    shown = order if len(order) <= MAX_CATEGORIES else order[:MAX_CATEGORIES - 1]
    rest = [k for k in order if k not in shown]

    def shares(p: pd.Series) -> list[float]:
        vals = [float(p.get(k, 0.0)) for k in shown]
        if rest:
            vals.append(float(p.reindex(rest, fill_value=0.0).sum()))
        return [round(v, 5) for v in vals]

    return {"column": column, "kind": "categorical", "categories": [str(k) for k in shown] + ([OTHER] if rest else []),
            "real": shares(pr), "synthetic": shares(ps)}


def _matrix_columns(train: pd.DataFrame, metadata: Metadata, cols: list[str]) -> list[str]:
    """All columns, or on wide tables the fidelity audit's deterministic pair subset (reads private variances)."""
    if len(cols) <= MAX_MATRIX_COLUMNS:
        return cols
    from synthrelease.audits.fidelity import pair_columns

    return [c for c in pair_columns(train, metadata, MAX_MATRIX_COLUMNS) if c in cols]


ASSOCIATION_MEASURE = "Pearson r (numerical pairs), Cramér's V (categorical pairs), correlation ratio η (mixed pairs)"


def association_matrices(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, cols: list[str]
                         ) -> dict[str, Any]:
    """Pairwise association of real and synthetic rows. INTERNAL (real rows).

    Numerical pairs: Pearson r (−1..1); categorical pairs: Cramér's V; mixed pairs: the
    correlation ratio η (0..1). Undefined entries (a constant column) are None.
    """
    return {"columns": cols, "measure": ASSOCIATION_MEASURE,
            "real": _association(_prepared(real, metadata, cols), cols),
            "synthetic": _association(_prepared(synthetic, metadata, cols), cols)}


def _association(prep: dict[str, np.ndarray], cols: list[str]) -> list[list[float | None]]:
    num = {c: v for c, v in prep.items() if c in cols and v.dtype.kind == "f"}
    cat = {c: pd.factorize(v)[0] for c, v in prep.items() if c in cols and v.dtype.kind != "f"}
    k = len(cols)
    m = np.full((k, k), np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant columns: undefined correlations
        corr = pd.DataFrame(num).corr(method="pearson") if num else pd.DataFrame()
        for i, a in enumerate(cols):
            for j in range(i, k):
                b = cols[j]
                if i == j:
                    m[i, j] = 1.0
                elif a in num and b in num:
                    m[i, j] = corr.loc[a, b]
                elif a in cat and b in cat:
                    m[i, j] = _cramers_v(cat[a], cat[b])
                else:
                    x, g = (num[a], cat[b]) if a in num else (num[b], cat[a])
                    m[i, j] = _correlation_ratio(x, g)
                m[j, i] = m[i, j]
    return [[None if not math.isfinite(v) else round(float(v), 4) for v in row] for row in m]


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two integer-coded columns (codes 0..k−1)."""
    ka, kb = int(a.max(initial=0)) + 1, int(b.max(initial=0)) + 1
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return math.nan
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return math.sqrt(chi2 / (n * (min(table.shape) - 1)))


def _correlation_ratio(x: np.ndarray, groups: np.ndarray) -> float:
    """η of a numerical column over integer-coded groups (missing numbers left out)."""
    ok = np.isfinite(x)
    x, groups = x[ok], groups[ok]
    if len(x) < 2 or np.var(x) == 0:
        return math.nan
    counts = np.bincount(groups)
    sums = np.bincount(groups, weights=x)
    present = counts > 0
    means = sums[present] / counts[present]
    between = float(np.sum(counts[present] * (means - x.mean()) ** 2))
    return math.sqrt(between / float(np.sum((x - x.mean()) ** 2)))


def embedding_sample(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, seed: int,
                     target: str | None) -> dict[str, Any]:
    """2-D PCA (fitted on the real rows, public-metadata encoding) of ≤ 1,000 real and ≤ 1,000 synthetic rows.

    INTERNAL: the real points are private rows, projected. Classes from ``target``.
    """
    from sklearn.decomposition import PCA

    from synthrelease.audits._encoding import encode_for_distance

    rng = np.random.default_rng(seed)
    cols = [c for c in metadata.model_columns if c != target]
    parts = {}
    for name, df in (("real", real), ("synthetic", synthetic)):
        idx = np.sort(rng.choice(len(df), MAX_EMBEDDING_POINTS, replace=False)) if len(df) > MAX_EMBEDDING_POINTS \
            else np.arange(len(df))
        parts[name] = take_rows(df, idx)  # a spilled synthetic table: a column block at a time
    enc = {k: encode_for_distance(v, metadata, cols).astype(np.float64) for k, v in parts.items()}
    if len(enc["real"]) < 2 or enc["real"].shape[1] < 2:
        return {"available": False, "reason": "fewer than two rows or encoded features"}
    pca = PCA(n_components=2, random_state=seed).fit(enc["real"])
    classes = metadata.columns[target].canonical_categories() if target in metadata.columns else []
    out: dict[str, Any] = {"available": True, "method": "PCA (2 components) fitted on the real rows, encoded from "
                           "the public metadata (numericals scaled by declared bounds, one-hot categories)",
                           "explained_variance": [round(float(v), 4) for v in pca.explained_variance_ratio_],
                           "target": target, "classes": classes}
    for name, x in enc.items():
        xy = pca.transform(x)
        labels = _categories(parts[name][target]).tolist() if target in parts[name].columns else [MISSING] * len(x)
        out[name] = {"x": [round(float(v), 4) for v in xy[:, 0]], "y": [round(float(v), 4) for v in xy[:, 1]],
                     "class": [classes.index(v) if v in classes else -1 for v in labels]}
    return out
