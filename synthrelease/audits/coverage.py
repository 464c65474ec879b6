"""Mode collapse and coverage: precision, recall, density and coverage (Naeem et al. 2020),
plus which declared categories the synthetic data never produces.

Reads private rows (the real training table); NOT differentially private; results are
internal-only (the steward's internal report).

PRDC ("Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020) with
k nearest neighbours in the metadata-only encoding (audits/_encoding.py; no parameter
fitted on rows): a real row's k-NN radius defines its neighbourhood; precision = share
of synthetic rows inside some real neighbourhood, recall = share of real rows inside
some synthetic neighbourhood, density = mean number of real neighbourhoods holding a
synthetic row / k, coverage = share of real rows whose neighbourhood holds a synthetic
row. Distances are computed in blocks (scikit-learn ``pairwise_distances_chunked``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from synthrelease.audits._encoding import encode_for_distance
from synthrelease.metadata.schema import Metadata, canonical_category


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    dist = NearestNeighbors(n_neighbors=min(k + 1, len(x))).fit(x).kneighbors(x)[0]
    return dist[:, -1]


def prdc(real: np.ndarray, synthetic: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage of ``synthetic`` against ``real`` (rows × features)."""
    r_real, r_syn = _radii(real, k), _radii(synthetic, k)
    inside_count = np.zeros(len(synthetic))  # real neighbourhoods holding each synthetic row
    real_covered = np.zeros(len(real), dtype=bool)
    row = 0
    for block in pairwise_distances_chunked(synthetic, real):  # [synthetic block, real]
        within = block <= r_real[None, :]
        inside_count[row:row + len(block)] = within.sum(axis=1)
        real_covered |= within.any(axis=0)
        row += len(block)
    recalled = np.zeros(len(real), dtype=bool)
    row = 0
    for block in pairwise_distances_chunked(real, synthetic):  # [real block, synthetic]
        recalled[row:row + len(block)] = (block <= r_syn[None, :]).any(axis=1)
        row += len(block)
    return {"precision": float(np.mean(inside_count > 0)), "recall": float(np.mean(recalled)),
            "density": float(inside_count.sum() / (k * len(synthetic))), "coverage": float(np.mean(real_covered))}


def category_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """Declared categories seen in the real rows but never in the synthetic rows, per column."""
    missing: dict[str, list[str]] = {}
    present_total = absent_total = 0
    for c in metadata.discrete_columns:
        if c not in metadata.model_columns:
            continue
        declared = metadata.columns[c].canonical_categories()
        in_real = set(real[c].map(canonical_category).dropna()) & set(declared)
        in_syn = set(synthetic[c].map(canonical_category).dropna())
        gone = sorted(in_real - in_syn)
        present_total += len(in_real)
        absent_total += len(gone)
        if gone:
            missing[c] = gone
    out: dict[str, Any] = {"missing_categories": missing,
                           "missing_category_share": absent_total / present_total if present_total else 0.0}
    t = metadata.target
    if t is not None and t in metadata.model_columns:
        shares = {"real": real[t].map(canonical_category).value_counts(normalize=True).round(4).to_dict(),
                  "synthetic": synthetic[t].map(canonical_category).value_counts(normalize=True).round(4).to_dict()}
        out["class_shares"] = shares
    return out


def run_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, seed: int,
                 k: int = 5, max_rows: int = 5000) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics ``prdc_*`` and ``missing_category_share``, and their details (internal-only).

    Each side is subsampled to at most ``max_rows`` rows with ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)

    def sample(df: pd.DataFrame) -> pd.DataFrame:
        return df.iloc[np.sort(rng.choice(len(df), max_rows, replace=False))] if len(df) > max_rows else df

    r, s = sample(real), sample(synthetic)
    scores = prdc(encode_for_distance(r, metadata).astype(np.float64),
                  encode_for_distance(s, metadata).astype(np.float64), k=k)
    cats = category_coverage(real, synthetic, metadata)
    metrics = {f"prdc_{name}": value for name, value in scores.items()}
    metrics["missing_category_share"] = cats["missing_category_share"]
    details = {"prdc": {"k": k, "rows_real": len(r), "rows_synthetic": len(s), "max_rows": max_rows,
                        "embedding": "metadata-only encoding (scaled numericals, one-hot categoricals)"}, **cats}
    return metrics, details
