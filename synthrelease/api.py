"""The Python API: one call per job. The CLI only wraps these functions.

* :func:`release` — metadata → validation → split → DP-GAN training → sampling → audits
  (internal) → DP gate → policy gate → signed bundle (only on PASS);
* :func:`preflight_release` — the release's checks without reading a private value
  into any output, spending nothing (``release --dry-run``);
* :func:`train_model` — a DP model charged to the privacy ledger (``train``);
* :func:`audit_privacy_claim` — the empirical ε audit alone (``audit-privacy``);
* :func:`load_model` / :func:`save_model` — model files of every modality, without pickle.

Everything here is re-exported from the module that does the work (:mod:`synthrelease.pipeline`
and below); import from here, the deeper layout may move.
"""

from __future__ import annotations

from synthrelease.bundle.signing import generate_keypair
from synthrelease.errors import GateRefused, SynthreleaseError
from synthrelease.gan.defaults import RELATED_EPSILON_SHARE, WIDE_TABLE_SETTINGS, default_training_config
from synthrelease.modalities.model_files import load_model, save_model
from synthrelease.pipeline.release import (
    OPTIONAL_AUDITS,
    UNREVIEWED_WARNING,
    ReleaseOutcome,
    release,
    release_card,
    release_part_sizes,
    run_audits,
    split_train_holdout,
)
from synthrelease.pipeline.request import (
    Preflight,
    check_release_request,
    load_inputs,
    preflight_release,
    synthetic_row_count,
)
from synthrelease.pipeline.training import audit_privacy_claim, train_model

__all__ = [
    "OPTIONAL_AUDITS", "RELATED_EPSILON_SHARE", "UNREVIEWED_WARNING", "WIDE_TABLE_SETTINGS", "GateRefused",
    "Preflight", "ReleaseOutcome", "SynthreleaseError", "audit_privacy_claim", "check_release_request",
    "default_training_config", "generate_keypair", "load_inputs", "load_model", "preflight_release", "release",
    "release_card", "release_part_sizes", "run_audits", "save_model", "split_train_holdout",
    "synthetic_row_count", "train_model",
]
