"""The command group, its shared options, progress rendering and the one error handler (exit codes).

Exit codes: 0 success (released / verified), 1 rejected by the gate or failed
verification, 2 bad input or usage, 70 internal error (a bug), 130 / 143 / 129 stopped by
SIGINT / SIGTERM / SIGHUP (after cleaning up: staging removed, ledger entry marked,
internal report written). Errors are one line on stderr, never a traceback (unless
``--debug``).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from synthrelease import __version__
from synthrelease.errors import EXIT_INTERNAL, SynthreleaseError
from synthrelease.progress import ProgressEvent

DEMO_MARKER = ".synthrelease-demo"


class ExitError(click.ClickException):
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
            raise ExitError(f"{' '.join(e.format_message().split())}{hint}", e.exit_code) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SynthreleaseError as e:
            raise ExitError(" ".join(str(e).split("\n")), e.exit_code) from None
        except KeyboardInterrupt:
            raise ExitError("interrupted (SIGINT): cleaned up; see the ledger and the internal report, if any",
                             130) from None
        except Stopped as e:
            raise ExitError(f"{e}: cleaned up; see the ledger and the internal report, if any",
                             e.exit_code) from None
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise ExitError(
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


def progress_for(ctx: click.Context) -> _Progress:
    return _Progress(bool(ctx.obj.get("quiet")))


common_privacy_options = [
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
sep_option = click.option("--sep", default=None,
                           help="Field separator of a delimited text DATA file (default: by extension, ',' for "
                                ".csv and tab for .tsv; one character, '\\t' or 'tab' for a tab).")
labels_option = click.option(
    "--labels", "labels_path", type=click.Path(path_type=Path), default=None,
    help="FASTA DATA only: a CSV/TSV of labels (column id = the record ids, then label columns) joined to the "
         "records by id.")
force_option = click.option("--force", is_flag=True,
                             help="Replace an existing output file (never one of this command's inputs).")
allow_unreviewed_option = click.option(
    "--allow-unreviewed-metadata", is_flag=True,
    help="Run this INTERNAL audit on metadata not marked reviewed (nothing is released).")


def with_options(options: list[Any]) -> Any:
    def deco(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


def echo_outcome(outcome: Any) -> None:
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
















































def main() -> None:
    """Console-script entry point."""
    cli(prog_name="synthrelease")
