"""A DP training charged to the privacy ledger: ε reserved before, the spent ε charged after."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from synthrelease.budget.ledger import Ledger, default_ledger_path
from synthrelease.errors import (
    BudgetExceededError,
    GateRefused,
)
from synthrelease.policy.schema import load_policy


def train_charged(fit: Callable[[], Any], *, dataset: str, epsilon: float, delta: float,
                  ledger_path: str | os.PathLike[str] | None, policy_path: str | os.PathLike[str] | None,
                  data_sha256: str | None, content_sha256: str | None, what: str) -> Any:
    """Run ``fit`` (a DP training whose result has ``.privacy``) charged to the privacy ledger.

    ε is reserved against the policy's lifetime cap BEFORE ``fit`` runs; the ε spent is
    charged after; a training that stops after it started is charged in full.

    Raises:
        GateRefused: the lifetime cap would be exceeded (nothing spent, ``fit`` not run).
    """
    cap = load_policy(policy_path)[0].lifetime_epsilon_cap if policy_path is not None else None
    ledger = Ledger(ledger_path if ledger_path is not None else default_ledger_path())
    try:
        hold = ledger.reserve(dataset, epsilon, delta, cap=cap, data_sha256=data_sha256,
                              content_sha256=content_sha256, note=f"train {what}")
    except BudgetExceededError:
        total = ledger.used(dataset, data_sha256, content_sha256=content_sha256) + epsilon
        raise GateRefused(f"privacy.lifetime_epsilon_cap: training would bring dataset '{dataset}' to "
                          f"ε = {total:.4g} > cap {cap:g}; nothing spent; privacy ledger: {ledger.path}",
                          ["privacy.lifetime_epsilon_cap"]) from None
    try:
        model = fit()
    except BaseException as e:
        ledger.spend(hold, hold.epsilon, hold.delta,
                     note=f"train stopped after it started ({type(e).__name__}): counted as spent")
        raise
    ledger.spend(hold, model.privacy.epsilon, model.privacy.delta, note=f"trained {what}")
    return model
