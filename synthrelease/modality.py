"""What a kind of data brings to the one release pipeline: settings, trainer, sampler, audit trainers.

The release stages (:mod:`synthrelease.stages`) never import a trainer. A modality —
tables today; sequences and images plug in the same way — hands them:

* ``default_config(n_rows, *, epsilon, delta, seed, accountant, n_steps, batch_size,
  metadata, condition_column) -> TrainingConfig``: settings from PUBLIC quantities only;
* ``fit(train, metadata, config, *, condition_column, progress, reserved_entries,
  randomness) -> TrainedModel``: the (ε, δ)-DP trainer, every private step accounted;
* ``sample(model, n_rows, *, seed) -> DataFrame``: post-processing of the DP model;
* ``shadow_synthesizer(metadata, config, *, condition_column, sample_rate)``: the
  fit-and-sample function the shadow attack retrains (:mod:`synthrelease.audits.shadow`);
* ``audit_trainer(rows, metadata, config, *, condition_column, canaries, noise_scale,
  progress) -> AuditRun``: the run the empirical ε audit retrains, keeping its
  discriminator (:mod:`synthrelease.audits.empirical`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Modality:
    """The pieces a kind of data supplies to the release pipeline (see the module docstring)."""

    name: str
    default_config: Callable[..., Any]
    fit: Callable[..., Any]
    sample: Callable[..., pd.DataFrame]
    shadow_synthesizer: Callable[..., Callable[[pd.DataFrame, int, int], pd.DataFrame]]
    audit_trainer: Callable[..., Any]


def tabular() -> Modality:
    """Mixed-type tables (clinical tables, expression matrices): the conditional DP-GAN."""
    from synthrelease.audits.empirical.training import train_for_audit
    from synthrelease.audits.shadow import dp_gan_synthesizer
    from synthrelease.sampling import sample_frame
    from synthrelease.training.defaults import default_training_config
    from synthrelease.training.trainer import fit_dp_synthesizer

    return Modality("table", default_config=default_training_config, fit=fit_dp_synthesizer, sample=sample_frame,
                    shadow_synthesizer=dp_gan_synthesizer, audit_trainer=train_for_audit)
