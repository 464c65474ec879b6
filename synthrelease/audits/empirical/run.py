"""What the empirical privacy audits need of a training run and of its settings (no trainer imported).

The caller (the release stages, through a modality's ``audit_trainer``) hands the audits
a train function returning a :class:`TrainingRun`; the audits never import a trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import pandas as pd

from synthrelease.privacy.parameters import default_delta


class TrainingRun(Protocol):
    """One audit training run, kept in memory only (never saved)."""

    alignment: np.ndarray | None
    """Per-canary white-box scores accumulated over the run (None without canaries)."""

    @property
    def epsilon(self) -> float:
        """ε the run's accountant reports (at the settings' ``target_delta``)."""
        ...

    def final_logit_scores(self, rows: pd.DataFrame, *, seed: int) -> np.ndarray:
        """A membership score per row from the final discriminator (higher = more likely in)."""
        ...

    def sample(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        """``n_rows`` synthetic rows from the run's generator."""
        ...


def audit_config(config: Any, *, n_release: int, n_audit: int, seed: int) -> Any:
    """The release's settings (a dataclass with ``batch_size``, ``target_delta``, ``seed`` and
    ``public_rows``) for an audit table of ``n_audit`` rows.

    Same ε, steps, model and clipping; the batch is rescaled so that the Poisson sample rate
    (≈ batch / rows) is unchanged; δ is kept unless it is not below 1/n_audit (then
    :func:`default_delta`); the seed is the audit's own. The audit table's own row count is
    public (it is built from synthetic rows and canaries), so ``public_rows`` is reset to it.
    """
    batch = max(1, round(config.batch_size * n_audit / max(1, n_release)))
    delta = config.target_delta if config.target_delta < 1.0 / n_audit else default_delta(n_audit)
    return dataclasses.replace(config, batch_size=batch, target_delta=delta, seed=seed, public_rows=0)
