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
from dataclasses import dataclass
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

_METHOD = ("rows encoded from public metadata only (numericals min-max scaled with declared bounds, "
           "clipped; missing -> 0.5 plus an indicator for nullable columns; categoricals one-hot over "
           "declared canonical categories); Euclidean distance, brute-force nearest neighbours; "
           "score = -distance to the nearest synthetic row; ROC AUC of members (train) vs non-members "
           "(holdout) on equal-size samples; dcr_share = share of synthetic rows closer to the train "
           "sample than to the holdout sample, ties half (mostlyai-qa)")
"""``details["method"]``: how rows are encoded and compared."""

_ATTACK_METHODS = {
    "dcr": "score = -distance to the nearest synthetic row",
    "nndr": "score = -(distance to the nearest / to the 2nd nearest synthetic row)",
    "domias": "score = log p_synthetic - log p_reference (Gaussian KDEs in PCA <= 20 dims: local bandwidth "
              "for the synthetic rows, Scott for the reference; PCA "
              "fitted on the reference); reference = a seeded half of the holdout sample, the other half "
              "are the scored non-members; members = as many training rows; above 50,000 reference or "
              "synthetic rows each density is approximated (audits/domias.py: a 50,000-row reference sample; "
              "exact near field of 32 neighbours + sampled far field for the synthetic rows)",
}
"""``details["attack_methods"]``: each attack's score (copied per result)."""

_SEARCH_NOTICE = ("exact brute-force search up to 200,000 × 200,000 rows; above, FAISS HNSW with its recall "
                  "measured on a seeded sample of query rows against the exact search")
"""``details["neighbour_search"]["notice"]``."""


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


@dataclass(frozen=True)
class _Embedded:
    """Distance embeddings (float32 rows) of the three tables and the balanced member / non-member
    sample. INTERNAL: encodings of private rows."""

    train: np.ndarray
    holdout: np.ndarray
    synthetic: np.ndarray
    train_idx: np.ndarray
    """Sorted positions of the ``m`` training rows in the balanced sample."""
    holdout_idx: np.ndarray
    """Sorted positions of the ``m`` holdout rows in the balanced sample."""

    @property
    def m(self) -> int:
        """Members (= non-members) in the balanced sample: the smaller of the training and holdout counts."""
        return len(self.train_idx)


class _Searches:
    """Nearest-neighbour searches with one method, recording how each was done (``infos``, in call order)."""

    def __init__(self, method: str, seed: int) -> None:
        self.method, self.seed = method, seed
        self.infos: list[SearchInfo] = []

    def nearest(self, reference: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Distance from each query row to its nearest reference row (:func:`nearest_distances`)."""
        return nearest_distances(reference, query, method=self.method, searches=self.infos)

    def k_nearest(self, reference: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
        """Distances from each query row to its ``k`` nearest reference rows, ascending, [n_query, k]."""
        d, _, info = nearest(reference, query, k, method=self.method, seed=self.seed)
        self.infos.append(info)
        return d


def _check_rows(n_tr: int, n_ho: int, n_sy: int) -> None:
    """DataValidationError when the training, holdout or synthetic table has no rows."""
    if min(n_tr, n_ho, n_sy) == 0:
        raise DataValidationError(f"membership audit needs rows in every table (train {n_tr}, holdout {n_ho}, "
                                  f"synthetic {n_sy})")


def _balanced_embeddings(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                         metadata: Metadata, rng: np.random.Generator) -> _Embedded:
    """Balanced sample (the larger of train / holdout subsampled by ``rng``, train first), then float32 rows:
    the plain encoding, or on wide tables its exact random projection (reads private rows; INTERNAL)."""
    n_tr, n_ho = len(real_train), len(holdout)
    m = min(n_tr, n_ho)
    tr_idx = np.sort(rng.choice(n_tr, size=m, replace=False)) if n_tr > m else np.arange(n_tr)
    ho_idx = np.sort(rng.choice(n_ho, size=m, replace=False)) if n_ho > m else np.arange(n_ho)
    e_tr, e_ho, e_sy = (distance_embedding(df, metadata).astype(np.float32) for df in (real_train, holdout, synthetic))
    return _Embedded(e_tr, e_ho, e_sy, tr_idx, ho_idx)


def _dcr_aucs(d_tr: np.ndarray, d_ho: np.ndarray, rows: _Embedded) -> tuple[float, float]:
    """ROC AUC of score = −DCR, members vs non-members: (balanced sample, all rows)."""
    labels = np.r_[np.ones(rows.m), np.zeros(rows.m)]
    auc = float(roc_auc_score(labels, -np.r_[d_tr[rows.train_idx], d_ho[rows.holdout_idx]]))
    auc_all = float(roc_auc_score(np.r_[np.ones(len(d_tr)), np.zeros(len(d_ho))], -np.r_[d_tr, d_ho]))
    return auc, auc_all


def _synthetic_to_real(rows: _Embedded, search: _Searches) -> tuple[np.ndarray, np.ndarray, float]:
    """(each synthetic row's distance to its nearest training row, to its nearest holdout row, ``dcr_share``).

    ``dcr_share``: share of synthetic rows closer to the balanced training sample than to the
    balanced holdout sample, ties half. Reads private rows; INTERNAL.
    """
    s_tr_all = search.nearest(rows.train, rows.synthetic)
    s_tr = s_tr_all if len(rows.train) == rows.m else search.nearest(rows.train[rows.train_idx], rows.synthetic)
    s_ho = s_ho_all = search.nearest(rows.holdout, rows.synthetic)
    if len(rows.holdout) != rows.m:
        s_ho = search.nearest(rows.holdout[rows.holdout_idx], rows.synthetic)
    return s_tr_all, s_ho_all, float(np.mean(s_tr < s_ho) + 0.5 * np.mean(s_tr == s_ho))


def _nndr_scores(d_tr: np.ndarray, d_ho: np.ndarray, rows: _Embedded) -> tuple[np.ndarray, np.ndarray]:
    """−(nearest / 2nd nearest synthetic distance) of the balanced members and non-members, from every
    training and holdout row's two nearest synthetic distances ``[n, ≤ 2]`` (INTERNAL)."""
    ratio = []
    for d in (d_tr[rows.train_idx], d_ho[rows.holdout_idx]):
        ratio.append(d[:, 0] / np.maximum(d[:, -1], 1e-12) if d.shape[1] > 1 else d[:, 0])
    return -ratio[0], -ratio[1]


def _domias_attack_scores(rows: _Embedded, rng: np.random.Generator, seed: int,
                          search: _Searches) -> tuple[np.ndarray, np.ndarray] | None:
    """DOMIAS scores (members, non-members), or None below 2 rows per half (reads private rows; INTERNAL).

    ``rng`` permutes the holdout sample (reference half, scored half), then the training sample.
    """
    half = rows.m // 2
    if half < 2:
        return None
    ho_perm = rng.permutation(rows.holdout_idx)
    reference, scored = rows.holdout[ho_perm[:half]], rows.holdout[ho_perm[half:2 * half]]
    members = rows.train[rng.permutation(rows.train_idx)[:half]]
    scores = domias_scores(reference, rows.synthetic, np.vstack([members, scored]), seed=seed, searches=search.infos)
    return scores[:half], scores[half:]


def _run_attacks(d_tr: np.ndarray, d_ho: np.ndarray, rows: _Embedded, rng: np.random.Generator, seed: int,
                 search: _Searches) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(summary, ROC curve) of each attack on the balanced sample: DCR, NNDR and (enough rows) DOMIAS.
    ``d_tr``, ``d_ho``: every training / holdout row's two nearest synthetic distances."""
    attacks = {"dcr": attack_summary(-d_tr[rows.train_idx, 0], -d_ho[rows.holdout_idx, 0], seed=seed)}
    curves = {"dcr": roc_points(-d_tr[rows.train_idx, 0], -d_ho[rows.holdout_idx, 0])}
    members, nonmembers = _nndr_scores(d_tr, d_ho, rows)
    attacks["nndr"] = attack_summary(members, nonmembers, seed=seed)
    curves["nndr"] = roc_points(members, nonmembers)
    domias = _domias_attack_scores(rows, rng, seed, search)
    if domias is not None:
        attacks["domias"] = attack_summary(*domias, seed=seed)
        curves["domias"] = roc_points(*domias)
    return attacks, curves


def _membership_metrics(auc: float, s_tr_all: np.ndarray, d_tr: np.ndarray, d_ho: np.ndarray, dcr_share: float,
                        attacks: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Headline metrics: DCR figures, each attack's AUC and TPR at low FPR, and their maxima over attacks."""
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
    return metrics


def _membership_details(rows: _Embedded, metadata: Metadata, searches: list[SearchInfo], s_ho_all: np.ndarray,
                        auc_all: float, attacks: dict[str, dict[str, Any]], curves: dict[str, Any],
                        d_tr: np.ndarray, d_ho: np.ndarray) -> dict[str, Any]:
    """The audit's details: counts, encoding, searches, secondary figures, attacks and plots. INTERNAL."""
    n_tr, n_ho, m = len(rows.train), len(rows.holdout), rows.m
    return {
        "members": m, "non_members": m,
        "rows": {"train": n_tr, "holdout": n_ho, "synthetic": len(rows.synthetic)},
        "subsampled": "train" if n_tr > m else ("holdout" if n_ho > m else None),
        "seed_use": "np.random.default_rng(seed) chooses the subsample of the larger set",
        "encoded_width": sum(column_width(metadata, c) for c in metadata.model_columns),
        "distance_dims": int(rows.synthetic.shape[1]),
        "embedding_note": embedding_note(metadata),
        "neighbour_search": {
            "searches": [i.to_dict() for i in searches],
            "min_recall_at_1": min(i.recall for i in searches if i.recall is not None),
            "notice": _SEARCH_NOTICE,
        },
        "exact_copy_tolerance": EXACT_COPY_TOLERANCE,
        "exact_copy_share_holdout": round(float(np.mean(s_ho_all <= EXACT_COPY_TOLERANCE)), 4),
        "dcr_mia_auc_all_rows": round(auc_all, 4),
        "method": _METHOD,
        "caveat": CAVEAT,
        "attacks": attacks,
        "plots": {"notice": "INTERNAL: attack scores and distances of private rows; never part of a bundle",
                  "roc": curves, "dcr_histogram": distance_histogram(d_tr, d_ho)},
        "attack_methods": dict(_ATTACK_METHODS),
    }


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
    _check_rows(len(real_train), len(holdout), len(synthetic))
    rng = np.random.default_rng(seed)
    rows = _balanced_embeddings(real_train, holdout, synthetic, metadata, rng)
    search = _Searches(search_method, seed)  # exact, or HNSW with measured recall on very large tables
    # every training and holdout row → its two nearest synthetic rows, in one search (DCR and NNDR)
    two = search.k_nearest(rows.synthetic, np.vstack([rows.train, rows.holdout]), min(2, len(rows.synthetic)))
    two_tr, two_ho = two[:len(rows.train)], two[len(rows.train):]
    d_tr, d_ho = two_tr[:, 0], two_ho[:, 0]
    auc, auc_all = _dcr_aucs(d_tr, d_ho, rows)
    s_tr_all, s_ho_all, dcr_share = _synthetic_to_real(rows, search)
    attacks, curves = _run_attacks(two_tr, two_ho, rows, rng, seed, search)
    metrics = _membership_metrics(auc, s_tr_all, d_tr, d_ho, dcr_share, attacks)
    details = _membership_details(rows, metadata, search.infos, s_ho_all, auc_all, attacks, curves, d_tr, d_ho)
    return AuditResult("membership", metrics, details, time.perf_counter() - started)
