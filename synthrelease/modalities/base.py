"""What a kind of data brings to the one release pipeline: settings, trainer, sampler, audit trainers.

The release stages (:mod:`synthrelease.pipeline.stages`) never import a trainer. A modality —
tables today; sequences and images plug in the same way — hands them:

* ``default_config(n_rows, *, epsilon, delta, seed, accountant, n_steps, batch_size,
  metadata, condition_column) -> TrainingConfig``: settings from PUBLIC quantities only;
* ``fit(train, metadata, config, *, condition_column, progress, reserved_entries,
  randomness) -> TrainedModel``: the (ε, δ)-DP trainer, every private step accounted;
* ``sample(model, n_rows, *, seed) -> DataFrame``: post-processing of the DP model;
* ``shadow_synthesizer(metadata, config, *, condition_column, sample_rate)``: the
  fit-and-sample function the shadow attack retrains (:mod:`synthrelease.audits.shadow`);
* ``audit_trainer(rows, metadata, config, *, condition_column, canaries, noise_scale,
  progress) -> AuditRun``: the run the empirical ε audit retrains, keeping its
  discriminator (:mod:`synthrelease.audits.empirical`).

Optional hooks (``None`` = the table behaviour):

* ``validate(table, metadata, source) -> table``: checks (and cleans) the private rows;
* ``view(df, metadata) -> (frame, metadata)``: a table of PUBLIC-bounded per-record
  features on which the table audits and the DP gate's figures run (each feature a
  function of one record, so the figures' sensitivities hold); ``view_metadata(metadata)``
  its metadata alone (to check policy rules before training);
* ``copy_keys(df, metadata) -> array``: what makes two records exact copies;
* ``extra_audits(train, holdout, synthetic, metadata, *, seed) -> {name: AuditResult}``:
  the modality's own audits (INTERNAL);
* ``outputs(synthetic, metadata) -> {file name: writer(path)}``: extra bundle files;
* ``trained_metadata(model, metadata) -> metadata``: the metadata after training (tables:
  the model's, with DP-estimated bounds);
* ``bundle_table(synthetic, metadata) -> DataFrame``: what the bundle's CSV/Parquet hold
  (images: tile index and label, the pixels being in ``synthetic.npz``);
* ``report_figures(train, synthetic, metadata) -> [{src, alt, caption}]``: extra figures
  for the INTERNAL report (images: real and synthetic tile grids);
* ``report_plot_data(train, synthetic, metadata) -> {name: JSON-able data}``: extra plot
  data for the INTERNAL report, stored in its JSON and drawn by :mod:`synthrelease.report`
  (sequences: per-position letter shares, 2-mers, lengths);
* ``canaries(metadata, n, *, seed) -> DataFrame``: the empirical ε audit's canary records,
  from PUBLIC metadata and a public seed (tables: :func:`~synthrelease.audits.empirical.canaries.make_canaries`);
* ``distance_encoding(df, metadata) -> array``: the numeric encoding the shadow attack and
  the black-box canary score measure distances in (tables:
  :func:`~synthrelease.audits._encoding.encode_for_distance`);
* ``audit_refusal(config) -> str | None``: why the shadow attack and the empirical ε audit
  cannot retrain this modality's generator with these settings, or None when they can (a
  policy requiring them is then refused before any ε is spent).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Modality:
    """The pieces a kind of data supplies to the release pipeline (see the module docstring)."""

    name: str
    default_config: Callable[..., Any]
    fit: Callable[..., Any]
    sample: Callable[..., pd.DataFrame]
    shadow_synthesizer: Callable[..., Callable[[pd.DataFrame, int, int], pd.DataFrame]]
    audit_trainer: Callable[..., Any]
    validate: Callable[..., pd.DataFrame] | None = None
    view: Callable[..., tuple[pd.DataFrame, Any]] | None = None
    view_metadata: Callable[..., Any] | None = None
    copy_keys: Callable[..., Any] | None = None
    extra_audits: Callable[..., dict[str, Any]] | None = None
    outputs: Callable[..., dict[str, Callable[[Any], Any]]] | None = None
    trained_metadata: Callable[[Any, Any], Any] | None = None
    bundle_table: Callable[..., pd.DataFrame] | None = None
    report_figures: Callable[..., list[dict[str, str]]] | None = None
    report_plot_data: Callable[..., dict[str, Any]] | None = None
    canaries: Callable[..., pd.DataFrame] | None = None
    distance_encoding: Callable[..., Any] | None = None
    audit_refusal: Callable[[Any], str | None] | None = None

    def retraining_refusal(self, config: Any) -> str | None:
        """Why the retraining audits cannot run with ``config``, or None (see ``audit_refusal``)."""
        return None if self.audit_refusal is None else self.audit_refusal(config)

    def metadata_after_training(self, model: Any, metadata: Any) -> Any:
        """The metadata the rest of the release uses (tables: the model's own, with DP bounds)."""
        if self.trained_metadata is not None:
            return self.trained_metadata(model, metadata)
        return model.encoder.metadata

    def rules_metadata(self, metadata: Any) -> Any:
        """The metadata the policy's plausibility rules name columns of (the view's, if any)."""
        return self.view_metadata(metadata) if self.view_metadata is not None else metadata


@dataclass
class ModalityModel:
    """A modality's trained model: the inner DP model plus the dataset's public metadata.

    ``privacy``, ``train_seconds`` and ``history`` read through to the inner model, as the
    release stages expect of every model.
    """

    inner: Any
    metadata: Any

    @property
    def privacy(self) -> Any:
        return self.inner.privacy

    @property
    def train_seconds(self) -> float:
        return self.inner.train_seconds

    @property
    def history(self) -> list[dict[str, float]]:
        return self.inner.history


def metadata_without(metadata: Any, column: str) -> Any:
    """The metadata of the other columns (labels, identifiers), for the table validator; None if none."""
    from synthrelease.metadata.schema import Metadata

    others = {c: s.model_dump(mode="json", exclude_none=True) for c, s in metadata.columns.items() if c != column}
    if all(s["type"] == "identifier" for s in others.values()):  # nothing left to validate but ids
        return None
    return Metadata.model_validate({"version": 1, "name": metadata.name, "reviewed": metadata.reviewed,
                                    "target": metadata.target, "columns": others})


def with_label(frame: pd.DataFrame, columns: dict[str, dict], source: pd.DataFrame,
               metadata: Any) -> tuple[pd.DataFrame, Any]:
    """A feature view (``frame`` with public ``columns``) plus the source rows' label, and its metadata."""
    from synthrelease.metadata.schema import Metadata

    frame = frame.reset_index(drop=True)
    if metadata.target is not None:
        frame[metadata.target] = source[metadata.target].to_numpy()
        columns[metadata.target] = metadata.columns[metadata.target].model_dump(mode="json", exclude_none=True)
    meta = Metadata.model_validate({"version": 1, "name": metadata.name, "reviewed": metadata.reviewed,
                                    "target": metadata.target, "columns": columns})
    return frame[list(columns)], meta


MODALITIES: dict[str, tuple[str, str]] = {
    "table": ("synthrelease.modalities.table.modality", "table_modality"),
    "sequence": ("synthrelease.modalities.sequence.modality", "sequence_modality"),
    "image": ("synthrelease.modalities.image.modality", "image_modality"),
}
"""The registry: a metadata's modality name → (module, factory). Imported only when asked
for, so this module imports no modality. A new modality adds one line here."""


def modality_named(name: str) -> Modality:
    """The :class:`Modality` registered as ``name``."""
    module, factory = MODALITIES[name]
    return getattr(importlib.import_module(module), factory)()


def tabular() -> Modality:
    """The table modality (mixed-type tables, expression matrices): the conditional DP-GAN."""
    return modality_named("table")


def modality_for(metadata: Any, requested: str | None = None) -> Modality:
    """The modality of a dataset from its metadata: ``sequence`` when it declares a sequence
    column, ``image`` an image column, else ``table``. ``requested`` (e.g. ``--modality``)
    must agree with the metadata.

    Raises:
        MetadataError: the requested modality contradicts the metadata.
    """
    from synthrelease.errors import MetadataError

    kind = metadata.modality
    if requested is not None and requested != kind:
        need = f"a column of type {requested}" if requested != "table" else "no sequence or image column"
        raise MetadataError(f"--modality {requested}: the metadata declares a {kind} dataset "
                            f"({requested} needs {need})")
    return modality_named(kind)


IMAGE_DATA_SUFFIXES = (".npz", ".svs", ".tif", ".tiff")
"""Files read as image tiles (besides folders): tile archives and whole slides."""


def draft_metadata(data: Any, *, name: str, target: str | None, sep: str | None = None,
                   labels: Any = None) -> Any:
    """Draft metadata (``reviewed: false``; reads PRIVATE values) for any data file a release
    reads: a FASTA file (with ``labels``: a CSV of labels joined by record id), image tiles
    (an ``.npz``, a folder, a slide) or a table (CSV, TSV, Parquet, AnnData).

    Raises:
        InputFileError, MetadataError: one line naming the file, column or option.
    """
    from pathlib import Path

    from synthrelease.errors import InputFileError, MetadataError
    from synthrelease.io.fasta import is_fasta_path

    path = Path(data)
    if is_fasta_path(path):
        draft = importlib.import_module("synthrelease.modalities.sequence.draft").draft_fasta_metadata
        return draft(path, name=name, target=target, labels=labels)
    if labels is not None:
        raise InputFileError(f"{labels}: --labels joins labels to FASTA records by id; {path} is not a FASTA file "
                             "(put the labels in the table instead)")
    if path.is_dir() or path.suffix.lower() in IMAGE_DATA_SUFFIXES:
        draft = importlib.import_module("synthrelease.modalities.image.draft").draft_image_metadata
        return draft(path, name=name, target=target)
    from synthrelease.io.formats import read_table
    from synthrelease.metadata.infer import infer_metadata

    df = read_table(path, sep=sep)
    if target is not None and target not in df.columns:
        raise MetadataError(f"--target: column {target!r} not in {path}")
    return infer_metadata(df, name=name, target=target)
