"""The ``synthrelease`` command line: a thin click layer over :mod:`synthrelease.api`.

Exit codes: 0 success (released / verified), 1 rejected by the gate or failed
verification, 2 bad input or usage, 70 internal error (a bug), 130 / 143 / 129 stopped by
SIGINT / SIGTERM / SIGHUP (after cleaning up: staging removed, ledger entry marked,
internal report written). Errors are one line on stderr, never a traceback (unless
``--debug``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from synthrelease import __version__
from synthrelease.errors import EXIT_INTERNAL, SynthreleaseError
from synthrelease.progress import ProgressEvent

DEMO_MARKER = ".synthrelease-demo"


class _ExitError(click.ClickException):
    """A click exception carrying our exit code, shown as ``Error: <one line>``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _SafeGroup(click.Group):
    """Turns library errors into one-line messages with documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        from synthrelease.pipeline.signals import Stopped, stop_signals_raise

        try:
            with stop_signals_raise():
                return super().invoke(ctx)
        except click.UsageError as e:  # one line, not click's usage block
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            raise _ExitError(f"{' '.join(e.format_message().split())}{hint}", e.exit_code) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SynthreleaseError as e:
            raise _ExitError(" ".join(str(e).split("\n")), e.exit_code) from None
        except KeyboardInterrupt:
            raise _ExitError("interrupted (SIGINT): cleaned up; see the ledger and the internal report, if any",
                             130) from None
        except Stopped as e:
            raise _ExitError(f"{e}: cleaned up; see the ledger and the internal report, if any",
                             e.exit_code) from None
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise _ExitError(
                f"internal error (this is a bug in synthrelease, please report it; rerun with --debug "
                f"for a traceback): {type(e).__name__}: {e}", getattr(e, "exit_code", EXIT_INTERNAL)
            ) from None


class _Progress:
    """Renders progress events on stderr: a tqdm bar (with ETA) for any stage that counts steps
    (training, the shadow attack's and the many-run audit's trainings), one line per other
    stage, and each finished stage's duration."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.stage: str | None = None
        self.started = time.perf_counter()

    def _next_stage(self, stage: str) -> None:
        if stage != self.stage:
            if self.stage is not None:
                click.echo(f"[{time.strftime('%H:%M:%S')}] {self.stage}: done in "
                           f"{time.perf_counter() - self.started:.1f} s", err=True)
            self.stage, self.started = stage, time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        self._next_stage(event.stage)
        if event.stage.startswith("audit:") and event.total and event.total > 1:
            from tqdm import tqdm

            if self.bar is None or getattr(self.bar, "desc", "") != event.stage:
                if self.bar is not None:
                    self.bar.close()
                self.bar = tqdm(total=event.total, desc=event.stage, unit="run", file=sys.stderr,
                                dynamic_ncols=True, mininterval=0.5)
            self.bar.update(event.step - self.bar.n)
            if event.step >= event.total:
                self.bar.close()
                self.bar = None
            return
        if event.stage == "train" and event.total:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.total, desc="train (DP-SGD)", unit="step", file=sys.stderr,
                                dynamic_ncols=True, mininterval=0.5)
                sigma = event.metrics.get("noise_multiplier")
                if sigma is not None:
                    self.bar.write(f"noise multiplier σ = {sigma:.3f}", file=sys.stderr)
            self.bar.update(event.step - self.bar.n)
            m = event.metrics
            if "epsilon" in m:  # whichever losses the modality's trainer reports
                shown = {"d_loss_fake": "d_fake", "g_loss": "g_loss", "embedding_loss": "embedding",
                         "epsilon": "eps", "coverage": "coverage"}
                self.bar.set_postfix({short: f"{m[k]:.3f}" for k, short in shown.items() if k in m}, refresh=False)
            if event.step >= event.total:
                self.bar.close()
                self.bar = None
            return
        click.echo(f"[{time.strftime('%H:%M:%S')}] {event.stage}{': ' + event.message if event.message else ''}",
                   err=True)


@click.group(cls=_SafeGroup)
@click.version_option(__version__, prog_name="synthrelease")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Differentially private synthetic data with audits, a policy gate and signed bundles."""
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, quiet=quiet)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _progress(ctx: click.Context) -> _Progress:
    return _Progress(bool(ctx.obj.get("quiet")))


_common_privacy = [
    click.option("--epsilon", type=float, required=True, help="Total privacy budget ε (> 0)."),
    click.option("--delta", type=float, default=None, help="δ (default: ≤ 1/(10 n), capped by the policy)."),
    click.option("--accountant", type=click.Choice(["rdp", "prv"]), default="rdp", show_default=True),
    click.option("--steps", "n_steps", type=click.IntRange(min=1), default=None,
                 help="Discriminator DP-SGD steps (default 1000)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Expected Poisson batch size."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Public seed: fixes only non-private randomness (generator initialisation, latent "
                      "noise, audit models). It does NOT fix the DP noise, the Poisson batches or the "
                      "train/holdout split: those use fresh OS entropy every run, so two runs differ."),
]
_sep_option = click.option("--sep", default=None,
                           help="Field separator of a delimited text DATA file (default: by extension, ',' for "
                                ".csv and tab for .tsv; one character, '\\t' or 'tab' for a tab).")
_force_option = click.option("--force", is_flag=True,
                             help="Replace an existing output file (never one of this command's inputs).")
_allow_unreviewed = click.option(
    "--allow-unreviewed-metadata", is_flag=True,
    help="Run this INTERNAL audit on metadata not marked reviewed (nothing is released).")


def _with(options: list[Any]) -> Any:
    def deco(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


def _echo_outcome(outcome: Any) -> None:
    for note in outcome.warnings:
        click.echo(f"WARNING: {note}", err=True)
    click.echo("verdict: RELEASED")
    from synthrelease.privacy.claims import ceil_decimals

    click.echo(f"epsilon spent: {ceil_decimals(outcome.epsilon, 4):.4f} (rounded up; delta {outcome.delta:g}, "
               f"{outcome.accountant} accountant; DP gate included)")
    for c in outcome.decision.clauses:
        click.echo(f"  pass  {c.clause}: {c.reason}")
    click.echo(f"bundle: {outcome.bundle_dir}")
    from synthrelease.bundle.writer import archive_path

    if archive_path(outcome.bundle_dir).is_file():
        click.echo(f"archive: {archive_path(outcome.bundle_dir)}")
    click.echo(f"internal report (do not share): {outcome.report_path}")


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--metadata", "metadata_path", type=click.Path(path_type=Path), required=True)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), required=True)
@click.option("--target", default=None, help="Target column for the utility audit (default: metadata's).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Bundle directory.")
@click.option("--signing-key", type=click.Path(path_type=Path), required=True,
              help="Ed25519 private key (PEM) from `synthrelease keys generate`.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Internal report folder (default: OUT.internal-report).")
@click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), default=None,
              help="Privacy-budget ledger (default: $SYNTHRELEASE_LEDGER or ~/.synthrelease/ledger.sqlite3).")
@click.option("--archive", is_flag=True, help="Also write OUT.tar.gz (deterministic; verify accepts it).")
@click.option("--dry-run", is_flag=True,
              help="Check every clause that needs no training (sizes, delta, ledger cap, rule columns, how noisy "
                   "each DP figure will be) and say what to change; spends no ε, writes nothing.")
@_sep_option
@click.option("--synthetic-rows", type=click.IntRange(min=1), default=None,
              help="Synthetic rows to generate (default: as many as the expected training rows).")
@click.option("--pair-marginals", type=float, default=None, metavar="SHARE",
              help="Spend this share of ε (0-0.5) on DP joint histograms of discrete column pairs: helps "
                   "plausibility rules on two discrete columns.")
@click.option("--train-option", "train_options", multiple=True, metavar="KEY=VALUE",
              help="Any training setting by name (see TrainingConfig), e.g. marginal_bins=8; repeatable.")
@click.option("--modality", type=click.Choice(["table", "sequence", "image"]), default=None,
              help="Kind of data (default: from the metadata: a column of type sequence or image says so).")
@click.option("--nproc", type=click.IntRange(min=1, max=256), default=1, show_default=True,
              help="Train a table on N local processes (torchrun, gloo): the same ε, split, audits, gate and "
                   "bundle as one process.")
@_with(_common_privacy)
@click.pass_context
def release(ctx: click.Context, data: Path, metadata_path: Path, policy_path: Path, target: str | None,
            out_dir: Path, signing_key: Path, report_dir: Path | None, ledger_path: Path | None, archive: bool,
            dry_run: bool, sep: str | None, synthetic_rows: int | None, pair_marginals: float | None,
            train_options: tuple[str, ...], modality: str | None, nproc: int, epsilon: float,
            delta: float | None, accountant: str, n_steps: int | None, batch_size: int | None, seed: int) -> None:
    """Train, gate on DP audit figures and — only if every policy clause passes — sign a release bundle.

    DATA: CSV, TSV, Parquet, AnnData (.h5ad) or FASTA (sequences). The training levers (--steps, --batch-size,
    --synthetic-rows, --pair-marginals, --train-option) are public settings; the gate stays
    in front of them and the manifest records them."""
    from synthrelease.api import preflight_release
    from synthrelease.api import release as run_release
    from synthrelease.pipeline.stages import ReleaseSettings

    options = _parse_train_options(train_options)
    if dry_run:  # the same checks as a release (one validation path), then what can be judged without training
        settings = ReleaseSettings(n_steps=n_steps, batch_size=batch_size, synthetic_rows=synthetic_rows,
                                   pair_marginals=pair_marginals, training_options=options)
        check = preflight_release(data, metadata=metadata_path, policy=policy_path, epsilon=epsilon,
                                  delta=delta, target=target, accountant=accountant, ledger_path=ledger_path,
                                  sep=sep, modality=modality, nproc=nproc, settings=settings)
        for c in check.clauses:
            click.echo(f"  {'pass' if c.passed else 'FAIL'}  {c.clause}: {c.reason}")
        for note in check.notes:
            click.echo(f"  note  {note}")
        for fix in check.fixes:
            click.echo(f"  fix   {fix}")
        click.echo("dry run: ready to release (nothing was spent)" if check.passed else
                   "dry run: fix the lines marked 'fix' before spending ε (nothing was spent)")
        if not check.passed:
            raise _ExitError("dry run found problems (see above); nothing was spent", 1)
        return

    outcome = run_release(data, metadata=metadata_path, policy=policy_path, epsilon=epsilon,
                          delta=delta, target=target, out_dir=out_dir, signing_key=signing_key,
                          report_dir=report_dir, seed=seed, accountant=accountant, n_steps=n_steps,
                          batch_size=batch_size, synthetic_rows=synthetic_rows, pair_marginals=pair_marginals,
                          training_options=options, ledger_path=ledger_path, archive=archive, sep=sep,
                          modality=modality, nproc=nproc, progress=_progress(ctx))
    _echo_outcome(outcome)


def _parse_train_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as typed values (int, float, true/false, else text); one-line usage errors."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--train-option")
        text = value.strip()
        parsed: Any = {"true": True, "false": False}.get(text.lower(), text)
        if parsed is text:
            for cast in (int, float):
                try:
                    parsed = cast(text)
                    break
                except ValueError:
                    continue
        out[key.strip()] = parsed
    return out


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("synthrelease-demo"),
              show_default=True, help="Folder for keys, bundle and internal report.")
@click.option("--epsilon", type=float, default=3.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--archive", is_flag=True, help="Also write bundle.tar.gz (deterministic; verify accepts it).")
@click.option("--modality", type=click.Choice(["table", "sequence", "image"]), default="table", show_default=True,
              help="table: the breast-cancer table; sequence: the demo peptide set; image: the demo H&E-like "
                   "tiles (both synthesised from public rules, CC0).")
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, epsilon: float, seed: int, archive: bool, modality: str) -> None:
    """A full release of a bundled dataset: the Breast Cancer Wisconsin table (demo policy: the default policy
    plus the table's domain rules, checked with Great Expectations on the synthetic rows), or with
    --modality sequence the demo peptide set (its policy checks length, homopolymer runs and charge), or with
    --modality image the demo tiles (its policy checks copies, membership and blank tiles)."""
    from synthrelease.api import release as run_release
    from synthrelease.bundle.signing import generate_keypair

    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / DEMO_MARKER).exists():
            raise SynthreleaseError(f"{out_dir}: exists and is not a previous demo folder; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).write_text("created by `synthrelease demo`; safe to delete\n")
    data_dir = resources.files("synthrelease") / "data"
    started = time.perf_counter()
    priv, pub = generate_keypair(out_dir / "keys" / "signing_key.pem", out_dir / "keys" / "signing_key.pub.pem")
    data_name, meta_name, policy_name = {
        "table": ("breast_cancer.csv", "breast_cancer.metadata.yaml", "demo.yaml"),
        "sequence": ("peptides.csv", "peptides.metadata.yaml", "peptides.yaml"),
        "image": ("tiles.npz", "tiles.metadata.yaml", "tiles.yaml")}[modality]
    with resources.as_file(data_dir / data_name) as data, \
            resources.as_file(data_dir / meta_name) as meta, \
            resources.as_file(data_dir / "policies" / policy_name) as policy:
        outcome = run_release(data, metadata=meta, policy=policy, epsilon=epsilon,
                              out_dir=out_dir / "bundle", signing_key=priv,
                              report_dir=out_dir / "internal-report", seed=seed,
                              ledger_path=out_dir / "ledger.sqlite3", archive=archive, progress=_progress(ctx))
    _echo_outcome(outcome)
    click.echo(f"public key: {pub}")
    click.echo(f"verify with: synthrelease verify {outcome.bundle_dir} --public-key {pub}")
    click.echo(f"wall time: {time.perf_counter() - started:.1f} s")


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path), required=True)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=None,
              help="Also check the manifest's ε, δ and accountant against this policy (the verifier's choice).")
def verify(bundle: Path, public_key: Path, policy_path: Path | None) -> None:
    """Check a bundle (folder or .tar.gz): signature, every file hash, no extra or missing file."""
    from synthrelease.bundle.verify import check_against_policy, shown, verify_bundle

    if policy_path is not None:
        from synthrelease.policy.schema import load_policy

        load_policy(policy_path)  # a bad policy is bad input (exit 2), found before any verdict
    result = verify_bundle(bundle, public_key)
    rel = result.manifest.get("release", {})  # a dict: verify_bundle read the signer from it
    priv, used_policy = rel.get("privacy"), rel.get("policy")
    click.echo(f"OK: signature valid, {result.n_files} files match their SHA-256")
    if isinstance(priv, dict) and priv:
        name = used_policy.get("name") if isinstance(used_policy, dict) else None
        click.echo(shown(f"epsilon {priv.get('epsilon')} delta {priv.get('delta')} ({priv.get('accountant')}), "
                         f"policy {name}"))
    if policy_path is not None:
        for line in check_against_policy(result.manifest, policy_path, bundle=bundle):
            click.echo(f"OK: {line}")


@cli.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.option("--private", "private_path", type=click.Path(path_type=Path), default=Path("signing_key.pem"),
              show_default=True)
@click.option("--public", "public_path", type=click.Path(path_type=Path), default=Path("signing_key.pub.pem"),
              show_default=True)
def keys_generate(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 key pair (private key file mode 0600; never put it in a bundle)."""
    from synthrelease.bundle.signing import generate_keypair

    priv, pub = generate_keypair(private_path, public_path)
    click.echo(f"private key: {priv} (mode 0600, keep secret)")
    click.echo(f"public key:  {pub} (give to verifiers)")


_ledger_option = click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), default=None,
                              help="Ledger file (default: $SYNTHRELEASE_LEDGER or ~/.synthrelease/ledger.sqlite3).")


def _open_ledger(ledger_path: Path | None, *, must_exist: bool) -> Any:
    from synthrelease.budget.ledger import Ledger, default_ledger_path

    path = ledger_path if ledger_path is not None else default_ledger_path()
    if must_exist and not path.is_file():
        raise SynthreleaseError(f"{path}: no privacy ledger here (it is created by the first release)")
    return Ledger(path)


@cli.group()
def ledger() -> None:
    """The privacy-budget ledger: ε and δ spent per dataset (basic composition)."""


def _closed_stdout() -> None:
    """The reader of stdout went away (``ledger show | head``): send what is still buffered to
    /dev/null, so the interpreter's final flush cannot fail, and exit 0 quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise click.exceptions.Exit(0)


@ledger.command("show")
@click.argument("dataset", required=False)
@_ledger_option
def ledger_show(dataset: str | None, ledger_path: Path | None) -> None:
    """Per dataset: releases, ε and δ spent (summed), open reservations, and every entry.

    Read-only: never creates or changes a file (no ledger yet: says where it will be, exit 0).
    A reader that closes the output early (`ledger show | head`) ends it quietly with exit 0.
    """

    book = _open_ledger(ledger_path, must_exist=False)
    try:
        if not book.exists():
            click.echo(f"no privacy ledger yet at {book.path}: it is created by the first release or train")
            sys.stdout.flush()
            return
        names = [dataset] if dataset is not None else book.datasets()
        if dataset is not None and dataset not in book.datasets():
            raise SynthreleaseError(f"{book.path}: no entries for dataset '{dataset}'")
        click.echo(f"ledger {book.path} (basic composition: epsilon and delta summed over releases)")
        for name in names:
            t = book.totals(name)
            click.echo(f"{name}: spent epsilon {t.spent_epsilon:.4f} delta {t.spent_delta:.3g} in {t.releases} "
                       f"release(s); reserved epsilon {t.reserved_epsilon:.4f} in {t.open_reservations} open "
                       "reservation(s)")
            for e in book.entries(name):
                flag = ("  STALE: its process is gone; resolve with `synthrelease ledger recover`" if e.stale else
                        "  (process on another host: check it there)" if e.status == "reserved" and not e.running
                        else "")
                click.echo(f"  #{e.id} {e.status:9s} epsilon {e.epsilon:.4f} delta {e.delta:.3g} {e.created_utc} "
                           f"pid {e.pid}@{e.host} {e.note}{flag}")
        sys.stdout.flush()  # a closed pipe fails here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        _closed_stdout()


@ledger.command("recover")
@click.argument("entry_id", type=int)
@click.option("--spent", "--commit", "as_spent", is_flag=True,
              help="Count the reservation as spent (the safe choice when in doubt).")
@click.option("--cancel", "as_cancelled", is_flag=True,
              help="Cancel it: only if the release certainly never started training.")
@_ledger_option
def ledger_recover(entry_id: int, as_spent: bool, as_cancelled: bool, ledger_path: Path | None) -> None:
    """Resolve a reservation left by a killed release (ENTRY_ID: 1 to 2**63-1)."""
    if as_spent == as_cancelled:
        raise SynthreleaseError("ledger recover: give exactly one of --spent (alias --commit) or --cancel")
    book = _open_ledger(ledger_path, must_exist=True)
    entry = book.entry(entry_id)  # an id out of range: one line, exit 2
    if entry.running:
        raise SynthreleaseError(f"{book.path}: entry {entry_id} belongs to a running process (pid {entry.pid}); "
                                "wait for it to finish")
    done = book.recover(entry_id, spent=as_spent, note="recovered by a steward: " +
                        ("counted as spent" if as_spent else "cancelled"))
    try:
        click.echo(f"entry #{done.id} is now {done.status}")
        sys.stdout.flush()
    except BrokenPipeError:  # recovered; nobody reads the confirmation
        _closed_stdout()


@cli.group()
def metadata() -> None:
    """Metadata files."""


@metadata.command("infer")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--target", default=None)
@click.option("--name", default=None, help="Dataset name (default: file stem).")
@_sep_option
@_force_option
def metadata_infer(data: Path, output: Path, target: str | None, name: str | None, sep: str | None,
                   force: bool) -> None:
    """Draft a metadata file from DATA: a table (CSV, TSV, Parquet, AnnData), a FASTA file or
    image tiles (.npz, a folder, a slide). Reads private values: marked reviewed: false."""
    from synthrelease.io.files import write_text_atomic
    from synthrelease.io.outputs import check_writable, refuse_overwrite
    from synthrelease.metadata.infer import metadata_to_yaml
    from synthrelease.modalities.base import draft_metadata

    refuse_overwrite(output, inputs=[data], force=force)
    check_writable(output, option="-o")
    meta = draft_metadata(data, name=name or data.stem, target=target, sep=sep)
    write_text_atomic(output, metadata_to_yaml(meta, draft=True))
    click.echo(f"wrote draft {output}: review every bound, category list, date format and decimals, "
               "then set 'reviewed: true'")


@metadata.command("check")
@click.argument("metadata_file", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Also validate this table.")
@_sep_option
def metadata_check(metadata_file: Path, data: Path | None, sep: str | None) -> None:
    """Validate a metadata file (and optionally a table against it)."""
    from synthrelease.metadata.load import load_metadata

    meta = load_metadata(metadata_file)
    click.echo(f"{metadata_file}: valid, {len(meta.columns)} columns, reviewed: {str(meta.reviewed).lower()}")
    if data is not None:
        click.echo(_check_data_against(data, meta, sep))


def _check_data_against(data: Path, meta: Any, sep: str | None) -> str:
    """Validate any data file a release reads (table, FASTA, tiles) against ``meta``: a one-line summary."""
    from synthrelease.modalities.base import modality_for
    from synthrelease.pipeline import stages
    from synthrelease.validation.expectations import validate_table

    loaded = stages.load(data, meta, sep=sep, allow_unreviewed=True)
    kind = modality_for(meta)
    if kind.validate is None:
        report = validate_table(stages.one_row_per_person(loaded).table, meta, source=str(data))
        return f"{data}: {report.n_rows} rows pass {report.n_checks} checks"
    checked = stages.validate(loaded, kind)
    return f"{data}: {len(checked.table)} {meta.modality} rows pass the metadata's {meta.modality} checks"


@cli.group()
def policy() -> None:
    """Policy files."""


@policy.command("check")
@click.argument("policy_file", type=click.Path(path_type=Path))
def policy_check(policy_file: Path) -> None:
    """Validate a policy file."""
    from synthrelease.policy.schema import load_policy

    pol, sha = load_policy(policy_file)
    click.echo(f"{policy_file}: valid policy '{pol.name}' (sha256 {sha[:16]}…)")


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--metadata", "metadata_path", type=click.Path(path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Model file (.pt).")
@click.option("--condition-column", default=None, help="Categorical column to condition on (default: target).")
@click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), default=None,
              help="Privacy-budget ledger charged with this model's ε "
                   "(default: $SYNTHRELEASE_LEDGER or ~/.synthrelease/ledger.sqlite3).")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=None,
              help="Enforce this policy's privacy.lifetime_epsilon_cap before training.")
@click.option("--nproc", type=click.IntRange(min=1, max=256), default=1, show_default=True,
              help="Train a table on N local processes (torchrun, gloo): the same ε, one ledger entry.")
@_sep_option
@_force_option
@_with(_common_privacy)
@click.pass_context
def train(ctx: click.Context, data: Path, metadata_path: Path, output: Path, condition_column: str | None,
          ledger_path: Path | None, policy_path: Path | None, nproc: int, sep: str | None, force: bool,
          epsilon: float, delta: float | None, accountant: str, n_steps: int | None, batch_size: int | None,
          seed: int) -> None:
    """Train a DP generator on DATA and save it (generator + public encoder only); charged to the ledger.

    DATA: a table, or image tiles (.npz, a folder of PNG/TIFF tiles with labels.csv, a whole slide) when the
    metadata has an image column: then every tile trains the image model (conditioned on the metadata's
    target, if any)."""
    from synthrelease.api import train_model
    from synthrelease.io.outputs import check_writable, refuse_overwrite
    from synthrelease.modalities.model_files import save_model

    inputs = [data, metadata_path, *([policy_path] if policy_path else []), *([ledger_path] if ledger_path else [])]
    refuse_overwrite(output, inputs=inputs, force=force)
    check_writable(output, option="-o")
    if nproc > 1:
        from synthrelease.pipeline.launch import run_distributed_training

        click.echo(run_distributed_training(
            data, metadata_path=metadata_path, output=output, nproc=nproc, epsilon=epsilon, delta=delta,
            condition_column=condition_column, seed=seed, accountant=accountant, n_steps=n_steps,
            batch_size=batch_size, ledger_path=ledger_path, policy_path=policy_path, sep=sep))
        return

    model, _ = train_model(data, metadata_path=metadata_path, epsilon=epsilon, delta=delta,
                           condition=condition_column, seed=seed, accountant=accountant, n_steps=n_steps,
                           batch_size=batch_size, ledger_path=ledger_path, policy_path=policy_path,
                           progress=_progress(ctx), sep=sep)
    save_model(model, output)
    p = model.privacy
    click.echo(f"model: {output}")
    from synthrelease.privacy.claims import ceil_decimals

    click.echo(f"epsilon spent: {ceil_decimals(p.epsilon, 4):.4f} (rounded up; delta {p.delta:g}, "
               f"{p.accountant} accountant)")


@cli.command()
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("-n", "n_rows", type=click.IntRange(min=1, max=50_000_000), required=True,
              help="Rows (tiles) to sample (at most 50,000,000; the output's room is checked first).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help=".csv or .parquet; image models: .npz or a folder (PNG tiles and labels.csv)")
@click.option("--condition", default=None, help="COLUMN=VALUE: sample only that category (label).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="Rows (tiles) per chunk held in memory [default: 50000 rows, 10000 tiles]")
@_force_option
def sample(model_file: Path, n_rows: int, output: Path, condition: str | None, seed: int, chunk_rows: int | None,
           force: bool) -> None:
    """Sample N synthetic rows from a trained model (post-processing: no extra ε).

    An image model writes N tiles to an .npz (arrays images, labels) or to a folder of PNG tiles with
    labels.csv, chunk by chunk, atomically. --seed fixes the latent noise of sampling (public randomness).
    """
    from synthrelease.gan.streaming import write_sample_stream
    from synthrelease.gan.trainer import TrainedModel
    from synthrelease.io.outputs import check_writable, refuse_nested, refuse_overwrite
    from synthrelease.modalities.image.streaming import check_folder_output, is_folder_output
    from synthrelease.modalities.model_files import load_model

    if is_folder_output(output):  # only an image model writes a folder; a table model refuses it below
        check_folder_output(output)
        refuse_nested(output, model_file, names=("-o", "the model file"))
    else:
        refuse_overwrite(output, inputs=[model_file], force=force)
    check_writable(output, option="-o")

    cond = None
    if condition is not None:
        if "=" not in condition:
            raise SynthreleaseError("--condition must look like COLUMN=VALUE")
        col, val = condition.split("=", 1)
        cond = {col.strip(): val.strip()}
    model = load_model(model_file)
    check_writable(output, option="-o", needed_bytes=_sample_bytes(model, n_rows))
    if isinstance(model, TrainedModel):
        write_sample_stream(model, n_rows, output, seed=seed, condition=cond, chunk_rows=chunk_rows or 50_000)
        click.echo(f"wrote {n_rows} rows to {output}")
        return
    from synthrelease.modalities.image.streaming import write_tile_stream

    write_tile_stream(model, n_rows, output, seed=seed, condition=cond, chunk_rows=chunk_rows or 10_000)
    click.echo(f"wrote {n_rows} tiles to {output}")


def _sample_bytes(model: Any, n_rows: int) -> int:
    """A rough lower estimate of a sample's file size: 8 bytes a value (tables), the raw pixels (tiles)."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        return n_rows * max(1, len(encoder.columns)) * 8
    inner = getattr(model, "inner", model)
    size, channels = getattr(inner, "size", 0), getattr(inner, "channels", 0)
    return n_rows * size * size * channels // 4  # compressed npz / PNG: a quarter of the raw bytes


@cli.command("audit-privacy")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--metadata", "metadata_path", type=click.Path(path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Internal JSON report (computed on private rows: keep it in-house).")
@click.option("--condition-column", default=None, help="Categorical column to condition on (default: target).")
@click.option("--canaries", type=click.IntRange(min=4), default=None,
              help="Canaries of the one-run audit (default: min(1000, rows)).")
@click.option("--many-run", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run the classic many-run audit with this many trainings (even, >= 8; small models only).")
@_with(_common_privacy)
@_allow_unreviewed
@_sep_option
@_force_option
@click.pass_context
def audit_privacy(ctx: click.Context, data: Path, metadata_path: Path, output: Path, condition_column: str | None,
                  canaries: int | None, many_run: int, epsilon: float, delta: float | None, accountant: str,
                  n_steps: int | None, batch_size: int | None, seed: int, allow_unreviewed_metadata: bool,
                  sep: str | None, force: bool) -> None:
    """Measure a lower bound on the DP-GAN's ε for DATA; exit 1 if it contradicts the claim."""
    from synthrelease.api import audit_privacy_claim
    from synthrelease.io.files import write_json_atomic
    from synthrelease.io.outputs import check_writable, refuse_internal_output, refuse_overwrite

    refuse_overwrite(output, inputs=[data, metadata_path], force=force)
    refuse_internal_output(output, suffix=".json")
    refuse_internal_output(output.with_suffix(".html"), option="-o (its HTML page)", suffix=".html")
    check_writable(output, option="-o")

    results = audit_privacy_claim(data, metadata_path=metadata_path, epsilon=epsilon, delta=delta,
                                  condition=condition_column, seed=seed, accountant=accountant, n_steps=n_steps,
                                  batch_size=batch_size, n_canaries=canaries, many_run=many_run,
                                  allow_unreviewed=allow_unreviewed_metadata, progress=_progress(ctx), sep=sep)
    write_json_atomic(output, {name: {"metrics": r.metrics, "details": r.details, "runtime_s": r.runtime_s}
                               for name, r in results.items()})
    html_path = output.with_suffix(".html")
    if html_path != output and (force or not html_path.exists()):  # the same page `synthrelease report` draws
        from synthrelease.io.files import write_text_atomic
        from synthrelease.io.strict_json import loads_strict
        from synthrelease.report.html import render_internal_html

        write_text_atomic(html_path, render_internal_html(loads_strict(output.read_bytes(), source=str(output)),
                                                          source=str(output)))
        click.echo(f"internal HTML page (private: not for sharing): {html_path}")
    faults = []
    for name, r in results.items():
        lb, claimed = r.metrics["epsilon_lower_bound"], r.metrics["epsilon_claimed"]
        verdict = "LIKELY IMPLEMENTATION FAULT" if lb > claimed else "no evidence against the claim"
        click.echo(f"{name}: epsilon lower bound {lb:.3f} (95 %) vs claimed {claimed:.3f}: {verdict}")
        if lb > claimed:
            faults.append(name)
    click.echo(f"internal report (private: not for sharing): {output}")
    if faults:
        raise _ExitError(f"empirical lower bound exceeds the claimed epsilon in {', '.join(faults)}: "
                         "likely an implementation fault", 1)


@cli.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="HTML file (self-contained; INTERNAL: shows exact figures computed on private rows).")
@_force_option
def report(results: Path, output: Path, force: bool) -> None:
    """Draw the HTML page of an internal report JSON again, from the JSON alone (nothing recomputed)."""
    from synthrelease.io.files import write_text_atomic
    from synthrelease.io.outputs import check_writable, refuse_internal_output, refuse_overwrite
    from synthrelease.io.strict_json import loads_strict
    from synthrelease.report.html import render_internal_html

    refuse_overwrite(output, inputs=[results], force=force)
    refuse_internal_output(output, suffix=".html")
    check_writable(output, option="-o")
    try:
        text = results.read_bytes()
    except OSError as e:
        raise SynthreleaseError(f"{results}: cannot read ({e.strerror or type(e).__name__})") from None
    doc = loads_strict(text, source=str(results))
    try:
        page = render_internal_html(doc, source=str(results))
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:  # a field of the wrong shape
        raise SynthreleaseError(f"{results}: not a valid internal report: a field has the wrong shape "
                                f"({type(e).__name__}: {str(e)[:200]})") from None
    write_text_atomic(output, page)
    click.echo(f"report (internal: do not share): {output}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="synthrelease")


if __name__ == "__main__":
    main()
