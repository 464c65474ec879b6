"""ε for δ through Opacus' own accountants, and σ calibration with the same accountant.

Every private step of synthrelease is an entry in Opacus' history form
``(noise_multiplier, sample_rate, steps)``: a Poisson-subsampled Gaussian mechanism
with L2 sensitivity 1 in units of the clipping norm. A full-data Gaussian histogram
(sensitivity 1 under add/remove-one-row) is the entry ``(σ, 1.0, 1)``. The total ε of a
release is read from ONE accountant over the whole history — never added by hand — and
the noise of the training run is calibrated with that same accountant, rounding toward
privacy (the returned σ is the upper end of the bisection bracket).

Citations: Mironov, Talwar, Zhang 2019 (RDP of the sampled Gaussian mechanism);
Gopi, Lee, Wutschitz 2021 (PRV accountant); both as implemented in Opacus.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from opacus.accountants import create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis

from synthrelease.errors import PrivacyParameterError

ACCOUNTANTS = ("rdp", "prv")
MAX_NOISE_MULTIPLIER = 1e4
# Opacus' default RDP orders stop at 63, too low for the small ε of a preprocessing
# step (its optimal order grows with σ); extend them so the bound stays tight.
RDP_ORDERS = (
    [1 + x / 10.0 for x in range(1, 100)]
    + list(range(12, 64))
    + list(range(64, 256, 8))
    + [256, 320, 384, 512, 768, 1024, 1536, 2048, 4096, 8192]
)


@dataclass(frozen=True)
class MechanismEntry:
    """One accounted private computation in Opacus' history form.

    Attributes:
        label: what it was ("condition histogram", "discriminator DP-SGD", ...).
        noise_multiplier: σ, noise std divided by the L2 sensitivity.
        sample_rate: Poisson sampling probability q (1.0 = the whole table).
        steps: number of compositions.
    """

    label: str
    noise_multiplier: float
    sample_rate: float
    steps: int

    def as_history(self) -> tuple[float, float, int]:
        """The ``(noise_multiplier, sample_rate, steps)`` tuple Opacus' accountants use."""
        return (float(self.noise_multiplier), float(self.sample_rate), int(self.steps))


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise PrivacyParameterError(
            f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {accountant!r}"
        )


def epsilon_for(entries: Sequence[MechanismEntry], *, delta: float, accountant: str = "rdp") -> float:
    """ε spent by ``entries`` at ``delta``, from one Opacus accountant over all of them.

    Returns 0.0 for an empty history. For ``prv`` this is Opacus' upper bound.
    """
    _check_accountant(accountant)
    history = [e.as_history() for e in entries if e.steps > 0]
    if not history:
        return 0.0
    with warnings.catch_warnings():
        # PRV takes log(0) on the q = 1 branch of a full-data mechanism; the result is exact.
        warnings.filterwarnings("ignore", message="divide by zero encountered in log")
        # RDP warns when the best order is the largest one tried; the bound is still valid.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        if accountant == "rdp":
            # Opacus' RDPAccountant sums compute_rdp(q, σ, steps) over the history; RDP is
            # linear in the steps, so the per-step vector (cached) times the steps is the same sum.
            rdp = sum(steps * _rdp_per_step(q, sigma) for sigma, q, steps in history)
            eps, _ = rdp_analysis.get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=delta)
            return float(eps)
        acc = create_accountant(mechanism=accountant)
        acc.history = history
        return float(acc.get_epsilon(delta=delta))


@functools.lru_cache(maxsize=1024)
def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """Opacus' RDP of one sampled-Gaussian step at every order of ``RDP_ORDERS``."""
    return np.asarray(rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                                               orders=RDP_ORDERS), dtype=np.float64)


def calibrate_noise_multiplier(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    prior: Sequence[MechanismEntry] = (),
    relative_tolerance: float = 0.005,
    label: str = "discriminator DP-SGD",
) -> MechanismEntry:
    """The smallest σ (within tolerance) such that ``prior`` + this mechanism spends ≤ ε.

    Bisection on σ with the same accountant that reports ε, returning the upper end
    of the bracket, so the result never overshoots ``target_epsilon`` and undershoots
    it by at most ``relative_tolerance`` (relative).

    Raises:
        PrivacyParameterError: the prior entries alone spend the whole budget, or the
            budget cannot be met with σ ≤ 10⁴.
    """
    if not 0 < sample_rate <= 1:
        raise PrivacyParameterError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if steps < 1:
        raise PrivacyParameterError(f"steps must be >= 1, got {steps}")
    spent = epsilon_for(prior, delta=target_delta, accountant=accountant)
    if spent >= target_epsilon:
        raise PrivacyParameterError(
            f"the preprocessing steps already spend ε={spent:.3f} of the target ε={target_epsilon:g}"
        )

    def eps(sigma: float) -> float:
        entry = MechanismEntry(label, sigma, sample_rate, steps)
        return epsilon_for([*prior, entry], delta=target_delta, accountant=accountant)

    lo, hi = 0.0, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > MAX_NOISE_MULTIPLIER:
            raise PrivacyParameterError(
                f"cannot reach ε={target_epsilon:g} with {steps} steps at sample rate {sample_rate:.4g}: "
                "raise ε or train fewer steps"
            )
    eps_hi = eps(hi)
    while target_epsilon - eps_hi > relative_tolerance * target_epsilon and hi - lo > 1e-6:
        mid = (lo + hi) / 2
        e = eps(mid)
        if e <= target_epsilon:
            hi, eps_hi = mid, e
        else:
            lo = mid
    return MechanismEntry(label, hi, sample_rate, steps)


def budget_share_noise(share: float, *, epsilon: float, delta: float, accountant: str = "rdp",
                       label: str = "Gaussian release (sensitivity 1)",
                       prior: Sequence[MechanismEntry] = ()) -> MechanismEntry:
    """σ of a full-data Gaussian release (sensitivity 1) that takes ``share`` of an (ε, δ) budget.

    σ = σ₀ / √share, where σ₀ spends exactly what ``prior`` leaves of ``epsilon`` at ``delta``
    (σ₀ alone spends all of it when there is no prior): a Gaussian's Rényi
    divergence is α / (2σ²), so full-data Gaussian releases whose shares sum to 1 compose to one
    Gaussian of σ₀ — exactly the budget — and shares summing to s < 1 leave the rest of it to
    later mechanisms (calibrated against them with :func:`calibrate_noise_multiplier`). Unlike
    splitting ε linearly (each release spending share · ε alone), nothing is lost to the
    sub-additivity of composition.

    Raises:
        PrivacyParameterError: ``share`` not in (0, 1], or ``prior`` spends the whole budget.
    """
    if not 0 < share <= 1:
        raise PrivacyParameterError(f"a budget share must be in (0, 1], got {share}")
    whole = calibrate_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=1.0, steps=1,
                                       accountant=accountant, prior=prior, label=label)
    return MechanismEntry(label, whole.noise_multiplier / float(np.sqrt(share)), 1.0, 1)


def histogram_noise_for(*, epsilon: float, delta: float, accountant: str = "rdp") -> MechanismEntry:
    """σ of a full-data Gaussian histogram (sensitivity 1) that alone spends ``epsilon`` at ``delta``."""
    return calibrate_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=1.0, steps=1,
        accountant=accountant, label="condition histogram (Gaussian, sensitivity 1)",
    )

