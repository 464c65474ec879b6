"""`synthrelease metadata` and `synthrelease policy`: the public input files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthrelease.cli.app import cli, force_option, labels_option, sep_option


@cli.group()
def metadata() -> None:
    """Metadata files."""


@metadata.command("infer")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--target", default=None)
@click.option("--name", default=None, help="Dataset name (default: file stem).")
@sep_option
@labels_option
@force_option
def metadata_infer(data: Path, output: Path, target: str | None, name: str | None, sep: str | None,
                   labels_path: Path | None, force: bool) -> None:
    """Draft a metadata file from DATA: a table (CSV, TSV, Parquet, AnnData; a column of protein, DNA or RNA
    sequences is drafted as type: sequence), a FASTA file (with --labels) or image tiles (.npz, a folder, a
    slide). Reads private values: marked reviewed: false."""
    from synthrelease.io.files import write_text_atomic
    from synthrelease.io.outputs import check_writable, refuse_overwrite
    from synthrelease.metadata.infer import metadata_to_yaml
    from synthrelease.modalities.base import draft_metadata

    refuse_overwrite(output, inputs=[data, *([labels_path] if labels_path else [])], force=force)
    check_writable(output, option="-o")
    meta = draft_metadata(data, name=name or data.stem, target=target, sep=sep, labels=labels_path)
    write_text_atomic(output, metadata_to_yaml(meta, draft=True))
    click.echo(f"wrote draft {output}: review every bound, category list, date format, decimals, "
               "transform, zero inflation and the target, "
               "then set 'reviewed: true'")


@metadata.command("check")
@click.argument("metadata_file", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Also validate this table.")
@sep_option
@labels_option
def metadata_check(metadata_file: Path, data: Path | None, sep: str | None, labels_path: Path | None) -> None:
    """Validate a metadata file (and optionally a table against it)."""
    from synthrelease.metadata.load import load_metadata

    if labels_path is not None and data is None:
        raise click.UsageError("--labels joins labels to the FASTA file given with --data; pass --data too")
    meta = load_metadata(metadata_file)
    click.echo(f"{metadata_file}: valid, {len(meta.columns)} columns, reviewed: {str(meta.reviewed).lower()}")
    if data is not None:
        click.echo(_check_data_against(data, meta, sep, labels_path))


def _check_data_against(data: Path, meta: Any, sep: str | None, labels: Path | None = None) -> str:
    """Validate any data file a release reads (table, FASTA, tiles) against ``meta``: a one-line summary."""
    from synthrelease.modalities.base import modality_for
    from synthrelease.pipeline import stages
    from synthrelease.validation.expectations import validate_table

    loaded = stages.load(data, meta, sep=sep, allow_unreviewed=True, labels=labels)
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
