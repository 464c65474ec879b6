"""`synthrelease audit-privacy` and `synthrelease report`: INTERNAL results and their pages."""

from __future__ import annotations

from pathlib import Path

import click

from synthrelease.cli.app import (
    ExitError,
    allow_unreviewed_option,
    cli,
    common_privacy_options,
    force_option,
    labels_option,
    progress_for,
    sep_option,
    with_options,
)
from synthrelease.errors import SynthreleaseError


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
@with_options(common_privacy_options)
@allow_unreviewed_option
@sep_option
@labels_option
@force_option
@click.pass_context
def audit_privacy(ctx: click.Context, data: Path, metadata_path: Path, output: Path, condition_column: str | None,
                  canaries: int | None, many_run: int, epsilon: float, delta: float | None, accountant: str,
                  n_steps: int | None, batch_size: int | None, seed: int, allow_unreviewed_metadata: bool,
                  sep: str | None, labels_path: Path | None, force: bool) -> None:
    """Measure a lower bound on the DP generator's ε for DATA (a table, or sequences: a table with a sequence
    column or FASTA with --labels); exit 1 if it contradicts the claim."""
    from synthrelease.api import audit_privacy_claim
    from synthrelease.io.files import write_json_atomic
    from synthrelease.io.outputs import check_writable, refuse_internal_output, refuse_overwrite

    refuse_overwrite(output, inputs=[data, metadata_path, *([labels_path] if labels_path is not None else [])],
                     force=force)
    refuse_internal_output(output, suffix=".json")
    refuse_internal_output(output.with_suffix(".html"), option="-o (its HTML page)", suffix=".html")
    check_writable(output, option="-o")

    results = audit_privacy_claim(data, metadata_path=metadata_path, epsilon=epsilon, delta=delta,
                                  condition=condition_column, seed=seed, accountant=accountant, n_steps=n_steps,
                                  batch_size=batch_size, n_canaries=canaries, many_run=many_run,
                                  allow_unreviewed=allow_unreviewed_metadata, progress=progress_for(ctx), sep=sep,
                                  labels=labels_path)
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
        raise ExitError(f"empirical lower bound exceeds the claimed epsilon in {', '.join(faults)}: "
                         "likely an implementation fault", 1)


@cli.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="HTML file (self-contained; INTERNAL: shows exact figures computed on private rows).")
@force_option
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
