"""Membership-inference audit: distance to closest record (DCR).

Reads private rows (training rows = members, holdout rows = non-members). NOT
differentially private: the result is internal-only; only coarse figures may be
released. DCR-type heuristics are weak privacy evidence — passing them does not prove
privacy (Ganev & De Cristofaro 2023, "On the Inadequacy of Similarity-based Privacy
Metrics", arXiv 2312.05114); the DP guarantee is the privacy claim, this audit only
catches gross memorisation.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from synthrelease.audits._encoding import encode_for_distance
from synthrelease.audits.base import AuditResult
from synthrelease.metadata.schema import Metadata

EXACT_COPY_TOLERANCE = 1e-6


def nearest_distances(reference: np.ndarray, query: np.ndarray, *, k: int = 1) -> np.ndarray:
    """Euclidean distances [n_query, k] from each query row to its k nearest reference rows (brute BLAS)."""
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean")
    nn.fit(reference)
    dist, _ = nn.kneighbors(query)
    return dist


def run_membership(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   metadata: Metadata, *, seed: int) -> AuditResult:
    """DCR membership inference: can the synthetic data tell training rows from holdout rows?

    Reads private rows; NOT DP; internal-only. Members and non-members are subsampled to
    equal size with ``np.random.default_rng(seed)``; score = −distance to the nearest
    synthetic row; encoding from public metadata only.

    Metrics: ``dcr_mia_auc`` (0.5 = no signal), ``exact_copy_share`` (synthetic rows at
    distance ≤ 1e-6 from a training row), ``median_dcr_train``, ``median_dcr_holdout``,
    ``dcr_share`` (share of synthetic rows closer to train than to the equal-size
    holdout, ties half; 0.5 ideal).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    m = min(len(real_train), len(holdout))
    tr_idx = np.sort(rng.choice(len(real_train), size=m, replace=False))
    ho_idx = np.sort(rng.choice(len(holdout), size=m, replace=False))
    e_tr = encode_for_distance(real_train.iloc[tr_idx], metadata)
    e_ho = encode_for_distance(holdout.iloc[ho_idx], metadata)
    e_sy = encode_for_distance(synthetic, metadata)
    d_tr = nearest_distances(e_sy, e_tr)[:, 0]
    d_ho = nearest_distances(e_sy, e_ho)[:, 0]
    labels = np.r_[np.ones(m), np.zeros(m)]
    auc = float(roc_auc_score(labels, -np.r_[d_tr, d_ho]))
    s_tr = nearest_distances(encode_for_distance(real_train, metadata), e_sy)[:, 0]
    s_tr_eq = nearest_distances(e_tr, e_sy)[:, 0]
    s_ho = nearest_distances(e_ho, e_sy)[:, 0]
    dcr_share = float(np.mean(s_tr_eq < s_ho) + 0.5 * np.mean(s_tr_eq == s_ho))
    metrics: dict[str, float | None] = {
        "dcr_mia_auc": auc,
        "exact_copy_share": float(np.mean(s_tr <= EXACT_COPY_TOLERANCE)),
        "median_dcr_train": float(np.median(d_tr)),
        "median_dcr_holdout": float(np.median(d_ho)),
        "dcr_share": dcr_share,
    }
    details = {
        "members": m, "non_members": m, "synthetic_rows": len(synthetic), "encoded_width": int(e_sy.shape[1]),
        "method": "Euclidean distance on metadata-scaled numericals and one-hot categoricals; "
                  "score = -distance to nearest synthetic row; ROC AUC members vs non-members",
        "caveat": "similarity-based metrics are weak privacy evidence (Ganev & De Cristofaro 2023, "
                  "arXiv 2312.05114); the DP guarantee is the privacy claim",
    }
    return AuditResult("membership", metrics, details, time.perf_counter() - started)
