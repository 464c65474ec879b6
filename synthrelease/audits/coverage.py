"""Mode collapse and coverage: precision, recall, density and coverage (Naeem et al. 2020),
plus which declared categories the synthetic data never produces.

Reads private rows (the real training table); NOT differentially private; results are
internal-only (the steward's internal report).

PRDC ("Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020) with
k nearest neighbours (k = 5) in an embedding: the metadata-only encoding
(audits/_encoding.py; scaled numericals, one-hot categoricals). PCA (fitted on the real
subsample only) is optional (``pca_dims``) and automatic only above ``EXACT_WIDTH_LIMIT``
encoded dimensions, because it weakens the audit: on Adult (110 dims, 5,000 rows a side, a
synthetic table whose columns were resampled independently) PCA to 50 dims (98 % of the
variance) raised precision from 0.38 to 0.73 and coverage from 0.39 to 0.55 — the dropped
directions are the rare categories that tell rows apart — and it was not faster. A real row's
k-NN radius (distance to its k-th nearest other real row) defines its neighbourhood; with
n real and m synthetic rows:

* precision = share of synthetic rows inside at least one real neighbourhood;
* recall = share of real rows inside at least one synthetic neighbourhood (synthetic k-NN radii);
* density = (number of (synthetic row, real neighbourhood) memberships) / (k · m), ≈ 1 when
  the two distributions match, > 1 when synthetic rows crowd around real ones;
* coverage = share of real rows whose neighbourhood holds at least one synthetic row.

Membership is ``distance <= radius + 1e-6`` (Naeem's code uses a strict ``<``): tabular
data has exact duplicates, so radii of 0 are common and a copied row must count as inside.
Distances are exact Euclidean (scikit-learn's BLAS kernel), computed in blocks, one pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from synthrelease.audits._encoding import (
    PROJECT_ABOVE_WIDTH,
    column_width,
    distance_embedding,
    embedding_note,
    encode_for_distance,
)
from synthrelease.io.spill import take_rows
from synthrelease.metadata.schema import Metadata, canonical_category_series

PCA_DIMS = 50
"""Dimensions kept when PCA is applied."""

EXACT_WIDTH_LIMIT = 1000
"""Encodings wider than this are PCA-reduced to ``PCA_DIMS`` dimensions even if not asked
(cost: distances are O(rows² × width))."""

_TOL = 1e-6
"""Slack on the radius comparison (encoded features are in [0, 1]); absorbs BLAS rounding."""


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself is neighbour 0)."""
    nn = NearestNeighbors(n_neighbors=min(k + 1, len(x)), algorithm="brute").fit(x)
    return nn.kneighbors(x)[0][:, -1]


def prdc(real: np.ndarray, synthetic: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage of ``synthetic`` against ``real`` (rows × features).

    Memory: blocks of the [m, n] distance matrix (scikit-learn's working_memory), never all of it.
    """
    if len(real) < 2 or len(synthetic) < 2:
        raise ValueError(f"PRDC needs at least 2 rows per side, got {len(real)} real and {len(synthetic)} synthetic")
    r_real, r_syn = _radii(real, k) + _TOL, _radii(synthetic, k) + _TOL
    inside_count = np.zeros(len(synthetic))  # real neighbourhoods holding each synthetic row
    real_covered = np.zeros(len(real), dtype=bool)  # some synthetic row in the real row's neighbourhood
    recalled = np.zeros(len(real), dtype=bool)  # the real row is in some synthetic neighbourhood
    start = 0
    for block in pairwise_distances_chunked(synthetic, real):  # [synthetic block, real]
        stop = start + len(block)
        within = block <= r_real[None, :]
        inside_count[start:stop] = within.sum(axis=1)
        real_covered |= within.any(axis=0)
        recalled |= (block <= r_syn[start:stop, None]).any(axis=0)
        start = stop
    return {"precision": float(np.mean(inside_count > 0)), "recall": float(np.mean(recalled)),
            "density": float(inside_count.sum() / (k * len(synthetic))), "coverage": float(np.mean(real_covered))}


def _shares(series: pd.Series, classes: list[str]) -> dict[str, float]:
    """Share of each declared class (and of missing/undeclared values, if any) among the rows."""
    canon = canonical_category_series(series)
    counts = canon.value_counts(dropna=False)
    n = max(len(series), 1)
    out = {c: round(float(counts.get(c, 0)) / n, 4) for c in classes}
    other = n - sum(int(counts.get(c, 0)) for c in classes) if len(series) else 0
    if other:
        out["<missing or undeclared>"] = round(other / n, 4)
    return out


def category_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """Declared categories seen in the real rows but never in the synthetic rows, per column.

    Returns ``missing_categories`` (column → sorted canonical categories absent from the
    synthetic rows; only columns with some), ``per_column`` (declared / seen in real /
    missing counts), ``missing_category_share`` (missing (column, category) pairs over all
    pairs seen in real; 0 when there are none) and, when the metadata has a target (the
    generator's condition), ``class_shares`` of every declared class in real and synthetic.
    """
    missing: dict[str, list[str]] = {}
    per_column: dict[str, dict[str, int]] = {}
    present_total = absent_total = 0
    for c in metadata.discrete_columns:
        if c not in metadata.model_columns:
            continue
        declared = metadata.columns[c].canonical_categories()
        in_real = set(canonical_category_series(real[c]).dropna()) & set(declared)
        in_syn = set(canonical_category_series(synthetic[c]).dropna())
        gone = sorted(in_real - in_syn, key=declared.index)
        present_total += len(in_real)
        absent_total += len(gone)
        per_column[c] = {"declared": len(declared), "in_real": len(in_real), "missing_in_synthetic": len(gone)}
        if gone:
            missing[c] = gone
    out: dict[str, Any] = {"missing_categories": missing, "per_column": per_column,
                           "missing_category_share": absent_total / present_total if present_total else 0.0}
    t = metadata.target
    if t is not None and t in metadata.model_columns:
        classes = metadata.columns[t].canonical_categories()
        out["class_shares"] = {"column": t, "real": _shares(real[t], classes),
                               "synthetic": _shares(synthetic[t], classes)}
    return out


def embed(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, seed: int,
          pca_dims: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Metadata-only encodings of both tables; PCA-reduced (fitted on ``real``, ``random_state=seed``)
    to ``pca_dims`` dimensions when wider, or to ``PCA_DIMS`` when wider than ``EXACT_WIDTH_LIMIT``.
    Encodings wider than 1,024 features are first mapped by the public random projection of
    :func:`~synthrelease.audits._encoding.distance_embedding` (256 dimensions)."""
    width = sum(column_width(metadata, c) for c in metadata.model_columns)
    info: dict[str, Any] = {"embedding": "metadata-only encoding (numericals scaled by declared bounds, "
                                         "one-hot declared categories)", "encoded_width": width}
    if width > PROJECT_ABOVE_WIDTH:  # wide: the public random projection first (no float64 copy of the encoding)
        x_real, x_syn = distance_embedding(real, metadata), distance_embedding(synthetic, metadata)
        info["projection"] = embedding_note(metadata)
    else:
        x_real, x_syn = encode_for_distance(real, metadata), encode_for_distance(synthetic, metadata)  # float32
    if pca_dims is None and width > EXACT_WIDTH_LIMIT:
        pca_dims = PCA_DIMS
    if pca_dims is not None and x_real.shape[1] > pca_dims:
        dims = min(pca_dims, len(x_real))
        pca = PCA(n_components=dims, svd_solver="full" if x_real.shape[1] <= EXACT_WIDTH_LIMIT else "randomized",
                  random_state=seed).fit(x_real)
        x_real, x_syn = pca.transform(x_real), pca.transform(x_syn)
        info["pca"] = {"components": dims, "fitted_on": "real subsample",
                       "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}
    return x_real.astype(np.float64), x_syn.astype(np.float64), info


def run_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, seed: int,
                 k: int = 5, max_rows: int = 5000,
                 pca_dims: int | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics ``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage`` and
    ``missing_category_share``, and their details (INTERNAL ONLY: reads private rows).

    PRDC: each side is subsampled (without replacement, row order kept) to at most
    ``max_rows`` rows with ``np.random.default_rng(seed)``; the details record it. The
    embedding is PCA-reduced as :func:`embed` says (``pca_dims``). The category coverage
    uses every row.
    """
    rng = np.random.default_rng(seed)

    def sample(df: pd.DataFrame) -> pd.DataFrame:
        return take_rows(df, np.sort(rng.choice(len(df), max_rows, replace=False))) if len(df) > max_rows else df

    r, s = sample(real), sample(synthetic)
    x_real, x_syn, info = embed(r, s, metadata, seed=seed, pca_dims=pca_dims)
    scores = prdc(x_real, x_syn, k=k)
    cats = category_coverage(real, synthetic, metadata)
    metrics = {f"prdc_{name}": value for name, value in scores.items()}
    metrics["missing_category_share"] = cats["missing_category_share"]
    details = {"prdc": {"k": k, "rows_real": len(r), "rows_synthetic": len(s), "max_rows": max_rows,
                        "subsampled": {"real": len(r) < len(real), "synthetic": len(s) < len(synthetic)},
                        "seed": seed, **info}, **cats}
    return metrics, details
