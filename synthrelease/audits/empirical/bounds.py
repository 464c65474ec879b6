"""Statistical lower bounds on ε from membership guesses (pure functions, no private rows).

One-run audit (Steinke, Nasr, Jagielski, NeurIPS 2023, arXiv 2305.08846, Theorem for
(ε, δ)-DP and its Appendix D code): m canaries, each included independently with
probability ½; the auditor makes r guesses (abstains on the rest), v of them correct.
Under the null "the mechanism is (ε, δ)-DP":

    q = e^ε / (1 + e^ε)                          (accuracy of ε-DP randomised response)
    β = P[Binomial(r, q) ≥ v]
    α = max_{i=1..v} P[v > Binomial(r, q) ≥ v − i] / i
    P[≥ v correct] ≤ p(ε, δ) = min(1, β + α · δ · 2m)      (δ = 0: p = β exactly)

ε_lb is the largest ε with p(ε, δ) ≤ significance, found by bisection on ε. Trying several
(k₊, k₋) guess sizes is paid for by Bonferroni: each try is tested at significance / tries.

Many-run audit (Jagielski, Ullman, Oprea 2020): for any test of "canary in" with false
positive rate FPR and false negative rate FNR on an (ε, δ)-DP mechanism,
FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ, so with one-sided Clopper–Pearson upper
bounds FPR_ub, FNR_ub (each at significance / 2):
ε_lb = max(ln((1 − δ − FPR_ub) / FNR_ub), ln((1 − δ − FNR_ub) / FPR_ub), 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

EPSILON_SEARCH_MAX = 64.0
"""Bisection upper end; a bound that reaches it is reported as this value."""

DEFAULT_K_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Guess sizes k₊ = k₋ tried by the one-run audit, as shares of m (capped at m / 2)."""


def one_run_p_value(epsilon: float, delta: float, *, m: int, r: int, v: int) -> float:
    """P-value of ≥ ``v`` correct out of ``r`` guesses on ``m`` canaries under (ε, δ)-DP.

    Steinke et al. 2023 (their Appendix D): β + α·δ·2m, capped at 1; β alone when δ = 0.
    """
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and delta in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(1.0, beta)
    window = np.cumsum(stats.binom.pmf(np.arange(v - 1, -1, -1), r, q))  # P[v > B >= v - i], i = 1..v
    alpha = float(np.max(window / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def one_run_epsilon_lb(*, m: int, r: int, v: int, delta: float, significance: float = 0.05,
                       iterations: int = 60) -> float:
    """The largest ε (to ~1e-15 relative) with :func:`one_run_p_value` ≤ ``significance``; 0 if none.

    Bisection keeps ``lo`` with p(lo) ≤ significance throughout, so the value returned is
    always itself a valid bound at that significance.
    """
    if not 0 < significance < 1:
        raise ValueError("significance must be in (0, 1)")

    def ok(eps: float) -> bool:
        return one_run_p_value(eps, delta, m=m, r=r, v=v) <= significance

    if r == 0 or not ok(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    while ok(hi):
        lo, hi = hi, 2.0 * hi
        if hi > EPSILON_SEARCH_MAX:
            return EPSILON_SEARCH_MAX
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class OneRunBound:
    """Result of the one-run audit's guess sweep.

    Attributes:
        epsilon_lb: the best ε lower bound over the sweep, each try at ``significance / tries``
            (so the maximum holds at confidence 1 − significance).
        k_pos, k_neg, guesses, correct: the (k₊, k₋) that gave it, r = k₊ + k₋, v.
        m: canaries; delta: δ of the null; significance: overall (before Bonferroni).
        sweep: every try as a dict (k_pos, k_neg, guesses, correct, epsilon_lb).
    """

    epsilon_lb: float
    k_pos: int
    k_neg: int
    guesses: int
    correct: int
    m: int
    delta: float
    significance: float
    sweep: list[dict[str, Any]] = field(default_factory=list)


def guess_sizes(m: int, fractions: tuple[float, ...] = DEFAULT_K_FRACTIONS) -> list[int]:
    """Distinct k = k₊ = k₋ from shares of m, each in [1, m // 2]."""
    return sorted({min(m // 2, max(1, round(f * m))) for f in fractions})


def one_run_audit_bound(scores: np.ndarray, included: np.ndarray, *, delta: float, significance: float = 0.05,
                        k_values: list[int] | None = None) -> OneRunBound:
    """Guess the top-k canaries (by score) "in" and the bottom-k "out" for each k; best bound.

    ``scores``: membership score per canary (higher = more likely included); ``included``:
    the true inclusion bits. The guesses depend on the scores only. Ties are broken by
    canary index, which is independent of inclusion.
    """
    scores = np.asarray(scores, dtype=np.float64)
    included = np.asarray(included, dtype=bool)
    m = scores.shape[0]
    if included.shape != (m,) or m < 2:
        raise ValueError("scores and included must be 1-d of equal length >= 2")
    if not np.all(np.isfinite(scores)):
        raise ValueError("membership scores must be finite")
    ks = k_values or guess_sizes(m)
    if any(k < 1 or 2 * k > m for k in ks):
        raise ValueError(f"each k must be in [1, m/2] for m={m}")
    order = np.argsort(-scores, kind="stable")
    in_sorted = included[order]
    hits_top = np.cumsum(in_sorted)  # included among the top-k
    outs_bottom = np.cumsum(~in_sorted[::-1])  # excluded among the bottom-k
    per_try = significance / len(ks)
    sweep = []
    for k in ks:
        correct = int(hits_top[k - 1] + outs_bottom[k - 1])
        eps = one_run_epsilon_lb(m=m, r=2 * k, v=correct, delta=delta, significance=per_try)
        sweep.append({"k_pos": k, "k_neg": k, "guesses": 2 * k, "correct": correct, "epsilon_lb": eps})
    best = max(sweep, key=lambda s: (s["epsilon_lb"], s["guesses"]))
    return OneRunBound(best["epsilon_lb"], best["k_pos"], best["k_neg"], best["guesses"], best["correct"],
                       m, delta, significance, sweep)


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided exact (Clopper–Pearson) upper bound on a proportion, k of n, level 1 − α."""
    if n <= 0:
        return 1.0
    return 1.0 if k >= n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))


def many_run_epsilon_lb(*, false_pos: int, n_out: int, false_neg: int, n_in: int, delta: float,
                        significance: float = 0.05) -> dict[str, float]:
    """Jagielski et al. 2020 bound at one fixed threshold, confidence 1 − ``significance``.

    Each Clopper–Pearson bound is taken at ``significance / 2`` (union bound).
    """
    fpr_ub = clopper_pearson_upper(false_pos, n_out, significance / 2)
    fnr_ub = clopper_pearson_upper(false_neg, n_in, significance / 2)
    cands = [0.0]
    if 1 - delta - fpr_ub > 0:
        cands.append(math.log((1 - delta - fpr_ub) / fnr_ub))
    if 1 - delta - fnr_ub > 0:
        cands.append(math.log((1 - delta - fnr_ub) / fpr_ub))
    return {"epsilon_lb": max(cands), "fpr_ub": fpr_ub, "fnr_ub": fnr_ub}
