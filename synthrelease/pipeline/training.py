"""Jobs besides the release: train a model charged to the ledger (train), audit the ε claim (audit-privacy)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.errors import (
    MetadataError,
    PrivacyParameterError,
)
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.defaults import (
    default_training_config,
)
from synthrelease.gan.trainer import fit_dp_synthesizer
from synthrelease.io.files import sha256_file
from synthrelease.io.formats import TableFormat
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import modality_for
from synthrelease.pipeline import stages
from synthrelease.pipeline.charging import train_charged
from synthrelease.privacy import dp_counts
from synthrelease.privacy.parameters import PrivacyLoss, public_default_delta
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ignore_progress


def train_model(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                delta: float | None = None, condition: str | None = None, seed: int = 0,
                accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                ledger_path: str | os.PathLike[str] | None = None, policy_path: str | os.PathLike[str] | None = None,
                progress: ProgressCallback = ignore_progress, sep: str | None = None,
                labels: str | os.PathLike[str] | None = None) -> tuple[Any, list[str]]:
    """Train a DP generator on the whole table at ``data`` (no audits, no gate); ``sep``: the
    separator of delimited text, ``labels``: a labels CSV joined to FASTA records by id (as ``release``).

    Tables give a :class:`TrainedModel`; image tiles and sequences (metadata with an image or
    sequence column) their modality's model (:func:`_train_modality_model`: the image DP-GAN,
    the autoregressive sequence model).

    Guarantee: the returned model is (ε, δ)-DP with respect to the rows of ``data``; its
    DP randomness is fresh OS entropy (``seed`` fixes public streams only). Requires
    reviewed metadata. The model is shareable, so its ε is charged to the privacy ledger
    like a release's: reserved before training (against ``policy_path``'s lifetime cap,
    when given) and spent once training starts.

    Raises:
        MetadataError: unreviewed metadata (exit 2). GateRefused: the lifetime cap would be
        exceeded (exit 1, nothing spent).
    """
    if stages.resolve_metadata(metadata_path)[0].modality in ("image", "sequence"):
        return _train_modality_model(data, metadata_path, epsilon=epsilon, delta=delta, condition=condition,
                                     seed=seed, accountant=accountant, n_steps=n_steps, batch_size=batch_size,
                                     ledger_path=ledger_path, policy_path=policy_path, progress=progress, sep=sep,
                                     labels=labels)
    df, metadata, notes, cond, config, content_sha, fmt = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=False, require_condition=False, sep=sep,
        labels=labels)
    counts = dp_counts.count_entry(dp_counts.TRAIN_COUNT_SHARE, epsilon=epsilon, delta=config.target_delta,
                                   accountant=accountant)
    secret = PrivateRandomness()  # fresh OS entropy, never stored

    def fit() -> Any:  # the model is shareable: its settings come from a DP count of the rows, not the exact one
        public_rows = dp_counts.release_sizes(len(df), 0, 0, counts, secret).rows_for_defaults
        public = default_training_config(public_rows, epsilon=epsilon, delta=config.target_delta, seed=seed,
                                         accountant=accountant, n_steps=n_steps, batch_size=batch_size,
                                         metadata=metadata, condition_column=cond)
        return fit_dp_synthesizer(df, metadata, dataclasses.replace(public, public_rows=public_rows),
                                  condition_column=cond, progress=progress, reserved_entries=(counts,),
                                  randomness=secret)

    model = train_charged(fit, dataset=metadata.name, epsilon=epsilon, delta=config.target_delta,
                          ledger_path=ledger_path,
                          policy_path=policy_path, data_sha256=sha256_file(data),
                          content_sha256=content_sha, what=f"model of {data}")
    model.table_format = fmt.restricted_to(metadata.columns)  # `sample` writes the input's format
    return model, notes


def _train_modality_model(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *, epsilon: float,
                          delta: float | None, condition: str | None, seed: int, accountant: str,
                          n_steps: int | None, batch_size: int | None, ledger_path: str | os.PathLike[str] | None,
                          policy_path: str | os.PathLike[str] | None, progress: ProgressCallback,
                          sep: str | None = None,
                          labels: str | os.PathLike[str] | None = None) -> tuple[Any, list[str]]:
    """:func:`train_model` for image tiles and sequences: the modality's settings (from a DP count of the
    privacy units) and DP trainer on EVERY record (no holdout), conditioned on the metadata's target when it
    has one; read and validated as ``release`` does (:func:`stages.load`, :func:`stages.validate`); the same
    δ rules, lifetime-cap check, ledger reservation and charge as tables.

    Raises:
        MetadataError: ``condition`` is not the metadata's target. PrivacyParameterError: ε or δ impossible
        for the number of privacy units. GateRefused: the lifetime cap would be exceeded (nothing spent).
    """
    if delta is not None and not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyParameterError(f"--delta must be in (0, 1), got {delta!r}")
    loaded = stages.load(data, metadata_path, sep=sep, labels=labels)
    kind = modality_for(loaded.metadata)
    loaded = stages.validate(loaded, kind)
    metadata, df, notes = loaded.metadata, loaded.table, list(loaded.notes)
    if condition is not None and condition != metadata.target:
        raise MetadataError(f"--condition-column: an {kind.name} model is conditioned on the metadata's target "
                            f"({metadata.target!r}), not {condition!r}")
    n_units = stages.first_row_per_person(df, metadata).shape[0]  # persons (= tiles unless m > 1): PRIVATE
    eff_delta = delta if delta is not None else public_default_delta()
    PrivacyLoss(epsilon, eff_delta)
    counts = dp_counts.count_entry(dp_counts.TRAIN_COUNT_SHARE, epsilon=epsilon, delta=eff_delta,
                                   accountant=accountant)
    secret = PrivateRandomness()  # fresh OS entropy, never stored
    secret.require_secret("train")

    def fit() -> Any:  # the model is shareable: its settings come from a DP count of the persons
        public_units = dp_counts.release_sizes(n_units, 0, 0, counts, secret).rows_for_defaults
        config = kind.default_config(public_units, epsilon=epsilon, delta=eff_delta, seed=seed, accountant=accountant,
                                     n_steps=n_steps, batch_size=batch_size, metadata=metadata,
                                     condition_column=metadata.target)
        return kind.fit(df, metadata, dataclasses.replace(config, public_rows=public_units),
                        condition_column=metadata.target, progress=progress, reserved_entries=(counts,),
                        randomness=secret)

    model = train_charged(fit,
                          dataset=metadata.name, epsilon=epsilon, delta=eff_delta, ledger_path=ledger_path,
                          policy_path=policy_path, data_sha256=loaded.data_sha256,
                          content_sha256=loaded.content_sha256, what=f"{kind.name} model of {data}")
    return model, notes


def _whole_table_setup(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *, epsilon: float,
                       delta: float | None, condition: str | None, seed: int, accountant: str,
                       n_steps: int | None, batch_size: int | None, allow_unreviewed: bool,
                       require_condition: bool, sep: str | None = None, modalities: tuple[str, ...] = ("table",),
                       labels: str | os.PathLike[str] | None = None
                       ) -> tuple[pd.DataFrame, Metadata, list[str], str | None, TrainingConfig, str, TableFormat]:
    """Load and validate a table for training on all its rows; the condition column, the config,
    the table's content fingerprint (:func:`table_fingerprint`) and its format.

    Raises:
        MetadataError: the condition column is not a declared categorical with a category list
            (or is missing while ``require_condition``).
        PrivacyParameterError: ε or δ impossible for the row count.
    """
    if delta is not None and not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyParameterError(f"--delta must be in (0, 1), got {delta!r}")
    loaded = stages.load(data, metadata_path, allow_unreviewed=allow_unreviewed, sep=sep, labels=labels)
    kind = modality_for(loaded.metadata)
    loaded = stages.validate(loaded, kind)
    df, metadata, notes = loaded.table, loaded.metadata, list(loaded.notes)
    if metadata.modality not in modalities:
        raise MetadataError(f"{metadata_path}: a {metadata.modality} dataset; `audit-privacy` handles tables and "
                            "sequences: release it with `synthrelease release` (`train` and `sample` handle it too)")
    cond = condition if condition is not None else metadata.target
    if (cond is None and require_condition) or (cond is not None and (
            cond not in metadata.columns or metadata.columns[cond].type not in ("categorical", "boolean"))):
        raise MetadataError(f"--condition-column: {cond!r} is not a declared categorical column")
    if cond is not None and metadata.columns[cond].dp_categories is not None:
        raise MetadataError(f"--condition-column: {cond!r} needs a declared 'categories' list, not dp_categories")
    eff_delta = delta if delta is not None else public_default_delta()
    PrivacyLoss(epsilon, eff_delta)
    config = kind.default_config(len(df), epsilon=epsilon, delta=eff_delta, seed=seed, accountant=accountant,
                                 n_steps=n_steps, batch_size=batch_size, metadata=metadata, condition_column=cond)
    return df, metadata, notes, cond, config, loaded.content_sha256, loaded.fmt


def audit_privacy_claim(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                        delta: float | None = None, condition: str | None = None, seed: int = 0,
                        accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                        n_canaries: int | None = None, many_run: int = 0, allow_unreviewed: bool = False,
                        progress: ProgressCallback = ignore_progress, sep: str | None = None,
                        labels: str | os.PathLike[str] | None = None) -> dict[str, AuditResult]:
    """Check the DP generator's ε claim on ``data`` with the empirical audits (nothing released):
    a table's DP-GAN, or a sequence set's autoregressive model (its modality's audit run, canaries
    and distance space). ``sep`` and ``labels`` (a labels CSV joined to FASTA records by id) are read
    as ``train``/``release`` read them.

    Trains the audit run(s) with the settings ``train``/``release`` would use for this
    table (its modality's ``default_config``). Always runs the one-run audit (Steinke et al.
    2023, ``n_canaries`` canaries); with ``many_run`` = T > 0 also the many-run audit
    (Jagielski et al. 2020, T trainings: small models only). Reads private rows; NOT DP;
    the results are INTERNAL (no model, table or bundle is written), and no ε is charged:
    nothing from these runs is released.
    """
    from synthrelease.audits.empirical_privacy import run_many_run_audit, run_one_run_audit
    df, metadata, _, cond, config, _, _ = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=allow_unreviewed, require_condition=True, sep=sep,
        modalities=("table", "sequence"), labels=labels)
    kind = modality_for(metadata)  # its audit run keeps what the score needs (tables: the discriminator)
    seeds = SeedTree(seed)
    results = {"empirical_privacy": run_one_run_audit(df, metadata, config, seed=seeds.integer("one-run"),
                                                      n_canaries=n_canaries, condition_column=cond,
                                                      progress=progress, trainer=kind.audit_trainer,
                                                      canary_maker=kind.canaries, encode=kind.distance_encoding)}
    if many_run:
        results["empirical_privacy_many_run"] = run_many_run_audit(
            df, metadata, config, seed=seeds.integer("many-run"), n_runs=many_run, condition_column=cond,
            progress=progress, trainer=kind.audit_trainer, canary_maker=kind.canaries)
    return results
