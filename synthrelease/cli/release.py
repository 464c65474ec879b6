"""`synthrelease release` and `synthrelease demo`: a release from the command line."""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from synthrelease.cli.app import (
    DEMO_MARKER,
    ExitError,
    cli,
    common_privacy_options,
    echo_outcome,
    labels_option,
    progress_for,
    sep_option,
    with_options,
)
from synthrelease.errors import SynthreleaseError


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
@sep_option
@labels_option
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
@with_options(common_privacy_options)
@click.pass_context
def release(ctx: click.Context, data: Path, metadata_path: Path, policy_path: Path, target: str | None,
            out_dir: Path, signing_key: Path, report_dir: Path | None, ledger_path: Path | None, archive: bool,
            dry_run: bool, sep: str | None, labels_path: Path | None, synthetic_rows: int | None,
            pair_marginals: float | None, train_options: tuple[str, ...], modality: str | None, nproc: int,
            epsilon: float, delta: float | None, accountant: str, n_steps: int | None, batch_size: int | None,
            seed: int) -> None:
    """Train, gate on DP audit figures and — only if every policy clause passes — sign a release bundle.

    DATA: CSV, TSV, Parquet, AnnData (.h5ad) or FASTA (sequences; --labels joins labels by record id). The
    training levers (--steps, --batch-size, --synthetic-rows, --pair-marginals, --train-option) are public
    settings; the gate stays in front of them and the manifest records them."""
    from synthrelease.api import preflight_release
    from synthrelease.api import release as run_release
    from synthrelease.pipeline.stages import ReleaseSettings

    options = _parse_train_options(train_options)
    if dry_run:  # the same checks as a release (one validation path), then what can be judged without training
        settings = ReleaseSettings(n_steps=n_steps, batch_size=batch_size, synthetic_rows=synthetic_rows,
                                   pair_marginals=pair_marginals, training_options=options)
        check = preflight_release(data, metadata=metadata_path, policy=policy_path, epsilon=epsilon,
                                  delta=delta, target=target, accountant=accountant, ledger_path=ledger_path,
                                  sep=sep, modality=modality, nproc=nproc, settings=settings, labels=labels_path)
        for c in check.clauses:
            click.echo(f"  {'pass' if c.passed else 'FAIL'}  {c.clause}: {c.reason}")
        for note in check.notes:
            click.echo(f"  note  {note}")
        for fix in check.fixes:
            click.echo(f"  fix   {fix}")
        click.echo("dry run: ready to release (nothing was spent)" if check.passed else
                   "dry run: fix the lines marked 'fix' before spending ε (nothing was spent)")
        if not check.passed:
            raise ExitError("dry run found problems (see above); nothing was spent", 1)
        return

    outcome = run_release(data, metadata=metadata_path, policy=policy_path, epsilon=epsilon,
                          delta=delta, target=target, out_dir=out_dir, signing_key=signing_key,
                          report_dir=report_dir, seed=seed, accountant=accountant, n_steps=n_steps,
                          batch_size=batch_size, synthetic_rows=synthetic_rows, pair_marginals=pair_marginals,
                          training_options=options, ledger_path=ledger_path, archive=archive, sep=sep,
                          modality=modality, nproc=nproc, progress=progress_for(ctx), labels=labels_path)
    echo_outcome(outcome)


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
                              ledger_path=out_dir / "ledger.sqlite3", archive=archive, progress=progress_for(ctx))
    echo_outcome(outcome)
    click.echo(f"public key: {pub}")
    click.echo(f"verify with: synthrelease verify {outcome.bundle_dir} --public-key {pub}")
    click.echo(f"wall time: {time.perf_counter() - started:.1f} s")
