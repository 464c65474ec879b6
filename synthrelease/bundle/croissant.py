"""``croissant.json``: the bundle described in MLCommons Croissant 1.1 with its Responsible-AI (RAI) vocabulary.

PUBLIC: every value comes from three public sources, and from nothing else:

* the public metadata (column types, declared or DP-estimated domains, target, licence, creator);
* the release facts of the signed manifest (ε, δ, accountant, privacy unit, the DP mechanisms, the
  DP part sizes, the DP gate's NOISY figures with their noise std, the policy's name and SHA-256,
  the signer) — never an exact figure computed on private rows, never an exact private count;
* the bundle's own files (names, sizes, SHA-256) and the synthetic table's column names and dtypes
  (the synthetic row count is public: it is the DP output's size).

The document is built with ``mlcroissant``'s Python API (so every property is one the library
models: schema.org, ``cr:`` and ``rai:`` names, never invented keys), and the exact JSON written is
read back with :meth:`mlcroissant.Metadata.from_json`: an error refuses the bundle. Two properties
are passed as mlcroissant's ``extra_properties``: ``isLiveDataset: false`` (mlcroissant writes it
only when true) and ``rai:dataManipulationProtocol`` (mlcroissant 1.1.1 models that RAI term under
the misspelt ``rai:dataDataManipulationProtocol``). ``croissant.json`` is written before the
manifest, so the manifest lists it with its SHA-256 and the Ed25519 signature covers it.

Cost: mlcroissant spends about 5 ms per column building and re-reading the document (2,000
columns: 9 s; 10,000 columns: 51 s and a 695 MiB peak), negligible beside training.

A partner reads it with ``mlcroissant.Dataset(jsonld="<bundle>/croissant.json")`` and iterates the
record set ``synthetic`` (``synthetic.csv``; mlcroissant checks the file's SHA-256 as it reads it).
Limits (mlcroissant 1.1.1): it has no reader for FASTA, NumPy ``.npz`` or AnnData ``.h5ad``, so
those files are described as FileObjects only (format, size, SHA-256). FASTA and ``.h5ad`` hold the
same records as the CSV (``sameAs``); the tiles' pixels live only in ``synthetic.npz`` (the record
set holds each tile's index in it and its label).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from synthrelease.errors import BundleError
from synthrelease.metadata.schema import ColumnSpec, Metadata
from synthrelease.privacy.claims import ceil_decimals

CROISSANT = "croissant.json"
CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
RECORD_SET = "synthetic"
RECORD_FILE = "synthetic.csv"
"""The record set's source: the one bundle file every release holds that mlcroissant reads."""

_FORMATS = {".csv": "text/csv", ".tsv": "text/tab-separated-values", ".parquet": "application/x-parquet",
            ".h5ad": "application/x-hdf5", ".fasta": "text/x-fasta", ".npz": "application/zip",
            ".md": "text/markdown", ".html": "text/html"}
"""Encoding format by suffix (MIME types; ``.npz`` is a ZIP archive of ``.npy`` arrays, ``.h5ad`` an HDF5 file)."""

_SAME_RECORDS = (".parquet", ".tsv", ".h5ad", ".fasta")
"""Files holding the same records as ``synthetic.csv`` in another format (``sameAs``)."""

_FILE_TEXT = {
    ".csv": "The synthetic records: comma-separated, one header row; the record set 'synthetic' reads this file.",
    ".parquet": "The same synthetic records as synthetic.csv, as Parquet (typed columns).",
    ".tsv": "The same synthetic records as synthetic.csv, tab-separated (the input's format).",
    ".h5ad": ("The same synthetic records as synthetic.csv, as AnnData (HDF5: gene columns in X, the others in "
              "obs; synthetic cell ids). mlcroissant has no reader for it: read it with anndata."),
    ".fasta": ("The synthetic sequences of synthetic.csv as FASTA, one record each (header: a synthetic id and "
               "the label). mlcroissant has no reader for it: read it with any FASTA reader."),
    ".npz": ("The synthetic tiles as a NumPy .npz archive (a ZIP of .npy arrays): 'images', uint8 "
             "[n, height, width, channels], and 'labels' (text) in the same order; record i of the record set "
             "'synthetic' (tile_index = i) is tile i. mlcroissant has no reader for it: read it with numpy.load."),
    ".md": "The public release card (Markdown): the privacy guarantee, the policy and the DP gate's noisy figures.",
    ".html": "The public release card (self-contained HTML): the same content as RELEASE_CARD.md.",
}

_METHODS = {
    "table": ("a conditional generative adversarial network (DP-GAN): its discriminator trained with DP-SGD "
              "(Opacus) on the private rows, the generator trained only through it"),
    "autoregressive": ("a DP autoregressive sequence model (letters in order) trained with DP-SGD (Opacus), "
                       "starting from DP letter-transition counts"),
    "positional_gan": "a DP-GAN over sequence positions, its discriminator trained with DP-SGD (Opacus)",
    "dcgan": "a DP convolutional GAN (DCGAN), its discriminator trained with DP-SGD (Opacus)",
    "sim_pe": ("Private Evolution of a public tissue simulator's tiles by DP votes of the private tiles (Sim-PE), "
               "or a DP convolutional GAN when the DP reach check finds the tiles beyond the simulator"),
}
"""What generated the records, by the manifest's ``training.generator`` (tables: by modality)."""

_NOUNS = {"table": "records", "sequence": "sequences", "image": "image tiles"}

_SPDX_ID = re.compile(r"[A-Za-z][A-Za-z0-9.+-]*\d[A-Za-z0-9.+-]*")
"""An SPDX licence identifier with a version (``CC-BY-4.0``, ``Apache-2.0``, ``GPL-3.0-only``); a bare word
(``MIT``, ``proprietary``) stays text rather than become a guessed URL."""


def croissant_json(bundle_dir: Path, *, metadata: Metadata, release: Mapping[str, Any], table: pd.DataFrame,
                   published: datetime | None = None, digests: Mapping[str, str] | None = None) -> bytes:
    """The bytes of ``croissant.json`` for the staged bundle ``bundle_dir``, validated by mlcroissant.

    Args:
        bundle_dir: the bundle folder holding every file but croissant.json, the manifest and its signature.
        metadata: the PUBLIC metadata the release used (after training: DP-estimated bounds, if any).
        release: the manifest's release facts (public inputs and DP outputs only; see the module docstring).
        table: the synthetic table written as ``synthetic.csv``: only its column names and dtypes are read.
        published: the release date (default: now, UTC).
        digests: SHA-256 of the bundle's files already computed while staging (the rest are hashed here).

    Raises:
        BundleError: mlcroissant finds an error in the document.
    """
    import mlcroissant as mlc

    ctx = mlc.Context(conforms_to=CROISSANT_1_1)
    names = _bundle_files(bundle_dir)
    if RECORD_FILE not in names:
        raise BundleError(f"{bundle_dir}: {RECORD_FILE} is missing; croissant.json describes its records")
    distribution = [_file_object(mlc, ctx, bundle_dir, rel, (digests or {}).get(rel)) for rel in names]
    signer = _signer(release)
    creator = metadata.creator or signer
    try:
        doc = mlc.Metadata(
            ctx=ctx, name=metadata.name, description=_description(metadata, release),
            creators=[mlc.Organization(ctx=ctx, name=creator)] if creator else [],
            publisher=[mlc.Organization(ctx=ctx, name=signer)] if signer else [],
            license=[_licence(metadata.license)] if metadata.license else None,
            date_published=published or datetime.now(UTC),
            keywords=["synthetic data", "differential privacy", release["dataset"]["modality"]],
            distribution=distribution, record_sets=[_record_set(mlc, ctx, metadata, table)],
            # isLiveDataset: a fixed, signed release (mlcroissant writes the property only when true);
            # mlcroissant 1.1.1 spells rai:dataManipulationProtocol "rai:dataDataManipulationProtocol"
            extra_properties={"isLiveDataset": False, "rai:dataManipulationProtocol": _manipulation(release)},
            **_rai(metadata, release),
        ).to_json()
    except mlc.ValidationError as e:
        raise BundleError(f"croissant.json: mlcroissant refused the description: {_first_line(e)}") from None
    data = (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    check_croissant(data)
    return data


def check_croissant(data: bytes) -> Any:
    """Read ``croissant.json`` bytes back with mlcroissant; returns its :class:`mlcroissant.Metadata`.

    Raises:
        BundleError: not JSON, or mlcroissant reports an error (warnings, e.g. no ``version``, pass).
    """
    import mlcroissant as mlc

    try:
        return mlc.Metadata.from_json(ctx=mlc.Context(), json_=json.loads(data))
    except (ValueError, mlc.ValidationError) as e:
        raise BundleError(f"croissant.json: mlcroissant refused the description: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    lines = [ln.strip(" -") for ln in str(e).splitlines() if ln.strip(" -")]
    return lines[1] if len(lines) > 1 and lines[0].startswith("Found the following") else (lines or [""])[0]


def _bundle_files(bundle_dir: Path) -> list[str]:
    """The bundle's files as croissant.json lists them: all but itself, the manifest and the signature."""
    from synthrelease.bundle.manifest import bundle_files

    return [rel for rel in bundle_files(bundle_dir) if rel != CROISSANT]


def _file_object(mlc: Any, ctx: Any, bundle_dir: Path, rel: str, digest: str | None = None) -> Any:
    """One bundle file: content URL relative to the bundle, MIME type, size in bytes and SHA-256
    (``digest`` when already computed)."""
    from synthrelease.io.files import sha256_file

    path = bundle_dir / rel
    suffix = path.suffix.lower()
    same = [RECORD_FILE] if suffix in _SAME_RECORDS else None
    return mlc.FileObject(ctx=ctx, id=rel, name=rel, content_url=rel, sha256=digest or sha256_file(path),
                          content_size=f"{path.stat().st_size} B",
                          encoding_formats=[_FORMATS.get(suffix, "application/octet-stream")],
                          description=_FILE_TEXT.get(suffix, "A file of the release bundle."), same_as=same)


def _field_id(column: str, taken: set[str]) -> str:
    """``synthetic/<column, percent-encoded>``: JSON-LD ids hold no space, '#', '/' or '?' (mlcroissant)."""
    base = f"{RECORD_SET}/{urllib.parse.quote(column, safe='-._~')}"
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base}~{k}"
    taken.add(out)
    return out


def _record_set(mlc: Any, ctx: Any, metadata: Metadata, table: pd.DataFrame) -> Any:
    """The record set ``synthetic``: one field per column of synthetic.csv, typed from the public metadata."""
    taken: set[str] = set()
    fields = []
    for label in table.columns:
        column = str(label)  # as synthetic.csv's header writes it
        types, text = _field_type(mlc, metadata.columns.get(column), table[label].dtype)
        if column == metadata.target:
            types.append(mlc.constants.ML_COMMONS_V_1_0.Label)
            text = f"The label (target) column. {text}"
        fields.append(mlc.Field(ctx=ctx, id=_field_id(column, taken), name=column, description=text,
                                data_types=types, source=mlc.Source(ctx=ctx, file_object=RECORD_FILE,
                                                                    extract=mlc.Extract(ctx=ctx, column=column))))
    return mlc.RecordSet(ctx=ctx, id=RECORD_SET, name=RECORD_SET, fields=fields,
                         description="The synthetic records (no record is a real one), from synthetic.csv.")


def _field_type(mlc: Any, spec: ColumnSpec | None, dtype: Any) -> tuple[list[Any], str]:
    """The Croissant data type of a column and a sentence on its public domain."""
    dt = mlc.DataType
    if spec is None:  # a column the modality adds (e.g. an image tile's index in synthetic.npz)
        kind = "integer" if pd.api.types.is_integer_dtype(dtype) else \
            "float" if pd.api.types.is_float_dtype(dtype) else "boolean" if pd.api.types.is_bool_dtype(dtype) else ""
        types = {"integer": dt.INTEGER, "float": dt.FLOAT, "boolean": dt.BOOL}.get(kind, dt.TEXT)
        return [types], ("The record's index in the bundle's other files (an image tile's in synthetic.npz)."
                         if kind == "integer" else "")
    text = [spec.description.rstrip(".") + "." if spec.description else ""]
    if spec.is_numerical and spec.min is not None and spec.max is not None:
        bounds = spec.model_dump(mode="json", include={"min", "max"})  # dates as ISO strings
        lo, hi = (f"{b:g}" if isinstance(b, float) else str(b) for b in (bounds["min"], bounds["max"]))
        text.append(f"{spec.type.capitalize()} within the public bounds [{lo}, {hi}].")
    elif spec.type == "categorical" and spec.categories:
        shown = [str(c) for c in spec.declared_categories()[:50]]
        more = f", … ({len(spec.categories)} in all)" if len(spec.categories) > 50 else ""
        text.append(f"Categorical; public categories: {', '.join(shown)}{more}.")
    elif spec.type == "categorical":
        text.append("Categorical; categories found with differential privacy (rarer values merged into "
                    f"'{spec.dp_categories.other_label if spec.dp_categories else '<other>'}').")
    elif spec.type == "sequence":
        text.append(f"Sequence over the alphabet '{spec.alphabet}', {spec.min_length}–{spec.max_length} letters.")
    if spec.is_temporal and spec.format is not None:
        text.append(f"Written with the strftime format '{spec.format}' (read as text).")
    if spec.nullable:
        text.append("May be empty (a synthetic missing value).")
    types = {"integer": dt.INTEGER, "float": dt.FLOAT, "boolean": dt.BOOL,
             "date": dt.DATE if spec.format is None else dt.TEXT,
             "datetime": dt.DATETIME if spec.format is None else dt.TEXT}.get(spec.type, dt.TEXT)
    return [types], " ".join(t for t in text if t)


def _licence(licence: str) -> str:
    """A URL as given; a versioned SPDX identifier (``CC-BY-4.0``) as its spdx.org URL; other text as given."""
    if licence.startswith(("https://", "http://")) or not _SPDX_ID.fullmatch(licence):
        return licence
    return f"https://spdx.org/licenses/{licence}.html"


def _signer(release: Mapping[str, Any]) -> str | None:
    """The policy's ``signing.signer`` (the signing person or organisation), if the policy names one."""
    signing = (release.get("policy", {}).get("document") or {}).get("signing") or {}
    return signing.get("signer")


def _guarantee(release: Mapping[str, Any]) -> str:
    """"(ε, δ)-DP with ε = …": the manifest's ε rounded up at 3 decimals."""
    p = release["privacy"]
    return (f"(ε, δ)-differential privacy, ε = {ceil_decimals(float(p['epsilon']), 3):.3f}, "
            f"δ = {float(p['delta']):g} ({p['accountant']} accountant; privacy unit: {p['privacy_unit']})")


def _method(release: Mapping[str, Any]) -> str:
    generator = (release.get("training") or {}).get("generator") or release["dataset"]["modality"]
    return _METHODS.get(generator, "a differentially private generative model")


def _description(metadata: Metadata, release: Mapping[str, Any]) -> str:
    ds, policy = release["dataset"], release["policy"]
    noun = _NOUNS.get(ds["modality"], "records")
    licence = f"Licence: {metadata.license}." if metadata.license else "Licence: none declared by the data steward."
    return (f"{ds['synthetic_rows']} synthetic {noun} of '{metadata.name}', sampled from {_method(release)}. "
            f"synthrelease {release['tool']['version']} trained it on a private dataset with "
            f"{_guarantee(release)}. No record is a real record. Released through policy '{policy['name']}' "
            f"(SHA-256 {policy['sha256']}), every clause of which passed on differentially private figures. "
            f"{licence}")


def _mechanisms(release: Mapping[str, Any]) -> list[str]:
    out = []
    for m in release["privacy"].get("mechanisms", []):
        out.append(f"{m['label']}: noise multiplier {float(m['noise_multiplier']):.4g}, sampling rate "
                   f"{float(m['sample_rate']):g}, {int(m['steps'])} step(s)")
    return out


def _figures(release: Mapping[str, Any]) -> str:
    """The DP gate's figures: noisy value and noise std only (the exact values are never in a bundle)."""
    parts = []
    for name, fig in sorted(release.get("dp_figures", {}).items()):
        value, std = fig.get("value"), fig.get("noise_std")
        shown = "not computable" if value is None else f"{float(value):.4f}"
        parts.append(f"{name} = {shown} (Gaussian noise std {float(std):.3g})" if std is not None
                     else f"{name} = {shown}")
    return "; ".join(parts)


def _manipulation(release: Mapping[str, Any]) -> str:
    """``rai:dataManipulationProtocol``: the DP guarantee, what it covers and every accounted mechanism."""
    covers = release["privacy"].get("covers")
    return (f"The generator was trained with {_guarantee(release)}." + (f" It covers {covers}." if covers else "")
            + " Accounted mechanisms: " + "; ".join(_mechanisms(release)) + ".")


def _rai(metadata: Metadata, release: Mapping[str, Any]) -> dict[str, Any]:
    """The Croissant RAI properties (``rai:``) of a DP synthetic release, as mlcroissant's keyword arguments."""
    ds, policy = release["dataset"], release["policy"]
    sizes = release.get("dp_sizes") or {}
    unit = metadata.privacy_unit_column
    steps = []
    if unit is not None:
        steps.append(f"Each person's first {metadata.rows_per_person} record(s) kept (person id column '{unit}'), "
                     "any further ones dropped, so that the guarantee protects the person.")
    steps += [
        "The private records were checked against the public metadata and encoded with its public domains only "
        "(declared bounds, category lists, alphabets, tile shapes; values clipped to the bounds).",
        "Split into training and holdout parts by a secret coin per record; the parts' sizes were released once "
        "with Gaussian noise"
        + (f" (noisy sizes: training {sizes['train']}, holdout {sizes['holdout']})"
           if "train" in sizes and "holdout" in sizes else "") + "; no exact count is published.",
        f"Generator trained on the training part: {_method(release)}.",
        f"{ds['synthetic_rows']} records sampled from the trained generator (post-processing: no privacy cost).",
    ]
    nullable = [c for c in metadata.model_columns if metadata.columns[c].nullable]
    rai: dict[str, Any] = {
        "data_collection": (
            "No record was collected for this dataset: every record is synthetic, sampled from a generative "
            f"model trained with {_guarantee(release)}, on a private dataset held by the data steward. The private "
            "records are not in this release."),
        "data_collection_type": ["Synthetic data generation (differentially private generative model)"],
        "data_collection_raw_data": (
            "A private dataset held by the data steward, described here only by its public metadata (column types "
            "and publicly declared domains), never by figures of its rows beyond the differentially private ones "
            "listed in this description."),
        "data_preprocessing_protocol": steps,
        "personal_sensitive_information": [
            "Synthetic records: no record is a real person's record, and none was copied from the private data.",
            f"Each person's influence is bounded by {_guarantee(release)}: whether or not one person's record "
            "was in the private data changes the probability of any outcome of this release by at most a factor "
            "e^ε, except with probability δ.",
            "A synthetic record may still resemble a real person by chance; do not use it to make decisions "
            "about individuals.",
        ],
        "data_limitations": [
            "Synthetic data: the statistics of the private data are approximated up to the DP noise and the "
            "model's error; rare categories, small subgroups and extreme values may be missing or distorted.",
            "The DP release gate's figures (differentially private, released with Gaussian noise of the std "
            f"shown; exact values are not published): {_figures(release) or 'none'}.",
        ],
        "data_release_maintenance_plan": (
            f"A fixed release, not a live dataset: released once through policy '{policy['name']}' (SHA-256 "
            f"{policy['sha256']}), every clause of which passed on differentially private figures. manifest.json "
            "lists every file's SHA-256 (this file's too) and is signed with Ed25519"
            + (f" (signer key SHA-256 {release['signer']['public_key_sha256']})" if "signer" in release else "")
            + "; check it with `synthrelease verify <bundle> --public-key <steward's public key>`. A new release "
            "is a new bundle and spends further privacy budget."),
    }
    if metadata.target is not None:
        rai["data_annotation_protocol"] = [
            f"No record was annotated by people: the label column '{metadata.target}' was sampled with the "
            "record by the same differentially private generator."]
    if nullable:
        rai["data_collection_missing_data"] = (
            f"Empty cells in {', '.join(nullable)} are synthetic missing values: the missingness of each nullable "
            "column was modelled and sampled. Other columns have no missing values.")
    return rai
