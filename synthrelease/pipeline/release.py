"""The release job: one call from private data to a signed bundle or a reasoned refusal.

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
(n, the training and holdout sizes) are private: they leave only through one DP count
release (:mod:`synthrelease.privacy.dp_counts`), from which every size-derived setting, the
gate's slots and the number of synthetic rows are computed.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from synthrelease import __version__
from synthrelease.audits.base import AuditResult
from synthrelease.budget.ledger import Ledger, default_ledger_path
from synthrelease.errors import (
    BudgetExceededError,
    GateRefused,
    InputFileError,
    PrivacyParameterError,
)
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.sampling import float_block_bytes, sample_frame
from synthrelease.gate import dp_gate
from synthrelease.gate.advice import advice_for
from synthrelease.gate.verdict import ClauseResult, GateDecision, check_signing_key, privacy_clauses
from synthrelease.io.spill import check_room
from synthrelease.metadata.schema import Metadata, canonical_category
from synthrelease.modalities.base import Modality, tabular
from synthrelease.pipeline import stages
from synthrelease.pipeline.internal_files import (
    INTERNAL_REPORT_NAME,
    refusal_message,
    refuse_report_collisions,
    write_rejected_sample,
    write_report,
    write_stopped_report,
)
from synthrelease.pipeline.request import check_release_request
from synthrelease.policy.schema import Policy
from synthrelease.privacy import dp_counts
from synthrelease.privacy.accounting import MechanismEntry, epsilon_for
from synthrelease.privacy.claims import GUARANTEE_COVERS, PUBLIC_SEED_NOTE, ceil_decimals
from synthrelease.privacy.dp_counts import NoisySizes
from synthrelease.privacy.parameters import privacy_unit_text
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ignore_progress

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


def release_part_sizes(parts: stages.TrainHoldout, metadata: Metadata, target: str | None, entry: MechanismEntry,
                       randomness: PrivateRandomness) -> NoisySizes:
    """The release's one DP count of its parts (privacy/dp_counts.py): training persons, holdout
    persons with a declared label, holdout persons without one. Reads private rows (their counts and
    the holdout's labels); the result is DP (``entry`` is in the accountant)."""
    train = stages.first_row_per_person(parts.train, metadata)
    holdout = stages.first_row_per_person(parts.holdout, metadata)
    labelled = 0
    if target is not None and target in holdout.columns and target in metadata.columns:
        declared = set(metadata.columns[target].canonical_categories())
        labelled = int(sum(canonical_category(v) in declared for v in holdout[target].tolist()))
    return dp_counts.release_sizes(len(train), labelled, len(holdout) - labelled, entry, randomness)


def split_train_holdout(df: pd.DataFrame, *, holdout_fraction: float,
                        randomness: PrivateRandomness) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`synthrelease.pipeline.stages.split` as a (train, holdout) pair."""
    parts = stages.split(df, holdout_fraction=holdout_fraction, randomness=randomness)
    return parts.train, parts.holdout


def run_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
               policy: Policy, *, target: str, seed: int, training_config: TrainingConfig | None = None,
               modality: Modality | None = None,
               progress: ProgressCallback = ignore_progress) -> dict[str, AuditResult]:
    """:func:`synthrelease.pipeline.stages.audit` on a (train, holdout) pair (tables by default).
    Reads private rows; results are INTERNAL (not DP)."""
    return stages.audit(stages.TrainHoldout(train, holdout), synthetic, metadata, policy, target=target, seed=seed,
                        config=training_config, modality=modality or tabular(), progress=progress)


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
    holdout_fraction: float | None = None,
    ledger_path: str | os.PathLike[str] | None = None,
    archive: bool = False,
    sep: str | None = None,
    modality: Modality | str | None = None,
    nproc: int = 1,
    progress: ProgressCallback = ignore_progress,
    labels: str | os.PathLike[str] | None = None,
) -> ReleaseOutcome:
    """Train a DP synthesizer on ``data``, gate it on DP figures, and sign a bundle if the policy passes.

    ``data``: a path (CSV, TSV, Parquet, AnnData ``.h5ad``; ``sep`` for other delimited
    text; FASTA, with ``labels``: a CSV of labels joined to the records by id), a pandas
    DataFrame or an AnnData object. ``metadata`` and ``policy``: YAML paths,
    or :class:`Metadata` / :class:`Policy` objects, or plain mappings. ``signing_key``: a PEM
    path or an ``Ed25519PrivateKey``. Levers (all public, the gate stays in front):
    ``n_steps``, ``batch_size``, ``synthetic_rows`` (default ⌈DP size × (1 − holdout_fraction)⌉),
    ``pair_marginals`` (ε share of DP discrete pair marginals), ``training_options`` (any
    :class:`TrainingConfig` field); the manifest records the settings used.
    ``holdout_fraction``: default the policy's ``data.holdout_fraction``. ``modality``:
    ``table`` or ``sequence`` (default: from the metadata; a sequence column means
    sequences), or a :class:`Modality`. ``nproc``: train a table on that many local
    processes (torchrun, :func:`synthrelease.pipeline.launch.distributed_modality`): the same
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
    settings = stages.ReleaseSettings(n_steps=n_steps, batch_size=batch_size, synthetic_rows=synthetic_rows,
                                      pair_marginals=pair_marginals, training_options=dict(training_options or {}))
    clock = _Clock()
    paths = check_release_outputs(data, out_dir, report_dir, archive=archive)
    signer = _Signer(signing_key)
    request = check_release_request(data, metadata=metadata, policy=policy, epsilon=epsilon, delta=delta,
                                    target=target, accountant=accountant, sep=sep, modality=modality, nproc=nproc,
                                    settings=settings, check_key=signer.check, progress=progress, labels=labels)
    if holdout_fraction is None:
        holdout_fraction = request.policy.data.holdout_fraction
    handed = [request]
    del request  # handed over: no reference to the loaded frame may outlive the split
    run = _ReleaseRun.start(handed, paths, settings, clock, epsilon=epsilon, accountant=accountant, seed=seed,
                            holdout_fraction=holdout_fraction, nproc=nproc, progress=progress)
    hold = run.reserve_budget(Ledger(ledger_path if ledger_path is not None else default_ledger_path()))
    try:
        outcome = run.execute(signer.key)
    except BaseException as e:  # the ledger entry must not stay 'reserved' on any exit we can catch
        run.settle_stopped(hold, e)
        raise
    run.ledger.spend(hold, outcome.epsilon, outcome.delta, note=f"released: {outcome.bundle_dir}")
    return outcome


class _Clock:
    """Wall-clock seconds per stage, from the start of the release."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._mark = self.t0

    def start(self) -> None:
        self._mark = time.perf_counter()

    def stop(self, stage: str) -> None:
        self.seconds[stage] = time.perf_counter() - self._mark

    def since_start(self, stage: str) -> None:
        self.seconds[stage] = time.perf_counter() - self.t0


@dataclass(frozen=True)
class ReleasePaths:
    """Where a release writes: the bundle folder, the internal report folder, the archive flag."""

    out: Path
    report_root: Path
    archive: bool


def check_release_outputs(data: stages.DataInput, out_dir: str | os.PathLike[str],
                          report_dir: str | os.PathLike[str] | None, *, archive: bool) -> ReleasePaths:
    """Refuse outputs that cannot be written BEFORE any ε is reserved: an existing file or a
    non-empty folder at ``out_dir``, an existing archive, a report folder nested in the bundle
    (or the bundle in it), an earlier release's report, too little room.

    Raises:
        PrivacyParameterError, InputFileError: one line naming the option.
    """
    from synthrelease.bundle.writer import archive_path
    from synthrelease.io.outputs import check_writable, refuse_nested, release_size_estimate

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrivacyParameterError(f"{out}: --out is an existing file; it names the new folder of the bundle, "
                                    "choose a new path")
    if out.is_dir() and any(out.iterdir()):
        raise PrivacyParameterError(f"{out}: output directory exists and is not empty; choose a new --out")
    if archive and Path(f"{out}.tar.gz").exists():
        raise PrivacyParameterError(f"{out}.tar.gz: archive already exists; choose a new --out")
    report_root = Path(report_dir) if report_dir is not None else out.parent / f"{out.name}.internal-report"
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
    return ReleasePaths(out, report_root, archive)


class _Signer:
    """The signing key, loaded and checked against the policy before the data is read."""

    def __init__(self, source: str | os.PathLike[str] | Ed25519PrivateKey) -> None:
        self.source = source
        self._key: Ed25519PrivateKey | None = None

    def check(self, policy: Policy) -> None:
        """Load the key and check the policy's signer pin: a wrong key costs no read of the data."""
        from synthrelease.bundle.signing import key_fingerprint, load_private_key

        given = isinstance(self.source, Ed25519PrivateKey)
        key = self.source if given else load_private_key(self.source)
        check_signing_key(policy, key_fingerprint(key.public_key()), "the signing key" if given else str(self.source))
        self._key = key

    @property
    def key(self) -> Ed25519PrivateKey:
        assert self._key is not None, "the signing key is checked with the release request"
        return self._key


@dataclass
class _ReleaseRun:
    """One release after its request was checked: the split private rows, the secret and public
    randomness, the internal report being built, and the ledger entry. Each method is one stage."""

    policy: Policy
    policy_sha: str
    policy_source: str
    kind: Modality
    target: str | None
    epsilon: float
    delta: float
    accountant: str
    settings: stages.ReleaseSettings
    holdout_fraction: float
    paths: ReleasePaths
    clock: _Clock
    progress: ProgressCallback
    loaded: stages.LoadedTable  # the table emptied: its rows live on in ``parts``
    parts: stages.TrainHoldout | None  # PRIVATE rows; dropped before the bundle is written
    seeds: SeedTree
    secret: PrivateRandomness
    count_entry: MechanismEntry
    gate_entry: MechanismEntry | None
    report: dict[str, Any]
    ledger: Ledger = field(init=False)
    hold: Any = None
    spent_epsilon: list[float | None] = field(default_factory=list)  # None: training may have read every row
    training_started: bool = False
    report_written: bool = False

    @property
    def metadata(self) -> Metadata:
        return self.loaded.metadata

    @property
    def reserved_entries(self) -> tuple[MechanismEntry, ...]:
        return (self.count_entry,) if self.gate_entry is None else (self.count_entry, self.gate_entry)

    @classmethod
    def start(cls, handed: list[Any], paths: ReleasePaths, settings: stages.ReleaseSettings, clock: _Clock, *,
              epsilon: float, accountant: str, seed: int, holdout_fraction: float, nproc: int,
              progress: ProgressCallback) -> _ReleaseRun:
        """Split the PRIVATE rows by secret coins, fix the reserved mechanisms, check the room.

        ``handed``: a one-element list holding the checked request, popped here, so that once
        the split has reordered the rows into the parts no reference to the loaded frame is left.
        """
        request = handed.pop()
        loaded, policy = request.loaded, request.policy
        request = dataclasses.replace(request, loaded=None)
        seeds = SeedTree(seed)  # public streams only
        secret = PrivateRandomness()  # every DP mechanism and the split: fresh OS entropy, never stored
        secret.require_secret("release")  # the test-only reproducible kind can never reach a release
        parts, loaded = _split_private_rows([loaded], holdout_fraction, secret)
        count_entry = dp_counts.count_entry(policy.privacy.count_budget_share, epsilon=epsilon,
                                            delta=request.delta, accountant=accountant)
        gate_entry = dp_gate.gate_entry(policy, epsilon=epsilon, delta=request.delta, accountant=accountant)
        if request.kind.sample is sample_frame:  # room for the spilled synthetic rows, before any ε is spent
            check_room(float_block_bytes(loaded.metadata,
                                         settings.synthetic_rows or len(parts.train) + len(parts.holdout)))
        clock.since_start("validate")
        report = _report_head(loaded, parts, request, holdout_fraction=holdout_fraction, seed=seed, nproc=nproc)
        return cls(policy, request.policy_sha, request.policy_source, request.kind, request.target, epsilon,
                   request.delta, accountant, settings, holdout_fraction, paths, clock, progress, loaded, parts,
                   seeds, secret, count_entry, gate_entry, report)

    def reserve_budget(self, ledger: Ledger) -> Any:
        """Refuse on the count-free privacy clauses, then reserve ε and δ in the ledger (atomic)."""
        self.ledger = ledger
        meta, data_sha, content_sha = self.metadata, self.loaded.data_sha256, self.loaded.content_sha256
        used = ledger.used(meta.name, data_sha, content_sha256=content_sha)
        if not all(c.passed for c in self._privacy_clauses(None, used)):
            raise self._refuse_before_training(used)
        try:  # atomic against concurrent releases of the same dataset
            hold = ledger.reserve(meta.name, self.epsilon, self.delta, cap=self.policy.lifetime_epsilon_cap,
                                  data_sha256=data_sha, content_sha256=content_sha,
                                  note=f"release to {self.paths.out}")
        except BudgetExceededError:
            raise self._refuse_before_training(ledger.used(meta.name, data_sha, content_sha256=content_sha)) from None
        self.report["ledger"] = {"path": str(ledger.path), "entry": hold.entry_id, "dataset": meta.name,
                                 "epsilon_used_before": hold.used_before, "composition": "basic (ε and δ summed)"}
        self.hold = hold
        return hold

    def execute(self, private_key: Ed25519PrivateKey) -> ReleaseOutcome:
        """The private stages, in order; raises GateRefused on a failed clause."""
        sizes = self.release_counts()
        n_synthetic = self.settings.synthetic_rows or sizes.synthetic_rows(self.holdout_fraction)
        self.report["rows"]["synthetic"] = n_synthetic
        config = self.training_config(sizes)
        model = self.train(config)
        synthetic = self.sample(model, n_synthetic)
        audits, plot_data = self.audit(synthetic, config)
        verdict = self.gate(model.privacy, synthetic, audits, sizes)
        recorded = self.record(model, config, audits, verdict, plot_data, n_synthetic=n_synthetic)
        if not verdict.decision.passed:
            raise self.reject(synthetic, verdict.decision)
        return self.sign(synthetic, model.privacy, audits, verdict, recorded, sizes, private_key)

    def release_counts(self) -> NoisySizes:
        """The one DP release of the part sizes (reads PRIVATE counts); refuse on the count clauses."""
        assert self.parts is not None
        sizes = release_part_sizes(self.parts, self.metadata, self.target, self.count_entry, self.secret)
        self.training_started = True  # private rows have been read by a DP mechanism: its ε is spent
        self.spent_epsilon.append(epsilon_for([self.count_entry], delta=self.delta, accountant=self.accountant))
        self.report["rows"]["dp_sizes"] = sizes.public()
        counted = self._privacy_clauses(sizes.train, self.hold.used_before)
        if not all(c.passed for c in counted):
            self.report_written = True
            raise self._refuse(counted, "refused on the DP part sizes before training: only the count release "
                                        "was spent", self.spent_epsilon[0] or 0.0)
        return sizes

    def training_config(self, sizes: NoisySizes) -> Any:
        """The modality's settings from PUBLIC quantities: the DP sizes, metadata, ε, δ, the levers."""
        config = stages.training_config(self.kind, sizes.rows_for_defaults, self.metadata, self.settings,
                                        epsilon=self.epsilon, delta=self.delta, seed=self.seeds.integer("train"),
                                        accountant=self.accountant, condition_column=self.target)
        return dataclasses.replace(config, public_rows=sizes.rows_for_defaults)

    def train(self, config: Any) -> Any:
        """The (ε, δ)-DP training on the PRIVATE training rows; the metadata becomes the model's."""
        assert self.parts is not None
        self.clock.start()
        self.spent_epsilon[:] = [None]  # training may read every row from here: a stop counts the whole ε
        model = stages.train(self.parts.train, self.metadata, config, modality=self.kind,
                             condition_column=self.target, reserved_entries=self.reserved_entries,
                             randomness=self.secret, progress=self.progress)
        self.spent_epsilon[:] = [model.privacy.epsilon]  # includes the count release and the gate's entry
        self.loaded = dataclasses.replace(self.loaded, metadata=self.kind.metadata_after_training(model,
                                                                                                  self.metadata))
        self.clock.stop("train")
        stages.return_freed_memory()  # the trainer's discriminator, optimiser and DP state are gone
        return model

    def sample(self, model: Any, n_rows: int) -> pd.DataFrame:
        """``n_rows`` synthetic rows: post-processing of the DP model."""
        self.clock.start()
        synthetic = stages.sample(model, n_rows, modality=self.kind, seed=self.seeds.integer("sample"),
                                  progress=self.progress)
        self.clock.stop("sample")
        stages.return_freed_memory()
        return synthetic

    def audit(self, synthetic: pd.DataFrame, config: Any) -> tuple[dict[str, AuditResult], Any]:
        """The audits and the report's plot data: they read PRIVATE rows; INTERNAL, not DP."""
        assert self.parts is not None
        self.clock.start()
        audits = stages.audit(self.parts, synthetic, self.metadata, self.policy, target=self.target,
                              seed=self.seeds.integer("audits"), config=config, modality=self.kind,
                              progress=self.progress)
        plot_data = _internal_plot_data(self.kind, self.parts, synthetic, self.metadata, audits,
                                        seed=self.seeds.integer("plots"), target=self.target)
        self.clock.stop("audits")
        return audits, plot_data

    def gate(self, spent: Any, synthetic: pd.DataFrame, audits: dict[str, AuditResult], sizes: NoisySizes) -> Any:
        """The DP gate's one Gaussian release of its figures, then every clause; the private rows go."""
        assert self.parts is not None
        self.clock.start()
        verdict = stages.gate(self.policy, self.parts, synthetic, self.metadata, privacy=spent, audits=audits,
                              target=self.target, modality=self.kind, gate_entry=self.gate_entry,
                              randomness=self.secret, seed=self.seeds.integer("gate"),
                              epsilon_spent_before=self.hold.used_before, sizes=sizes, progress=self.progress)
        self.clock.stop("dp_gate")
        self.parts = None  # the private rows are not needed for writing: let them go before the files
        return verdict

    def record(self, model: Any, config: Any, audits: dict[str, AuditResult], verdict: Any, plot_data: Any, *,
               n_synthetic: int) -> dict[str, Any]:
        """Everything the run measured into the INTERNAL report; the public settings for the manifest."""
        spent, decision = model.privacy, verdict.decision
        recorded = stages.public_settings(config, self.settings, n_synthetic=n_synthetic,
                                          holdout_fraction=self.holdout_fraction)
        self.report.update(
            privacy=spent.to_dict() | {"gate_budget_share": self.policy.privacy.audit_budget_share,
                                       "count_budget_share": self.policy.privacy.count_budget_share},
            training=config.to_dict() | {"seconds": model.train_seconds, "history": model.history,
                                         "user_options": recorded["user_options"]},
            audits={k: {"metrics": a.metrics, "details": a.details, "runtime_s": a.runtime_s}
                    for k, a in audits.items()},
            dp_gate={k: f.internal() for k, f in verdict.figures.items()},
            gate=[c.to_dict() for c in decision.clauses], bundle=None, plots=plot_data,
        )
        return recorded

    def reject(self, synthetic: pd.DataFrame, decision: GateDecision) -> GateRefused:
        """A failed clause: the internal report and a rejected sample (INTERNAL), no shareable file."""
        root = self.paths.report_root
        self.clock.since_start("total")
        self.report["seconds"] = self.clock.seconds
        self.report["advice"] = {c.clause: advice_for(c.clause) for c in decision.failed}
        root.mkdir(parents=True, exist_ok=True)  # rejected rows are DP output but NOT released: internal only
        sample_paths = write_rejected_sample(root, synthetic, self.kind, self.metadata)
        self.report["rejected_sample"] = str(sample_paths[0])
        self.report["rejected_sample_files"] = [str(q) for q in sample_paths]
        path = write_report(root, self.report, decision)
        self.report_written = True
        return GateRefused(refusal_message(decision, path), [c.reason for c in decision.failed],
                           decision=decision, report_path=path)

    def sign(self, synthetic: pd.DataFrame, spent: Any, audits: dict[str, AuditResult], verdict: Any,
             recorded: dict[str, Any], sizes: NoisySizes, private_key: Ed25519PrivateKey) -> ReleaseOutcome:
        """Every clause passed: write and sign the bundle (PUBLIC: DP outputs and public inputs only)."""
        from synthrelease.report.card import render_card_html

        self.clock.start()
        meta, decision, figures = self.metadata, verdict.decision, verdict.figures
        public_figures = {k: f.public() for k, f in figures.items()}
        checks = _synthetic_only_summary(audits)
        info = _release_info(self, synthetic, spent, decision, public_figures, checks, recorded, sizes)
        card_args = (meta, spent.epsilon, spent.delta, spent.accountant, self.policy, self.policy_sha,
                     public_figures, checks, len(synthetic))
        written = stages.bundle(self.paths.out, synthetic=synthetic, fmt=self.loaded.fmt, release_info=info,
                                modality=self.kind, metadata=meta,
                                text_files={"RELEASE_CARD.md": release_card(*card_args),
                                            "RELEASE_CARD.html": render_card_html(*card_args)},
                                private_key=private_key, archive=self.paths.archive, notes=self.notes)
        self.clock.stop("bundle")
        self.clock.since_start("total")
        self.report.update(bundle=str(written), seconds=self.clock.seconds, warnings=self.notes)
        path = write_report(self.paths.report_root, self.report, decision)
        self.report_written = True
        return ReleaseOutcome(True, decision, spent.epsilon, spent.delta, spent.accountant, written, path, audits,
                              self.clock.seconds, self.notes, figures, synthetic=synthetic, settings=recorded)

    @property
    def notes(self) -> list[str]:
        return self.report["warnings"]

    def settle_stopped(self, hold: Any, error: BaseException) -> None:
        """Any exit but a release: spend what the DP mechanisms that ran cost, or cancel the entry."""
        if self.training_started and not self.report_written:
            write_stopped_report(self.paths.report_root, self.report, self.policy.name, error, hold.epsilon,
                                 hold.delta)
        if isinstance(error, GateRefused) and self.spent_epsilon and self.spent_epsilon[0] is not None:
            self.ledger.spend(hold, self.spent_epsilon[0], self.delta,
                              note="rejected by the gate; the DP mechanisms that ran (the count release, and "
                                   "training and the DP gate if they ran) are spent")
        elif self.training_started:  # conservative: the run may have finished reading the private rows
            spent = self.spent_epsilon[0] if self.spent_epsilon and self.spent_epsilon[0] is not None else hold.epsilon
            self.ledger.spend(hold, spent, hold.delta, note=f"stopped after the private rows were first read "
                                                            f"({type(error).__name__}): counted as spent")
        else:
            self.ledger.cancel(hold, note=f"stopped before training ({type(error).__name__})")

    def _privacy_clauses(self, n_train_rows: int | None, used_before: float) -> list[ClauseResult]:
        return privacy_clauses(self.policy, epsilon=self.epsilon, delta=self.delta, accountant=self.accountant,
                               n_train_rows=n_train_rows, epsilon_spent_before=used_before)

    def _refuse(self, clauses: list[ClauseResult], spent_note: str, spent: float = 0.0) -> GateRefused:
        decision = GateDecision(self.policy.name, tuple(clauses))
        self.report.update(privacy={"epsilon": spent, "delta": self.delta, "accountant": self.accountant,
                                    "note": spent_note}, audits={}, gate=[c.to_dict() for c in decision.clauses],
                           bundle=None)
        path = write_report(self.paths.report_root, self.report, decision)
        message = refusal_message(decision, path)
        if any(c.clause == "privacy.lifetime_epsilon_cap" for c in decision.failed):
            message += f"; privacy ledger: {self.ledger.path}"
        return GateRefused(message, [c.reason for c in decision.failed], decision=decision, report_path=path)

    def _refuse_before_training(self, used_before: float) -> GateRefused:
        return self._refuse(self._privacy_clauses(None, used_before), "refused before training: nothing spent")


def _split_private_rows(handed: list[stages.LoadedTable], holdout_fraction: float,
                        secret: PrivateRandomness) -> tuple[stages.TrainHoldout, stages.LoadedTable]:
    """Train/holdout by one secret coin per row (or person); the loaded table (popped from
    ``handed``) comes back emptied.

    The parts are the table's own memory, reordered: the release then holds the rows once.
    Validation leaves reference cycles that hold the frame (exceptions Great Expectations'
    parser raised and caught keep their frames): they are collected here.
    """
    loaded = handed.pop()
    meta = loaded.metadata
    parts = stages.split(loaded.table, holdout_fraction=holdout_fraction, randomness=secret,
                         unit_column=meta.privacy_unit_column if meta.rows_per_person > 1 else None, consume=True)
    loaded = dataclasses.replace(loaded, table=loaded.table.iloc[:0].copy())  # a slice would be a view of it
    gc.collect()
    return parts, loaded


def _report_head(loaded: stages.LoadedTable, parts: stages.TrainHoldout, request: Any, *, holdout_fraction: float,
                 seed: int, nproc: int) -> dict[str, Any]:
    """The internal report's opening: inputs, EXACT part sizes (INTERNAL), settings of the run."""
    return {
        "dataset": loaded.metadata.name, "tool_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {"data": loaded.source, "data_sha256": loaded.data_sha256, "format": loaded.fmt.kind,
                   "metadata": loaded.metadata_source, "policy": request.policy_source,
                   "policy_sha256": request.policy_sha, "content_sha256": loaded.content_sha256},
        "rows": {"train": len(parts.train), "holdout": len(parts.holdout),
                 "dropped_beyond_person_cap": loaded.dropped_rows,
                 "split": f"independent secret coin per row, holdout probability {holdout_fraction:g}",
                 "note": "EXACT private counts: internal only; the bundle carries the DP counts"},
        "target": request.target, "public_seed": seed, "warnings": list(loaded.notes), "training_processes": nproc,
        "randomness": PUBLIC_SEED_NOTE,
    }


def _internal_plot_data(kind: Modality, parts: stages.TrainHoldout, synthetic: pd.DataFrame, meta: Metadata,
                        audits: dict[str, AuditResult], *, seed: int, target: str | None) -> Any:
    """The internal report's plot data (reads PRIVATE rows; INTERNAL): of the per-record feature
    view when the modality has one, plus its own figures and plot data (tile grids; per-position
    letter shares, 2-mers and lengths of sequences: summaries, never a whole sequence)."""
    from synthrelease.report.plot_data import collect_plot_data

    plot_parts: tuple[Any, ...] = (parts.train, parts.holdout, synthetic, meta)
    if kind.view is not None:
        (p_train, _), (p_holdout, _), (p_syn, p_meta) = (kind.view(parts.train, meta),
                                                        kind.view(parts.holdout, meta), kind.view(synthetic, meta))
        plot_parts = (p_train, p_holdout, p_syn, p_meta)
    plot_data = collect_plot_data(*plot_parts, audits, seed=seed, target=target)
    if kind.report_figures is not None:  # e.g. image grids, real tiles included: INTERNAL
        plot_data = {**(plot_data or {}), "image_grids": kind.report_figures(parts.train, synthetic, meta)}
    if kind.report_plot_data is not None:  # e.g. sequences' letters per position: real rows, INTERNAL
        plot_data = {**(plot_data or {}), **kind.report_plot_data(parts.train, synthetic, meta)}
    return plot_data


def _release_info(run: _ReleaseRun, synthetic: pd.DataFrame, spent: Any, decision: GateDecision,
                  public_figures: dict[str, Any], checks: dict[str, dict[str, float]], recorded: dict[str, Any],
                  sizes: NoisySizes) -> dict[str, Any]:
    """The manifest's release facts: public inputs and DP outputs only."""
    meta, policy = run.metadata, run.policy
    return {
        "tool": {"name": "synthrelease", "version": __version__},
        "dataset": {"name": meta.name, "modality": run.kind.name, "synthetic_rows": len(synthetic),
                    "columns": meta.model_columns, "input_format": run.loaded.fmt.kind},
        "metadata": meta.to_yaml_dict(),
        "privacy": {"epsilon": ceil_decimals(spent.epsilon, 6), "delta": spent.delta,
                    "accountant": spent.accountant,
                    "privacy_unit": privacy_unit_text(meta.privacy_unit_column, meta.rows_per_person),
                    "covers": GUARANTEE_COVERS, "mechanisms": spent.to_dict()["mechanisms"],
                    "threshold_delta": spent.threshold_delta,
                    "gate_budget_share": policy.privacy.audit_budget_share,
                    "count_budget_share": policy.privacy.count_budget_share},
        "dp_sizes": sizes.public(),
        "training": recorded,
        "policy": {"name": policy.name, "sha256": run.policy_sha, "document": policy.model_dump(mode="json")},
        "gate": {"verdict": "released", "clauses": [
            {"clause": c.clause, "comparator": c.comparator, "threshold": c.threshold, "passed": c.passed}
            for c in decision.clauses]},
        "dp_figures": public_figures,
        "synthetic_only_checks": checks,
        "randomness": PUBLIC_SEED_NOTE,
    }


SYNTHETIC_ONLY_AUDITS = ("plausibility",)


def _synthetic_only_summary(audits: dict[str, AuditResult]) -> dict[str, dict[str, float]]:
    """Figures computed on the synthetic rows only (post-processing): the plausibility rules' shares."""
    return {name: {k: round(float(v), 4) for k, v in a.metrics.items() if v is not None}
            for name, a in audits.items() if name in SYNTHETIC_ONLY_AUDITS}


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


