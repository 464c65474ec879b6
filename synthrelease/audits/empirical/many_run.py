"""Classic many-run audit (Jagielski, Ullman, Oprea 2020), a cross-check for small models.

T training runs, half with one canary added and half without (assignment from the seed);
the canary is scored after each run; a threshold chosen on a seeded half of the runs
(the "split" strategy — choosing it on the same runs would need a correction) is applied to
the other half, and FPR/FNR get one-sided Clopper–Pearson upper bounds. Costs T trainings.

PRIVACY: reads private training rows; NOT DP; results INTERNAL ONLY; every run's model is
discarded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.audits.empirical.bounds import many_run_epsilon_lb
from synthrelease.audits.empirical.canaries import make_canaries
from synthrelease.audits.empirical.run import TrainingRun, audit_config
from synthrelease.errors import PrivacyParameterError
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.randomness import SeedTree
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress


def _best_threshold(scores: np.ndarray, inside: np.ndarray) -> float:
    """Threshold maximising the smoothed point estimate of ε on the selection half."""
    best, best_t = -math.inf, float(np.median(scores))
    for t in np.unique(scores):
        fp = (scores[~inside] >= t).sum() + 0.5
        fn = (scores[inside] < t).sum() + 0.5
        n_out, n_in = (~inside).sum() + 1.0, inside.sum() + 1.0
        est = max(math.log((1 - fp / n_out) / (fn / n_in)), math.log((1 - fn / n_in) / (fp / n_out)))
        if est > best:
            best, best_t = est, float(t)
    return best_t


def run_many_run_audit(real_train: pd.DataFrame, metadata: Metadata, config: Any, *, seed: int,
                       n_runs: int = 64, progress: ProgressCallback | None = None,
                       condition_column: str | None = None, significance: float = 0.05,
                       _unsafe_noise_scale: float = 1.0,
    trainer: Callable[..., TrainingRun] | None = None,
    canary_maker: Callable[..., pd.DataFrame] | None = None,
) -> AuditResult:
    """ε_lb from ``n_runs`` trainings with/without one canary; white-box gradient score.

    Metrics: ``epsilon_lower_bound``, ``epsilon_claimed`` (largest ε any run's accountant
    reported), ``audit_runs``. ``_unsafe_noise_scale``: TEST-ONLY (see the one-run audit).
    ``trainer`` and ``canary_maker``: the modality's audit run and canaries (as the one-run audit).
    """
    started = time.perf_counter()
    if trainer is None:
        raise PrivacyParameterError("the many-run audit needs the train function of the audited synthesizer "
                                    "(a modality's audit_trainer)")
    progress = progress or ignore_progress
    if n_runs < 8 or n_runs % 2:
        raise PrivacyParameterError(f"the many-run audit needs an even number of runs >= 8, got {n_runs}")
    seeds = SeedTree(seed)
    canary = (canary_maker or make_canaries)(metadata, 1, seed=seeds.integer("canaries"))
    canary = canary.reindex(columns=real_train.columns)
    inside = seeds.numpy("inclusion").permutation(np.repeat([True, False], n_runs // 2))
    scores = np.zeros(n_runs)
    claimed = 0.0
    for t in range(n_runs):
        rows = pd.concat([real_train, canary], ignore_index=True) if inside[t] else real_train
        cfg = audit_config(config, n_release=len(real_train), n_audit=len(rows), seed=seeds.integer(f"run-{t}"))
        run = trainer(rows, metadata, cfg, condition_column=condition_column or metadata.target,
                              canaries=canary, noise_scale=_unsafe_noise_scale)
        scores[t] = float(run.alignment[0]) if run.alignment is not None else 0.0
        claimed = max(claimed, run.epsilon)
        del run
        progress(ProgressEvent("audit:empirical_privacy_many_run", t + 1, n_runs))
    select = seeds.numpy("split").permutation(n_runs) < n_runs // 2
    thr = _best_threshold(scores[select], inside[select])
    s, ins = scores[~select], inside[~select]
    bound = many_run_epsilon_lb(false_pos=int((s[~ins] >= thr).sum()), n_out=int((~ins).sum()),
                                false_neg=int((s[ins] < thr).sum()), n_in=int(ins.sum()),
                                delta=config.target_delta, significance=significance)
    runtime = time.perf_counter() - started
    return AuditResult(
        name="empirical_privacy_many_run",
        metrics={"epsilon_lower_bound": bound["epsilon_lb"], "epsilon_claimed": claimed, "audit_runs": float(n_runs)},
        details={"method": "many-run audit, Jagielski, Ullman, Oprea 2020; split threshold; Clopper-Pearson",
                 "threshold": thr, "fpr_ub": bound["fpr_ub"], "fnr_ub": bound["fnr_ub"],
                 "scores_in": scores[inside].tolist(), "scores_out": scores[~inside].tolist(),
                 "runtime_seconds": runtime, "discarded": "every run's model and table were discarded"},
        runtime_s=runtime,
    )
