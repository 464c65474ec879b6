"""The sequence modality: what protein/DNA/RNA sequence sets bring to the one release pipeline.

* **Model** (``generator``): by default the autoregressive DP language model
  (:mod:`synthrelease.modalities.sequence.autoregressive`: the label, then each letter from
  the letters before it, DP-SGD in Opacus); or the tabular conditional DP-GAN on the
  positional table (:mod:`synthrelease.modalities.sequence.positional`) with a 1-D
  convolutional discriminator and DP position-specific letter marginals. Same privacy unit
  (one row = one sequence = one record), Poisson sampling, one Opacus accountant, secret
  randomness, the gate's reservation.
* **Validation**: alphabet, length bounds (refuse or clip, as the metadata says) and labels.
* **Gate and table audits**: on a public-bounded feature view (length, composition,
  homopolymer runs, charge, hydrophobicity, …: :mod:`synthrelease.modalities.sequence.features`),
  each a function of one sequence, so the DP figures' sensitivities hold unchanged; exact
  copies are counted on the sequences themselves.
* **Sequence audits** (internal): k-mer spectra, descriptors, diversity, near copies,
  nearest-neighbour-identity membership attack, k-mer TSTR (:mod:`synthrelease.modalities.sequence.audits`).
* **Retraining audits** (internal): the shadow attack and the empirical ε audit of the tables,
  with sequence canaries, a positional distance space and the autoregressive model's audit run
  (:mod:`synthrelease.modalities.sequence.audit_runs`).
* **Bundle**: the synthetic sequences as CSV/Parquet and FASTA.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.errors import SynthreleaseError
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import Modality, ModalityModel, metadata_without, with_label
from synthrelease.modalities.sequence.positional import (
    consistent_logits,
    from_positions,
    positional_metadata,
    to_positions,
)
from synthrelease.progress import ProgressCallback, ignore_progress

SAMPLE_ROUNDS = 20
"""Sampling rounds allowed to find enough sequences of at least ``min_length`` letters."""


SequenceModel = ModalityModel
"""A DP generator of sequences: the positional table model plus the sequence metadata."""


AR_STEPS = 200
"""Default DP-SGD steps of the autoregressive model. The DP priors carry most of the signal at
ε ≤ 3, and 800 steps take 4× as long for no measurable gain (amp_vs_uniprot, ε = 3, 4 seeds:
TSTR 0.894 ± 0.004 with 800 steps, measured before the letters-only loss; 0.900 ± 0.005 and
0.892 ± 0.004 in two runs with 200 steps; 0.898 with 3 steps, the releases alone —
``benchmarks/results/sequences-{order2,letters-loss-steps200,steps200}.md``)."""


def default_config(n_rows: int, *, epsilon: float, delta: float, seed: int, accountant: str = "rdp",
                   n_steps: int | None = None, batch_size: int | None = None, metadata: Metadata | None = None,
                   condition_column: str | None = None) -> Any:
    """Settings from public quantities only: the autoregressive model (expected batch n/16 within
    32…256, :data:`AR_STEPS` steps; a position prior when the metadata declares one length); the
    positional GAN's table defaults (conv critic) stay in the same object
    for ``--train-option generator=positional_gan``."""
    from synthrelease.gan.defaults import default_training_config
    from synthrelease.modalities.sequence.config import FIXED_LENGTH_SHARES, SequenceTrainingConfig

    pos = positional_metadata(metadata) if metadata is not None else None
    config = default_training_config(n_rows, epsilon=epsilon, delta=delta, seed=seed, accountant=accountant,
                                     n_steps=n_steps, batch_size=batch_size, metadata=pos,
                                     condition_column=condition_column)
    fields = dataclasses.asdict(dataclasses.replace(config, discriminator_kind="conv1d"))
    fields.update(gan_batch_size=config.batch_size, gan_steps=config.n_steps,
                  batch_size=batch_size or max(32, min(256, n_rows // 16)), n_steps=n_steps or AR_STEPS)
    if metadata is not None and _one_declared_length(metadata):
        fields.update(FIXED_LENGTH_SHARES)
    return SequenceTrainingConfig(**fields)


def _one_declared_length(metadata: Metadata) -> bool:
    """True when the PUBLIC metadata declares a single sequence length (min_length = max_length)."""
    spec = metadata.columns[metadata.sequence_column] if metadata.sequence_column else None
    return spec is not None and spec.min_length is not None and spec.min_length == spec.max_length


def vocabulary_for(metadata: Metadata) -> Any:
    """The autoregressive model's token vocabulary, from the PUBLIC metadata alone (alphabet, length
    bounds, the target's declared categories)."""
    from synthrelease.metadata.alphabets import resolve_alphabet
    from synthrelease.modalities.sequence.autoregressive import Vocabulary

    column = metadata.sequence_column
    assert column is not None
    spec = metadata.columns[column]
    classes = tuple(metadata.columns[metadata.target].declared_categories()) if metadata.target else ()
    return Vocabulary(resolve_alphabet(spec.alphabet or ""), tuple(str(c) for c in classes),
                      int(spec.max_length or 1), int(spec.min_length or 1))


def fit(train: pd.DataFrame, metadata: Metadata, config: Any, *, condition_column: str | None,
        progress: ProgressCallback = ignore_progress, reserved_entries: tuple[Any, ...] = (),
        randomness: Any = None) -> SequenceModel:
    """Train the (ε, δ)-DP generator the config names on the sequences (see the module docstring)."""
    from synthrelease.gan.trainer import fit_dp_synthesizer

    config = config.for_generator() if hasattr(config, "for_generator") else config
    if getattr(config, "generator", "positional_gan") == "autoregressive":
        from synthrelease.modalities.sequence.autoregressive import train_autoregressive

        column = metadata.sequence_column
        assert column is not None
        labels = None if metadata.target is None else [str(v) for v in train[metadata.target]]
        return SequenceModel(train_autoregressive(list(train[column].astype(str)), labels, vocabulary_for(metadata),
                                                  config, reserved_entries=reserved_entries, randomness=randomness,
                                                  progress=progress), metadata)

    pos_meta = positional_metadata(metadata)
    model = fit_dp_synthesizer(to_positions(train, metadata), pos_meta, config, condition_column=condition_column,
                               progress=progress, reserved_entries=reserved_entries, randomness=randomness)
    return SequenceModel(model, metadata)


def sample(model: SequenceModel, n_rows: int, *, seed: int) -> pd.DataFrame:
    """``n_rows`` synthetic sequences with their labels (post-processing of the DP model).

    Each row's length is drawn first, then letters only before it
    (:func:`~synthrelease.modalities.sequence.positional.consistent_logits`); a sequence still shorter
    than the public ``min_length`` is dropped and drawn again.
    """
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.modalities.sequence.autoregressive import AutoregressiveModel
    from synthrelease.privacy.randomness import SeedTree

    column = model.metadata.sequence_column
    assert column is not None
    if isinstance(model.inner, AutoregressiveModel):
        return sample_autoregressive(model, n_rows, seed=seed)
    min_length = int(model.metadata.columns[column].min_length or 1)
    seeds = SeedTree(seed)
    adjust = consistent_logits(model.inner.encoder, model.metadata)
    kept: list[pd.DataFrame] = []
    have = 0
    for round_ in range(SAMPLE_ROUNDS):
        want = max(16, int((n_rows - have) * 1.25))
        rows = sample_frame(model.inner, want, seed=seeds.integer(f"round-{round_}"), adjust_logits=adjust)
        seqs = from_positions(rows, model.metadata)
        seqs = seqs[seqs[column].str.len() >= min_length]
        kept.append(seqs)
        have += len(seqs)
        if have >= n_rows:
            return pd.concat(kept, ignore_index=True).iloc[:n_rows].reset_index(drop=True)
    raise SynthreleaseError(f"the model generated only {have} of {n_rows} sequences of at least {min_length} letters "
                            f"in {SAMPLE_ROUNDS} rounds; train longer or lower min_length")


def sample_autoregressive(model: SequenceModel, n_rows: int, *, seed: int,
                           fixed_class: int | None = None) -> pd.DataFrame:
    """Sequences (and labels, typed as the metadata declares them) drawn token by token; ``fixed_class``:
    the index of the one declared label to draw (post-processing; public ``seed``)."""
    from synthrelease.modalities.sequence.autoregressive import generate

    meta = model.metadata
    seqs, labels = generate(model.inner, n_rows, seed=seed, fixed_class=fixed_class)
    out = pd.DataFrame({meta.sequence_column: seqs})
    if meta.target is not None and labels is not None:
        declared = {str(c): c for c in meta.columns[meta.target].declared_categories()}
        out[meta.target] = [declared[v] for v in labels]
    return out


def shadow_synthesizer(metadata: Metadata, config: Any, *, condition_column: str | None, sample_rate: float) -> Any:
    """The autoregressive DP model as the shadow attack's fit-and-sample function (fresh secret
    noise per fit; ``config.n_steps`` steps, the release's own)."""
    from synthrelease.audits.shadow import retraining_synthesizer

    return retraining_synthesizer(metadata, config, condition_column=condition_column, sample_rate=sample_rate,
                                  fit=fit, sample=sample)


def audit_refusal(config: Any) -> str | None:
    """Why the retraining audits cannot run with ``config``: they retrain the autoregressive model
    only (the positional GAN's batch and steps are separate settings the audits do not rescale)."""
    if getattr(config, "generator", "autoregressive") != "autoregressive":
        return "the shadow attack and the empirical ε audit retrain the autoregressive sequence model only"
    return None


def audit_trainer(rows: pd.DataFrame, metadata: Metadata, config: Any, **kwargs: Any) -> Any:
    """The empirical ε audit's run of the autoregressive model (:func:`.audit_runs.train_audit_run`):
    ``condition_column``, ``canaries``, ``noise_scale``, ``progress`` as the table's."""
    from synthrelease.modalities.sequence.audit_runs import train_audit_run

    return train_audit_run(rows, metadata, config, fit=fit, sample=sample, **kwargs)


def canaries(metadata: Metadata, n: int, *, seed: int) -> pd.DataFrame:
    """The empirical ε audit's canaries: random sequences from PUBLIC metadata and a public seed."""
    from synthrelease.modalities.sequence.audit_runs import make_sequence_canaries

    return make_sequence_canaries(metadata, n, seed=seed)


def distance_encoding(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """The retraining audits' distance space: positional one-hot (squared distance = differing positions)."""
    from synthrelease.modalities.sequence.audit_runs import encode_sequences

    return encode_sequences(df, metadata)


def report_plot_data(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """Per-position letters, 2-mers and lengths of real vs synthetic sequences, for the INTERNAL
    report only (computed on private training sequences; never shared)."""
    from synthrelease.modalities.sequence.report_data import sequence_plot_data

    return {"sequence": sequence_plot_data(train, synthetic, metadata)}


def validate(table: pd.DataFrame, metadata: Metadata, source: str) -> pd.DataFrame:
    """Check and clean the sequences (alphabet, lengths; clipped if the metadata says so) and the
    labels; returns the cleaned table.

    Raises:
        DataValidationError: one line naming the source, column and first bad row (never a sequence).
    """
    from synthrelease.metadata.alphabets import check_sequences, resolve_alphabet
    from synthrelease.validation.expectations import validate_table

    column = metadata.sequence_column
    assert column is not None
    spec = metadata.columns[column]
    if column not in table.columns:
        raise SynthreleaseError(f"{source}: the sequence column {column!r} is missing")
    rest = metadata_without(metadata, column)
    if rest is not None:
        validate_table(table.drop(columns=[column]), rest, source=source)
    cleaned = check_sequences(table[column], resolve_alphabet(spec.alphabet or ""),
                              min_length=int(spec.min_length or 1), max_length=int(spec.max_length or 1),
                              too_long=spec.too_long, source=source, column=column)
    out = table.copy()
    out[column] = cleaned
    return out


def view(df: pd.DataFrame, metadata: Metadata) -> tuple[pd.DataFrame, Metadata]:
    """The public-bounded feature view of sequences (one row per sequence) and its metadata."""
    from synthrelease.metadata.alphabets import resolve_alphabet
    from synthrelease.modalities.sequence.features import feature_view, view_columns

    column = metadata.sequence_column
    assert column is not None
    spec = metadata.columns[column]
    alphabet = resolve_alphabet(spec.alphabet or "")
    columns = view_columns(alphabet, min_length=int(spec.min_length or 1), max_length=int(spec.max_length or 1))
    frame = feature_view(df[column].astype(str).reset_index(drop=True), alphabet=alphabet)
    return with_label(frame, columns, df, metadata)


def view_metadata(metadata: Metadata) -> Metadata:
    """The feature view's public metadata alone (for checking plausibility rules before training)."""
    column = metadata.sequence_column
    assert column is not None
    spec = metadata.columns[column]
    letters = (spec.alphabet or "")
    from synthrelease.metadata.alphabets import resolve_alphabet

    example = pd.DataFrame({column: [resolve_alphabet(letters)[0] * int(spec.min_length or 1)]})
    if metadata.target is not None:
        example[metadata.target] = [metadata.columns[metadata.target].declared_categories()[0]]
    return view(example, metadata)[1]


def copy_keys(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """What makes two records copies of each other: the sequence itself."""
    column = metadata.sequence_column
    assert column is not None
    return df[column].astype(str).to_numpy()


def extra_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                 seed: int) -> dict[str, Any]:
    """The sequence-aware audits (INTERNAL: they read private rows)."""
    from synthrelease.metadata.alphabets import resolve_alphabet
    from synthrelease.modalities.sequence.audits import run_sequence_audits

    column = metadata.sequence_column
    assert column is not None
    alphabet = resolve_alphabet(metadata.columns[column].alphabet or "")
    return {"sequence": run_sequence_audits(train, holdout, synthetic, sequence_column=column,
                                            label_column=metadata.target, alphabet=alphabet, seed=seed)}


def outputs(synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """Extra bundle files: the synthetic sequences as FASTA (label in the header)."""
    from synthrelease.io.fasta import write_fasta

    column = metadata.sequence_column
    assert column is not None
    header = (metadata.target,) if metadata.target is not None else ()

    def write(path: Path) -> Any:
        return write_fasta(path, synthetic, sequence_column=column, header_columns=header)

    return {"synthetic.fasta": write}


def sequence_modality() -> Modality:
    """The sequence modality (see the module docstring)."""
    return Modality("sequence", default_config=default_config, fit=fit, sample=sample,
                    shadow_synthesizer=shadow_synthesizer, audit_trainer=audit_trainer, validate=validate,
                    view=view, view_metadata=view_metadata, copy_keys=copy_keys, extra_audits=extra_audits,
                    outputs=outputs, trained_metadata=lambda model, metadata: metadata,
                    report_plot_data=report_plot_data, canaries=canaries, distance_encoding=distance_encoding,
                    audit_refusal=audit_refusal)
