"""Membership-inference audit: distance to the closest synthetic record (DCR).

Reads private rows (training rows = members, holdout rows = non-members). NOT
differentially private: the result is internal-only (it goes to the steward's internal
report); only coarse, rounded figures may be released.

DCR-type heuristics are weak privacy evidence: passing them does not show that a release
is private (Ganev & De Cristofaro 2023, "On the Inadequacy of Similarity-based Privacy
Metrics", arXiv 2312.05114). The DP guarantee of the generator is the privacy claim; this
audit only catches gross memorisation (copied rows, synthetic data hugging the training
rows).

As the peers' evaluator (``shared/peers/evaluate.py``, ``privacy``), with one deliberate
difference: rows are encoded from the PUBLIC metadata only (declared bounds and category
lists, see :func:`synthrelease.audits._encoding.encode_for_distance`), not from ranges and
medians of the private rows. Encodings wider than 1,024 features (e.g. 20,000 genes) are
measured in a fixed public random projection to 256 dimensions
(:func:`synthrelease.audits._encoding.distance_embedding`); the details say so.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from synthrelease.audits._encoding import column_width, distance_embedding, embedding_note
from synthrelease.audits.attack_metrics import LOW_FPRS, attack_summary, distance_histogram, roc_points
from synthrelease.audits.base import AuditResult
from synthrelease.audits.domias import domias_scores
from synthrelease.audits.neighbours import SearchInfo, nearest
from synthrelease.errors import DataValidationError
from synthrelease.metadata.schema import Metadata

EXACT_COPY_TOLERANCE = 1e-6
_BLOCK_ELEMENTS = 1 << 24  # rows × width per block when recomputing exact distances (≈ 128 MiB float64)

CAVEAT = ("Distance-to-closest-record (DCR) heuristics are weak privacy evidence: similarity-based "
          "privacy metrics can pass while severe privacy violations occur (Ganev & De Cristofaro 2023, "
          "'On the Inadequacy of Similarity-based Privacy Metrics', arXiv 2312.05114). The privacy claim "
          "is the generator's differential privacy guarantee; this audit only catches gross memorisation.")


def nearest_distances(reference: np.ndarray, query: np.ndarray, *, method: str = "exact",
                      searches: list[SearchInfo] | None = None) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row, float64 [n_query].

    Reads whatever rows it is given (private rows in this audit; NOT DP; internal-only).
    ``method``: ``exact`` (scikit-learn brute force, blocked BLAS), ``hnsw`` or ``auto``
    (:func:`synthrelease.audits.neighbours.nearest`: HNSW above 200,000 × 200,000 pairs, with
    its recall measured); the distance of the neighbour found is recomputed exactly, so
    identical rows are at distance 0. ``searches`` collects how each search was done.
    """
    dist, _, info = nearest(reference, query, 1, method=method)
    if searches is not None:
        searches.append(info)
    return dist[:, 0]


def run_membership(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   metadata: Metadata, *, seed: int, search_method: str = "auto") -> AuditResult:
    """DCR membership inference: does closeness to the synthetic rows tell training rows from holdout rows?

    Reads private rows (``real_train``, ``holdout``); NOT differentially private; the result
    is internal-only (it goes to the steward's internal report; only coarse figures may be
    released). DCR-type heuristics are weak privacy evidence (Ganev & De Cristofaro 2023,
    arXiv 2312.05114).

    Encoding (public metadata only): numericals min-max scaled with the declared bounds and
    clipped to [0, 1], missing → 0.5 plus a missing indicator for nullable columns;
    categoricals/booleans one-hot over the declared canonical categories. Euclidean
    nearest neighbours by brute force (BLAS). Members = training rows, non-members =
    holdout rows; the larger set is subsampled to the size of the smaller with
    ``np.random.default_rng(seed)``.

    Metrics:
        ``dcr_mia_auc``: ROC AUC of score = −(distance to the nearest synthetic row),
            members vs non-members on the balanced sample (0.5 = no signal).
        ``exact_copy_share``: share of synthetic rows whose nearest training row (all of
            them) is at distance ≤ 1e-6.
        ``median_dcr_train`` / ``median_dcr_holdout``: median distance of every training /
            holdout row to its nearest synthetic row.
        ``dcr_share``: share of synthetic rows closer to the (equal-size) training sample
            than to the (equal-size) holdout sample, ties counted half (mostlyai-qa's
            ``calculate_dcr_share``); 0.5 ideal.

    Details also hold ``plots`` for the internal report's figures (INTERNAL): each attack's
    ROC curve (at most 200 points) and the distance-to-closest-record histograms of every
    training and holdout row (at most 40 bins).

    Args:
        real_train: the synthesizer's training rows (private; members).
        holdout: real rows never used for training (private; non-members).
        synthetic: the synthetic rows.
        metadata: public metadata (declared bounds and categories for the encoding).
        seed: seeds ``np.random.default_rng`` for the subsample (the only randomness) and
            the recall sample of an HNSW search.
        search_method: nearest-neighbour search, ``auto`` (exact up to 200,000 × 200,000
            rows, FAISS HNSW with measured recall above), ``exact`` or ``hnsw``.

    Returns:
        AuditResult named ``membership`` (``internal_only``; ``runtime_s`` from ``time.perf_counter``).

    Raises:
        DataValidationError: the training, holdout or synthetic table has no rows.
    """
    started = time.perf_counter()
    n_tr, n_ho, n_sy = len(real_train), len(holdout), len(synthetic)
    if min(n_tr, n_ho, n_sy) == 0:
        raise DataValidationError(f"membership audit needs rows in every table (train {n_tr}, holdout {n_ho}, "
                                  f"synthetic {n_sy})")
    rng = np.random.default_rng(seed)
    m = min(n_tr, n_ho)
    tr_idx = np.sort(rng.choice(n_tr, size=m, replace=False)) if n_tr > m else np.arange(n_tr)
    ho_idx = np.sort(rng.choice(n_ho, size=m, replace=False)) if n_ho > m else np.arange(n_ho)
    # float32 rows: the plain encoding, or on wide tables its exact random projection
    e_tr, e_ho, e_sy = (distance_embedding(df, metadata).astype(np.float32) for df in (real_train, holdout, synthetic))

    searches: list[SearchInfo] = []  # exact, or HNSW with measured recall on very large tables

    def nearest_d(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
        return nearest_distances(reference, query, method=search_method, searches=searches)

    d_tr = nearest_d(e_sy, e_tr)  # every training row → nearest synthetic row
    d_ho = nearest_d(e_sy, e_ho)
    labels = np.r_[np.ones(m), np.zeros(m)]
    auc = float(roc_auc_score(labels, -np.r_[d_tr[tr_idx], d_ho[ho_idx]]))
    auc_all = float(roc_auc_score(np.r_[np.ones(n_tr), np.zeros(n_ho)], -np.r_[d_tr, d_ho]))

    s_tr_all = nearest_d(e_tr, e_sy)  # every synthetic row → nearest training row
    s_tr = s_tr_all if n_tr == m else nearest_d(e_tr[tr_idx], e_sy)
    s_ho = s_ho_all = nearest_d(e_ho, e_sy)
    if n_ho != m:
        s_ho = nearest_d(e_ho[ho_idx], e_sy)
    dcr_share = float(np.mean(s_tr < s_ho) + 0.5 * np.mean(s_tr == s_ho))

    # attacks on the balanced sample: DCR, nearest-neighbour distance ratio, DOMIAS
    attacks = {"dcr": attack_summary(-d_tr[tr_idx], -d_ho[ho_idx], seed=seed)}
    curves = {"dcr": roc_points(-d_tr[tr_idx], -d_ho[ho_idx])}
    ratio = []
    for e in (e_tr[tr_idx], e_ho[ho_idx]):
        d, _, info = nearest(e_sy, e, min(2, n_sy), method=search_method, seed=seed)
        searches.append(info)
        ratio.append(d[:, 0] / np.maximum(d[:, -1], 1e-12) if d.shape[1] > 1 else d[:, 0])
    attacks["nndr"] = attack_summary(-ratio[0], -ratio[1], seed=seed)
    curves["nndr"] = roc_points(-ratio[0], -ratio[1])
    half = m // 2
    if half >= 2:
        ho_perm = rng.permutation(ho_idx)
        reference, scored = e_ho[ho_perm[:half]], e_ho[ho_perm[half:2 * half]]
        members_d = e_tr[rng.permutation(tr_idx)[:half]]
        scores = domias_scores(reference, e_sy, np.vstack([members_d, scored]), seed=seed, searches=searches)
        attacks["domias"] = attack_summary(scores[:half], scores[half:], seed=seed)
        curves["domias"] = roc_points(scores[:half], scores[half:])
    metrics: dict[str, float | None] = {
        "dcr_mia_auc": auc,
        "exact_copy_share": float(np.mean(s_tr_all <= EXACT_COPY_TOLERANCE)),
        "median_dcr_train": float(np.median(d_tr)),
        "median_dcr_holdout": float(np.median(d_ho)),
        "dcr_share": dcr_share,
    }
    for name, a in attacks.items():
        if name != "dcr":
            metrics[f"{name}_mia_auc"] = a["auc"]
        for fpr in LOW_FPRS:
            metrics[f"{name}_tpr_at_fpr_{fpr}"] = a[f"tpr_at_fpr_{fpr}"]
    metrics["mia_auc_max"] = max(a["auc"] for a in attacks.values())
    for fpr in LOW_FPRS:
        metrics[f"tpr_at_fpr_{fpr}_max"] = max(a[f"tpr_at_fpr_{fpr}"] for a in attacks.values())
    details: dict[str, Any] = {
        "members": m, "non_members": m,
        "rows": {"train": n_tr, "holdout": n_ho, "synthetic": n_sy},
        "subsampled": "train" if n_tr > m else ("holdout" if n_ho > m else None),
        "seed_use": "np.random.default_rng(seed) chooses the subsample of the larger set",
        "encoded_width": sum(column_width(metadata, c) for c in metadata.model_columns),
        "distance_dims": int(e_sy.shape[1]),
        "embedding_note": embedding_note(metadata),
        "neighbour_search": {
            "searches": [i.to_dict() for i in searches],
            "min_recall_at_1": min(i.recall for i in searches if i.recall is not None),
            "notice": ("exact brute-force search up to 200,000 × 200,000 rows; above, FAISS HNSW with its recall "
                       "measured on a seeded sample of query rows against the exact search"),
        },
        "exact_copy_tolerance": EXACT_COPY_TOLERANCE,
        "exact_copy_share_holdout": round(float(np.mean(s_ho_all <= EXACT_COPY_TOLERANCE)), 4),
        "dcr_mia_auc_all_rows": round(auc_all, 4),
        "method": ("rows encoded from public metadata only (numericals min-max scaled with declared bounds, "
                   "clipped; missing -> 0.5 plus an indicator for nullable columns; categoricals one-hot over "
                   "declared canonical categories); Euclidean distance, brute-force nearest neighbours; "
                   "score = -distance to the nearest synthetic row; ROC AUC of members (train) vs non-members "
                   "(holdout) on equal-size samples; dcr_share = share of synthetic rows closer to the train "
                   "sample than to the holdout sample, ties half (mostlyai-qa)"),
        "caveat": CAVEAT,
        "attacks": attacks,
        "plots": {"notice": "INTERNAL: attack scores and distances of private rows; never part of a bundle",
                  "roc": curves, "dcr_histogram": distance_histogram(d_tr, d_ho)},
        "attack_methods": {
            "dcr": "score = -distance to the nearest synthetic row",
            "nndr": "score = -(distance to the nearest / to the 2nd nearest synthetic row)",
            "domias": "score = log p_synthetic - log p_reference (Gaussian KDEs in PCA <= 20 dims: local bandwidth "
                      "for the synthetic rows, Scott for the reference; PCA "
                      "fitted on the reference); reference = a seeded half of the holdout sample, the other half "
                      "are the scored non-members; members = as many training rows; above 50,000 reference or "
                      "synthetic rows each density is approximated (audits/domias.py: a 50,000-row reference sample; "
                      "exact near field of 32 neighbours + sampled far field for the synthetic rows)",
        },
    }
    return AuditResult("membership", metrics, details, time.perf_counter() - started)
