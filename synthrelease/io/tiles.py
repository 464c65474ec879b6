"""Read and write image tiles: PNG/TIFF/JPEG folders, ``.npz`` archives and tiled whole-slide TIFF/SVS pages.

An image dataset is a table: one row per tile, the pixels held in a uint8 array
``[n, size, size, channels]`` beside a DataFrame with ``image_id`` and optional labels.
Nothing is resized silently: a tile of the wrong shape is refused with an
:class:`~synthrelease.errors.InputFileError` naming the file. Untrusted inputs are parsed
without executing code (``np.load(allow_pickle=False)``, Pillow, tifffile).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from synthrelease.errors import InputFileError
from synthrelease.io.files import atomic_output, staged_directory

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
"""File suffixes :func:`read_image_folder` reads (case-insensitive); other files are refused."""
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "labels.csv"}  # labels.csv: the labels beside the tiles


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")


def _read_one(path: Path, *, size: int, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                mode, width, height = im.mode, im.width, im.height
                if (width, height) != (size, size):
                    raise InputFileError(f"{path}: image is {width}×{height}, expected {size}×{size} "
                                         "(tiles are not resized; crop or resize them first)")
                if channels == 1 and mode in ("L", "1", "I;16", "I", "F"):
                    arr = np.asarray(im.convert("L") if mode == "1" else im)
                elif channels == 3 and mode == "RGB":
                    arr = np.asarray(im)
                else:
                    raise InputFileError(f"{path}: image mode {mode} does not have {channels} channel(s) "
                                         f"(expected {'L (grey)' if channels == 1 else 'RGB'})")
    except InputFileError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InputFileError(f"{path}: not a readable image ({_one_line(exc)})") from None
    if arr.dtype != np.uint8:
        raise InputFileError(f"{path}: pixel type {arr.dtype} is not 8-bit (uint8 tiles only)")
    return arr.reshape(size, size, channels)


def read_image_folder(folder: str | os.PathLike[str], *, size: int, channels: int,
                      labels_csv: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Read every PNG/TIFF/JPEG tile of a folder, sorted by file name.

    Args:
        folder: the folder of tiles (not searched recursively; hidden files are ignored).
        size: each tile must be exactly ``size × size`` pixels.
        channels: 1 (grey, mode L) or 3 (RGB).
        labels_csv: optional CSV with an ``image_id`` column (the file stem) and label columns.

    Returns:
        (uint8 array ``[n, size, size, channels]``, DataFrame with ``image_id`` and label columns).

    Raises:
        InputFileError: the folder is missing or empty, a file is not a readable image or has
            the wrong shape, or the labels CSV lacks/duplicates an ``image_id`` or names an unknown one.
    """
    _check_channels(channels)
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(f"{root}: not a folder of image tiles")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name not in IGNORED_NAMES)
    if not files:
        raise InputFileError(f"{root}: folder holds no image tiles")
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputFileError(f"{p}: not an image tile (expected one of {', '.join(IMAGE_SUFFIXES)})")
    stems = [p.stem for p in files]
    seen: set[str] = set()
    for p, stem in zip(files, stems, strict=True):
        if stem in seen:
            raise InputFileError(f"{p}: another tile has the same image_id {stem!r}")
        seen.add(stem)
    images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, p in enumerate(files):
        images[i] = _read_one(p, size=size, channels=channels)
    frame = pd.DataFrame({"image_id": stems})
    if labels_csv is not None:
        frame = _join_labels(frame, Path(labels_csv))
    return images, frame


def _join_labels(frame: pd.DataFrame, csv: Path) -> pd.DataFrame:
    try:
        labels = pd.read_csv(csv, dtype={"image_id": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(f"{csv}: labels CSV not readable ({_one_line(exc)})") from None
    if "image_id" not in labels.columns:
        raise InputFileError(f"{csv}: labels CSV has no image_id column")
    if labels["image_id"].isna().any():
        raise InputFileError(f"{csv}: labels CSV has an empty image_id")
    # errors name rows and counts, never an image_id: ids can identify a patient or a sample, and
    # error lines end up in logs and tickets (the FASTA reader never echoes a record either)
    duplicated = np.flatnonzero(labels["image_id"].duplicated().to_numpy())
    if len(duplicated):
        raise InputFileError(f"{csv}: data row {duplicated[0] + 1} repeats an image_id listed in an earlier row")
    known = set(frame["image_id"])
    unknown = [k for k, i in enumerate(labels["image_id"]) if i not in known]
    if unknown:
        raise InputFileError(f"{csv}: data row {unknown[0] + 1}'s image_id has no tile in the folder "
                             f"({len(unknown)} such row(s))")
    listed = set(labels["image_id"])
    missing = sum(i not in listed for i in frame["image_id"])
    if missing:
        raise InputFileError(f"{csv}: {missing} tile(s) in the folder have no labels row")
    return frame.merge(labels, on="image_id", how="left", validate="one_to_one")


def read_npz(path: str | os.PathLike[str], *, size: int, channels: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Read tiles from an ``.npz`` archive: ``images`` (uint8 ``[n,H,W,C]`` or ``[n,H,W]``) and optional ``labels``.

    Other 1-D arrays of length n (e.g. ``patient``, a person id) become columns of the frame.

    Loaded with ``allow_pickle=False`` (archives are untrusted: an object array is refused).
    ``image_id`` is ``0..n-1`` as zero-padded strings unless the archive holds ``image_id``.

    Raises:
        InputFileError: not a readable npz, no ``images``, wrong dtype/shape, object arrays,
            or ``labels``/``image_id`` not of length n.
    """
    _check_channels(channels)
    p = Path(path)
    try:
        with open(p, "rb") as f:  # our own handle: np.load leaks its own when the zip is corrupt
            magic = f.read(6)
            if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # else np.load tries pickle
                raise InputFileError(f"{p}: not an .npz archive (a zip of NumPy arrays, as np.savez writes)")
            f.seek(0)
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise InputFileError(f"{p}: not an .npz archive (a single .npy array)")
            with archive:
                if "images" not in archive.files:
                    raise InputFileError(f"{p}: npz archive has no 'images' array")
                images = archive["images"]
                labels = archive["labels"] if "labels" in archive.files else None
                ids = archive["image_id"] if "image_id" in archive.files else None
                extra = {k: archive[k] for k in archive.files if k not in ("images", "labels", "image_id")}
    except InputFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputFileError(f"{p}: npz holds a pickled (object) array, refused for safety") from None
        raise InputFileError(f"{p}: not a readable npz archive ({_one_line(exc)})") from None
    except (OSError, EOFError, KeyError) as exc:
        raise InputFileError(f"{p}: not a readable npz archive ({_one_line(exc)})") from None
    except Exception as exc:  # zipfile.BadZipFile and other parser errors of a corrupt archive
        raise InputFileError(f"{p}: not a readable npz archive ({_one_line(exc)})") from None
    if images.dtype != np.uint8:
        raise InputFileError(f"{p}: 'images' has dtype {images.dtype}, expected uint8")
    if images.ndim == 3 and channels == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (size, size, channels):
        raise InputFileError(f"{p}: 'images' has shape {images.shape}, expected [n, {size}, {size}, {channels}]")
    if len(images) == 0:
        raise InputFileError(f"{p}: 'images' holds no tiles")
    n = len(images)
    if ids is None:
        width = len(str(n - 1))
        id_list = [str(i).zfill(width) for i in range(n)]
    else:
        if ids.ndim != 1 or len(ids) != n:
            raise InputFileError(f"{p}: 'image_id' has shape {ids.shape}, expected ({n},)")
        id_list = [str(v) for v in ids]
    frame = pd.DataFrame({"image_id": id_list})
    if labels is not None:
        if labels.ndim != 1 or len(labels) != n:
            raise InputFileError(f"{p}: 'labels' has shape {labels.shape}, expected ({n},)")
        frame["label"] = labels
    for name, values in extra.items():  # per-tile columns, e.g. the person id (privacy_unit_column)
        if values.ndim == 1 and len(values) == n:
            frame[name] = values
    return np.ascontiguousarray(images), frame


MAX_SLIDE_TILE_BYTES = 4 * 1024**3
"""Most bytes of full-size tiles one slide may yield (grid positions, or ``max_tiles``, × tile bytes)."""
MAX_SLIDE_BAND_BYTES = 1024**3
"""Most bytes one band of the slide page (a tile's height × the page width, pixels + mask) may take."""
MAX_SLIDE_CHUNK_BYTES = 512 * 1024**2
"""Most bytes one stored strip or tile of the slide may decode to (a one-strip 60k × 60k page is refused)."""


BAND_BYTES_PER_PIXEL = 10
"""Bytes per pixel of a decoded band: RGB (3) + channel sum (2) + mask (1) + running column sums (4)."""


def _tissue_mask(rgb: np.ndarray, threshold: float) -> np.ndarray:
    """Mean RGB intensity below ``threshold``, as an exact integer comparison of the channel sum."""
    return rgb[..., :3].sum(axis=-1, dtype=np.uint16) < 3 * threshold


def _rows_per_band(size: int, stride: int) -> int:
    """Grid rows decoded together: a band of about ``max(size, 512)`` pixel rows plus one tile."""
    return max(1, max(size, 512) // stride)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB"


def _open_slide_level(tif, p: Path, level: int):
    """The level's pixels as a lazily decoded zarr array (nothing is read yet)."""
    import zarr

    if not tif.series:
        raise InputFileError(f"{p}: TIFF holds no image series")
    levels = tif.series[0].levels
    if not 0 <= level < len(levels):
        raise InputFileError(f"{p}: level {level} does not exist (the slide has {len(levels)} level(s))")
    pixels = zarr.open(tif.aszarr(level=level), mode="r")
    if not isinstance(pixels, zarr.Array):  # a multiscale group: the store of one level holds one array
        raise InputFileError(f"{p}: level {level} is not a single image array")
    return pixels


def _check_slide_layout(p: Path, pixels, size: int, stride: int,
                        max_tiles: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The grid's row and column origins, once the page's declared shape bounds every read.

    Raises:
        InputFileError: not 8-bit RGB(A), or the tiling would exceed the memory bounds.
    """
    shape = tuple(int(s) for s in pixels.shape)
    if pixels.dtype != np.uint8:
        raise InputFileError(f"{p}: slide pixels are {pixels.dtype}, expected 8-bit")
    if len(shape) != 3 or shape[-1] not in (3, 4):
        raise InputFileError(f"{p}: slide page has shape {shape}, expected [height, width, 3] (RGB)")
    height, width = shape[:2]
    chunk_bytes = int(np.prod([int(c) for c in pixels.chunks]))
    if chunk_bytes > MAX_SLIDE_CHUNK_BYTES:
        raise InputFileError(f"{p}: the slide is stored in blocks of {_gib(chunk_bytes)} (limit "
                             f"{_gib(MAX_SLIDE_CHUNK_BYTES)}); save it as a tiled TIFF")
    band_bytes = ((_rows_per_band(size, stride) - 1) * stride + size) * width * BAND_BYTES_PER_PIXEL
    if band_bytes > MAX_SLIDE_BAND_BYTES:
        raise InputFileError(f"{p}: a band of {size}-pixel tiles across this {width}-pixel-wide page needs "
                             f"{_gib(band_bytes)} (limit {_gib(MAX_SLIDE_BAND_BYTES)}); tile a coarser "
                             f"level or a smaller tile_size")
    ys = np.arange(0, max(height - size + 1, 0), stride)
    xs = np.arange(0, max(width - size + 1, 0), stride)
    positions = len(ys) * len(xs)
    most = positions if max_tiles is None else min(positions, max_tiles)
    if most * size * size * 3 > MAX_SLIDE_TILE_BYTES:
        raise InputFileError(f"{p}: tiling the {width}×{height} page every {stride} px gives up to {positions:,} "
                             f"tiles of {size}×{size} ({_gib(most * size * size * 3)}, limit "
                             f"{_gib(MAX_SLIDE_TILE_BYTES)}); declare tiling.max_tiles, a larger stride or a "
                             f"coarser level")
    return ys, xs


def _band_tiles(band: np.ndarray, rows: np.ndarray, xs: np.ndarray, size: int, need: float,
                tissue_threshold: float) -> list[tuple[int, np.ndarray]]:
    """Per grid row of the band (its index in ``rows``, origins relative to the band): the
    grid columns whose tile holds at least ``need`` tissue pixels."""
    tissue = _tissue_mask(band, tissue_threshold)
    below = np.zeros((tissue.shape[0] + 1, tissue.shape[1]), dtype=np.int32)
    below[1:] = tissue.cumsum(axis=0, dtype=np.int32)  # column sums of any run of rows in O(1)
    found: list[tuple[int, np.ndarray]] = []
    for index, y in enumerate(rows):
        across = np.zeros(tissue.shape[1] + 1, dtype=np.int64)
        across[1:] = (below[y + size] - below[y]).cumsum()
        counts = across[xs + size] - across[xs]
        found.append((index, np.flatnonzero(counts >= need - 1e-9)))
    return found


def tile_slide(path: str | os.PathLike[str], *, size: int, stride: int, tissue_threshold: float,
               min_tissue_share: float, max_tiles: int | None, level: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Tile a whole-slide TIFF/SVS page on a grid and keep the tissue tiles.

    A pixel is "tissue" when its mean RGB intensity is below ``tissue_threshold`` (a PUBLIC
    constant, e.g. 220 for H&E on a white background); a tile is kept when its tissue share
    is at least ``min_tissue_share``. The page is read band by band (``tifffile`` through a
    lazily decoded zarr store; JPEG pages need ``imagecodecs``), never whole, and the tile
    count the page's DECLARED shape allows is bounded before any pixel is read
    (:data:`MAX_SLIDE_TILE_BYTES`). Tiles are taken in row-major grid order; with
    ``max_tiles`` only the first ``max_tiles`` kept tiles are returned (deterministic).

    Args:
        level: pyramid level of the first series (0 = full resolution).

    Returns:
        (uint8 ``[n, size, size, 3]``, DataFrame with ``image_id`` = ``x{col}_y{row}`` (grid
        indices) and ``slide`` = the file stem).

    Raises:
        InputFileError: the file is not a readable TIFF, the level does not exist, the page is
            not 8-bit RGB, the tiling exceeds the memory bounds, or no tile passes the filter.
    """
    import tifffile

    if size < 1 or stride < 1:
        raise ValueError("size and stride must be positive")
    if not 0.0 <= min_tissue_share <= 1.0:
        raise ValueError("min_tissue_share must lie in [0, 1]")
    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            pixels = _open_slide_level(tif, p, level)
            ys, xs = _check_slide_layout(p, pixels, size, stride, max_tiles)
            tiles, ids = _read_tissue_tiles(pixels, ys, xs, size, stride, tissue_threshold,
                                            min_tissue_share * size * size, max_tiles)
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(f"{p}: slide file not found") from None
    except MemoryError:
        raise InputFileError(f"{p}: not enough memory to tile the slide; declare tiling.max_tiles "
                             f"or a coarser level") from None
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, codec errors...
        # the exception's text can quote the file's first bytes: name its kind only
        raise InputFileError(f"{p}: not a readable TIFF/SVS slide ({type(exc).__name__})") from None
    if not tiles:
        raise InputFileError(f"{p}: no {size}×{size} tile has a tissue share ≥ {min_tissue_share} "
                             f"(tissue = mean intensity < {tissue_threshold})")
    frame = pd.DataFrame({"image_id": ids, "slide": p.stem})
    return np.stack(tiles), frame


def _read_tissue_tiles(pixels, ys: np.ndarray, xs: np.ndarray, size: int, stride: int, tissue_threshold: float,
                       need: float, max_tiles: int | None) -> tuple[list[np.ndarray], list[str]]:
    """Walk the grid in bands of whole tile rows; each band is decoded once, then dropped."""
    rows_per_band = _rows_per_band(size, stride)
    tiles: list[np.ndarray] = []
    ids: list[str] = []
    for first in range(0, len(ys), rows_per_band):
        rows = ys[first:first + rows_per_band]
        top = int(rows[0])
        band = np.asarray(pixels[top:int(rows[-1]) + size])[..., :3]
        for index, cols in _band_tiles(band, rows - top, xs, size, need, tissue_threshold):
            y = int(rows[index]) - top
            for col in cols:
                x = int(xs[col])
                tiles.append(np.ascontiguousarray(band[y:y + size, x:x + size]))
                ids.append(f"x{int(col)}_y{first + index}")
                if max_tiles is not None and len(tiles) >= max_tiles:
                    return tiles, ids
    return tiles, ids


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 [n, H, W, 1 or 3], not {images.dtype} {images.shape}")
    return images


def write_npz(path: str | os.PathLike[str], images: np.ndarray, frame: pd.DataFrame) -> Path:
    """Write tiles and their table atomically to a compressed ``.npz`` (no pickled arrays).

    Holds ``images`` and ``image_id`` (strings) and, when ``frame`` has exactly one other
    column, it as ``labels``; further columns as arrays of their own name. Object columns are
    stored as unicode strings so :func:`read_npz` can load them with ``allow_pickle=False``.
    """
    images = _check_images(images)
    if len(frame) != len(images):
        raise ValueError(f"frame has {len(frame)} rows for {len(images)} images")
    arrays: dict[str, np.ndarray] = {"images": images}
    if "image_id" in frame.columns:
        arrays["image_id"] = frame["image_id"].astype(str).to_numpy(dtype=str)
    others = [c for c in frame.columns if c != "image_id"]
    for c in others:
        name = "labels" if len(others) == 1 else str(c)
        values = frame[c].to_numpy()
        arrays[name] = values.astype(str) if values.dtype == object else values
    p = Path(path)
    with atomic_output(p) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # a file object: savez would otherwise append ".npz" to the temp name
        f.flush()
        os.fsync(f.fileno())
    return p


def write_png_folder(folder: str | os.PathLike[str], images: np.ndarray, ids: list[str] | pd.Series) -> Path:
    """Write one PNG per tile, ``{id}.png``, staged in a temporary sibling folder then renamed into place.

    Raises:
        InputFileError: ``folder`` exists and is not empty.
        ValueError: ids are not unique, not one per image, or not safe file names.
    """
    from PIL import Image

    images = _check_images(images)
    id_list = [str(i) for i in ids]
    if len(id_list) != len(images):
        raise ValueError(f"{len(id_list)} ids for {len(images)} images")
    if len(set(id_list)) != len(id_list):
        raise ValueError("image ids are not unique")
    for i in id_list:
        if not i or i.startswith(".") or "/" in i or "\\" in i or "\0" in i:
            raise ValueError(f"image id {i!r} is not a safe file name")
    with staged_directory(folder) as tmp:
        for image, name in zip(images, id_list, strict=True):
            pixels = image[..., 0] if image.shape[-1] == 1 else image
            Image.fromarray(pixels).save(tmp / f"{name}.png", format="PNG")
    return Path(folder)
