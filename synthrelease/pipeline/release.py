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
    from synthrelease.bundle.signing import key_fingerprint, load_private_key
    from synthrelease.bundle.writer import archive_path
    from synthrelease.gate import dp_gate
    from synthrelease.io.outputs import check_writable, refuse_nested, release_size_estimate

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
        path = write_report(report_root, report, decision)
        message = refusal_message(decision, path)
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
            sample_paths = write_rejected_sample(report_root, synthetic, kind, meta)
            report["rejected_sample"] = str(sample_paths[0])
            report["rejected_sample_files"] = [str(q) for q in sample_paths]
            path = write_report(report_root, report, decision)
            report_written = True
            raise GateRefused(refusal_message(decision, path), [c.reason for c in decision.failed],
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
        path = write_report(report_root, report, decision)
        report_written = True
        outcome = ReleaseOutcome(True, decision, spent.epsilon, spent.delta, spent.accountant, written, path,
                                 audits, timings, notes, figures, synthetic=synthetic, settings=recorded)
    except BaseException as e:  # the ledger entry must not stay 'reserved' on any exit we can catch
        if training_started and not report_written:
            write_stopped_report(report_root, report, pol.name, e, hold.epsilon, hold.delta)
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










