"""The table modality: mixed-type tables and expression matrices through the conditional DP-GAN.

A table needs no view, validation hook or extra bundle file: the one pipeline's defaults
(Great Expectations validation, the table audits, CSV/Parquet/AnnData output) are its own.
What it brings is the DP-GAN over encoded rows (:mod:`synthrelease.gan`): settings from
public quantities, the (ε, δ)-DP trainer, the sampler, and the same trainer again for the
shadow attack and the empirical ε audit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from synthrelease.modalities.base import Modality


def shadow_synthesizer(metadata: Any, config: Any, *, condition_column: str | None, sample_rate: float) -> Any:
    """The table DP-GAN as the shadow attack's fit-and-sample function (fresh secret noise per fit)."""
    from synthrelease.audits.shadow import retraining_synthesizer
    from synthrelease.gan import sampling, trainer

    def fit(*args: Any, **kwargs: Any) -> Any:  # looked up per call: the trainer stays replaceable in tests
        return trainer.fit_dp_synthesizer(*args, **kwargs)

    def sample(*args: Any, **kwargs: Any) -> pd.DataFrame:
        return sampling.sample_frame(*args, **kwargs)

    return retraining_synthesizer(metadata, config, condition_column=condition_column, sample_rate=sample_rate,
                                  fit=fit, sample=sample)


def table_modality() -> Modality:
    """Mixed-type tables (clinical tables, expression matrices): the conditional DP-GAN."""
    from synthrelease.gan.audit_training import train_for_audit
    from synthrelease.gan.defaults import default_training_config
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.gan.trainer import fit_dp_synthesizer

    return Modality("table", default_config=default_training_config, fit=fit_dp_synthesizer, sample=sample_frame,
                    shadow_synthesizer=shadow_synthesizer, audit_trainer=train_for_audit)
