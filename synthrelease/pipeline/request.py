"""A release request checked before any ε is reserved: the one validation path of release and release --dry-run."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.budget.ledger import Ledger, default_ledger_path
from synthrelease.errors import (
    MetadataError,
    PolicyError,
    PrivacyParameterError,
)
from synthrelease.gate.advice import advice_for
from synthrelease.gate.verdict import privacy_clauses
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import Modality, modality_for
from synthrelease.pipeline import stages
from synthrelease.policy.schema import Policy
from synthrelease.privacy import dp_counts
from synthrelease.privacy.dp_counts import NoisySizes
from synthrelease.privacy.parameters import PrivacyLoss, public_default_delta
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress


def load_inputs(data: stages.DataInput, metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any], *,
                allow_unreviewed: bool = False, sep: str | None = None,
                labels: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, Metadata, list[str]]:
    """Read metadata and table, check reviewed status, validate the table (Great Expectations).

    ``allow_unreviewed`` is for INTERNAL computations only (the empirical audit command);
    ``release`` and ``train``, whose outputs are shareable, always require reviewed metadata.
    ``labels``: a labels CSV joined to FASTA records by id (:func:`stages.load`).

    Raises:
        MetadataError, InputFileError, DataValidationError: one line naming file and column.
    """
    loaded = stages.load(data, metadata, sep=sep, allow_unreviewed=allow_unreviewed, labels=labels)
    loaded = stages.validate(loaded, modality_for(loaded.metadata))
    return loaded.table, loaded.metadata, list(loaded.notes)


def _resolve_target(metadata: Metadata, target: str | None, *, optional: bool = False) -> str | None:
    """The class column (``--target`` or the metadata's); ``optional``: None when neither names one."""
    t = target or metadata.target
    if t is None:
        if optional:
            return None
        raise MetadataError("no target column: pass --target or declare 'target' in the metadata")
    if t not in metadata.columns:
        raise MetadataError(f"--target: column {t!r} is not declared in the metadata")
    if metadata.columns[t].type not in ("categorical", "boolean"):
        raise MetadataError(f"--target: column {t!r} must be categorical or boolean")
    return t


@dataclass(frozen=True)
class ReleaseRequest:
    """A release's inputs, read and checked: everything that can be refused before any ε is reserved.

    Attributes:
        policy, policy_sha, policy_source: the resolved policy.
        loaded: the validated table (PRIVATE rows) and its public metadata.
        kind: the modality (distributed when ``nproc`` > 1).
        target: the class column, or None (unlabelled tiles).
        delta: the δ used: given, or the public default (never from a row count).
    """

    policy: Policy
    policy_sha: str
    policy_source: str
    loaded: stages.LoadedTable
    kind: Modality
    target: str | None
    delta: float


def check_release_request(data: stages.DataInput, *, metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any],
                          policy: str | os.PathLike[str] | Policy | Mapping[str, Any], epsilon: float,
                          delta: float | None, target: str | None, accountant: str, sep: str | None,
                          modality: Modality | str | None, nproc: int, settings: stages.ReleaseSettings,
                          check_key: Callable[[Policy], None] | None = None,
                          progress: ProgressCallback = ignore_progress,
                          labels: str | os.PathLike[str] | None = None) -> ReleaseRequest:
    """The ONE validation path of ``release`` and ``release --dry-run``: ε and δ, the policy, the
    signing key (``check_key``), the data (with its ``labels`` file, FASTA only) and metadata, the
    modality and ``nproc``, the target, the
    policy's rules and audits, and every training setting (built once with a stand-in row count).
    Reads and validates the private table; spends and reserves nothing.

    Raises:
        SynthreleaseError subclasses (exit 2) naming the option, file or clause.
    """
    from synthrelease.audits.plausibility import check_rules

    if delta is not None and not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta < 1):
        raise PrivacyParameterError(f"--delta must be in (0, 1), got {delta!r}")
    PrivacyLoss(epsilon, delta if delta is not None else 1e-12)  # ε first: before anything is read
    pol, policy_sha, policy_source = stages.resolve_policy(policy)
    if check_key is not None:
        check_key(pol)
    progress(ProgressEvent("validate"))
    loaded = stages.load(data, metadata, sep=sep, labels=labels)
    kind = modality if isinstance(modality, Modality) else modality_for(loaded.metadata, modality)
    if nproc > 1:  # refused before any ε is reserved
        from synthrelease.pipeline.distributed import check_distributable
        from synthrelease.pipeline.launch import distributed_modality

        check_distributable(loaded.metadata, f"--nproc {nproc}: {loaded.metadata_source}", nproc)
        kind = distributed_modality(kind, nproc)
    loaded = stages.validate(loaded, kind)
    meta = loaded.metadata
    tgt = _resolve_target(meta, target, optional=kind.name == "image")  # unlabelled tiles, e.g. one slide
    if tgt is None and pol.utility is not None:
        raise PolicyError(f"{policy_source}: clause utility needs a class column, and the image metadata declares "
                          "no target; remove the utility clause or declare labels")
    check_rules(pol.rules, kind.rules_metadata(meta), policy_path=policy_source)  # before any training
    for name in stages.required_optional_audits(pol):
        stages.optional_audit(name)  # a required audit this build lacks: refuse before spending ε
    # δ is public (given, or the public default): it calibrates every mechanism, the count release first
    eff_delta = delta if delta is not None else public_default_delta(pol.privacy.max_delta)
    PrivacyLoss(epsilon, eff_delta)
    # every training option is checked now, with a stand-in row count: a bad one costs no ε
    config = stages.training_config(kind, max(2, pol.data.min_rows), meta, settings, epsilon=epsilon,
                                    delta=eff_delta, seed=0, accountant=accountant, condition_column=tgt)
    retraining = stages.required_optional_audits(pol)
    why = kind.retraining_refusal(config) if retraining else None
    if why:  # e.g. images, or a sequence generator the audits do not retrain: refused before any ε
        raise PolicyError(f"{policy_source}: audits {', '.join(retraining)}: {why}; remove them from the policy")
    return ReleaseRequest(pol, policy_sha, policy_source, loaded, kind, tgt, eff_delta)


@dataclass
class Preflight:
    """What ``release --dry-run`` found, before any ε is reserved or any row is split.

    Attributes:
        passed: every clause that can be judged before training passes and no figure is too noisy.
        clauses: the privacy and data clauses, judged with the expected split sizes.
        notes: plain sentences: sizes, δ, ledger budget left, each DP figure's noise std.
        fixes: what to change for each problem found.
    """

    passed: bool
    clauses: list[Any]
    notes: list[str]
    fixes: list[str]


def preflight_release(data: stages.DataInput, *, metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any],
                      policy: str | os.PathLike[str] | Policy | Mapping[str, Any], epsilon: float,
                      delta: float | None = None, target: str | None = None, accountant: str = "rdp",
                      holdout_fraction: float | None = None, ledger_path: str | os.PathLike[str] | None = None,
                      sep: str | None = None, modality: Modality | str | None = None, nproc: int = 1,
                      settings: stages.ReleaseSettings | None = None,
                      labels: str | os.PathLike[str] | None = None) -> Preflight:
    """Check every clause that needs no training: spends no ε, reserves nothing, splits nothing.

    Bad input is refused exactly as ``release`` refuses it (:func:`check_release_request`, the
    same path, with the same ``modality``, ``nproc`` and training ``settings``).

    Reads and validates the private table and the ledger (read-only); what it prints is for the
    steward only (it names EXACT row counts, which a release never publishes). Judges δ, δ < 1/n,
    the accountant, min rows and the lifetime cap with the EXPECTED split (holdout probability
    ``holdout_fraction``, default the policy's ``data.holdout_fraction``) and the exact count in
    place of the DP one, checks the plausibility rules' columns, and computes each DP gate
    figure's noise std at the expected slot counts and the chance that a release whose exact
    figures clear their limits by the policy's ``audit_design_margin`` is refused (also with a
    larger holdout), flagging figures whose noise is at least half their clause's distance from
    chance.
    """
    from synthrelease.gate import dp_gate

    request = check_release_request(data, metadata=metadata, policy=policy, epsilon=epsilon, delta=delta,
                                    target=target, accountant=accountant, sep=sep, modality=modality, nproc=nproc,
                                    settings=settings or stages.ReleaseSettings(), labels=labels)
    policy, loaded, tgt, eff_delta = request.policy, request.loaded, request.target, request.delta
    if holdout_fraction is None:
        holdout_fraction = policy.data.holdout_fraction
    df, metadata = loaded.table, loaded.metadata
    n = len(stages.first_row_per_person(df, metadata))
    n_train = synthetic_row_count(n, holdout_fraction)
    n_holdout = n - n_train
    ledger = Ledger(ledger_path if ledger_path is not None else default_ledger_path())
    used = ledger.used(metadata.name, loaded.data_sha256, content_sha256=loaded.content_sha256)
    clauses = privacy_clauses(policy, epsilon=epsilon, delta=eff_delta, accountant=accountant,
                              n_train_rows=n_train, epsilon_spent_before=used)
    counts = dp_counts.count_entry(policy.privacy.count_budget_share, epsilon=epsilon, delta=eff_delta,
                                   accountant=accountant)
    k_train, k_holdout = NoisySizes(n_train, 0.0, n_holdout, counts.noise_multiplier).gate_slots()
    notes = [f"{n} rows (EXACT: for you only): about {n_train} for training and {n_holdout} for the holdout (each "
             f"row by a secret coin, holdout probability {holdout_fraction:g}); target {tgt}",
             f"the release publishes these sizes only as DP counts (noise std {counts.noise_multiplier:.3g} per part, "
             f"privacy.count_budget_share {policy.privacy.count_budget_share:g}); the gate then scores about "
             f"{k_train} training and {k_holdout} holdout records",
             f"delta {eff_delta:g} (1/n of the training rows: {1 / max(n_train, 1):.3g})"]
    if policy.lifetime_epsilon_cap is not None:
        notes.append(f"ledger {ledger.path}: {used:.4g} of the lifetime cap {policy.lifetime_epsilon_cap:g} spent; "
                     f"{max(policy.lifetime_epsilon_cap - used, 0):.4g} left, this release asks for {epsilon:g}")
    fixes = [f"{c.clause}: {c.reason}; to change: {advice_for(c.clause)}" for c in clauses if not c.passed]
    entry = dp_gate.gate_entry(policy, epsilon=epsilon, delta=eff_delta, accountant=accountant)
    gate_notes, gate_fixes = _gate_preflight(policy, entry, n, holdout_fraction, counts.noise_multiplier)
    notes.extend(gate_notes)
    fixes.extend(gate_fixes)
    return Preflight(not fixes, clauses, notes, fixes)


def _expected_gate_noise(policy: Policy, entry: Any, n: int, holdout_fraction: float,
                         count_noise: float) -> dict[str, float]:
    """Noise std of each DP figure at the gate slots expected for ``n`` persons (EXACT: steward only)."""
    from synthrelease.gate import dp_gate

    n_train = synthetic_row_count(n, holdout_fraction)
    k_train, k_holdout = NoisySizes(n_train, 0.0, n - n_train, count_noise).gate_slots()
    pc = policy.privacy
    return dp_gate.expected_noise(dp_gate.figures_needed(policy), entry, n_train=k_train, n_holdout=k_holdout,
                                  allocation=pc.audit_noise_allocation, margin=pc.audit_design_margin,
                                  clear_by_stds=pc.audit_clear_by_stds)


def _combined_refusal(policy: Policy, noise: dict[str, float]) -> float:
    from synthrelease.gate import dp_gate

    pc = policy.privacy
    refusal = dp_gate.refusal_probability(noise, pc.audit_design_margin, pc.audit_clear_by_stds)
    return 1 - float(np.prod([1 - p for p in refusal.values()]))


def _gate_preflight(policy: Policy, entry: Any, n: int, holdout_fraction: float,
                    count_noise: float) -> tuple[list[str], list[str]]:
    """(notes, fixes) on the DP gate's noise: per figure, the refusal chance of a good release,
    the same with a larger ``data.holdout_fraction``, and figures too noisy to judge anything."""
    from synthrelease.gate import dp_gate

    noise = _expected_gate_noise(policy, entry, n, holdout_fraction, count_noise)
    notes = _refusal_notes(policy, noise)
    if noise:
        larger = [f for f in (0.35, 0.5) if f > holdout_fraction]
        if larger:
            notes.append("with a larger holdout (policy data.holdout_fraction; fewer rows to train): " + ", ".join(
                f"{f:g} → refused with probability "
                f"{_combined_refusal(policy, _expected_gate_noise(policy, entry, n, f, count_noise)):.2f}"
                for f in larger))
    chance = {"dcr_mia_auc": 0.5, "mia_auc_max": 0.5, "tpr_at_fpr_0.01_max": 0.005, "tpr_at_fpr_0.001_max": 0.0005,
              "exact_copy_share": 0.0, "missing_category_share": 0.0}
    figure_clause = {v: k for k, v in dp_gate.CLAUSE_FIGURES.items()}
    fixes = []
    for name, std in noise.items():
        clause = figure_clause[name]
        limit = _clause_threshold(policy, clause)
        if name in chance and limit is not None and std >= 0.5 * abs(limit - chance[name]):
            fixes.append(f"{clause}: its DP figure's noise std ({std:.3g}) is at least half the distance from "
                         f"chance ({chance[name]:g}) to the limit {limit:g}, so a good release would often be refused; "
                         "to change: raise privacy.audit_budget_share or data.holdout_fraction, loosen the limit, "
                         "ask for more ε, or release a larger table")
    return notes, fixes


def _refusal_notes(policy: Policy, noise: dict[str, float]) -> list[str]:
    """One line per DP figure: its noise std, the probability that a release whose exact figure
    clears the limit by the policy's ``audit_design_margin`` is refused by that clause, the margin
    that keeps that probability at 5 %; then the chance that such a release is refused by any of them."""
    from synthrelease.gate import dp_gate

    k, margin = policy.privacy.audit_clear_by_stds, policy.privacy.audit_design_margin
    refusal = dp_gate.refusal_probability(noise, margin, k)
    clause_of = {v: c for c, v in dp_gate.CLAUSE_FIGURES.items()}
    lines = [f"DP figure {name} for {clause_of[name]}: noise std {std:.3g}; a release whose exact figure clears "
             f"the limit by {margin:g} is refused by this clause with probability {refusal[name]:.2f} "
             f"(5 % needs a margin of {(1.645 + k) * std:.3g})" for name, std in noise.items()]
    if refusal:
        lines.append(f"a release whose exact figures all clear their limits by {margin:g} is refused with "
                     f"probability {_combined_refusal(policy, noise):.2f} (gate noise: privacy.audit_noise_allocation "
                     f"{policy.privacy.audit_noise_allocation}, audit_clear_by_stds {k:g})")
    return lines


def _clause_threshold(policy: Policy, clause: str) -> float | None:
    section, key = clause.split(".", 1)
    node = getattr(policy, section, None)
    value = getattr(node, key, None) if node is not None else None
    return float(value) if isinstance(value, (int, float)) else None


def synthetic_row_count(n_rows: int, holdout_fraction: float) -> int:
    """Rows a release generates: ⌈n·(1 − h)⌉, a function of public numbers only (never the coins)."""
    return max(1, math.ceil(n_rows * (1.0 - holdout_fraction)))
