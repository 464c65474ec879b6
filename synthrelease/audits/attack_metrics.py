"""How well a membership score separates members from non-members: AUC and TPR at low FPR.

Reads attack scores computed on private rows; the figures are NOT differentially private
and are internal-only (the steward's internal report).

* ROC AUC (scikit-learn) with a seeded percentile-bootstrap 95 % interval (members and
  non-members resampled separately).
* TPR at a fixed FPR (1 %, 0.1 %): the threshold is the (k+1)-th largest non-member score
  with k = ⌊FPR · m⌋, a row is called a member when its score is strictly above it (so the
  empirical FPR is at most the target); the 95 % interval of that TPR is Clopper-Pearson
  (exact binomial). With m non-members an FPR of 0.1 % is only resolved when m ≥ ~1,000;
  ``n_nonmembers`` is reported so a reader can judge (Carlini et al. 2022, "Membership
  inference attacks from first principles", argue for TPR at low FPR over AUC).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

LOW_FPRS = {"1pct": 0.01, "0_1pct": 0.001}
MAX_ROC_POINTS = 200
"""ROC curves kept for the internal report's plot: at most this many points."""
MAX_HISTOGRAM_BINS = 40


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for ``successes / trials``."""
    if trials <= 0:
        return (0.0, 1.0)
    a = 1.0 - confidence
    lo = 0.0 if successes == 0 else float(beta.ppf(a / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta.ppf(1 - a / 2, successes + 1, trials - successes))
    return (lo, hi)


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> tuple[float, int, float]:
    """(TPR, members above the threshold, the empirical FPR) at a threshold with FPR ≤ ``fpr``."""
    k = math.floor(fpr * len(nonmembers))
    ordered = np.sort(nonmembers)[::-1]
    threshold = ordered[min(k, len(ordered) - 1)]
    hits = int(np.sum(members > threshold))
    return hits / len(members), hits, float(np.mean(nonmembers > threshold))


def bootstrap_aucs(members: np.ndarray, nonmembers: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """AUCs of ``n`` bootstrap resamples (members and non-members each drawn with replacement, as
    ``rng.choice(scores, len(scores))`` draws them), in O(rows) each: the resampled AUC is the
    multiplicity-weighted share of member–non-member pairs ranked right, ties counting half, and
    each member's place among the sorted non-member scores is found once."""
    ordered = np.sort(nonmembers)
    below = np.searchsorted(ordered, members, side="left")  # non-members strictly below each member
    upto = np.searchsorted(ordered, members, side="right")  # … and tied with it
    rank = np.searchsorted(ordered, nonmembers, side="left")  # the non-members' places in ``ordered``
    out = np.empty(n)
    for b in range(n):
        weight_m = np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
        drawn_n = rng.integers(0, len(nonmembers), len(nonmembers))
        cum = np.r_[0, np.cumsum(np.bincount(rank[drawn_n], minlength=len(ordered)))]
        pairs = weight_m * (cum[below] + 0.5 * (cum[upto] - cum[below]))
        out[b] = pairs.sum() / (len(members) * len(nonmembers))
    return out


def attack_summary(members: np.ndarray, nonmembers: np.ndarray, *, seed: int,
                   n_bootstrap: int = 200) -> dict[str, Any]:
    """AUC (with bootstrap CI) and TPR at 1 % and 0.1 % FPR (with Clopper-Pearson CIs).

    Higher scores mean "more likely a member". Reads private-row scores; internal-only.
    """
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    auc = float(roc_auc_score(labels, np.r_[members, nonmembers]))
    boots = bootstrap_aucs(members, nonmembers, np.random.default_rng(seed), n_bootstrap)
    out: dict[str, Any] = {"auc": auc, "auc_ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
                           "n_members": len(members), "n_nonmembers": len(nonmembers)}
    for name, fpr in LOW_FPRS.items():
        tpr, hits, achieved = tpr_at_fpr(members, nonmembers, fpr)
        out[f"tpr_at_fpr_{name}"] = tpr
        out[f"tpr_at_fpr_{name}_ci"] = list(clopper_pearson(hits, len(members)))
        out[f"fpr_achieved_{name}"] = achieved
    return out


def roc_points(members: np.ndarray, nonmembers: np.ndarray, *, max_points: int = MAX_ROC_POINTS) -> dict[str, Any]:
    """The attack's ROC curve, at most ``max_points`` points, for a log-log plot. INTERNAL (private-row scores).

    Points are kept at geometrically spaced indices of scikit-learn's ``roc_curve``
    (``drop_intermediate``), so the low-FPR end, where attacks matter, keeps its detail;
    the first and last points are always kept.
    """
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    fpr, tpr, _ = roc_curve(labels, np.r_[np.asarray(members, np.float64), np.asarray(nonmembers, np.float64)])
    if len(fpr) > max_points:
        keep = np.unique(np.r_[0, np.round(np.geomspace(1, len(fpr) - 1, max_points - 1)).astype(int)])
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr],
            "n_members": len(members), "n_nonmembers": len(nonmembers)}


def distance_histogram(train: np.ndarray, holdout: np.ndarray, *, bins: int = MAX_HISTOGRAM_BINS) -> dict[str, Any]:
    """Shares of training and holdout rows per distance-to-closest-synthetic-record bin. INTERNAL.

    Common bins from 0 to the 99th percentile of both sides (larger distances go to the
    last bin); ``zero_*`` are the shares at distance 0 (exact copies).
    """
    both = np.r_[train, holdout]
    top = float(np.quantile(both, 0.99)) if len(both) else 1.0
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)

    def shares(d: np.ndarray) -> list[float]:
        counts, _ = np.histogram(np.clip(d, 0.0, edges[-1]), bins=edges)
        return [round(float(c) / max(len(d), 1), 5) for c in counts]

    return {"edges": [float(f"{e:.6g}") for e in edges], "train": shares(train), "holdout": shares(holdout),
            "zero_train": round(float(np.mean(train == 0)) if len(train) else 0.0, 5),
            "zero_holdout": round(float(np.mean(holdout == 0)) if len(holdout) else 0.0, 5),
            "n_train": len(train), "n_holdout": len(holdout)}
