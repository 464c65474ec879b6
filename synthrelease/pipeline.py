"""The Python API: one call per job. The CLI only wraps these functions.

``release`` runs, in order: metadata → validation → seeded train/holdout split →
DP-GAN training → sampling → audits → policy gate → signed bundle (only on PASS).
The holdout never touches training. The internal report is always written, apart from
the bundle; on FAIL no shareable data is written anywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from synthrelease import __version__
from synthrelease._io import read_table, sha256_bytes, sha256_file
from synthrelease.audits.base import AuditResult
from synthrelease.budget.ledger import Ledger, default_ledger_path
from synthrelease.errors import (
    BudgetExceededError,
    GateRefused,
    MetadataError,
    PrivacyParameterError,
    SynthreleaseError,
)
from synthrelease.metadata.load import load_metadata, require_reviewed
from synthrelease.metadata.schema import Metadata
from synthrelease.policy.gate import GateDecision, check_signing_key, evaluate_gate, privacy_clauses
from synthrelease.policy.schema import Policy, load_policy
from synthrelease.privacy import PRIVACY_UNIT, PrivacyLoss, default_delta
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress
from synthrelease.rng import SeedTree
from synthrelease.sampling import sample_frame
from synthrelease.training.config import TrainingConfig, marginal_share_for
from synthrelease.training.trainer import PrivacySpent, TrainedModel, fit_dp_synthesizer, sample_rate_for

log = logging.getLogger(__name__)

UNREVIEWED_WARNING = (
    "metadata is NOT reviewed: its bounds/categories may come from the private rows, "
    "which voids the differential-privacy guarantee"
)


@dataclass
class ReleaseOutcome:
    """What ``release`` did.

    Attributes:
        passed: the gate's verdict.
        decision: every clause with threshold, measured value and pass/fail.
        epsilon, delta, accountant: privacy spent (ε from the accountant, for δ).
        bundle_dir: the signed bundle (None when rejected).
        report_path: the internal report (always written; INTERNAL).
        audits: audit results (INTERNAL).
        seconds: wall-clock seconds per stage.
        warnings: notes the user must see (e.g. unreviewed metadata).
    """

    passed: bool
    decision: GateDecision
    epsilon: float
    delta: float
    accountant: str
    bundle_dir: Path | None
    report_path: Path
    audits: dict[str, AuditResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def load_inputs(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *,
                allow_unreviewed: bool = False) -> tuple[pd.DataFrame, Metadata, list[str]]:
    """Read metadata and table, check reviewed status, validate the table (Great Expectations).

    Raises:
        MetadataError, InputFileError, DataValidationError: one line naming file and column.
    """
    from synthrelease.validation.expectations import validate_table

    metadata = load_metadata(metadata_path)
    notes: list[str] = []
    if allow_unreviewed and not metadata.reviewed:
        notes.append(UNREVIEWED_WARNING)
    else:
        require_reviewed(metadata, metadata_path)
    df = read_table(data)
    validate_table(df, metadata, source=str(data))
    return df, metadata, notes


WIDE_TABLE_SETTINGS: dict[str, Any] = {
    "marginal_epsilon_share": 0.0, "embedding_kernel": "values", "embedding_epsilon_share": 0.85,
    "embedding_weight": 100.0, "embedding_shrinkage": 2.5, "embedding_zero_weight": 0.3,
}
"""Defaults where :func:`marginal_share_for` finds the marginals too noisy (wide tables): the
generator matches DP class mean profiles of the numerical values (kernel ``values``; its
release also gives the class counts), shrunk towards the overall mean at 2.5× their noise
scale, with 30 % of the profile's norm on the non-zero indicators; the DP discriminator
gets the remaining 15 % of ε. Measured on pbmc68k with the peers' evaluator (5 seeds,
benchmarks/results/synthesis.md): cell-type TSTR AUC 0.510 → 0.619 at ε = 1 and 0.502 →
0.742 at ε = 3; quality 0.65 → 0.62 at ε = 1, 0.67 → 0.68 at ε = 3."""


def default_training_config(n_rows: int, *, epsilon: float, delta: float, seed: int, accountant: str = "rdp",
                            n_steps: int | None = None, batch_size: int | None = None,
                            metadata: Metadata | None = None, condition_column: str | None = None) -> TrainingConfig:
    """Training settings scaled to the table, from public quantities only.

    Expected batch ≈ n/5 (16..500 rows), 1,000 discriminator steps, and the conditional
    marginals' share of ε from :func:`marginal_share_for` (0.5, or 0.2 on wide tables
    where the marginals would be mostly noise). In that low signal-to-noise regime the
    default step count is also capped at about 100 epochs, and if the table has numerical
    columns and a condition, :data:`WIDE_TABLE_SETTINGS` replace the marginals by DP class
    mean profiles.
    """
    batch = batch_size or max(16, min(500, n_rows // 5))
    steps = n_steps or 1000
    share = TrainingConfig.__dataclass_fields__["marginal_epsilon_share"].default
    if metadata is not None and condition_column is not None:
        n_bins = TrainingConfig.__dataclass_fields__["marginal_bins"].default
        share = marginal_share_for(
            n_rows=n_rows, n_histograms=len(metadata.model_columns),
            n_classes=len(metadata.columns[condition_column].canonical_categories()), n_cells=n_bins + 2,
            epsilon=epsilon, delta=delta, accountant=accountant)
        if share < 0.5 and n_steps is None:
            steps = min(steps, max(100, round(100 / sample_rate_for(n_rows, min(batch, n_rows)))))
        numerical = [c for c in metadata.model_columns if c != condition_column and metadata.columns[c].is_numerical]
        if share < 0.5 and numerical:
            # Wide, low signal-to-noise table (e.g. expression matrices): per-column marginals
            # are mostly noise, so the budget goes to the class mean profiles instead.
            return TrainingConfig(target_epsilon=epsilon, target_delta=delta, accountant=accountant,
                                  batch_size=batch, n_steps=steps, seed=seed, **WIDE_TABLE_SETTINGS)
    return TrainingConfig(target_epsilon=epsilon, target_delta=delta, accountant=accountant,
                          batch_size=batch, n_steps=steps, seed=seed, marginal_epsilon_share=share)


def _resolve_target(metadata: Metadata, target: str | None) -> str:
    t = target or metadata.target
    if t is None:
        raise MetadataError("no target column: pass --target or declare 'target' in the metadata")
    if t not in metadata.columns:
        raise MetadataError(f"--target: column {t!r} is not declared in the metadata")
    if metadata.columns[t].type not in ("categorical", "boolean"):
        raise MetadataError(f"--target: column {t!r} must be categorical or boolean")
    return t


def split_train_holdout(df: pd.DataFrame, *, target: str, holdout_fraction: float,
                        seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split, stratified on the target where every class has ≥ 2 rows."""
    if not 0 < holdout_fraction < 1:
        raise PrivacyParameterError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    counts = df[target].value_counts(dropna=False)
    stratify = df[target] if len(counts) > 1 and counts.min() >= 2 else None
    train, hold = train_test_split(df, test_size=holdout_fraction, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), hold.reset_index(drop=True)


OPTIONAL_AUDITS = {
    "shadow": ("synthrelease.audits.shadow", "run_shadow_attack"),
    "empirical_privacy": ("synthrelease.audits.empirical_privacy", "run_one_run_audit"),
}


def _audit_function(audit: str) -> Any:
    """The entry point of an audit built as a separate module; a clear error when absent."""
    import importlib

    module, func = OPTIONAL_AUDITS[audit]
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        raise SynthreleaseError(f"the policy requires audit '{audit}', but audit {audit} is not available "
                                f"in this build ({module}.{func})") from None


def required_optional_audits(policy: Policy) -> list[str]:
    """The costly audits (shadow attack, empirical privacy audit) the policy requires."""
    return ([a for a, on in (("shadow", policy.shadow_attack_required),
                             ("empirical_privacy", policy.empirical_audit_required)) if on])


def run_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
               policy: Policy, *, target: str, seed: int, training_config: TrainingConfig | None = None,
               progress: ProgressCallback = ignore_progress) -> dict[str, AuditResult]:
    """Run the audits the policy asks for. Reads private rows; results are INTERNAL.

    The shadow attack and the empirical privacy audit (when required) retrain the
    generator with ``training_config``; plausibility rules run on the synthetic rows only.
    """
    from synthrelease.audits.fidelity import run_fidelity
    from synthrelease.audits.membership import run_membership
    from synthrelease.audits.utility import run_utility

    results: dict[str, AuditResult] = {}
    if policy.fidelity is not None:
        progress(ProgressEvent("audit:fidelity"))
        results["fidelity"] = run_fidelity(train, synthetic, metadata, seed=seed, progress=progress)
    if policy.utility is not None:
        progress(ProgressEvent("audit:utility"))
        results["utility"] = run_utility(train, holdout, synthetic, metadata, target=target, seed=seed)
    if policy.membership is not None:
        progress(ProgressEvent("audit:membership"))
        results["membership"] = run_membership(train, holdout, synthetic, metadata, seed=seed)
    if policy.rules:
        from synthrelease.audits.plausibility import run_plausibility

        progress(ProgressEvent("audit:plausibility"))
        results["plausibility"] = run_plausibility(synthetic, metadata, policy.rules)
    for audit in required_optional_audits(policy):
        run = _audit_function(audit)
        if training_config is None:
            raise SynthreleaseError(f"audit {audit} needs the training configuration; pass training_config")
        progress(ProgressEvent(f"audit:{audit}"))
        if audit == "shadow":
            results[audit] = run(train, holdout, metadata, training_config, seed=seed, condition_column=target)
        else:
            results[audit] = run(train, metadata, training_config, seed=seed, condition_column=target)
    return results


def coarse_audit_summary(audits: dict[str, AuditResult]) -> dict[str, dict[str, float]]:
    """Headline audit numbers rounded to 2 decimals: the only audit figures a bundle carries."""
    return {name: {k: round(float(v), 2) for k, v in a.metrics.items() if v is not None}
            for name, a in audits.items()}


def release(
    data: str | os.PathLike[str],
    *,
    metadata_path: str | os.PathLike[str],
    policy_path: str | os.PathLike[str],
    epsilon: float,
    out_dir: str | os.PathLike[str],
    signing_key: str | os.PathLike[str],
    delta: float | None = None,
    target: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    accountant: str = "rdp",
    n_steps: int | None = None,
    batch_size: int | None = None,
    holdout_fraction: float = 0.2,
    allow_unreviewed: bool = False,
    ledger_path: str | os.PathLike[str] | None = None,
    archive: bool = False,
    progress: ProgressCallback = ignore_progress,
) -> ReleaseOutcome:
    """Train a DP synthesizer on ``data``, audit it, and sign a bundle if the policy passes.

    Reads the private table at ``data``. Guarantee: the bundle's synthetic rows are the
    output of an (ε, δ)-DP mechanism (ε spent ≤ ``epsilon``; see
    :func:`synthrelease.training.trainer.train_dp_gan`), released only if the gate
    passes; the gate's verdict itself depends on private data (not DP) and only the
    verdict and rounded audit figures enter the bundle.

    Budget: the release reserves ε (and δ) for the dataset (the metadata's ``name``) in
    the privacy ledger at ``ledger_path`` (default :func:`default_ledger_path`) before
    training, against the policy's lifetime cap; the reservation becomes spent once
    training has started (released or rejected alike) and is cancelled if the release
    stops before training. The ledger entry id is in the internal report.

    Raises:
        SynthreleaseError subclasses for bad input (exit 2); GateRefused (exit 1) when
        any clause fails — then no bundle exists at ``out_dir``.
    """
    from synthrelease.audits.plausibility import check_rules
    from synthrelease.bundle.signing import key_fingerprint, load_private_key
    from synthrelease.bundle.writer import write_bundle

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrivacyParameterError(f"{out}: output directory exists and is not empty; choose a new --out")
    if archive and Path(f"{out}.tar.gz").exists():
        raise PrivacyParameterError(f"{out}.tar.gz: archive already exists; choose a new --out")
    report_root = Path(report_dir) if report_dir is not None else out.parent / f"{out.name}.internal-report"
    policy, policy_sha = load_policy(policy_path)
    private_key = load_private_key(signing_key)
    check_signing_key(policy, key_fingerprint(private_key.public_key()), str(signing_key))
    PrivacyLoss(epsilon, delta if delta is not None else 1e-12)  # validates ε early
    progress(ProgressEvent("validate"))
    df, metadata, notes = load_inputs(data, metadata_path, allow_unreviewed=allow_unreviewed)
    tgt = _resolve_target(metadata, target)
    check_rules(policy.rules, metadata, policy_path=policy_path)  # before any training
    for audit in required_optional_audits(policy):
        _audit_function(audit)  # a required audit this build lacks: refuse before spending ε
    seeds = SeedTree(seed)
    train, holdout = split_train_holdout(df, target=tgt, holdout_fraction=holdout_fraction,
                                         seed=seeds.integer("split"))
    n_train = len(train)
    eff_delta = delta if delta is not None else min(policy.privacy.max_delta, default_delta(n_train))
    loss = PrivacyLoss(epsilon, eff_delta)
    loss.check_delta_for_rows(n_train)
    timings["validate"] = time.perf_counter() - t0

    seed_salt = secrets.token_hex(16)
    report: dict[str, Any] = {
        "dataset": metadata.name, "tool_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {"data": str(data), "data_sha256": sha256_file(data), "metadata": str(metadata_path),
                   "policy": str(policy_path), "policy_sha256": policy_sha},
        "rows": {"total": len(df), "train": n_train, "holdout": len(holdout)},
        "target": tgt, "seed": seed, "seed_salt": seed_salt, "warnings": notes,
    }

    # Privacy clauses first: refuse before spending any budget on a release that cannot pass.
    ledger = Ledger(ledger_path if ledger_path is not None else default_ledger_path())

    def refuse_before_training(used_before: float) -> GateRefused:
        pre = privacy_clauses(policy, epsilon=epsilon, delta=eff_delta, accountant=accountant,
                              n_train_rows=n_train, epsilon_spent_before=used_before)
        decision = GateDecision(policy.name, tuple(pre))
        report.update(privacy={"epsilon": 0.0, "delta": eff_delta, "accountant": accountant,
                               "note": "refused before training: nothing spent"},
                      audits={}, gate=[c.to_dict() for c in decision.clauses], bundle=None)
        path = _write_report(report_root, report, decision)
        message = _refusal_message(decision, path)
        if any(c.clause == "privacy.lifetime_epsilon_cap" for c in decision.failed):
            message += f"; privacy ledger: {ledger.path}"
        return GateRefused(message, [c.reason for c in decision.failed])

    data_sha = report["inputs"]["data_sha256"]
    used = ledger.used(metadata.name, data_sha)
    pre = privacy_clauses(policy, epsilon=epsilon, delta=eff_delta, accountant=accountant, n_train_rows=n_train,
                          epsilon_spent_before=used)
    if not all(c.passed for c in pre):
        raise refuse_before_training(used)
    try:  # atomic against concurrent releases of the same dataset
        hold = ledger.reserve(metadata.name, epsilon, eff_delta, cap=policy.lifetime_epsilon_cap,
                              data_sha256=data_sha, note=f"release to {out}")
    except BudgetExceededError:
        raise refuse_before_training(ledger.used(metadata.name, data_sha)) from None
    report["ledger"] = {"path": str(ledger.path), "entry": hold.entry_id, "dataset": metadata.name,
                        "epsilon_used_before": hold.used_before, "composition": "basic (ε and δ summed)"}
    spent_so_far: list[PrivacySpent] = []
    training_started = False
    try:
        config = default_training_config(n_train, epsilon=epsilon, delta=eff_delta, seed=seeds.integer("train"),
                                         accountant=accountant, n_steps=n_steps, batch_size=batch_size,
                                         metadata=metadata, condition_column=tgt)
        t = time.perf_counter()
        training_started = True
        model = fit_dp_synthesizer(train, metadata, config, condition_column=tgt, progress=progress)
        metadata = model.encoder.metadata  # with DP-estimated bounds, if any were undeclared
        timings["train"] = time.perf_counter() - t

        t = time.perf_counter()
        progress(ProgressEvent("sample", 0, n_train))
        synthetic = sample_frame(model, n_train, seed=seeds.integer("sample"))
        timings["sample"] = time.perf_counter() - t

        t = time.perf_counter()
        audits = run_audits(train, holdout, synthetic, metadata, policy, target=tgt,
                            seed=seeds.integer("audits"), training_config=config, progress=progress)
        timings["audits"] = time.perf_counter() - t
        spent = model.privacy
        spent_so_far.append(spent)
        decision = evaluate_gate(policy, epsilon=spent.epsilon, delta=spent.delta, accountant=spent.accountant,
                                 n_train_rows=n_train, audits=audits, epsilon_spent_before=hold.used_before)
        report.update(
            privacy=spent.to_dict(), training=config.to_dict() | {"seconds": model.train_seconds,
                                                                  "history": model.history},
            audits={k: {"metrics": a.metrics, "details": a.details, "runtime_s": a.runtime_s}
                    for k, a in audits.items()},
            gate=[c.to_dict() for c in decision.clauses], bundle=None,
        )
        if not decision.passed:
            timings["total"] = time.perf_counter() - t0
            report["seconds"] = timings
            path = _write_report(report_root, report, decision)
            raise GateRefused(_refusal_message(decision, path), [c.reason for c in decision.failed])

        t = time.perf_counter()
        seed_commitment = sha256_bytes(f"{seed_salt}:{seed}".encode())
        release_info = {
            "tool": {"name": "synthrelease", "version": __version__},
            "dataset": {"name": metadata.name, "synthetic_rows": len(synthetic),
                        "columns": metadata.model_columns},
            "metadata": metadata.to_yaml_dict(),
            "privacy": {"epsilon": round(spent.epsilon, 6), "delta": spent.delta, "accountant": spent.accountant,
                        "privacy_unit": PRIVACY_UNIT, "mechanisms": spent.to_dict()["mechanisms"],
                        "threshold_delta": spent.threshold_delta},
            "policy": {"name": policy.name, "sha256": policy_sha, "document": policy.model_dump(mode="json")},
            "gate": {"verdict": "released", "clauses": [
                {"clause": c.clause, "comparator": c.comparator, "threshold": c.threshold, "passed": c.passed}
                for c in decision.clauses]},
            "audit_summary": coarse_audit_summary(audits),
            "seed": {"commitment_sha256": seed_commitment,
                     "note": "seed withheld: it determines the DP noise; salt and seed are in the internal report"},
        }
        card = release_card(metadata, spent.epsilon, spent.delta, spent.accountant, policy, policy_sha,
                            coarse_audit_summary(audits), len(synthetic))
        bundle = write_bundle(out, tables={"synthetic": synthetic}, text_files={"RELEASE_CARD.md": card},
                              release=release_info, private_key=private_key, archive=archive)
        timings["bundle"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        report.update(bundle=str(bundle), seconds=timings)
        path = _write_report(report_root, report, decision)
        outcome = ReleaseOutcome(True, decision, spent.epsilon, spent.delta, spent.accountant, bundle, path,
                                 audits, timings, notes)
    except BaseException as e:  # the ledger entry must not stay 'reserved' on any exit we can catch
        if isinstance(e, GateRefused) and spent_so_far:
            ledger.spend(hold, spent_so_far[0].epsilon, spent_so_far[0].delta,
                         note="rejected by the gate; training ran, so its ε is spent")
        elif training_started:  # conservative: the run may have finished reading the private rows
            ledger.spend(hold, spent_so_far[0].epsilon if spent_so_far else hold.epsilon,
                         spent_so_far[0].delta if spent_so_far else hold.delta,
                         note=f"stopped after training started ({type(e).__name__}): counted as spent")
        else:
            ledger.cancel(hold, note=f"stopped before training ({type(e).__name__})")
        raise
    ledger.spend(hold, outcome.epsilon, outcome.delta, note=f"released: {outcome.bundle_dir}")
    return outcome


def _write_report(report_root: Path, report: dict[str, Any], decision: GateDecision) -> Path:
    from synthrelease.internal_report import write_internal_report

    return write_internal_report(report_root, report, decision)


def _refusal_message(decision: GateDecision, report_path: Path) -> str:
    failed = "; ".join(f"{c.clause}: {c.reason}" for c in decision.failed)
    return (f"release rejected by policy '{decision.policy_name}': {failed}. "
            f"No data was written; internal report: {report_path}")


def release_card(metadata: Metadata, epsilon: float, delta: float, accountant: str, policy: Policy,
                 policy_sha: str, audit_summary: dict[str, dict[str, float]], n_rows: int) -> str:
    """The public release card (Markdown)."""
    lines = [
        f"# Synthetic data release — {metadata.name}", "",
        f"This bundle holds {n_rows} **synthetic** rows of {len(metadata.model_columns)} columns generated by "
        "synthrelease from a private table. No row is a real person's record.", "",
        "## Privacy guarantee", "",
        f"The generator was trained with differential privacy: **ε = {epsilon:.3f}, δ = {delta:g}** "
        f"({accountant} accountant, Opacus), privacy unit: {PRIVACY_UNIT}.",
        "In plain words: whether or not any one person's row was in the private table changes the "
        f"probability of any outcome of this release by at most a factor of e^ε ≈ {pow(2.718281828, epsilon):.2f}, "
        f"except with probability at most δ = {delta:g}. This holds for the data, any number of further "
        "samples, and anything computed from them.", "",
        "## Policy", "", f"Released under policy `{policy.name}` (SHA-256 `{policy_sha}`); every clause passed.", "",
        "## Audit summary (coarse)", "",
        "These figures were computed on private data and are NOT covered by the DP guarantee; they are "
        "rounded to two decimals. Detailed results stay with the data steward.", "",
    ]
    for name, metrics in audit_summary.items():
        lines.append(f"- {name}: " + ", ".join(f"{k} = {v:.2f}" for k, v in metrics.items()))
    lines += ["", "## Verify", "",
              "```", "synthrelease verify <this-directory> --public-key <steward's public key>", "```",
              "verification checks the Ed25519 signature over `manifest.json` and the SHA-256 of every file.", ""]
    return "\n".join(lines)


def train_model(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                delta: float | None = None, condition: str | None = None, seed: int = 0,
                accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                allow_unreviewed: bool = False,
                progress: ProgressCallback = ignore_progress) -> tuple[TrainedModel, list[str]]:
    """Train a DP generator on the whole table at ``data`` (no audits, no gate).

    Guarantee: the returned model is (ε, δ)-DP with respect to the rows of ``data``.
    """
    df, metadata, notes, cond, config = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=allow_unreviewed, require_condition=False)
    model = fit_dp_synthesizer(df, metadata, config, condition_column=cond, progress=progress)
    return model, notes


def _whole_table_setup(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *, epsilon: float,
                       delta: float | None, condition: str | None, seed: int, accountant: str,
                       n_steps: int | None, batch_size: int | None, allow_unreviewed: bool,
                       require_condition: bool) -> tuple[pd.DataFrame, Metadata, list[str], str | None,
                                                         TrainingConfig]:
    """Load and validate a table for training on all its rows; the condition column and the config.

    Raises:
        MetadataError: the condition column is not a declared categorical with a category list
            (or is missing while ``require_condition``).
        PrivacyParameterError: ε or δ impossible for the row count.
    """
    df, metadata, notes = load_inputs(data, metadata_path, allow_unreviewed=allow_unreviewed)
    cond = condition if condition is not None else metadata.target
    if (cond is None and require_condition) or (cond is not None and (
            cond not in metadata.columns or metadata.columns[cond].type not in ("categorical", "boolean"))):
        raise MetadataError(f"--condition-column: {cond!r} is not a declared categorical column")
    if cond is not None and metadata.columns[cond].dp_categories is not None:
        raise MetadataError(f"--condition-column: {cond!r} needs a declared 'categories' list, not dp_categories")
    eff_delta = delta if delta is not None else default_delta(len(df))
    PrivacyLoss(epsilon, eff_delta).check_delta_for_rows(len(df))
    config = default_training_config(len(df), epsilon=epsilon, delta=eff_delta, seed=seed, accountant=accountant,
                                     n_steps=n_steps, batch_size=batch_size, metadata=metadata,
                                     condition_column=cond)
    return df, metadata, notes, cond, config


def audit_privacy_claim(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                        delta: float | None = None, condition: str | None = None, seed: int = 0,
                        accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                        n_canaries: int | None = None, many_run: int = 0, allow_unreviewed: bool = False,
                        progress: ProgressCallback = ignore_progress) -> dict[str, AuditResult]:
    """Check the DP-GAN's ε claim on ``data`` with the empirical audits (nothing released).

    Trains the audit run(s) with the settings ``train``/``release`` would use for this
    table (:func:`default_training_config`). Always runs the one-run audit (Steinke et al.
    2023, ``n_canaries`` canaries); with ``many_run`` = T > 0 also the many-run audit
    (Jagielski et al. 2020, T trainings: small models only). Reads private rows; NOT DP;
    the results are INTERNAL (no model, table or bundle is written), and no ε is charged:
    nothing from these runs is released.
    """
    from synthrelease.audits.empirical_privacy import run_many_run_audit, run_one_run_audit

    df, metadata, _, cond, config = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=allow_unreviewed, require_condition=True)
    seeds = SeedTree(seed)
    results = {"empirical_privacy": run_one_run_audit(df, metadata, config, seed=seeds.integer("one-run"),
                                                      n_canaries=n_canaries, condition_column=cond,
                                                      progress=progress)}
    if many_run:
        results["empirical_privacy_many_run"] = run_many_run_audit(
            df, metadata, config, seed=seeds.integer("many-run"), n_runs=many_run, condition_column=cond,
            progress=progress)
    return results
