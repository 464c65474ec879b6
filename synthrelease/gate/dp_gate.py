"""The differentially private release gate: noisy audit figures, one accounted Gaussian release.

Every figure a policy clause compares (quality, coverage, TSTR AUC, attack AUCs and
TPRs, copy shares, …) is computed by :mod:`synthrelease.audits.dp_figures` in a form whose
L2 sensitivity to adding or removing one row (of the training rows or of the holdout) is
bounded and stated. The figures the policy needs — a list fixed by the policy and the
public metadata alone — are released together as ONE Gaussian mechanism: figure i's vector
(sensitivity Δ_i) gets N(0, s_i²) on every coordinate with Σ_i (Δ_i/s_i)² = 1/z², z = the
gate's noise multiplier — the rescaled blocks v_i/s_i stacked have L2 sensitivity ≤ 1/z
and unit noise. How the s_i are chosen is the policy's ``privacy.audit_noise_allocation``
(:data:`ALLOCATIONS`), always from public numbers (the sensitivities at the public slot
counts below, z, the policy): ``proportional`` is s_i = z·√B·Δ_i. The accountant records
the entry ``(z, q = 1, 1 step)``.

Budget: the policy's ``privacy.audit_budget_share`` s of the release's Rényi-DP curve.
A single Gaussian release spending the whole ε at δ has noise multiplier z₁; its RDP is
α/(2z₁²), so z = z₁/√s has exactly s times that curve. Training is then calibrated with
this entry already in the history, so the release's total ε (training + gate) is the
requested ε, reported by one accountant.

The verdict is post-processing of the noisy figures, so it is covered by the same
guarantee; a rejected release still spends the gate's share (the gate always runs once
training has run). Exact figures stay in the steward's internal report; the bundle, the
manifest and the release card carry only the noisy figures and their noise scales.
Synthetic rows are the DP generator's output; the sensitivities hold for FIXED synthetic
rows, which is what adaptive composition needs.

Sizes: the numbers of training and holdout rows are PRIVATE. A figure's noise may not
reveal them, so each figure is computed over a PUBLIC number of slots per part, k₁ and k₀,
derived from the release's DP part sizes (privacy/dp_counts.py): the first k units of
the part in a secret uniformly random order, or, when the part holds fewer than k units,
all of them plus public stand-in records (copies of the first synthetic row; in the
holdout with the label removed) up to k. Coupling the orders of neighbouring inputs
(the added unit inserted at a uniform position), the slot multisets differ in at most one
record: one replaced, or a stand-in replaced by the added unit. Every figure's stated
sensitivity, evaluated at k, bounds that replacement (TSTR AUC's vector is normalised by
k₀ and states 2√3/k₀, see :func:`synthrelease.audits.dp_figures.tstr_auc`); by joint
quasi-convexity of Rényi divergence the mixture over orders keeps the Gaussian
mechanism's curve. The noise std of every figure is therefore a function of public
quantities only. The stand-ins bias a figure only when a part holds fewer units than its
slots (probability about 16 %, by 0.08 count-noise stds on average; see ``SLOT_MARGIN_STDS``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.errors import InternalError
from synthrelease.metadata.schema import Metadata
from synthrelease.policy.schema import Policy
from synthrelease.privacy.accounting import MechanismEntry, histogram_noise_for
from synthrelease.privacy.dp_counts import slot_order
from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

CLAUSE_FIGURES: dict[str, str] = {
    "fidelity.min_quality_score": "quality_score",
    "fidelity.min_prdc_coverage": "coverage",
    "fidelity.max_missing_category_share": "missing_category_share",
    "utility.min_tstr_accuracy": "tstr_accuracy",
    "utility.min_tstr_auc": "tstr_auc",
    "membership.max_dcr_mia_auc": "dcr_mia_auc",
    "membership.max_exact_copy_share": "exact_copy_share",
    "membership.max_mia_auc": "mia_auc_max",
    "membership.max_tpr_at_fpr_1pct": "tpr_at_fpr_0.01_max",
    "membership.max_tpr_at_fpr_0_1pct": "tpr_at_fpr_0.001_max",
}
"""Gate clause → the DP figure it compares."""

WORST_VALUE: dict[str, float] = {
    "quality_score": 0.0, "coverage": 0.0, "missing_category_share": 1.0, "tstr_auc": 0.0, "tstr_accuracy": 0.0,
    "dcr_mia_auc": 1.0, "exact_copy_share": 1.0, "mia_auc_max": 1.0,
    "tpr_at_fpr_0.01_max": 1.0, "tpr_at_fpr_0.001_max": 1.0,
}
"""Public stand-in for a figure that cannot be computed on this input (its block is still released)."""


def figures_needed(policy: Policy) -> list[str]:
    """The DP figures the policy's clauses compare, in a fixed order (a function of the policy only)."""
    wanted: list[str] = []
    fc, uc, mc = policy.fidelity, policy.utility, policy.membership
    if fc is not None:
        wanted.append("quality_score")
        if fc.min_prdc_coverage is not None:
            wanted.append("coverage")
        if fc.max_missing_category_share is not None:
            wanted.append("missing_category_share")
    if uc is not None:
        if uc.min_tstr_accuracy is not None:
            wanted.append("tstr_accuracy")
        if uc.min_tstr_auc is not None:
            wanted.append("tstr_auc")
    if mc is not None:
        wanted += ["dcr_mia_auc", "exact_copy_share"]
        if mc.max_mia_auc is not None:
            wanted.append("mia_auc_max")
        if mc.max_tpr_at_fpr_1pct is not None:
            wanted.append("tpr_at_fpr_0.01_max")
        if mc.max_tpr_at_fpr_0_1pct is not None:
            wanted.append("tpr_at_fpr_0.001_max")
    return wanted


def gate_entry(policy: Policy, *, epsilon: float, delta: float, accountant: str) -> MechanismEntry | None:
    """The accountant entry of the gate's one Gaussian release (None when no figure is needed).

    Noise multiplier z = z₁/√s, z₁ = the σ of one Gaussian release spending ``epsilon`` at
    ``delta`` alone, s = ``policy.privacy.audit_budget_share``: the gate takes the share s
    of the release's Rényi-DP curve.
    """
    names = figures_needed(policy)
    if not names:
        return None
    whole = histogram_noise_for(epsilon=epsilon, delta=delta, accountant=accountant).noise_multiplier
    z = whole / math.sqrt(policy.privacy.audit_budget_share)
    return MechanismEntry(f"DP release gate ({len(names)} figures, Gaussian, sensitivity sqrt({len(names)}))",
                          z, 1.0, 1)


@dataclass(frozen=True)
class GateFigure:
    """One released gate figure.

    Attributes:
        name: the figure (see :data:`CLAUSE_FIGURES`).
        value: the noisy figure the gate compares (DP; may leave the organisation).
        noise_std: std of the Gaussian noise on each raw coordinate of this figure's vector
            (for scalar figures: on the figure itself).
        sensitivity: the vector's L2 sensitivity (add/remove one row).
        exact: the exact figure (INTERNAL ONLY: reads private rows, not DP).
        meaning: one plain sentence on what it measures and its good direction.
        computable: False when the exact figure could not be computed (the public worst
            value was released in its place).
    """

    name: str
    value: float | None
    noise_std: float
    sensitivity: float
    exact: float | None
    meaning: str
    computable: bool = True

    def public(self) -> dict[str, Any]:
        """What the bundle may carry: the noisy value and its noise scale only."""
        return {"value": None if self.value is None else round(self.value, 4),
                "noise_std": float(f"{self.noise_std:.3g}"), "l2_sensitivity": float(f"{self.sensitivity:.3g}")}

    def internal(self) -> dict[str, Any]:
        """Everything, for the steward's internal report."""
        return {**self.public(), "exact": self.exact, "meaning": self.meaning, "computable": self.computable}


def slot_rows(part: pd.DataFrame, k: int, stand_in: pd.DataFrame, randomness: PrivateRandomness, stream: str, *,
              blank: str | None = None) -> pd.DataFrame:
    """Exactly ``k`` records for the gate: the first k of ``part`` (one row per unit) in a
    secret random order, or all of them plus copies of the public ``stand_in`` record up to k.

    ``blank``: a column set to missing in the stand-ins (the holdout's label: a stand-in then
    counts as an unlabelled, wrongly classified holdout record). Reads private rows; the
    result is PRIVATE. See the module docstring for the sensitivity argument.
    """
    order = slot_order(len(part), randomness, stream)
    chosen = part.iloc[np.sort(order[:k])]
    missing = k - len(chosen)
    if missing <= 0:
        return chosen.reset_index(drop=True)
    fill = stand_in.iloc[np.zeros(missing, dtype=np.int64)].reset_index(drop=True)
    if blank is not None and blank in fill.columns:
        fill[blank] = fill[blank].astype(object)
        fill[blank] = None
    return pd.concat([chosen.reset_index(drop=True), fill], ignore_index=True)


def compute_figures(names: list[str], train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                    metadata: Metadata, *, target: str | None, seed: int, slotted: bool = False) -> dict[str, Any]:
    """The exact figures (``dp_figures.Figure`` or None) by name. Reads private rows; INTERNAL.

    ``slotted``: ``train`` and ``holdout`` are the gate's public-size slots (:func:`slot_rows`):
    TSTR AUC is then normalised by the public holdout slot count.
    """
    from synthrelease.audits import dp_figures as f

    out: dict[str, Any] = {}
    if "quality_score" in names:
        out["quality_score"] = f.quality_score(train, synthetic, metadata, seed=seed)
    if "coverage" in names:
        out["coverage"] = f.coverage(train, synthetic, metadata)
    if "missing_category_share" in names:
        out["missing_category_share"] = f.missing_category_share(train, synthetic, metadata)
    tstr = [n for n in ("tstr_auc", "tstr_accuracy") if n in names]
    if tstr and target is not None:  # one model for both figures
        classes = metadata.columns[target].canonical_categories() if target in metadata.columns else []
        scores = f.tstr_scores(holdout, synthetic, metadata, target=target, seed=seed) \
            if len(holdout) > 1 and len(classes) >= 2 else None
        for n in tstr:
            extra = {"total": len(holdout)} if slotted and n == "tstr_auc" else {}
            out[n] = getattr(f, n)(holdout, synthetic, metadata, target=target, seed=seed, scores=scores, **extra)
    membership = [n for n in names if n in ("dcr_mia_auc", "mia_auc_max", "tpr_at_fpr_0.01_max",
                                            "tpr_at_fpr_0.001_max", "exact_copy_share")]
    if membership:  # copies come from the DCR attack's nearest-neighbour distances: computed once
        mf = f.membership_figures(train, holdout, synthetic, metadata, seed=seed, names=tuple(membership))
        out.update({n: mf.get(n) for n in membership})
    return out


ALLOCATIONS = ("proportional", "equalised", "least_refusal")
"""How the gate's one Gaussian mechanism shares its noise among the B figures (policy
``privacy.audit_noise_allocation``); both add N(0, s_i²) to each coordinate of figure i with
Σ_i (Δ_i / s_i)² = 1/z² — the stacked, rescaled vector has L2 sensitivity 1/z, so the entry
(z, q = 1, 1 step) is the same mechanism:

* ``proportional``: s_i = z·√B·Δ_i (each figure's noise in proportion to its sensitivity:
  figures over the larger part are nearly exact, those over a small holdout noisy);
* ``equalised``: s_i = z·‖Δ‖₂ for every figure (the same noise on every figure, so the
  noisiest clause gets less: on a holdout of a fifth of the rows its noise falls by about a
  quarter, while the training-side figures carry more);
* ``least_refusal``: the s_i that minimise the probability that a release whose exact figures
  all clear their limits by the policy's ``audit_design_margin`` is refused by any clause
  (under its decision rule ``audit_clear_by_stds``) — a small numerical problem on public
  inputs (sensitivities at the public slot counts, z, margin, rule).

The allocation is a function of public quantities only, so the noise scales reveal nothing."""


def public_sensitivities(names: list[str], *, n_train_slots: int, n_holdout_slots: int) -> dict[str, float]:
    """The L2 sensitivity each figure states at the gate's PUBLIC slot counts (TSTR AUC normalised by
    the holdout slots): a function of the policy and the public slot counts only."""
    from synthrelease.audits.dp_figures import sensitivity_for

    n1, n0 = max(n_train_slots, 2), max(n_holdout_slots, 2)
    return {name: sensitivity_for(name, n_train=n1, n_holdout=n0, slotted=True) for name in names}


def noise_stds(sensitivities: Mapping[str, float], entry: MechanismEntry, allocation: str, *,
               margin: float = 0.05, clear_by_stds: float = 0.0) -> dict[str, float]:
    """Noise std per coordinate of each figure's vector (see :data:`ALLOCATIONS`); ``sensitivities``
    are the PUBLIC ones of :func:`public_sensitivities` (or the figures' own, all equal to them).
    ``margin`` and ``clear_by_stds``: the design point of ``least_refusal``."""
    z = entry.noise_multiplier
    if allocation == "proportional":
        return {k: z * math.sqrt(len(sensitivities)) * d for k, d in sensitivities.items()}
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown noise allocation {allocation!r}; expected one of {', '.join(ALLOCATIONS)}")
    norm = math.sqrt(sum(d * d for d in sensitivities.values()))
    if allocation == "equalised" or len(sensitivities) < 2 or norm == 0:
        return {k: z * norm for k in sensitivities}
    names = tuple(sensitivities)
    stds = _least_refusal(tuple(float(sensitivities[n]) for n in names), z, margin, clear_by_stds)
    return dict(zip(names, stds, strict=True))


@functools.lru_cache(maxsize=256)
def _least_refusal(sensitivities: tuple[float, ...], z: float, margin: float, k: float) -> tuple[float, ...]:
    """s_i = Δ_i / u_i with Σ u_i² = 1/z² (the same mechanism) minimising −Σ log Φ(margin·u_i/Δ_i − k),
    the log of the chance that every clause passes at the design margin. Figures with Δ_i = 0 get 0.
    A deterministic function of public numbers (cached)."""
    from scipy.optimize import minimize
    from scipy.stats import norm as gaussian

    live = [i for i, d in enumerate(sensitivities) if d > 0]
    delta = np.array([sensitivities[i] for i in live])

    def weights(w: np.ndarray) -> np.ndarray:
        e = np.exp(w - w.max())
        return np.sqrt(e / e.sum()) / z  # Σ u² = 1/z²

    def loss(w: np.ndarray) -> float:
        return float(-gaussian.logcdf(margin * weights(w) / delta - k).sum())

    start = np.log(delta ** 2)  # the equalised allocation: u_i ∝ Δ_i
    best = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 4000})
    u = weights(best.x if best.fun <= loss(start) else start)
    stds = dict(zip(live, (delta / u).tolist(), strict=True))
    return tuple(stds.get(i, 0.0) for i in range(len(sensitivities)))


def release_figures(exact: Mapping[str, Any], names: list[str], entry: MechanismEntry,
                    randomness: PrivateRandomness, *, sensitivities: Mapping[str, float] | None = None,
                    allocation: str = "proportional", margin: float = 0.05,
                    clear_by_stds: float = 0.0) -> dict[str, GateFigure]:
    """Add the gate's Gaussian noise to every needed figure (one mechanism, ``entry``) and finish each.

    Each figure's vector is released as v + N(0, s²) per coordinate, s from :func:`noise_stds`
    (``proportional``: z·√B·Δ, z = ``entry.noise_multiplier``, B = len(names), Δ its L2
    sensitivity), then post-processed by its ``finish``. ``sensitivities``: the public ones
    (:func:`public_sensitivities`; required for ``equalised``, whose s must not depend on which
    figures could be computed); a figure may not state a larger one. ``margin``,
    ``clear_by_stds``: the design point of the ``least_refusal`` allocation. A figure that could not be
    computed (only on degenerate inputs: fewer than two rows in a part, a single class) is
    released as its public worst value (:data:`WORST_VALUE`), which fails its clause.
    """
    generator = randomness.torch("gate-noise")
    if sensitivities is None:
        if allocation != "proportional":
            raise InternalError(f"the {allocation} noise allocation needs the public sensitivities")
        sensitivities = {n: float(exact[n].l2_sensitivity) if exact.get(n) is not None else 0.0 for n in names}
    stds = noise_stds({n: sensitivities[n] for n in names}, entry, allocation, margin=margin,
                      clear_by_stds=clear_by_stds)
    out: dict[str, GateFigure] = {}
    for name in names:
        fig = exact.get(name)
        if fig is None:
            values, delta, finish = np.array([WORST_VALUE[name]]), 0.0, _clip01
            meaning, exact_value = "not computable on this input (public worst value released)", None
            std = 0.0
        else:
            values, delta, finish = np.asarray(fig.values, dtype=np.float64), float(fig.l2_sensitivity), fig.finish
            meaning, exact_value = fig.meaning, _finite(fig.finish(np.asarray(fig.values, dtype=np.float64)))
            if delta > sensitivities[name] * (1 + 1e-9):
                raise InternalError(f"gate figure {name} states sensitivity {delta:.3g} above the public "
                                    f"{sensitivities[name]:.3g}")
            std = stds[name]
        noisy = values + gaussian_noise(values.shape, std, generator).numpy()
        out[name] = GateFigure(name, _finite(finish(noisy)), std, delta, exact_value, meaning,
                               computable=fig is not None)
    return out


def _clip01(v: np.ndarray) -> float:
    return float(np.clip(v[0], 0.0, 1.0))


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def noisy_values(figures: Mapping[str, GateFigure]) -> dict[str, float | None]:
    """Figure name → noisy value, the only input the gate's audit clauses read."""
    return {k: v.value for k, v in figures.items()}


def expected_noise(names: list[str], entry: MechanismEntry | None, *, n_train: int, n_holdout: int,
                   allocation: str = "proportional", margin: float = 0.05,
                   clear_by_stds: float = 0.0) -> dict[str, float]:
    """Noise std each figure WILL carry with ``n_train`` and ``n_holdout`` slots (for a preflight,
    before any ε): :func:`noise_stds` of the sensitivities at those slot counts."""
    if entry is None or not names:
        return {}
    return noise_stds(public_sensitivities(names, n_train_slots=n_train, n_holdout_slots=n_holdout), entry,
                      allocation, margin=margin, clear_by_stds=clear_by_stds)


def refusal_probability(stds: Mapping[str, float], margin: float, clear_by_stds: float = 0.0) -> dict[str, float]:
    """Probability that each figure's clause fails when its EXACT value clears the limit by
    ``margin`` (in the figure's units; negative: the exact value fails by that much) and the
    clause asks the noisy value to clear it by ``clear_by_stds`` noise stds: Φ(k − margin/s).
    Exact for scalar figures away from the [0, 1] clip; public (stds and margin are)."""
    from scipy.stats import norm

    return {k: float(norm.cdf(clear_by_stds - margin / s)) if s > 0 else float(margin <= 0)
            for k, s in stds.items()}
