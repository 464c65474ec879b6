"""The Python API: one call per job. The CLI only wraps these functions.

``release`` runs, in order: metadata → validation → train/holdout split by secret per-row
coins → DP-GAN training → sampling → audits (internal) → DP gate figures → policy gate →
signed bundle (only on PASS). The holdout never touches training. The internal report is
always written, apart from the bundle; on FAIL no shareable data is written anywhere.

Neighbour relation: two input tables are neighbours when one is the other with one row
(one person) added or removed. Each row independently goes to the holdout with the public
probability h by its own secret coin, so a neighbouring table changes exactly one row's
membership (in the training rows with probability 1 − h, in the holdout otherwise) and no
other row moves: the training rows of neighbouring inputs are themselves add/remove
neighbours (or identical), which is the relation Opacus' accountant analyses for DP-SGD,
and the gate's sensitivities cover a row added to or removed from either part. Row counts
are treated as public (the total n fixes Opacus' sample rate; the split sizes fix the
gate's sensitivities); the number of synthetic rows is a function of n and h only.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from synthrelease import __version__, stages
from synthrelease._io import sha256_file, write_table_atomic
from synthrelease.audits.base import AuditResult
from synthrelease.budget.accounting import MechanismEntry, epsilon_for
from synthrelease.budget.ledger import Ledger, default_ledger_path
from synthrelease.errors import (
    BudgetExceededError,
    GateRefused,
    InputFileError,
    MetadataError,
    PolicyError,
    PrivacyParameterError,
)
from synthrelease.metadata.schema import Metadata, canonical_category
from synthrelease.modality import Modality, modality_for, tabular
from synthrelease.policy.advice import advice_for
from synthrelease.policy.gate import ClauseResult, GateDecision, check_signing_key, privacy_clauses
from synthrelease.policy.schema import Policy, load_policy
from synthrelease.privacy import PrivacyLoss, privacy_unit_text, public_default_delta
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress
from synthrelease.rng import PrivateRandomness, SeedTree
from synthrelease.sampling import float_block_bytes, sample_frame
from synthrelease.spill import check_room
from synthrelease.training.config import TrainingConfig
from synthrelease.training.defaults import (  # noqa: F401  (re-exported: the table defaults' public names)
    RELATED_EPSILON_SHARE,
    WIDE_MIN_NUMERICAL,
    WIDE_TABLE_SETTINGS,
    default_training_config,
)
from synthrelease.training.trainer import fit_dp_synthesizer
from synthrelease.transforms import dp_counts
from synthrelease.transforms.dp_counts import NoisySizes

log = logging.getLogger(__name__)

UNREVIEWED_WARNING = stages.UNREVIEWED_WARNING
OPTIONAL_AUDITS = stages.OPTIONAL_AUDITS

@dataclass
class ReleaseOutcome:
    """What ``release`` did.

    Attributes:
        passed: the gate's verdict.
        decision: every clause (``name``, ``threshold``, ``measured``, ``passed``, ``hint``).
        epsilon, delta, accountant: privacy spent (ε from the accountant, for δ).
        bundle_dir: the signed bundle (None when rejected).
        report_path: the internal report (always written; INTERNAL).
        audits: audit results (INTERNAL: exact, not DP).
        seconds: wall-clock seconds per stage.
        warnings: notes the user must see.
        figures: the DP gate's figures (noisy values are DP; ``exact`` is INTERNAL).
        synthetic: the released synthetic rows (the DP output; the bundle holds the same rows).
        settings: the training settings the manifest records (public).
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
    figures: dict[str, Any] = field(default_factory=dict)
    synthetic: pd.DataFrame | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path | None]:
        """Where the outputs are: ``bundle``, ``synthetic`` (its CSV), ``internal_report`` (INTERNAL)."""
        synthetic = self.bundle_dir / "synthetic.csv" if self.bundle_dir is not None else None
        return {"bundle": self.bundle_dir, "synthetic": synthetic, "internal_report": self.report_path}


def load_inputs(data: stages.DataInput, metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any], *,
                allow_unreviewed: bool = False, sep: str | None = None) -> tuple[pd.DataFrame, Metadata, list[str]]:
    """Read metadata and table, check reviewed status, validate the table (Great Expectations).

    ``allow_unreviewed`` is for INTERNAL computations only (the empirical audit command);
    ``release`` and ``train``, whose outputs are shareable, always require reviewed metadata.

    Raises:
        MetadataError, InputFileError, DataValidationError: one line naming file and column.
    """
    loaded = stages.load(data, metadata, sep=sep, allow_unreviewed=allow_unreviewed)
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


def synthetic_row_count(n_rows: int, holdout_fraction: float) -> int:
    """Rows a release generates: ⌈n·(1 − h)⌉, a function of public numbers only (never the coins)."""
    return max(1, math.ceil(n_rows * (1.0 - holdout_fraction)))


def release_part_sizes(parts: stages.TrainHoldout, metadata: Metadata, target: str | None, entry: MechanismEntry,
                       randomness: PrivateRandomness) -> NoisySizes:
    """The release's one DP count of its parts (transforms/dp_counts.py): training persons, holdout
    persons with a declared label, holdout persons without one. Reads private rows (their counts and
    the holdout's labels); the result is DP (``entry`` is in the accountant)."""
    train = stages.first_row_per_person(parts.train, metadata)
    holdout = stages.first_row_per_person(parts.holdout, metadata)
    labelled = 0
    if target is not None and target in holdout.columns and target in metadata.columns:
        declared = set(metadata.columns[target].canonical_categories())
        labelled = int(sum(canonical_category(v) in declared for v in holdout[target].tolist()))
    return dp_counts.release_sizes(len(train), labelled, len(holdout) - labelled, entry, randomness)


def ceil_decimals(value: float, decimals: int) -> float:
    """``value`` rounded UP at ``decimals`` decimals (a reported ε is never rounded down)."""
    factor = 10.0 ** decimals
    return math.ceil(value * factor - 1e-9) / factor


def split_train_holdout(df: pd.DataFrame, *, holdout_fraction: float,
                        randomness: PrivateRandomness) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`synthrelease.stages.split` as a (train, holdout) pair."""
    parts = stages.split(df, holdout_fraction=holdout_fraction, randomness=randomness)
    return parts.train, parts.holdout


def run_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
               policy: Policy, *, target: str, seed: int, training_config: TrainingConfig | None = None,
               modality: Modality | None = None,
               progress: ProgressCallback = ignore_progress) -> dict[str, AuditResult]:
    """:func:`synthrelease.stages.audit` on a (train, holdout) pair (tables by default).
    Reads private rows; results are INTERNAL (not DP)."""
    return stages.audit(stages.TrainHoldout(train, holdout), synthetic, metadata, policy, target=target, seed=seed,
                        config=training_config, modality=modality or tabular(), progress=progress)


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
                          progress: ProgressCallback = ignore_progress) -> ReleaseRequest:
    """The ONE validation path of ``release`` and ``release --dry-run``: ε and δ, the policy, the
    signing key (``check_key``), the data and metadata, the modality and ``nproc``, the target, the
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
    loaded = stages.load(data, metadata, sep=sep)
    kind = modality if isinstance(modality, Modality) else modality_for(loaded.metadata, modality)
    if nproc > 1:  # refused before any ε is reserved
        from synthrelease.training.distributed import check_distributable
        from synthrelease.training.launch import distributed_modality

        check_distributable(loaded.metadata, f"--nproc {nproc}: {loaded.metadata_source}", nproc)
        kind = distributed_modality(kind, nproc)
    loaded = stages.validate(loaded, kind)
    meta = loaded.metadata
    tgt = _resolve_target(meta, target, optional=kind.name == "image")  # unlabelled tiles, e.g. one slide
    if tgt is None and pol.utility is not None:
        raise PolicyError(f"{policy_source}: clause utility needs a class column, and the image metadata declares "
                          "no target; remove the utility clause or declare labels")
    check_rules(pol.rules, kind.rules_metadata(meta), policy_path=policy_source)  # before any training
    if kind.view is not None and stages.required_optional_audits(pol):
        raise PolicyError(f"{policy_source}: audits {', '.join(stages.required_optional_audits(pol))} are not "
                          f"available for {kind.name} releases yet; remove them from the policy")
    for name in stages.required_optional_audits(pol):
        stages.optional_audit(name)  # a required audit this build lacks: refuse before spending ε
    # δ is public (given, or the public default): it calibrates every mechanism, the count release first
    eff_delta = delta if delta is not None else public_default_delta(pol.privacy.max_delta)
    PrivacyLoss(epsilon, eff_delta)
    # every training option is checked now, with a stand-in row count: a bad one costs no ε
    stages.training_config(kind, max(2, pol.data.min_rows), meta, settings, epsilon=epsilon, delta=eff_delta,
                           seed=0, accountant=accountant, condition_column=tgt)
    return ReleaseRequest(pol, policy_sha, policy_source, loaded, kind, tgt, eff_delta)


def release(
    data: stages.DataInput,
    *,
    metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any],
    policy: str | os.PathLike[str] | Policy | Mapping[str, Any],
    epsilon: float,
    out_dir: str | os.PathLike[str],
    signing_key: str | os.PathLike[str] | Any,
    delta: float | None = None,
    target: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    accountant: str = "rdp",
    n_steps: int | None = None,
    batch_size: int | None = None,
    synthetic_rows: int | None = None,
    pair_marginals: float | None = None,
    training_options: Mapping[str, Any] | None = None,
    holdout_fraction: float = 0.2,
    ledger_path: str | os.PathLike[str] | None = None,
    archive: bool = False,
    sep: str | None = None,
    modality: Modality | str | None = None,
    nproc: int = 1,
    progress: ProgressCallback = ignore_progress,
) -> ReleaseOutcome:
    """Train a DP synthesizer on ``data``, gate it on DP figures, and sign a bundle if the policy passes.

    ``data``: a path (CSV, TSV, Parquet, AnnData ``.h5ad``; ``sep`` for other delimited
    text), a pandas DataFrame or an AnnData object. ``metadata`` and ``policy``: YAML paths,
    or :class:`Metadata` / :class:`Policy` objects, or plain mappings. ``signing_key``: a PEM
    path or an ``Ed25519PrivateKey``. Levers (all public, the gate stays in front):
    ``n_steps``, ``batch_size``, ``synthetic_rows`` (default ⌈DP size × (1 − holdout_fraction)⌉),
    ``pair_marginals`` (ε share of DP discrete pair marginals), ``training_options`` (any
    :class:`TrainingConfig` field); the manifest records the settings used. ``modality``:
    ``table`` or ``sequence`` (default: from the metadata; a sequence column means
    sequences), or a :class:`Modality`. ``nproc``: train a table on that many local
    processes (torchrun, :func:`synthrelease.training.launch.distributed_modality`): the same
    split, ε, audits, gate and bundle as one process.

    Reads the private table. Guarantee: everything the release puts out — the synthetic
    rows, the figures in the manifest and release card, the verdict itself (and so whether
    a bundle exists) — is the output of one (ε, δ)-DP computation under add/remove-one-row
    neighbours, ε = the accountant's total over the DP preprocessing, the DP-SGD training
    and the DP gate's Gaussian release (see the module docstring for the neighbour
    relation). The internal report is NOT DP: it stays with the steward.

    Randomness: every DP mechanism and the split draw fresh OS entropy
    (:class:`PrivateRandomness`), never stored. ``seed`` fixes public streams only
    (generator initialisation, latent noise, audit models, the gate's pair subsample).

    Budget: the release reserves ε (and δ) for the dataset (the metadata's ``name``) in
    the privacy ledger at ``ledger_path`` (default :func:`default_ledger_path`) before
    training, against the policy's lifetime cap; the reservation becomes spent once
    training has started (released or rejected alike) and is cancelled if the release
    stops before training. The ledger entry id is in the internal report.

    Returns:
        :class:`ReleaseOutcome` with the synthetic DataFrame, the decision and the paths.

    Raises:
        SynthreleaseError subclasses for bad input (exit 2), including unreviewed metadata;
        GateRefused (exit 1) when any clause fails — then no bundle exists at ``out_dir``;
        the exception carries the same ``decision`` and the internal report's path.
    """
    from synthrelease.bundle.signing import key_fingerprint, load_private_key
    from synthrelease.bundle.writer import archive_path
    from synthrelease.outputs import check_writable, refuse_nested, release_size_estimate
    from synthrelease.policy import dp_gate

    settings = stages.ReleaseSettings(n_steps=n_steps, batch_size=batch_size, synthetic_rows=synthetic_rows,
                                      pair_marginals=pair_marginals, training_options=dict(training_options or {}))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrivacyParameterError(f"{out}: --out is an existing file; it names the new folder of the bundle, "
                                    "choose a new path")
    if out.is_dir() and any(out.iterdir()):
        raise PrivacyParameterError(f"{out}: output directory exists and is not empty; choose a new --out")
    if archive and Path(f"{out}.tar.gz").exists():
        raise PrivacyParameterError(f"{out}.tar.gz: archive already exists; choose a new --out")
    report_root = Path(report_dir) if report_dir is not None else out.parent / f"{out.name}.internal-report"
    # outputs first: a run that cannot write its results must fail before any ε is reserved
    refuse_nested(out, report_root, names=("--out (the shareable bundle)", "--report (the internal report)"))
    if report_root.exists() and not report_root.is_dir():
        raise InputFileError(f"{report_root}: --report must be a folder, and this is an existing file")
    if (report_root / INTERNAL_REPORT_NAME).exists():
        raise InputFileError(f"{report_root}: holds an earlier release's internal report; choose a new --report")
    refuse_report_collisions(report_root)
    needed = release_size_estimate(data) if isinstance(data, (str, os.PathLike)) else 0
    check_writable(out, option="--out", needed_bytes=needed)
    check_writable(report_root, option="--report")
    if archive:
        check_writable(archive_path(out), option="--archive", needed_bytes=needed)
    key_holder: list[Ed25519PrivateKey] = []

    def check_key(pol: Policy) -> None:  # before the data is read: a wrong key costs no read
        key = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_private_key(signing_key)
        check_signing_key(pol, key_fingerprint(key.public_key()),
                          "the signing key" if isinstance(signing_key, Ed25519PrivateKey) else str(signing_key))
        key_holder.append(key)

    request = check_release_request(data, metadata=metadata, policy=policy, epsilon=epsilon, delta=delta,
                                    target=target, accountant=accountant, sep=sep, modality=modality, nproc=nproc,
                                    settings=settings, check_key=check_key, progress=progress)
    private_key = key_holder[0]
    pol, policy_sha, policy_source = request.policy, request.policy_sha, request.policy_source
    loaded, kind, tgt, eff_delta = request.loaded, request.kind, request.target, request.delta
    del request  # it holds the loaded table: the split below must be able to let the frame go
    meta, notes = loaded.metadata, list(loaded.notes)
    seeds = SeedTree(seed)  # public streams only
    secret = PrivateRandomness()  # every DP mechanism and the split: fresh OS entropy, never stored
    secret.require_secret("release")  # the test-only reproducible kind can never reach a release
    parts = stages.split(loaded.table, holdout_fraction=holdout_fraction, randomness=secret,
                         unit_column=meta.privacy_unit_column if meta.rows_per_person > 1 else None,
                         consume=True)  # the parts are the table's own memory, reordered
    # from here on the release holds the rows once, as its two parts. The loaded frame object is
    # let go (its rows are now in the parts' order); validation leaves reference cycles that
    # hold it (exceptions Great Expectations' parser raised and caught keep their frames, and the
    # frames the table): collect them now.
    loaded = dataclasses.replace(loaded, table=loaded.table.iloc[:0].copy())  # a slice would be a view of it
    gc.collect()
    count_entry = dp_counts.count_entry(pol.privacy.count_budget_share, epsilon=epsilon, delta=eff_delta,
                                        accountant=accountant)
    gate_entry = dp_gate.gate_entry(pol, epsilon=epsilon, delta=eff_delta, accountant=accountant)
    reserved = (count_entry,) if gate_entry is None else (count_entry, gate_entry)
    if kind.sample is sample_frame:  # room for the spilled synthetic rows, checked before any ε is spent
        check_room(float_block_bytes(meta, settings.synthetic_rows or len(parts.train) + len(parts.holdout)))
    timings["validate"] = time.perf_counter() - t0

    report: dict[str, Any] = {
        "dataset": meta.name, "tool_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {"data": loaded.source, "data_sha256": loaded.data_sha256, "format": loaded.fmt.kind,
                   "metadata": loaded.metadata_source, "policy": policy_source, "policy_sha256": policy_sha,
                   "content_sha256": loaded.content_sha256},
        "rows": {"train": len(parts.train), "holdout": len(parts.holdout),
                 "dropped_beyond_person_cap": loaded.dropped_rows,
                 "split": f"independent secret coin per row, holdout probability {holdout_fraction:g}",
                 "note": "EXACT private counts: internal only; the bundle carries the DP counts"},
        "target": tgt, "public_seed": seed, "warnings": notes, "training_processes": nproc,
        "randomness": PUBLIC_SEED_NOTE,
    }

    # Count-free privacy clauses first: refuse before spending any budget on a release that cannot pass.
    ledger = Ledger(ledger_path if ledger_path is not None else default_ledger_path())

    def refuse(clauses: list[ClauseResult], spent_note: str, spent: float = 0.0) -> GateRefused:
        decision = GateDecision(pol.name, tuple(clauses))
        report.update(privacy={"epsilon": spent, "delta": eff_delta, "accountant": accountant, "note": spent_note},
                      audits={}, gate=[c.to_dict() for c in decision.clauses], bundle=None)
        path = _write_report(report_root, report, decision)
        message = _refusal_message(decision, path)
        if any(c.clause == "privacy.lifetime_epsilon_cap" for c in decision.failed):
            message += f"; privacy ledger: {ledger.path}"
        return GateRefused(message, [c.reason for c in decision.failed], decision=decision, report_path=path)

    def refuse_before_training(used_before: float) -> GateRefused:
        return refuse(privacy_clauses(pol, epsilon=epsilon, delta=eff_delta, accountant=accountant,
                                      n_train_rows=None, epsilon_spent_before=used_before),
                      "refused before training: nothing spent")

    data_sha, content_sha = loaded.data_sha256, loaded.content_sha256
    used = ledger.used(meta.name, data_sha, content_sha256=content_sha)
    pre = privacy_clauses(pol, epsilon=epsilon, delta=eff_delta, accountant=accountant, n_train_rows=None,
                          epsilon_spent_before=used)
    if not all(c.passed for c in pre):
        raise refuse_before_training(used)
    try:  # atomic against concurrent releases of the same dataset
        hold = ledger.reserve(meta.name, epsilon, eff_delta, cap=pol.lifetime_epsilon_cap,
                              data_sha256=data_sha, content_sha256=content_sha, note=f"release to {out}")
    except BudgetExceededError:
        raise refuse_before_training(ledger.used(meta.name, data_sha, content_sha256=content_sha)) from None
    report["ledger"] = {"path": str(ledger.path), "entry": hold.entry_id, "dataset": meta.name,
                        "epsilon_used_before": hold.used_before, "composition": "basic (ε and δ summed)"}
    spent_epsilon: list[float | None] = []
    training_started = False
    report_written = False
    try:
        # the one DP release of the part sizes: everything size-dependent is derived from it
        sizes = release_part_sizes(parts, meta, tgt, count_entry, secret)
        training_started = True  # private rows have been read by a DP mechanism: its ε is spent
        spent_epsilon.append(epsilon_for([count_entry], delta=eff_delta, accountant=accountant))
        report["rows"]["dp_sizes"] = sizes.public()
        counted = privacy_clauses(pol, epsilon=epsilon, delta=eff_delta, accountant=accountant,
                                  n_train_rows=sizes.train, epsilon_spent_before=hold.used_before)
        if not all(c.passed for c in counted):
            report_written = True
            raise refuse(counted, "refused on the DP part sizes before training: only the count release was spent",
                         spent_epsilon[0] or 0.0)
        n_synthetic = settings.synthetic_rows or sizes.synthetic_rows(holdout_fraction)
        config = stages.training_config(kind, sizes.rows_for_defaults, meta, settings, epsilon=epsilon,
                                        delta=eff_delta, seed=seeds.integer("train"), accountant=accountant,
                                        condition_column=tgt)
        config = dataclasses.replace(config, public_rows=sizes.rows_for_defaults)
        t = time.perf_counter()
        spent_epsilon[:] = [None]  # training may read every row from here: a stop counts the whole ε
        model = stages.train(parts.train, meta, config, modality=kind, condition_column=tgt,
                             reserved_entries=reserved, randomness=secret, progress=progress)
        spent = model.privacy  # includes the count release and the gate's reserved entry
        spent_epsilon[:] = [spent.epsilon]
        meta = kind.metadata_after_training(model, meta)  # tables: with DP-estimated bounds, if any
        timings["train"] = time.perf_counter() - t
        stages.return_freed_memory()  # the trainer's discriminator, optimiser and DP state are gone

        t = time.perf_counter()
        synthetic = stages.sample(model, n_synthetic, modality=kind, seed=seeds.integer("sample"), progress=progress)
        timings["sample"] = time.perf_counter() - t
        stages.return_freed_memory()

        t = time.perf_counter()
        audits = stages.audit(parts, synthetic, meta, pol, target=tgt, seed=seeds.integer("audits"), config=config,
                              modality=kind, progress=progress)
        from synthrelease.report.plot_data import collect_plot_data  # INTERNAL: reads private rows

        plot_parts: tuple[Any, ...] = (parts.train, parts.holdout, synthetic, meta)
        if kind.view is not None:  # plots of the per-record feature view, never of raw tiles or sequences
            (p_train, _), (p_holdout, _), (p_syn, p_meta) = (kind.view(parts.train, meta),
                                                            kind.view(parts.holdout, meta), kind.view(synthetic, meta))
            plot_parts = (p_train, p_holdout, p_syn, p_meta)
        plot_data = collect_plot_data(*plot_parts, audits, seed=seeds.integer("plots"), target=tgt)
        if kind.report_figures is not None:  # e.g. image grids, real tiles included: INTERNAL
            plot_data = {**(plot_data or {}), "image_grids": kind.report_figures(parts.train, synthetic, meta)}
        timings["audits"] = time.perf_counter() - t

        t = time.perf_counter()
        verdict = stages.gate(pol, parts, synthetic, meta, privacy=spent, audits=audits, target=tgt, modality=kind,
                              gate_entry=gate_entry, randomness=secret, seed=seeds.integer("gate"),
                              epsilon_spent_before=hold.used_before, sizes=sizes, progress=progress)
        decision, figures = verdict.decision, verdict.figures
        timings["dp_gate"] = time.perf_counter() - t
        del parts, plot_parts  # the private rows are not needed for writing: let them go before the files
        recorded = stages.public_settings(config, settings, n_synthetic=n_synthetic,
                                          holdout_fraction=holdout_fraction)
        report.update(
            privacy=spent.to_dict() | {"gate_budget_share": pol.privacy.audit_budget_share,
                                       "count_budget_share": pol.privacy.count_budget_share},
            training=config.to_dict() | {"seconds": model.train_seconds, "history": model.history,
                                         "user_options": recorded["user_options"]},
            audits={k: {"metrics": a.metrics, "details": a.details, "runtime_s": a.runtime_s}
                    for k, a in audits.items()},
            dp_gate={k: f.internal() for k, f in figures.items()},
            gate=[c.to_dict() for c in decision.clauses], bundle=None, plots=plot_data,
        )
        if not decision.passed:
            timings["total"] = time.perf_counter() - t0
            report["seconds"] = timings
            report["advice"] = {c.clause: advice_for(c.clause) for c in decision.failed}
            # the rejected rows are DP output (post-processing) but NOT released: internal only
            report_root.mkdir(parents=True, exist_ok=True)
            sample_paths = _write_rejected_sample(report_root, synthetic, kind, meta)
            report["rejected_sample"] = str(sample_paths[0])
            report["rejected_sample_files"] = [str(q) for q in sample_paths]
            path = _write_report(report_root, report, decision)
            report_written = True
            raise GateRefused(_refusal_message(decision, path), [c.reason for c in decision.failed],
                              decision=decision, report_path=path)

        t = time.perf_counter()
        public_figures = {k: f.public() for k, f in figures.items()}
        release_info = {
            "tool": {"name": "synthrelease", "version": __version__},
            "dataset": {"name": meta.name, "modality": kind.name, "synthetic_rows": len(synthetic),
                        "columns": meta.model_columns,
                        "input_format": loaded.fmt.kind},
            "metadata": meta.to_yaml_dict(),
            "privacy": {"epsilon": ceil_decimals(spent.epsilon, 6), "delta": spent.delta,
                        "accountant": spent.accountant,
                        "privacy_unit": privacy_unit_text(meta.privacy_unit_column, meta.rows_per_person),
                        "covers": GUARANTEE_COVERS, "mechanisms": spent.to_dict()["mechanisms"],
                        "threshold_delta": spent.threshold_delta,
                        "gate_budget_share": pol.privacy.audit_budget_share,
                        "count_budget_share": pol.privacy.count_budget_share},
            "dp_sizes": sizes.public(),
            "training": recorded,
            "policy": {"name": pol.name, "sha256": policy_sha, "document": pol.model_dump(mode="json")},
            "gate": {"verdict": "released", "clauses": [
                {"clause": c.clause, "comparator": c.comparator, "threshold": c.threshold, "passed": c.passed}
                for c in decision.clauses]},
            "dp_figures": public_figures,
            "synthetic_only_checks": _synthetic_only_summary(audits),
            "randomness": PUBLIC_SEED_NOTE,
        }
        from synthrelease.report.card import render_card_html

        card_args = (meta, spent.epsilon, spent.delta, spent.accountant, pol, policy_sha, public_figures,
                     _synthetic_only_summary(audits), len(synthetic))
        written = stages.bundle(out, synthetic=synthetic, fmt=loaded.fmt, release_info=release_info, modality=kind,
                                metadata=meta,
                                text_files={"RELEASE_CARD.md": release_card(*card_args),
                                            "RELEASE_CARD.html": render_card_html(*card_args)},
                                private_key=private_key, archive=archive, notes=notes)
        timings["bundle"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        report.update(bundle=str(written), seconds=timings, warnings=notes)
        path = _write_report(report_root, report, decision)
        report_written = True
        outcome = ReleaseOutcome(True, decision, spent.epsilon, spent.delta, spent.accountant, written, path,
                                 audits, timings, notes, figures, synthetic=synthetic, settings=recorded)
    except BaseException as e:  # the ledger entry must not stay 'reserved' on any exit we can catch
        if training_started and not report_written:
            _write_stopped_report(report_root, report, pol.name, e, hold.epsilon, hold.delta)
        if isinstance(e, GateRefused) and spent_epsilon and spent_epsilon[0] is not None:
            ledger.spend(hold, spent_epsilon[0], eff_delta,
                         note="rejected by the gate; the DP mechanisms that ran (the count release, and training "
                              "and the DP gate if they ran) are spent")
        elif training_started:  # conservative: the run may have finished reading the private rows
            ledger.spend(hold, spent_epsilon[0] if spent_epsilon and spent_epsilon[0] is not None else hold.epsilon,
                         hold.delta, note=f"stopped after the private rows were first read ({type(e).__name__}): "
                                          "counted as spent")
        else:
            ledger.cancel(hold, note=f"stopped before training ({type(e).__name__})")
        raise
    ledger.spend(hold, outcome.epsilon, outcome.delta, note=f"released: {outcome.bundle_dir}")
    return outcome


PUBLIC_SEED_NOTE = ("every DP mechanism (noise of all releases and of DP-SGD, Poisson masks) and the "
                    "train/holdout coins used fresh operating-system entropy, never stored; the public seed "
                    "fixes only public randomness (initialisation, latent noise, audit models)")

GUARANTEE_COVERS = ("the synthetic rows, the generator they came from, every figure in this manifest and "
                    "release card, and the verdict itself (whether this bundle exists): one (ε, δ)-DP "
                    "computation on the private table, add/remove one row")

SYNTHETIC_ONLY_AUDITS = ("plausibility",)


def _synthetic_only_summary(audits: dict[str, AuditResult]) -> dict[str, dict[str, float]]:
    """Figures computed on the synthetic rows only (post-processing): the plausibility rules' shares."""
    return {name: {k: round(float(v), 4) for k, v in a.metrics.items() if v is not None}
            for name, a in audits.items() if name in SYNTHETIC_ONLY_AUDITS}


INTERNAL_REPORT_NAME = "internal_report.json"


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
                      holdout_fraction: float = 0.2, ledger_path: str | os.PathLike[str] | None = None,
                      sep: str | None = None, modality: Modality | str | None = None, nproc: int = 1,
                      settings: stages.ReleaseSettings | None = None) -> Preflight:
    """Check every clause that needs no training: spends no ε, reserves nothing, splits nothing.

    Bad input is refused exactly as ``release`` refuses it (:func:`check_release_request`, the
    same path, with the same ``modality``, ``nproc`` and training ``settings``).

    Reads and validates the private table and the ledger (read-only); what it prints is for the
    steward only (it names EXACT row counts, which a release never publishes). Judges δ, δ < 1/n,
    the accountant, min rows and the lifetime cap with the EXPECTED split (holdout probability
    ``holdout_fraction``) and the exact count in place of the DP one, checks the plausibility
    rules' columns, and computes each DP gate figure's noise std at the expected slot counts,
    flagging figures whose noise is at least half their clause's distance from chance.
    """
    from synthrelease.policy import dp_gate

    request = check_release_request(data, metadata=metadata, policy=policy, epsilon=epsilon, delta=delta,
                                    target=target, accountant=accountant, sep=sep, modality=modality, nproc=nproc,
                                    settings=settings or stages.ReleaseSettings())
    policy, loaded, tgt, eff_delta = request.policy, request.loaded, request.target, request.delta
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
    names = dp_gate.figures_needed(policy)
    entry = dp_gate.gate_entry(policy, epsilon=epsilon, delta=eff_delta, accountant=accountant)
    noise = dp_gate.expected_noise(names, entry, n_train=k_train, n_holdout=k_holdout)
    chance = {"dcr_mia_auc": 0.5, "mia_auc_max": 0.5, "tpr_at_fpr_0.01_max": 0.005, "tpr_at_fpr_0.001_max": 0.0005,
              "exact_copy_share": 0.0, "missing_category_share": 0.0}
    figure_clause = {v: k for k, v in dp_gate.CLAUSE_FIGURES.items()}
    for name, std in noise.items():
        clause = figure_clause[name]
        limit = _clause_threshold(policy, clause)
        notes.append(f"DP figure {name} for {clause}: noise std {std:.3g}")
        if name in chance and limit is not None and std >= 0.5 * abs(limit - chance[name]):
            fixes.append(f"{clause}: its DP figure's noise std ({std:.3g}) is at least half the distance from "
                         f"chance ({chance[name]:g}) to the limit {limit:g}, so a good release would often be refused; "
                         "to change: raise privacy.audit_budget_share, loosen the limit, ask for more ε, or "
                         "release a larger table")
    return Preflight(not fixes, clauses, notes, fixes)


def _clause_threshold(policy: Policy, clause: str) -> float | None:
    section, key = clause.split(".", 1)
    node = getattr(policy, section, None)
    value = getattr(node, key, None) if node is not None else None
    return float(value) if isinstance(value, (int, float)) else None


def _write_stopped_report(report_root: Path, report: dict[str, Any], policy_name: str, error: BaseException,
                          epsilon: float, delta: float) -> None:
    """Best effort: record a release that stopped after training started (signal, crash, full disk)."""
    report.setdefault("privacy", {"epsilon": epsilon, "delta": delta, "accountant": "-",
                                  "note": "stopped after training started: the reserved ε is counted as spent"})
    report.setdefault("audits", {})
    report.update(stopped=f"{type(error).__name__}: {error}", bundle=None)
    try:
        _write_report(report_root, report, GateDecision(policy_name, ()))
    except Exception as e:  # the original error is what the user must see
        log.warning("could not write the internal report of a stopped release: %s", e)


def _write_report(report_root: Path, report: dict[str, Any], decision: GateDecision) -> Path:
    from synthrelease.internal_report import write_internal_report

    return write_internal_report(report_root, report, decision)


REJECTED_SAMPLE_NAME = "rejected_synthetic_sample.csv"

REPORT_FILE_PREFIXES = ("internal_report.", "rejected_")
"""Names the internal report writes in its folder: its three report files and the rejected
rows' files (``rejected_synthetic_sample.csv``, ``rejected_synthetic.fasta``, ``.npz``, …)."""


def refuse_report_collisions(report_root: Path) -> None:
    """Refuse, before anything is read or spent, a ``--report`` folder that already holds a file
    the internal report could write (an input placed there, an earlier run's files): the report
    never writes over a file, with or without ``--force``.

    Raises:
        InputFileError: naming the first such file.
    """
    if not report_root.is_dir():
        return
    for entry in sorted(report_root.iterdir()):
        if entry.name.startswith(REPORT_FILE_PREFIXES):
            raise InputFileError(f"{entry}: --report already holds this file, and the internal report never "
                                 "writes over a file; choose a new --report folder")


def _write_rejected_sample(report_root: Path, synthetic: pd.DataFrame, kind: Modality, meta: Metadata) -> list[Path]:
    """The rejected synthetic rows in the internal report folder (never a bundle), as the bundle
    would have held them: the modality's own files prefixed ``rejected_`` (images:
    ``rejected_synthetic.npz``, listed first) and its bundle table as ``REJECTED_SAMPLE_NAME``
    (images: tile index and label, no raw pixel bytes); tables: the rows as that CSV alone."""
    paths: list[Path] = []
    if kind.outputs is not None:
        for name, write in kind.outputs(synthetic, meta).items():
            target = report_root / f"rejected_{name}"
            write(target)
            paths.append(target)
    table = kind.bundle_table(synthetic, meta) if kind.bundle_table is not None else synthetic
    paths.append(write_table_atomic(report_root / REJECTED_SAMPLE_NAME, table))
    return paths

def _refusal_message(decision: GateDecision, report_path: Path) -> str:
    failed = "; ".join(f"{c.clause}: {c.reason} (to change: {advice_for(c.clause)})" for c in decision.failed)
    return (f"release rejected by policy '{decision.policy_name}': {failed}. "
            f"No shareable data was written; internal report: {report_path}")


def release_card(metadata: Metadata, epsilon: float, delta: float, accountant: str, policy: Policy,
                 policy_sha: str, dp_figures: dict[str, dict[str, Any]],
                 synthetic_checks: dict[str, dict[str, float]], n_rows: int) -> str:
    """The public release card (Markdown): only DP figures and figures of the synthetic rows.

    Rendered from the same data and template set as ``RELEASE_CARD.html``
    (:mod:`synthrelease.report.card`).
    """
    from synthrelease.report.card import render_card_markdown

    return render_card_markdown(metadata, epsilon, delta, accountant, policy, policy_sha, dp_figures,
                                synthetic_checks, n_rows)


def train_model(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                delta: float | None = None, condition: str | None = None, seed: int = 0,
                accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                ledger_path: str | os.PathLike[str] | None = None, policy_path: str | os.PathLike[str] | None = None,
                progress: ProgressCallback = ignore_progress, sep: str | None = None) -> tuple[Any, list[str]]:
    """Train a DP generator on the whole table at ``data`` (no audits, no gate); ``sep``: the
    separator of delimited text (as ``release``).

    Tables give a :class:`TrainedModel`; image tiles (metadata with an image column) the
    image modality's model (:func:`_train_image_model`); sequences are refused.

    Guarantee: the returned model is (ε, δ)-DP with respect to the rows of ``data``; its
    DP randomness is fresh OS entropy (``seed`` fixes public streams only). Requires
    reviewed metadata. The model is shareable, so its ε is charged to the privacy ledger
    like a release's: reserved before training (against ``policy_path``'s lifetime cap,
    when given) and spent once training starts.

    Raises:
        MetadataError: unreviewed metadata (exit 2). GateRefused: the lifetime cap would be
        exceeded (exit 1, nothing spent).
    """
    if stages.resolve_metadata(metadata_path)[0].modality == "image":
        return _train_image_model(data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed,
                                  accountant=accountant, n_steps=n_steps, batch_size=batch_size,
                                  ledger_path=ledger_path, policy_path=policy_path, progress=progress)
    df, metadata, notes, cond, config, content_sha = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=False, require_condition=False, sep=sep)
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
    return model, notes


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


def _train_image_model(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *, epsilon: float,
                       delta: float | None, condition: str | None, seed: int, accountant: str,
                       n_steps: int | None, batch_size: int | None, ledger_path: str | os.PathLike[str] | None,
                       policy_path: str | os.PathLike[str] | None, progress: ProgressCallback) -> tuple[Any, list[str]]:
    """:func:`train_model` for image tiles: the image modality's settings and DP trainer on EVERY tile (no
    holdout), conditioned on the metadata's target when it has one; read and validated as ``release`` does
    (:func:`stages.load`, :func:`stages.validate`); the same ledger reservation and charge as tables.

    Raises:
        MetadataError: ``condition`` is not the metadata's target. PrivacyParameterError: ε or δ impossible
        for the number of privacy units. GateRefused: the lifetime cap would be exceeded (nothing spent).
    """
    if delta is not None and not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyParameterError(f"--delta must be in (0, 1), got {delta!r}")
    loaded = stages.load(data, metadata_path)
    kind = modality_for(loaded.metadata)
    loaded = stages.validate(loaded, kind)
    metadata, df, notes = loaded.metadata, loaded.table, list(loaded.notes)
    if condition is not None and condition != metadata.target:
        raise MetadataError(f"--condition-column: an image model is conditioned on the metadata's target "
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
                          content_sha256=loaded.content_sha256, what=f"image model of {data}")
    return model, notes


def _whole_table_setup(data: str | os.PathLike[str], metadata_path: str | os.PathLike[str], *, epsilon: float,
                       delta: float | None, condition: str | None, seed: int, accountant: str,
                       n_steps: int | None, batch_size: int | None, allow_unreviewed: bool,
                       require_condition: bool,
                       sep: str | None = None) -> tuple[pd.DataFrame, Metadata, list[str], str | None, TrainingConfig,
                                                        str]:
    """Load and validate a table for training on all its rows; the condition column, the config
    and the table's content fingerprint (:func:`table_fingerprint`).

    Raises:
        MetadataError: the condition column is not a declared categorical with a category list
            (or is missing while ``require_condition``).
        PrivacyParameterError: ε or δ impossible for the row count.
    """
    if delta is not None and not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise PrivacyParameterError(f"--delta must be in (0, 1), got {delta!r}")
    loaded = stages.load(data, metadata_path, allow_unreviewed=allow_unreviewed, sep=sep)
    loaded = stages.validate(loaded, modality_for(loaded.metadata))
    df, metadata, notes = loaded.table, loaded.metadata, list(loaded.notes)
    if metadata.modality != "table":
        raise MetadataError(f"{metadata_path}: a {metadata.modality} dataset; `train` and `sample` handle tables "
                            f"and image tiles, `audit-privacy` tables only: release it with `synthrelease release`")
    cond = condition if condition is not None else metadata.target
    if (cond is None and require_condition) or (cond is not None and (
            cond not in metadata.columns or metadata.columns[cond].type not in ("categorical", "boolean"))):
        raise MetadataError(f"--condition-column: {cond!r} is not a declared categorical column")
    if cond is not None and metadata.columns[cond].dp_categories is not None:
        raise MetadataError(f"--condition-column: {cond!r} needs a declared 'categories' list, not dp_categories")
    eff_delta = delta if delta is not None else public_default_delta()
    PrivacyLoss(epsilon, eff_delta)
    config = default_training_config(len(df), epsilon=epsilon, delta=eff_delta, seed=seed, accountant=accountant,
                                     n_steps=n_steps, batch_size=batch_size, metadata=metadata,
                                     condition_column=cond)
    return df, metadata, notes, cond, config, loaded.content_sha256


def audit_privacy_claim(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str], epsilon: float,
                        delta: float | None = None, condition: str | None = None, seed: int = 0,
                        accountant: str = "rdp", n_steps: int | None = None, batch_size: int | None = None,
                        n_canaries: int | None = None, many_run: int = 0, allow_unreviewed: bool = False,
                        progress: ProgressCallback = ignore_progress, sep: str | None = None) -> dict[str, AuditResult]:
    """Check the DP-GAN's ε claim on ``data`` with the empirical audits (nothing released).

    Trains the audit run(s) with the settings ``train``/``release`` would use for this
    table (:func:`default_training_config`). Always runs the one-run audit (Steinke et al.
    2023, ``n_canaries`` canaries); with ``many_run`` = T > 0 also the many-run audit
    (Jagielski et al. 2020, T trainings: small models only). Reads private rows; NOT DP;
    the results are INTERNAL (no model, table or bundle is written), and no ε is charged:
    nothing from these runs is released.
    """
    from synthrelease.audits.empirical_privacy import run_many_run_audit, run_one_run_audit

    df, metadata, _, cond, config, _ = _whole_table_setup(
        data, metadata_path, epsilon=epsilon, delta=delta, condition=condition, seed=seed, accountant=accountant,
        n_steps=n_steps, batch_size=batch_size, allow_unreviewed=allow_unreviewed, require_condition=True, sep=sep)
    seeds = SeedTree(seed)
    results = {"empirical_privacy": run_one_run_audit(df, metadata, config, seed=seeds.integer("one-run"),
                                                      n_canaries=n_canaries, condition_column=cond,
                                                      progress=progress)}
    if many_run:
        results["empirical_privacy_many_run"] = run_many_run_audit(
            df, metadata, config, seed=seeds.integer("many-run"), n_runs=many_run, condition_column=cond,
            progress=progress)
    return results
