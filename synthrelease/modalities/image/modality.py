"""The image modality: what image tiles bring to the one release pipeline.

Rows are tiles: the image column holds each tile's raw 8-bit pixels (``bytes`` of
height × width × channels), the label column its class. The model is the DP conditional
DCGAN of :mod:`synthrelease.modalities.image.model`; the gate and the table audits run on a
public-bounded feature view of each tile (:mod:`synthrelease.modalities.image.features`: one row per
tile, so the DP figures' sensitivities hold), exact copies are counted on the pixels; the
image audits (feature-space KID and PRDC, nearest neighbours, SSIM near copies, a
membership attack, TSTR) go to the internal report; the bundle holds ``synthetic.npz``.

Privacy unit: one tile, or with ``privacy_unit_column`` one person: their first
``max_rows_per_person`` (m) tiles are kept and bounded together (user-level DP-SGD, the
embedding's 1/m weights, per-person split coins, the gate on each person's first tile).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.errors import DataValidationError, SynthreleaseError
from synthrelease.metadata.schema import Metadata, canonical_category
from synthrelease.modalities.base import Modality, ModalityModel, metadata_without, with_label

UNIT_NOTE = ("privacy unit: one tile, or one person (privacy_unit_column) with at most max_rows_per_person "
             "tiles bounded together")


ImageModel = ModalityModel
"""A DP tile generator with the dataset's public metadata."""


def _spec(metadata: Metadata) -> tuple[str, int, int]:
    column = metadata.image_column
    assert column is not None
    spec = metadata.columns[column]
    return column, int(spec.height or 0), int(spec.channels or 0)


def tiles_of(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """The image column as uint8 [n, size, size, channels]."""
    column, size, channels = _spec(metadata)
    raw = b"".join(df[column].tolist())
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(df), size, size, channels)


def frame_of(tiles: np.ndarray, labels: list[Any] | None, metadata: Metadata) -> pd.DataFrame:
    """Tiles (and labels) as the modality's table."""
    column, _, _ = _spec(metadata)
    out = pd.DataFrame({column: [t.tobytes() for t in np.ascontiguousarray(tiles, dtype=np.uint8)]})
    if metadata.target is not None and labels is not None:
        out[metadata.target] = labels
    return out


def _label_index(df: pd.DataFrame, metadata: Metadata) -> tuple[np.ndarray | None, int]:
    if metadata.target is None:
        return None, 0
    cats = metadata.columns[metadata.target].canonical_categories()
    return np.array([cats.index(canonical_category(v)) for v in df[metadata.target]]), len(cats)


def default_config(n_rows: int, *, epsilon: float, delta: float, seed: int, accountant: str = "rdp",
                   n_steps: int | None = None, batch_size: int | None = None, metadata: Metadata | None = None,
                   condition_column: str | None = None) -> Any:
    """Settings from public quantities: expected batch ≈ n/10 (16…128), 500 DP-SGD steps; the
    generator is Sim-PE when the image column declares its stain (the simulator knows it), else
    the DP DCGAN."""
    from synthrelease.modalities.image.model import ImageTrainingConfig

    stain = _stain(metadata) if metadata is not None else None
    return ImageTrainingConfig(target_epsilon=epsilon, target_delta=delta, accountant=accountant, seed=seed,
                               batch_size=batch_size or max(16, min(128, n_rows // 10)), n_steps=n_steps or 500,
                               generator="sim_pe" if stain is not None else "dcgan")


def _stain(metadata: Metadata) -> str | None:
    column = metadata.image_column
    return None if column is None else metadata.columns[column].stain


def fit(train: pd.DataFrame, metadata: Metadata, config: Any, *, condition_column: str | None = None,
        progress: Any = None, reserved_entries: tuple[Any, ...] = (), randomness: Any = None) -> ImageModel:
    """The (ε, δ)-DP generator the config names: the conditional DCGAN
    (:mod:`synthrelease.modalities.image.model`) or Sim-PE over the tissue simulator
    (:mod:`synthrelease.modalities.image.private_evolution`). Reads the private tiles."""
    from synthrelease.modalities.image.model import train_tile_gan
    from synthrelease.progress import ignore_progress

    labels, n_classes = _label_index(train, metadata)
    unit = metadata.privacy_unit_column
    units = train[unit].to_numpy() if unit is not None and metadata.rows_per_person > 1 else None
    if getattr(config, "generator", "dcgan") == "sim_pe":
        return ImageModel(_evolve(tiles_of(train, metadata), labels, n_classes, config, metadata, units,
                                  reserved_entries, randomness, progress or ignore_progress), metadata)
    model = train_tile_gan(tiles_of(train, metadata), labels, n_classes, config, units=units,
                           max_tiles_per_unit=metadata.rows_per_person, reserved_entries=reserved_entries,
                           randomness=randomness, progress=progress or ignore_progress)
    return ImageModel(model, metadata)


def _evolve(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int, config: Any, metadata: Metadata,
            units: np.ndarray | None, reserved_entries: tuple[Any, ...], randomness: Any, progress: Any) -> Any:
    """Sim-PE on the tiles (the DCGAN if the DP reach check finds them beyond the simulator), with the
    person cap and the public person count of the DCGAN's checks."""
    from synthrelease.modalities.image.model import _privacy_units, train_tile_gan
    from synthrelease.modalities.image.private_evolution import evolve_within_reach
    from synthrelease.privacy.randomness import PrivateRandomness

    stain = _stain(metadata)
    if stain is None:
        raise SynthreleaseError("generator sim_pe needs the image column's public 'stain' (he, ihc_dab or "
                                "fluorescence) in the metadata")
    persons = _privacy_units(len(tiles), units, metadata.rows_per_person, config)
    secret = randomness or PrivateRandomness()

    def dcgan(reserved: tuple[Any, ...]) -> Any:  # out of the simulator's reach: the DP DCGAN
        return train_tile_gan(tiles, labels, n_classes, dataclasses.replace(config, generator="dcgan"), units=units,
                              max_tiles_per_unit=metadata.rows_per_person, reserved_entries=reserved,
                              randomness=secret, progress=progress)

    return evolve_within_reach(tiles, labels, n_classes, config, stain=stain, public_units=persons.public_count,
                               tiles_per_unit=persons.tiles_per_unit, fallback=dcgan,
                               reserved_entries=reserved_entries, randomness=secret, progress=progress)


def sample(model: ImageModel, n_rows: int, *, seed: int) -> pd.DataFrame:
    """``n_rows`` synthetic tiles and labels (post-processing of the DP model)."""
    from synthrelease.modalities.image.model import sample_tiles
    from synthrelease.modalities.image.private_evolution import EvolvedTiles, sample_evolved

    if isinstance(model.inner, EvolvedTiles):
        tiles, idx = sample_evolved(model.inner, n_rows, seed=seed)
    else:
        tiles, idx = sample_tiles(model.inner, n_rows, seed=seed)
    labels = None
    if model.metadata.target is not None and idx is not None:
        declared = model.metadata.columns[model.metadata.target].declared_categories()
        labels = [declared[i] for i in idx]
    return frame_of(tiles, labels, model.metadata)


def unavailable(*args: Any, **kwargs: Any) -> Any:
    raise SynthreleaseError("the shadow attack and the empirical ε audit are not available for image releases yet")


def validate(table: pd.DataFrame, metadata: Metadata, source: str) -> pd.DataFrame:
    """Every tile has exactly the declared shape; labels are declared categories."""
    from synthrelease.validation.expectations import validate_table

    column, size, channels = _spec(metadata)
    if column not in table.columns:
        raise DataValidationError(f"{source}: the image column {column!r} is missing")
    want = size * size * channels
    bad = [i for i, v in enumerate(table[column]) if not isinstance(v, (bytes, bytearray)) or len(v) != want]
    if bad:
        raise DataValidationError(f"{source}: column {column!r}, row {bad[0] + 1}: not a {size}×{size}×{channels} "
                                  f"8-bit tile; {len(bad)} bad row(s) in all")
    rest = metadata_without(metadata, column)
    if rest is not None:
        validate_table(table.drop(columns=[column]), rest, source=source)
    return table


def view(df: pd.DataFrame, metadata: Metadata) -> tuple[pd.DataFrame, Metadata]:
    """The public-bounded feature view (one row per tile) and its metadata."""
    from synthrelease.modalities.image.features import feature_view, view_columns

    _, _, channels = _spec(metadata)
    columns = view_columns(channels)
    frame = feature_view(tiles_of(df.reset_index(drop=True), metadata)) if len(df) else pd.DataFrame(
        columns=list(columns))
    return with_label(frame, columns, df, metadata)


def view_metadata(metadata: Metadata) -> Metadata:
    """The feature view's metadata alone (to check plausibility rules before training)."""
    _, size, channels = _spec(metadata)
    example = frame_of(np.zeros((1, size, size, channels), dtype=np.uint8),
                       [metadata.columns[metadata.target].declared_categories()[0]] if metadata.target else None,
                       metadata)
    return view(example, metadata)[1]


def copy_keys(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """Exact copies: identical pixels."""
    column, _, _ = _spec(metadata)
    return df[column].to_numpy()


def extra_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                 seed: int) -> dict[str, Any]:
    """The image audits (INTERNAL: they read private tiles)."""
    from synthrelease.modalities.image.audits import run_image_audits

    def labels(df: pd.DataFrame) -> Any:
        return df[metadata.target].astype(str).to_numpy() if metadata.target else None

    return {"image": run_image_audits(tiles_of(train, metadata), tiles_of(holdout, metadata),
                                      tiles_of(synthetic, metadata), train_labels=labels(train),
                                      holdout_labels=labels(holdout), synthetic_labels=labels(synthetic), seed=seed)}


def outputs(synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """``synthetic.npz``: ``images`` uint8 [n, size, size, channels] and ``labels`` (strings)."""
    from synthrelease.io.files import atomic_output

    def write(path: Path) -> Path:
        arrays: dict[str, np.ndarray] = {"images": tiles_of(synthetic, metadata)}
        if metadata.target is not None:
            arrays["labels"] = synthetic[metadata.target].astype(str).to_numpy().astype("U")
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    return {"synthetic.npz": write}


def bundle_table(synthetic: pd.DataFrame, metadata: Metadata) -> pd.DataFrame:
    """The CSV/Parquet beside ``synthetic.npz``: each tile's index in the npz and its label."""
    column, _, _ = _spec(metadata)
    out = pd.DataFrame({"tile_index": np.arange(len(synthetic))})
    for c in synthetic.columns:
        if c != column:
            out[c] = synthetic[c].to_numpy()
    return out


NN_PAIRS = 16
"""Synthetic tiles shown beside their nearest real training tile in the internal report."""
NN_PAIRS_MAX_SYNTHETIC = 2000
"""The nearest-neighbour pairs are searched among the first this-many synthetic tiles (i.i.d. draws,
so a random sample) against all training tiles, which bounds the figure's time."""


def _nn_pairs_figure(train_tiles: np.ndarray, synthetic_tiles: np.ndarray, n_synthetic: int) -> dict[str, str]:
    """The ``NN_PAIRS`` synthetic tiles closest (pixel L2 on [0, 1]) to a real training tile, each
    above its nearest training tile: rows 1, 3 synthetic, rows 2, 4 their neighbours (PRIVATE).
    ``synthetic_tiles`` are the first of ``n_synthetic``; at most ``NN_PAIRS_MAX_SYNTHETIC`` are searched."""
    from synthrelease.modalities.image.audits import _nearest_pixel
    from synthrelease.modalities.image.grids import png_data_uri, tile_grid

    searched = synthetic_tiles[:NN_PAIRS_MAX_SYNTHETIC]
    dist, idx = _nearest_pixel(searched, train_tiles)
    order = np.argsort(dist, kind="stable")[:NN_PAIRS]
    shown = dist[order]
    cols = min(8, len(order))
    blocks = []
    for start in range(0, len(order), cols):
        chunk = order[start:start + cols]
        pad = cols - len(chunk)  # the last block's empty cells stay white
        blank = np.full((pad, *searched.shape[1:]), 255, dtype=np.uint8)
        blocks += [searched[chunk], blank, train_tiles[idx[chunk]], blank]
    grid = tile_grid(np.concatenate(blocks), columns=cols, max_tiles=4 * NN_PAIRS)
    return {"src": png_data_uri(grid), "alt": "nearest-neighbour pairs: synthetic and real training tiles",
            "caption": (f"PRIVATE: internal report only (real training tiles). The {len(order)} synthetic tiles "
                        f"closest to a real training tile, closest first (searched among the first "
                        f"{len(searched)} of {n_synthetic} synthetic tiles, capped at "
                        f"{NN_PAIRS_MAX_SYNTHETIC}): each synthetic tile (rows 1 and 3) sits directly above its "
                        "nearest real training tile (rows 2 and 4). Distance: pixel L2 over all pixels and channels "
                        f"of tiles scaled to [0, 1]; shown distances min {float(shown.min()):.4g}, median "
                        f"{float(np.median(shown)):.4g}. Pairs that look alike suggest memorisation.")}


def report_figures(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> list[dict[str, str]]:
    """Grids of 64 real training tiles and 64 synthetic tiles, and the synthetic tiles nearest to a
    real training tile beside that tile (see :data:`NN_PAIRS_MAX_SYNTHETIC`), for the INTERNAL
    report only (real tiles are private: they never enter the bundle)."""
    from synthrelease.modalities.image.grids import png_data_uri, tile_grid

    out = []
    for name, frame in (("real training", train), ("synthetic", synthetic)):
        out.append({"src": png_data_uri(tile_grid(tiles_of(frame.iloc[:64], metadata), columns=8, max_tiles=64)),
                    "alt": f"{name} tiles", "caption": f"The first {min(64, len(frame))} {name} tiles"
                    + (" (PRIVATE: internal report only)." if name.startswith("real") else " (released).")})
    if len(train) and len(synthetic):
        out.append(_nn_pairs_figure(tiles_of(train.reset_index(drop=True), metadata),
                                    tiles_of(synthetic.iloc[:NN_PAIRS_MAX_SYNTHETIC].reset_index(drop=True),
                                             metadata), len(synthetic)))
    return out


def image_modality() -> Modality:
    """The image modality (see the module docstring)."""
    return Modality("image", default_config=default_config, fit=fit, sample=sample, shadow_synthesizer=unavailable,
                    audit_trainer=unavailable, validate=validate, view=view, view_metadata=view_metadata,
                    copy_keys=copy_keys, extra_audits=extra_audits, outputs=outputs,
                    trained_metadata=lambda model, metadata: metadata, bundle_table=bundle_table,
                    report_figures=report_figures,
                    audit_refusal=lambda config: "not available for image releases yet")


SLIDE_SUFFIXES = (".svs", ".tif", ".tiff")
"""A data FILE with one of these suffixes is a whole slide, tiled with the image column's ``tiling``."""

LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights (Pillow's RGB → L), for grey tiles cut from an RGB slide."""


def slide_tiles(path: Path, metadata: Metadata) -> tuple[np.ndarray, pd.DataFrame]:
    """Cut a whole-slide TIFF/SVS into the image column's tiles with its PUBLIC ``tiling``.

    :func:`synthrelease.io.tiles.tile_slide` at ``tile_size``, then each tile block-averaged
    down to ``height`` (rounded to uint8) and, for ``channels: 1``, turned into luma.

    Raises:
        InputFileError: one line naming the file (no ``tiling`` declared, unreadable slide...).
    """
    from synthrelease.errors import InputFileError
    from synthrelease.io.tiles import tile_slide

    column, size, channels = _spec(metadata)
    tiling = metadata.columns[column].tiling
    if tiling is None:
        raise InputFileError(f"{path}: a whole slide is tiled on the fly only with public tiling parameters; "
                             f"declare 'tiling' (tile_size, ...) in the image column {column!r} of the metadata")
    tiles, frame = tile_slide(path, size=tiling.tile_size, stride=int(tiling.stride or tiling.tile_size),
                              tissue_threshold=tiling.tissue_threshold, min_tissue_share=tiling.min_tissue_share,
                              max_tiles=tiling.max_tiles, level=tiling.level)
    factor = tiling.tile_size // size
    small = np.empty((len(tiles), size, size, channels), dtype=np.uint8)
    for start in range(0, len(tiles), 256):  # in chunks: the float copy stays small
        small[start:start + 256] = _shrink(tiles[start:start + 256], size, factor, channels)
    return small, frame


def _shrink(tiles: np.ndarray, size: int, factor: int, channels: int) -> np.ndarray:
    """Block-average uint8 tiles by ``factor`` (and to luma for one channel), rounded to uint8."""
    # sums of ≤ 4096 uint8 values are exact in float32, so this rounds like a float64 average
    small = tiles.reshape(len(tiles), size, factor, size, factor, 3).mean(axis=(2, 4), dtype=np.float32)
    if channels == 1:
        small = (small @ LUMA.astype(np.float32))[..., None]
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def read_tiles(path: str | Path, metadata: Metadata) -> pd.DataFrame:
    """Tiles from an ``.npz`` (arrays ``images`` and optional ``labels``), a folder of PNG/TIFF
    tiles (with ``labels.csv`` beside them, keyed by ``image_id``), or a whole-slide
    ``.svs``/``.tif``/``.tiff`` file cut with the image column's public ``tiling``
    (:func:`slide_tiles`; no labels), as the modality's table: the image column, the label
    column (the metadata's target) and the one identifier column. For a slide, a declared
    ``privacy_unit_column`` gets the slide's name (all its tiles are one person's).

    Raises:
        InputFileError: one line naming the file.
    """
    from synthrelease.errors import InputFileError
    from synthrelease.io.tiles import read_image_folder, read_npz

    _, size, channels = _spec(metadata)
    p = Path(path)
    slide = not p.is_dir() and p.suffix.lower() in SLIDE_SUFFIXES
    if p.is_dir():
        labels_csv = p / "labels.csv"
        tiles, frame = read_image_folder(p, size=size, channels=channels,
                                         labels_csv=str(labels_csv) if labels_csv.is_file() else None)
    elif p.suffix.lower() == ".npz":
        tiles, frame = read_npz(p, size=size, channels=channels)
    elif slide:
        if metadata.target is not None:
            raise InputFileError(f"{p}: a whole slide has no tile labels for the target column {metadata.target!r} "
                                 "(drop the target, or tile it to an .npz with 'labels')")
        tiles, frame = slide_tiles(p, metadata)
    else:
        raise InputFileError(f"{p}: image tiles are read from an .npz file, a folder of PNG/TIFF tiles or a "
                             "whole-slide .svs/.tif/.tiff (with 'tiling' declared in the image column)")
    out = frame_of(tiles, None, metadata)
    if metadata.target is not None:
        source = metadata.target if metadata.target in frame.columns else "label" if "label" in frame.columns else None
        if source is None:
            raise InputFileError(f"{p}: no labels for the target column {metadata.target!r} (npz array 'labels' or "
                                 f"a labels.csv column {metadata.target!r})")
        out[metadata.target] = frame[source].to_numpy()
    ids = [c for c, s in metadata.columns.items() if s.type == "identifier"]
    if slide and metadata.privacy_unit_column is not None:
        out[metadata.privacy_unit_column] = frame["slide"].to_numpy()
        ids = [c for c in ids if c != metadata.privacy_unit_column]
    for c in [c for c in ids if c in frame.columns and c != "image_id"]:  # e.g. the person id beside each tile
        out[c] = frame[c].astype(str).to_numpy()
        ids.remove(c)
    if len(ids) == 1 and "image_id" in frame.columns:
        out[ids[0]] = frame["image_id"].to_numpy()
    return out
