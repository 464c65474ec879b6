"""Draft metadata for image tiles: an ``.npz``, a folder of tiles or a whole slide.

The draft reads the PRIVATE data (tile size, channels, label values), so it is
``reviewed: false``; a slide's ``tiling`` block is a public default the steward reviews.
Every draft is read back with the image reader before it is written, so a draft is one the
data actually loads with.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from synthrelease.errors import InputFileError, MetadataError
from synthrelease.metadata.schema import ColumnSpec, Metadata, SlideTiling

IMAGE_COLUMN = "tile"
ID_COLUMN = "image_id"
LABEL_ARRAY = "label"
SLIDE_DRAFT_TILING = SlideTiling(tile_size=256)
"""A public default for a slide: 256-pixel tiles without overlap, H&E tissue threshold 220."""
SLIDE_DRAFT_HEIGHT = 64
"""Slide tiles are drafted block-averaged from 256 to 64 pixels (a size the tile GAN trains fast at)."""


def _npz_images_header(p: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the archive's ``images`` array, from its .npy header (no pixels read)."""
    try:
        with zipfile.ZipFile(p) as archive, archive.open("images.npy") as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
    except KeyError:
        raise InputFileError(f"{p}: npz archive has no 'images' array") from None
    except Exception as exc:  # BadZipFile, a bad .npy header...
        raise InputFileError(f"{p}: not a readable npz archive ({type(exc).__name__})") from None
    return tuple(int(s) for s in shape), dtype


def _npz_tile_spec(p: Path) -> tuple[int, int]:
    shape, dtype = _npz_images_header(p)
    if dtype != np.uint8:
        raise InputFileError(f"{p}: 'images' has dtype {dtype}, expected uint8")
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise InputFileError(f"{p}: 'images' has shape {shape}, expected [n, size, size, 1 or 3] (square tiles)")
    return shape[1], shape[3]


def _folder_tile_spec(p: Path) -> tuple[int, int]:
    from PIL import Image

    from synthrelease.io.tiles import IGNORED_NAMES, IMAGE_SUFFIXES

    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                   and not f.name.startswith(".") and f.name not in IGNORED_NAMES)
    if not files:
        raise InputFileError(f"{p}: folder holds no image tiles ({', '.join(IMAGE_SUFFIXES)})")
    try:
        with Image.open(files[0]) as im:
            width, height, mode = im.width, im.height, im.mode
    except Exception as exc:
        raise InputFileError(f"{files[0]}: not a readable image ({type(exc).__name__})") from None
    if width != height:
        raise InputFileError(f"{files[0]}: image is {width}×{height}; tiles must be square")
    return height, 3 if mode == "RGB" else 1


def _image_column(size: int, channels: int, tiling: SlideTiling | None = None) -> ColumnSpec:
    return ColumnSpec(type="image", height=size, width=size, channels=channels, tiling=tiling)


def draft_image_metadata(path: str | os.PathLike[str], *, name: str, target: str | None) -> Metadata:
    """A draft :class:`Metadata` for image tiles at ``path``: the tile id, the image column
    (size and channels of the tiles), the labels (npz ``labels`` or a ``labels.csv`` column)
    as the categorical target, other per-tile arrays as identifiers (a person id: declare it
    as ``privacy_unit_column``). A slide gets the public default :data:`SLIDE_DRAFT_TILING`.

    Raises:
        InputFileError: the data cannot be read as tiles (one line naming the file).
        MetadataError: ``target`` names no label of the data, or a slide is given a target.
    """
    from synthrelease.io.tiles import read_image_folder, read_npz
    from synthrelease.modalities.image.modality import SLIDE_SUFFIXES, read_tiles

    p = Path(path)
    if p.is_dir():
        size, channels = _folder_tile_spec(p)
        labels_csv = p / "labels.csv"
        _, frame = read_image_folder(p, size=size, channels=channels,
                                     labels_csv=labels_csv if labels_csv.is_file() else None)
    elif p.suffix.lower() == ".npz":
        size, channels = _npz_tile_spec(p)
        _, frame = read_npz(p, size=size, channels=channels)
    elif p.suffix.lower() in SLIDE_SUFFIXES:
        if target is not None:
            raise MetadataError(f"--target: a whole slide ({p}) has no tile labels")
        draft = _draft(name, None, {IMAGE_COLUMN: _image_column(SLIDE_DRAFT_HEIGHT, 3, SLIDE_DRAFT_TILING)})
        read_tiles(p, draft)
        return draft
    else:
        raise InputFileError(f"{p}: image tiles are an .npz file, a folder of PNG/TIFF tiles or a whole-slide "
                             ".svs/.tif/.tiff")
    draft = _draft(name, *_label_columns(p, frame, target), image=_image_column(size, channels))
    read_tiles(p, draft)
    return draft


def _label_columns(p: Path, frame: pd.DataFrame, target: str | None) -> tuple[str | None, dict[str, ColumnSpec]]:
    """(target, columns) of the frame's label and per-tile columns."""
    others = [str(c) for c in frame.columns if c != ID_COLUMN]
    if target is None and LABEL_ARRAY in others:
        target = LABEL_ARRAY
    if target is not None and target not in others:
        raise MetadataError(f"--target: {p} has no labels {target!r} (npz array 'labels' or a labels.csv column)")
    columns: dict[str, ColumnSpec] = {}
    if target is not None:
        values = frame[target].dropna()
        columns[target] = ColumnSpec(type="categorical", categories=sorted({str(v) for v in values}) or ["unknown"])
    for column in others:  # the image reader carries other per-tile values as identifiers only
        if column != target:
            columns[column] = ColumnSpec(type="identifier", description="per-tile value, not synthesised; a person's "
                                                                        "id? declare privacy_unit_column")
    return target, columns


def _draft(name: str, target: str | None, columns: dict[str, ColumnSpec], *,
           image: ColumnSpec | None = None) -> Metadata:
    body = {ID_COLUMN: ColumnSpec(type="identifier")}
    if image is not None:
        body[IMAGE_COLUMN] = image
    body.update(columns)
    return Metadata(name=name, reviewed=False, target=target, columns=body)
