"""The release pipeline as named stages with typed inputs and outputs, each testable alone.

    load → validate → split → train → sample → audit → gate → bundle

:func:`synthrelease.pipeline.release.release` runs them in this order around the privacy ledger and
the internal report. No stage imports a trainer: the kind of data (a
:class:`~synthrelease.modalities.base.Modality`) brings its settings, trainer, sampler and the
trainers of the audits that retrain, so sequences or images go through this same path.

Privacy roles: ``load``/``validate``/``split`` read the private table; ``train`` is the
accounted DP mechanism; ``sample`` is post-processing; ``audit`` reads private rows and its
results are INTERNAL (never released); ``gate`` releases its figures through one accounted
Gaussian mechanism reserved before training; ``bundle`` writes only DP outputs and public
inputs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.budget.fingerprint import table_fingerprint
from synthrelease.errors import InputFileError, MetadataError, PolicyError, PrivacyParameterError, SynthreleaseError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gate.verdict import GateDecision, evaluate_gate
from synthrelease.io.files import sha256_file
from synthrelease.io.formats import TableFormat, frame_from_anndata, read_table_as, write_table_as
from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.load import format_validation_error, load_metadata, require_reviewed
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import Modality
from synthrelease.policy.schema import Policy, load_policy
from synthrelease.privacy.dp_counts import NoisySizes
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

DataInput = str | os.PathLike[str] | pd.DataFrame | Any
"""A table: a file path (CSV, TSV, Parquet, AnnData .h5ad), a DataFrame or an AnnData object."""


# ---------------------------------------------------------------- load

@dataclass(frozen=True)
class LoadedTable:
    """The private table and its public description, as read.

    Attributes:
        table: the private rows (PRIVATE).
        metadata: the public metadata (reviewed, unless an internal command allowed otherwise).
        fmt: the input's format; the bundle writes the synthetic rows the same way too.
        source: the path, or ``<DataFrame>`` / ``<AnnData>`` for in-memory data.
        metadata_source: the metadata's path, or ``<Metadata>`` / ``<mapping>``.
        data_sha256: SHA-256 of the input file, or the content fingerprint for in-memory data.
        content_sha256: the format-independent content fingerprint (the ledger's key).
        notes: warnings the user must see (public wording: no private count).
        dropped_rows: rows beyond each person's cap that were dropped (INTERNAL: a private count,
            for the internal report only).
    """

    table: pd.DataFrame
    metadata: Metadata
    fmt: TableFormat
    source: str
    metadata_source: str
    data_sha256: str
    content_sha256: str
    notes: tuple[str, ...] = ()
    dropped_rows: int = 0


UNREVIEWED_WARNING = (
    "metadata is NOT reviewed: its bounds/categories may come from the private rows, "
    "which voids the differential-privacy guarantee"
)


def resolve_metadata(metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any]) -> tuple[Metadata, str]:
    """Metadata from a YAML path, a :class:`Metadata` or a plain mapping; and how to name it.

    Raises:
        MetadataError: one line naming the source and the first problem.
    """
    if isinstance(metadata, Metadata):
        return metadata, "<Metadata>"
    if isinstance(metadata, Mapping):
        from pydantic import ValidationError

        try:
            return Metadata.model_validate(dict(metadata)), "<mapping>"
        except ValidationError as e:
            raise MetadataError(format_validation_error("metadata", e, "metadata")) from None
    return load_metadata(metadata), str(metadata)


def load(data: DataInput, metadata: str | os.PathLike[str] | Metadata | Mapping[str, Any], *,
         sep: str | None = None, allow_unreviewed: bool = False,
         labels: str | os.PathLike[str] | None = None) -> LoadedTable:
    """Read the metadata and the table (any accepted format, or in memory); check ``reviewed``.

    ``allow_unreviewed`` is for INTERNAL computations only (nothing released). ``labels``: a
    CSV/TSV of labels joined to a FASTA file's records by id (FASTA input only; its columns
    must be declared in the metadata). The data fingerprint stays the FASTA file's: the same
    sequences count as the same dataset in the ledger, whatever their labels.

    Raises:
        MetadataError, InputFileError: one line naming the file or object.
    """
    meta, meta_source = resolve_metadata(metadata)
    if labels is not None and not (isinstance(data, (str, os.PathLike)) and is_fasta(data)):
        raise InputFileError(f"{labels}: --labels joins labels to FASTA records by id; {_data_name(data)} is not a "
                             "FASTA file (put the labels in the table instead)")
    notes: list[str] = []
    if allow_unreviewed and not meta.reviewed:
        notes.append(UNREVIEWED_WARNING)
    else:
        require_reviewed(meta, meta_source)
    if isinstance(data, pd.DataFrame):
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise SynthreleaseError("<DataFrame>: table has no rows or no columns")
        df, fmt, source = data.reset_index(drop=True), TableFormat("csv", ","), "<DataFrame>"
    elif type(data).__name__ == "AnnData":
        df, fmt = frame_from_anndata(data, x_dtype=_x_dtype(meta))
        source = "<AnnData>"
    elif isinstance(data, (str, os.PathLike)) and meta.modality == "image":
        from synthrelease.modalities.image.modality import read_tiles

        df, fmt, source = read_tiles(data, meta), TableFormat("csv", ","), str(data)
    elif isinstance(data, (str, os.PathLike)) and is_fasta(data):
        from synthrelease.io.fasta import read_fasta

        df = read_fasta(data, labels=labels, label_columns=meta.columns)
        fmt, source = TableFormat("csv", ","), str(data)
        # the record ids fill the metadata's one identifier column, whatever it is called
        ids = [c for c, spec in meta.columns.items() if spec.type == "identifier"]
        if "id" not in meta.columns and len(ids) == 1 and ids[0] not in df.columns:
            df = df.rename(columns={"id": ids[0]})
    elif isinstance(data, (str, os.PathLike)):
        df, fmt = read_table_as(data, sep=sep, x_dtype=_x_dtype(meta))
        source = str(data)
    else:
        raise SynthreleaseError(f"data must be a file path, a pandas DataFrame or an AnnData object, "
                                f"not {type(data).__name__}")
    df = apply_float_storage(df, meta, source=meta_source)
    content = table_fingerprint(df, meta)
    data_sha = sha256_file(data) if isinstance(data, (str, os.PathLike)) and Path(data).is_file() else content
    return LoadedTable(df, meta, fmt, source, meta_source, data_sha, content, tuple(notes))


def _x_dtype(meta: Metadata) -> Any:
    return np.float16 if meta.float_storage == "float16" else np.float32


def apply_float_storage(df: pd.DataFrame, meta: Metadata, *, source: str) -> pd.DataFrame:
    """``df`` with its declared ``float`` columns held as the metadata's ``float_storage``
    (float16), as read: a per-row rounding, the same whatever the file format.

    Raises:
        MetadataError: a declared ``integer`` column came as float16 (an AnnData ``X`` read
            with ``float_storage: float16``): whole counts above 2,048 are not exact there.
    """
    if meta.float_storage != "float16":
        return df
    wide = [c for c, spec in meta.columns.items() if c in df.columns and spec.type == "float"
            and df[c].dtype.kind == "f" and df[c].dtype != np.float16]
    if wide:
        df = df.copy(deep=False)
        df[wide] = df[wide].astype(np.float16)
    bad = next((c for c, spec in meta.columns.items() if c in df.columns and spec.type == "integer"
                and df[c].dtype == np.float16), None)
    if bad is not None:
        raise MetadataError(f"{source}: column {bad!r} is declared integer, but float_storage: float16 holds the "
                            "AnnData matrix as float16 (whole numbers above 2048 are not exact); declare the genes "
                            "float or remove float_storage")
    return df


def _data_name(data: DataInput) -> str:
    return str(data) if isinstance(data, (str, os.PathLike)) else f"<{type(data).__name__}>"


def is_fasta(path: str | os.PathLike[str]) -> bool:
    """A FASTA file by its extension (``.fasta``, ``.fa``, ``.faa``, ``.fna``, optionally ``.gz``)."""
    from synthrelease.io.fasta import is_fasta_path

    return is_fasta_path(path)


def resolve_policy(policy: str | os.PathLike[str] | Policy | Mapping[str, Any]) -> tuple[Policy, str, str]:
    """A policy from a YAML path, a :class:`Policy` or a plain mapping: (policy, SHA-256, source).

    The SHA-256 is the file's, or that of the policy's canonical JSON for objects.

    Raises:
        PolicyError: one line naming the source and the first problem.
    """
    from synthrelease.bundle.manifest import canonical_json

    if isinstance(policy, (str, os.PathLike)):
        parsed, sha = load_policy(policy)
        return parsed, sha, str(policy)
    if isinstance(policy, Policy):
        parsed, source = policy, "<Policy>"
    elif isinstance(policy, Mapping):
        from pydantic import ValidationError

        from synthrelease.policy.schema import OLD_VERSION_HINT

        if policy.get("version") in (1, 2):
            raise PolicyError(f"<mapping>: policy key 'version': version {policy['version']} {OLD_VERSION_HINT}")
        try:
            parsed = Policy.model_validate(dict(policy))
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(x) for x in first["loc"]) or "(top level)"
            msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
            raise PolicyError(f"<mapping>: policy key '{key}': {msg}") from None
        source = "<mapping>"
    else:
        raise PolicyError(f"policy must be a file path, a Policy or a mapping, not {type(policy).__name__}")
    sha = hashlib.sha256(canonical_json(parsed.model_dump(mode="json"))).hexdigest()
    return parsed, sha, source


# ---------------------------------------------------------------- validate

def validate(loaded: LoadedTable, modality: Modality | None = None) -> LoadedTable:
    """Check the table against its metadata (reads private rows): Great Expectations for tables,
    the modality's own checks otherwise (which may clean the rows, e.g. clip long sequences).

    Raises:
        DataValidationError: one line naming the source, each failed column and check.
    """
    from synthrelease.validation.expectations import validate_table

    loaded = one_row_per_person(loaded)
    if modality is not None and modality.validate is not None:
        return dataclasses.replace(loaded, table=modality.validate(loaded.table, loaded.metadata, loaded.source))
    validate_table(loaded.table, loaded.metadata, source=loaded.source)
    return loaded


def one_row_per_person(loaded: LoadedTable) -> LoadedTable:
    """With ``privacy_unit_column``, keep each person's first m rows only (in file order),
    m = ``max_rows_per_person`` (1 unless declared; above 1 for image tables only).

    Why: DP-SGD, the DP statistics and the gate bound one ROW's influence; a person with k
    rows would be protected only at group size k. Keeping each person's first m rows is a
    per-person rule (adding or removing a person changes only that person's rows); with
    m = 1 the guarantee then holds per person, with m > 1 the image trainer bounds each
    person's m rows together (user-level clipping). A missing person id is bad input.

    Raises:
        DataValidationError: the column is missing or has missing values.
    """

    column = loaded.metadata.privacy_unit_column
    if column is None:
        return loaded
    table = loaded.table
    cap = loaded.metadata.rows_per_person
    kept = first_rows_per_person(table, column, cap, source=loaded.source)
    # the note is the same whether or not any row was dropped: that fact is private too
    notes = (*loaded.notes, f"privacy unit {column!r}: each person's first {cap} row(s) are kept and any "
                            "further rows dropped (how many: internal report)")
    return dataclasses.replace(loaded, table=kept, notes=notes, dropped_rows=len(table) - len(kept))


def first_rows_per_person(table: pd.DataFrame, column: str, cap: int, *, source: str) -> pd.DataFrame:
    """Each person's first ``cap`` rows of ``table`` (file order), persons named by ``column``.

    Raises:
        DataValidationError: the column is missing or has missing values.
    """
    from synthrelease.errors import DataValidationError

    if column not in table.columns or _blank_ids(table[column]).any():
        raise DataValidationError(f"{source}: privacy_unit_column {column!r} is missing or has empty values")
    return table[table.groupby(column, sort=False).cumcount() < cap].reset_index(drop=True)


BLANK_IDS = frozenset({"", "nan", "none", "null", "na", "<na>"})
"""Texts that name no person (an empty cell, or a missing value turned into text, as NumPy does when it
stores ``[\"p1\", nan]`` as strings): each would otherwise count as one person of its own."""


def _blank_ids(ids: pd.Series) -> pd.Series:
    """True where a person id is missing: NA, or a text in :data:`BLANK_IDS` (case and spaces ignored)."""
    text = ids.astype(str).str.strip().str.lower()
    return ids.isna() | text.isin(BLANK_IDS)


def first_row_per_person(table: pd.DataFrame, metadata: Metadata) -> pd.DataFrame:
    """Each person's first row (all rows without ``privacy_unit_column`` or with a cap of 1)."""
    column = metadata.privacy_unit_column
    if column is None or metadata.rows_per_person == 1 or column not in table.columns:
        return table
    return table.drop_duplicates(subset=[column], keep="first").reset_index(drop=True)


# ---------------------------------------------------------------- split

@dataclass(frozen=True)
class TrainHoldout:
    """The private rows split by secret per-row coins (PRIVATE; never released)."""

    train: pd.DataFrame
    holdout: pd.DataFrame


def split(table: pd.DataFrame, *, holdout_fraction: float, randomness: PrivateRandomness,
          unit_column: str | None = None, consume: bool = False) -> TrainHoldout:
    """Each row (each person of ``unit_column``, with all their rows) goes to the holdout by
    its own secret coin (probability ``holdout_fraction``).

    Row-independent: adding or removing one row changes only that row's membership, never
    another's (no stratification, no fixed sizes: both would read private counts). The
    coins come from ``randomness`` (fresh OS entropy in a release) and are never stored.

    ``consume``: the caller gives ``table`` up (a release does): its rows are reordered in
    place — training rows first, each part in table order — and the parts are views of it,
    so the split needs 0.2× the table more memory instead of 1× (a 100,000 × 20,000 float16
    atlas: 0.8 GiB, not 3.7). ``table`` must not be used afterwards. Falls back to copying
    when the frame holds other than plain NumPy columns. The parts are the same either way.

    Raises:
        PrivacyParameterError: the fraction is not in (0, 1), or a part has fewer than 2 rows.
    """
    if not 0 < holdout_fraction < 1:
        raise PrivacyParameterError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    if unit_column is not None:  # one coin per person: all of a person's rows land on one side
        codes, uniques = pd.factorize(table[unit_column], sort=False)
        coins = (randomness.numpy("split").random(len(uniques)) < holdout_fraction)[codes]
    else:
        coins = randomness.numpy("split").random(len(table)) < holdout_fraction
    n_hold = int(coins.sum())
    if len(table) - n_hold < 2 or n_hold < 2:
        raise PrivacyParameterError(f"the table has too few rows to split into training and holdout rows "
                                    f"(holdout fraction {holdout_fraction:g}); a release needs a few hundred")
    if consume and _partition_rows_in_place(table, coins):
        n_train = len(table) - n_hold
        train, hold = table.iloc[:n_train], table.iloc[n_train:]
        train.index, hold.index = pd.RangeIndex(n_train), pd.RangeIndex(n_hold)
        return TrainHoldout(train, hold)
    # one copy of the rows in all (the two parts), then a fresh index in place: reset_index
    # would copy every part a second time (a 100,000 × 20,000 table: 3.8 GiB more at the peak)
    parts = []
    for rows in (~coins, coins):
        part = table.loc[rows]
        part.index = pd.RangeIndex(len(part))
        parts.append(part)
    return TrainHoldout(*parts)


def return_freed_memory() -> None:
    """Collect reference cycles and hand freed heap pages back to the operating system (glibc's
    ``malloc_trim``; nothing elsewhere), so that a long release's resident memory after a stage
    is what is still live (training leaves ~1 GiB of freed pieces on a 20,000-gene table), and
    let go of the resident pages of spilled synthetic blocks (:mod:`synthrelease.io.spill`)."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    release_mapped_pages()


_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if os.name == "posix" else None
"""glibc's ``malloc_trim`` from the process's own symbols; None where the C library has none."""


PARTITION_CHUNK_CELLS = 1 << 24
"""Cells moved at once by :func:`_partition_rows_in_place` (its temporary besides the holdout copy)."""


def _partition_rows_in_place(table: pd.DataFrame, to_end: np.ndarray) -> bool:
    """Reorder ``table``'s rows in place: rows with ``to_end`` False first, then the others,
    each group in table order (a stable partition). False (nothing changed) unless every column
    is held in plain NumPy blocks, the only layout whose memory this can move.

    Per block: the ``to_end`` rows are copied out, the others moved forward chunk by chunk (a
    row only ever moves to a lower position, so no chunk overwrites a row still to be read),
    and the copied rows written back at the end."""
    blocks = getattr(getattr(table, "_mgr", None), "blocks", None)
    if blocks is None or not all(isinstance(b.values, np.ndarray) and b.values.ndim == 2 for b in blocks):
        return False
    keep, move = np.flatnonzero(~to_end), np.flatnonzero(to_end)
    for block in blocks:
        values = block.values  # [columns of the block, rows]
        moved = values[:, move]  # a copy (fancy indexing)
        step = max(1, PARTITION_CHUNK_CELLS // max(1, values.shape[0]))
        for lo in range(0, len(keep), step):
            hi = min(len(keep), lo + step)
            values[:, lo:hi] = values[:, keep[lo:hi]]
        values[:, len(keep):] = moved
        del moved
    clear = getattr(table, "_clear_item_cache", None)
    if clear is not None:
        clear()  # cached column Series would show the old order
    return True


# ---------------------------------------------------------------- train settings

FIXED_SETTINGS = ("target_epsilon", "target_delta", "accountant", "seed", "public_rows")
"""TrainingConfig fields set by their own release arguments (``public_rows``: by the release's DP
count), not by ``training_options``."""

MAX_SYNTHETIC_ROWS = 50_000_000


@dataclass(frozen=True)
class ReleaseSettings:
    """The training levers a user may set on a release (all PUBLIC; the gate stays in front).

    Attributes:
        n_steps, batch_size: discriminator DP-SGD steps and expected Poisson batch size.
        synthetic_rows: rows to generate (default ⌈DP table size × (1 − holdout fraction)⌉).
        pair_marginals: ε share of DP joint histograms of discrete column pairs (helps rules
            on two discrete columns; ``TrainingConfig.pair_epsilon_share``).
        training_options: any other :class:`TrainingConfig` field by name.
    """

    n_steps: int | None = None
    batch_size: int | None = None
    synthetic_rows: int | None = None
    pair_marginals: float | None = None
    training_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.synthetic_rows is not None and not 1 <= self.synthetic_rows <= MAX_SYNTHETIC_ROWS:
            raise PrivacyParameterError(f"--synthetic-rows must be in [1, {MAX_SYNTHETIC_ROWS}], "
                                        f"got {self.synthetic_rows}")
        if self.pair_marginals is not None and not 0 < self.pair_marginals < 0.5:
            raise PrivacyParameterError(f"--pair-marginals (an ε share) must be in (0, 0.5), got {self.pair_marginals}")
        for key in self.training_options:
            if key in FIXED_SETTINGS:
                raise PrivacyParameterError(f"--train-option {key}: set it with its own option "
                                            f"(--epsilon, --delta, --accountant, --seed; public_rows comes from "
                                            f"the release's DP count)")

    def apply(self, config: TrainingConfig) -> TrainingConfig:
        """``config`` with these levers set (validated by TrainingConfig).

        Raises:
            PrivacyParameterError: a value of the wrong type or out of range, naming the option.
        """
        changes: dict[str, Any] = dict(self.training_options)
        if self.pair_marginals is not None:
            changes["pair_epsilon_share"] = self.pair_marginals
        if not changes:
            return config
        known = {f.name for f in dataclasses.fields(config)}  # the modality's own settings
        for key in changes:
            if key not in known:
                option = "--pair-marginals" if key == "pair_epsilon_share" else f"--train-option {key}"
                raise PrivacyParameterError(f"{option}: not a training setting of this kind of data (one of: "
                                            f"{', '.join(sorted(known - set(FIXED_SETTINGS)))})")
        for key, value in changes.items():
            expected = type(getattr(config, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                changes[key] = float(value)
            elif not isinstance(changes[key], expected) or (expected is int and isinstance(value, bool)):
                raise PrivacyParameterError(f"--train-option {key}: expected {expected.__name__}, got {value!r}")
        try:
            return dataclasses.replace(config, **changes)
        except PrivacyParameterError as e:
            raise PrivacyParameterError(f"--train-option: {e}") from None


def training_config(modality: Modality, n_train: int, metadata: Metadata, settings: ReleaseSettings, *,
                    epsilon: float, delta: float, seed: int, accountant: str,
                    condition_column: str | None) -> TrainingConfig:
    """The modality's defaults for the table (public quantities only), then the user's levers."""
    config = modality.default_config(n_train, epsilon=epsilon, delta=delta, seed=seed, accountant=accountant,
                                     n_steps=settings.n_steps, batch_size=settings.batch_size,
                                     metadata=metadata, condition_column=condition_column)
    return settings.apply(config)


def public_settings(config: TrainingConfig, settings: ReleaseSettings, *, n_synthetic: int,
                    holdout_fraction: float) -> dict[str, Any]:
    """The settings recorded in the manifest: every training knob (public), without the seed."""
    out = {k: v for k, v in config.to_dict().items() if k != "seed"}
    return out | {"synthetic_rows": n_synthetic, "holdout_fraction": holdout_fraction,
                  "user_options": sorted([*settings.training_options,
                                          *(["n_steps"] if settings.n_steps else []),
                                          *(["batch_size"] if settings.batch_size else []),
                                          *(["synthetic_rows"] if settings.synthetic_rows else []),
                                          *(["pair_marginals"] if settings.pair_marginals else [])])}


# ---------------------------------------------------------------- train and sample

def train(rows: pd.DataFrame, metadata: Metadata, config: TrainingConfig, *, modality: Modality,
          condition_column: str | None, reserved_entries: tuple[Any, ...], randomness: PrivateRandomness,
          progress: ProgressCallback = ignore_progress) -> Any:
    """Train the modality's DP generator on the training rows: the accounted (ε, δ)-DP mechanism.

    ``reserved_entries``: mechanisms that run later on the same rows (the DP gate), composed
    into the same accountant so that the total stays the requested ε.
    """
    return modality.fit(rows, metadata, config, condition_column=condition_column, progress=progress,
                        reserved_entries=reserved_entries, randomness=randomness)


def sample(model: Any, n_rows: int, *, modality: Modality, seed: int,
           progress: ProgressCallback = ignore_progress) -> pd.DataFrame:
    """``n_rows`` synthetic rows from the DP model (post-processing: no privacy cost)."""
    progress(ProgressEvent("sample", 0, n_rows))
    return modality.sample(model, n_rows, seed=seed)


# ---------------------------------------------------------------- audit

OPTIONAL_AUDITS = {
    "shadow": ("synthrelease.audits.shadow", "run_shadow_attack"),
    "empirical_privacy": ("synthrelease.audits.empirical_privacy", "run_one_run_audit"),
}


def optional_audit(audit: str) -> Callable[..., AuditResult]:
    """The entry point of an audit built as a separate module; a clear error when absent."""
    import importlib

    module, func = OPTIONAL_AUDITS[audit]
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        raise SynthreleaseError(f"the policy requires audit '{audit}', but audit {audit} is not available "
                                f"in this build ({module}.{func})") from None


def required_optional_audits(policy: Policy) -> list[str]:
    """The costly audits (shadow attack, empirical privacy audit) the policy requires."""
    return [a for a, on in (("shadow", policy.shadow_attack_required),
                            ("empirical_privacy", policy.empirical_audit_required)) if on]


def audit(parts: TrainHoldout, synthetic: pd.DataFrame, metadata: Metadata, policy: Policy, *, target: str | None,
          seed: int, config: TrainingConfig | None = None, modality: Modality | None = None,
          progress: ProgressCallback = ignore_progress) -> dict[str, AuditResult]:
    """Run the audits the policy asks for, plus the GDPR risks (anonymeter: singling out, linkability,
    inference), which run on every release. Reads private rows; results are INTERNAL (not DP).

    The gate never reads these exact figures (it reads the DP figures of
    :mod:`synthrelease.gate.dp_gate`), except two that read no private row: plausibility
    rules (on the synthetic rows) and the empirical privacy audit, which trains its canary
    run on the SYNTHETIC rows so that its verdict is post-processing of the DP release and
    costs no privacy. The shadow attack retrains on private rows; its figures stay internal.
    The audits that retrain get the modality's trainers, never an import of their own.
    """
    from synthrelease.audits.fidelity import run_fidelity
    from synthrelease.audits.membership import run_membership
    from synthrelease.audits.utility import run_utility

    train_rows, holdout = parts.train, parts.holdout
    records = (parts.train, parts.holdout, synthetic, metadata)  # the retraining audits' own (before any view)
    results: dict[str, AuditResult] = {}
    if modality is not None and modality.extra_audits is not None:
        progress(ProgressEvent(f"audit:{modality.name}"))
        results.update(_internal(f"{modality.name}_audits", lambda: modality.extra_audits(
            parts.train, parts.holdout, synthetic, metadata, seed=seed)))
    on = "rows"
    if modality is not None and modality.view is not None:  # the table audits run on the feature view
        (train_rows, _), (holdout, _), (synthetic, metadata) = (
            modality.view(train_rows, metadata), modality.view(holdout, metadata), modality.view(synthetic, metadata))
        on = f"the {modality.name} modality's public feature view (one row per record)"
    results.update(_gdpr_risks(train_rows, holdout, synthetic, metadata, target=target, seed=seed, on=on,
                               progress=progress))
    if policy.fidelity is not None:
        progress(ProgressEvent("audit:fidelity"))
        results.update(_internal("fidelity", lambda: {"fidelity": run_fidelity(
            train_rows, synthetic, metadata, seed=seed, progress=progress)}))
        release_mapped_pages()
    if policy.utility is not None and target is not None:
        progress(ProgressEvent("audit:utility"))
        results.update(_internal("utility", lambda: {"utility": run_utility(
            train_rows, holdout, synthetic, metadata, target=target, seed=seed)}))
        release_mapped_pages()
    if policy.membership is not None:
        progress(ProgressEvent("audit:membership"))
        results.update(_internal("membership", lambda: {"membership": run_membership(
            train_rows, holdout, synthetic, metadata, seed=seed)}))
        release_mapped_pages()
    if policy.rules:
        from synthrelease.audits.plausibility import run_plausibility

        progress(ProgressEvent("audit:plausibility"))
        results["plausibility"] = run_plausibility(synthetic, metadata, policy.rules)  # synthetic rows only
    for name in required_optional_audits(policy):
        results.update(_retraining_audit(name, records, config, modality, target=target, seed=seed,
                                         progress=progress))
    return results


def _gdpr_risks(train_rows: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                target: str | None, seed: int, on: str, progress: ProgressCallback) -> dict[str, AuditResult]:
    """Singling out, linkability and inference (anonymeter), run on every release whatever the policy:
    its cost is bounded (:mod:`synthrelease.audits.anonymeter_risks`). Reads PRIVATE rows: INTERNAL,
    not DP, and no policy clause reads it."""
    from synthrelease.audits.anonymeter_risks import run_anonymeter

    progress(ProgressEvent("audit:anonymeter"))
    return _internal("anonymeter", lambda: {"anonymeter": run_anonymeter(
        train_rows, holdout, synthetic, metadata, target=target, seed=seed, on=on)})


def _retraining_audit(name: str, records: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Metadata],
                      config: TrainingConfig | None, modality: Modality | None, *, target: str | None, seed: int,
                      progress: ProgressCallback) -> dict[str, AuditResult]:
    """The shadow attack or the empirical ε audit, on the records themselves (sequences, not their
    feature view), with the modality's trainer, canaries and distance space."""
    run = optional_audit(name)
    if config is None or modality is None:
        raise SynthreleaseError(f"audit {name} retrains: pass the training configuration and the modality")
    why = modality.retraining_refusal(config)
    if why:
        raise SynthreleaseError(f"audit {name}: {why}; remove it from the policy")
    train_rows, holdout, synthetic, metadata = records
    progress(ProgressEvent(f"audit:{name}"))
    if name == "shadow":  # retrains on PRIVATE rows: internal only
        return _internal("shadow", lambda: {"shadow": _shadow(
            run, train_rows, holdout, metadata, config, modality, target=target, seed=seed, progress=progress)})
    # the canary run's base table: the released synthetic rows (public), never private rows
    return {name: run(synthetic, metadata, config, seed=seed, condition_column=target,
                      trainer=modality.audit_trainer, canary_maker=modality.canaries,
                      encode=modality.distance_encoding, progress=progress)}


def _shadow(run: Callable[..., AuditResult], train_rows: pd.DataFrame, holdout: pd.DataFrame, metadata: Metadata,
            config: TrainingConfig, modality: Modality, *, target: str | None, seed: int,
            progress: ProgressCallback) -> AuditResult:
    """The shadow attack (retrains on PRIVATE rows; internal only), at the release's own sample rate
    when the configuration carries it (the rate derived from the DP counts)."""
    from synthrelease.gan.trainer import sample_rate_for

    n = getattr(config, "public_rows", 0) or len(train_rows)
    q = sample_rate_for(n, min(config.batch_size, n))
    synthesizer = modality.shadow_synthesizer(metadata, config, condition_column=target, sample_rate=q)
    return run(train_rows, holdout, metadata, config, seed=seed, condition_column=target,
               synthesizer=synthesizer, encode=modality.distance_encoding, progress=progress)


def _internal(name: str, run: Callable[[], dict[str, AuditResult]]) -> dict[str, AuditResult]:
    """Run an audit that READS PRIVATE ROWS; its failure is recorded, never raised.

    Such an audit is not DP, so it must not decide whether a bundle exists: an exception
    (all holdout labels missing, too few holdout tiles, ...) becomes an internal result with
    no metrics and the error in its details, and the release goes on to the DP gate, whose
    verdict reads DP figures only. Interrupts (Ctrl-C, SIGTERM) still stop the release.
    """
    t = time.perf_counter()
    try:
        return run()
    except Exception as e:
        return {name: AuditResult(name, {}, {"error": f"{type(e).__name__}: {e}",
                                             "note": "this internal audit failed; the DP gate does not read it"},
                                  runtime_s=time.perf_counter() - t)}


# ---------------------------------------------------------------- gate

@dataclass(frozen=True)
class GateResult:
    """The verdict and the DP figures it was decided on (``figures[k].exact`` is INTERNAL)."""

    decision: GateDecision
    figures: dict[str, Any]


def gate(policy: Policy, parts: TrainHoldout, synthetic: pd.DataFrame, metadata: Metadata, *, privacy: Any,
         audits: dict[str, AuditResult], target: str | None, gate_entry: Any, randomness: PrivateRandomness, seed: int,
         epsilon_spent_before: float, sizes: NoisySizes, modality: Modality | None = None,
         progress: ProgressCallback = ignore_progress) -> GateResult:
    """Release the figures the policy's clauses compare (one Gaussian mechanism, ``gate_entry``,
    already in the accountant) and judge every clause on them: the verdict is post-processing.

    Each figure is computed over the public slot counts of ``sizes`` (the release's DP part
    sizes; gate/dp_gate.py), so no noise scale depends on a private count. With a modality
    that has a feature view, the figures are computed on the view (public bounds, one row per
    record) and exact copies on the modality's copy keys. Reads private rows."""
    from synthrelease.gate import dp_gate

    progress(ProgressEvent("audit:dp-gate"))
    figures: dict[str, Any] = {}
    if gate_entry is not None:
        names = dp_gate.figures_needed(policy)
        exact = _exact_gate_figures(names, parts, synthetic, metadata, target=target, seed=seed, sizes=sizes,
                                    randomness=randomness, modality=modality)
        release_mapped_pages()
        k_train, k_holdout = sizes.gate_slots()
        public = dp_gate.public_sensitivities(names, n_train_slots=k_train, n_holdout_slots=k_holdout)
        pc = policy.privacy
        figures = dp_gate.release_figures(exact, names, gate_entry, randomness, sensitivities=public,
                                          allocation=pc.audit_noise_allocation, margin=pc.audit_design_margin,
                                          clear_by_stds=pc.audit_clear_by_stds)
    decision = evaluate_gate(policy, epsilon=privacy.epsilon, delta=privacy.delta, accountant=privacy.accountant,
                             n_train_rows=sizes.train, dp_figures=dp_gate.noisy_values(figures), audits=audits,
                             epsilon_spent_before=epsilon_spent_before,
                             figure_stds={k: f.noise_std for k, f in figures.items()})
    return GateResult(decision, figures)


def _exact_gate_figures(names: list[str], parts: TrainHoldout, synthetic: pd.DataFrame, metadata: Metadata, *,
                        target: str | None, seed: int, sizes: NoisySizes, randomness: PrivateRandomness,
                        modality: Modality | None) -> dict[str, Any]:
    """The exact gate figures over the public slots (INTERNAL: reads private rows). An empty
    synthetic table has no stand-in record: every figure is then not computable."""
    from synthrelease.gate import dp_gate

    if len(synthetic) == 0:
        return {}
    k_train, k_holdout = sizes.gate_slots()
    stand_in = synthetic.iloc[:1]
    # one row per person (each person's first tile when several are kept): the figures'
    # sensitivities are per record
    train = dp_gate.slot_rows(first_row_per_person(parts.train, metadata), k_train, stand_in, randomness,
                              "gate-slots-train")
    holdout = dp_gate.slot_rows(first_row_per_person(parts.holdout, metadata), k_holdout, stand_in, randomness,
                                "gate-slots-holdout", blank=target)
    rows, meta, train_rows = synthetic, metadata, train
    if modality is not None and modality.view is not None:  # per-record features: sensitivities hold
        (train, _), (holdout, _), (rows, meta) = (modality.view(train, metadata), modality.view(holdout, metadata),
                                                  modality.view(synthetic, metadata))
    exact = dp_gate.compute_figures(names, train, holdout, rows, meta, target=target, seed=seed, slotted=True)
    if "exact_copy_share" in names and modality is not None and modality.copy_keys is not None:
        from synthrelease.audits.dp_figures import exact_copy_share_by_key

        exact["exact_copy_share"] = exact_copy_share_by_key(modality.copy_keys(train_rows, metadata),
                                                            modality.copy_keys(synthetic, metadata))
    return exact


# ---------------------------------------------------------------- bundle

def bundle(out_dir: str | os.PathLike[str], *, synthetic: pd.DataFrame, fmt: TableFormat, release_info: dict[str, Any],
           text_files: dict[str, str], private_key: Any, archive: bool, notes: list[str], metadata: Metadata,
           modality: Modality | None = None) -> Path:
    """Write and sign the bundle: the synthetic rows as CSV and Parquet (plus the input's own
    format when it is TSV or AnnData, and the modality's files, e.g. FASTA), the release cards,
    ``croissant.json`` (the bundle in Croissant 1.1 with RAI fields, from the public metadata, the
    release facts and the files) and the signed manifest. Only DP
    outputs and public inputs go in. An archive that cannot be written leaves the signed
    folder standing and a note in ``notes``."""
    from synthrelease.bundle.croissant import croissant_json
    from synthrelease.bundle.writer import archive_path, write_archive, write_bundle

    writers: dict[str, Callable[[Path], Any]] = {}
    if fmt.kind in ("tsv", "h5ad"):
        writers[f"synthetic{fmt.suffix}"] = lambda path: write_table_as(path, synthetic, fmt)
    if modality is not None and modality.outputs is not None:
        writers.update(modality.outputs(synthetic, metadata))
    table = synthetic
    if modality is not None and modality.bundle_table is not None:
        table = modality.bundle_table(synthetic, metadata)

    def describe(folder: Path, release: dict[str, Any], digests: dict[str, str]) -> bytes:
        return croissant_json(folder, metadata=metadata, release=release, table=table, digests=digests)

    out = write_bundle(out_dir, tables={"synthetic": table}, text_files=text_files, release=release_info,
                       private_key=private_key, writers=writers, describe=describe)
    if archive:
        try:
            write_archive(out)
        except OSError as e:  # the signed bundle is complete: the release stands, the archive does not
            notes.append(f"bundle complete at {out}, but its archive {archive_path(out)} could not be "
                         f"written ({e.strerror or type(e).__name__}); rerun `tar` yourself or free space")
    return out
