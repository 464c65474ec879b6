"""`synthrelease train` and `synthrelease sample`: a DP model charged to the ledger, and rows, sequences or
tiles from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthrelease.cli.app import (
    cli,
    common_privacy_options,
    force_option,
    labels_option,
    progress_for,
    sep_option,
    with_options,
)
from synthrelease.errors import SynthreleaseError


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
@sep_option
@labels_option
@force_option
@with_options(common_privacy_options)
@click.pass_context
def train(ctx: click.Context, data: Path, metadata_path: Path, output: Path, condition_column: str | None,
          ledger_path: Path | None, policy_path: Path | None, nproc: int, sep: str | None, labels_path: Path | None,
          force: bool,
          epsilon: float, delta: float | None, accountant: str, n_steps: int | None, batch_size: int | None,
          seed: int) -> None:
    """Train a DP generator on DATA and save it (generator + public encoder only); charged to the ledger.

    DATA: a table, or image tiles (.npz, a folder of PNG/TIFF tiles with labels.csv, a whole slide) when the
    metadata has an image column: then every tile trains the image model (conditioned on the metadata's
    target, if any). Sequences (a table with a sequence column, or FASTA with --labels): every record trains
    the autoregressive DP language model."""
    from synthrelease.api import train_model
    from synthrelease.io.outputs import check_writable, refuse_overwrite
    from synthrelease.modalities.model_files import save_model

    inputs = [data, metadata_path, *[p for p in (policy_path, ledger_path, labels_path) if p is not None]]
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
                           progress=progress_for(ctx), sep=sep, labels=labels_path)
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
              help=".csv, .tsv, .parquet or .h5ad (AnnData: the training table's genes and obs columns); "
                   "sequence models: .fasta (.fa, .faa, .fna, .gz) or .csv; image models: .npz or a folder "
                   "(PNG tiles and labels.csv)")
@click.option("--condition", default=None, help="COLUMN=VALUE: sample only that category (label).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="Rows (tiles) per chunk held in memory [default: 50000 rows, 10000 tiles]")
@force_option
def sample(model_file: Path, n_rows: int, output: Path, condition: str | None, seed: int, chunk_rows: int | None,
           force: bool) -> None:
    """Sample N synthetic rows from a trained model (post-processing: no extra ε).

    A table model writes CSV, TSV, Parquet or AnnData (.h5ad, laid out as the .h5ad it was trained on: the
    same genes in X, the other columns in obs, fresh cell ids syn-0, syn-1, ...). A sequence model writes N
    sequences to FASTA (>syn-N label=...) or CSV. An image model writes N tiles to
    an .npz (arrays images, labels) or to a folder of PNG tiles with labels.csv, chunk by chunk, atomically.
    --seed fixes the random draws of sampling (public randomness).
    """
    from synthrelease.gan.streaming import write_sample_stream
    from synthrelease.gan.trainer import TrainedModel
    from synthrelease.io.outputs import check_writable, refuse_nested, refuse_overwrite
    from synthrelease.modalities.image.streaming import check_folder_output, is_folder_output
    from synthrelease.modalities.model_files import load_model
    from synthrelease.modalities.sequence.model_io import is_sequence_model

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
    if is_sequence_model(model):
        from synthrelease.modalities.sequence.streaming import write_sequence_stream

        write_sequence_stream(model, n_rows, output, seed=seed, condition=cond, chunk_rows=chunk_rows or 50_000)
        click.echo(f"wrote {n_rows} sequences to {output}")
        return
    from synthrelease.modalities.image.streaming import write_tile_stream

    write_tile_stream(model, n_rows, output, seed=seed, condition=cond, chunk_rows=chunk_rows or 10_000)
    click.echo(f"wrote {n_rows} tiles to {output}")


def _sample_bytes(model: Any, n_rows: int) -> int:
    """A rough lower estimate of a sample's file size: 8 bytes a value (tables), the letters and a header
    (sequences), the raw pixels (tiles)."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        return n_rows * max(1, len(encoder.columns)) * 8
    inner = getattr(model, "inner", model)
    vocabulary = getattr(inner, "vocabulary", None)
    if vocabulary is not None:
        return n_rows * (vocabulary.min_length + 16)
    size, channels = getattr(inner, "size", 0), getattr(inner, "channels", 0)
    return n_rows * size * size * channels // 4  # compressed npz / PNG: a quarter of the raw bytes
