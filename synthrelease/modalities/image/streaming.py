"""Sampling synthetic tiles from a saved image model chunk by chunk, in flat memory, atomically.

Post-processing of the DP tile generator: nothing here reads private data. Tiles are drawn
``chunk_rows`` at a time (in batches of at most :data:`BATCH` through the generator) and
written as they come:

* ``.npz``: the ``images`` (uint8 ``[n, size, size, channels]``) and ``labels`` (strings,
  conditional models only) arrays are streamed as ``.npy`` members straight into a
  compressed zip at a temporary path beside the output, renamed into place at the end;
  the label indices wait in a temporary memory-mapped file meanwhile;
* a folder: one PNG per tile (``000000.png`` …) and ``labels.csv`` (``image_id`` and the
  label column, conditional models only), written into a temporary sibling folder renamed
  into place at the end.

On any error (or a stop signal) the output does not exist: no half-written file or folder.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from synthrelease.errors import InputFileError, SynthreleaseError

BATCH = 512
"""Tiles per generator forward pass (bounds the activations' memory whatever ``chunk_rows``)."""


def is_folder_output(output: str | os.PathLike[str]) -> bool:
    """An image sample goes to a folder when ``output`` is one, or has no suffix (``-o tiles/``)."""
    out = Path(output)
    return out.is_dir() or out.suffix == ""


def check_folder_output(output: str | os.PathLike[str], *, option: str = "-o") -> Path:
    """Refuse a folder output that exists and is not an empty folder (never replaced, even with --force).

    Raises:
        InputFileError: naming the path and the option.
    """
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputFileError(f"{out}: {option} exists and is not an empty folder; sampled tiles go to a new (or "
                             "empty) folder, never over existing files (--force does not replace a folder)")
    return out


def _condition_index(model: Any, condition: dict[str, str] | None) -> int | None:
    from synthrelease.gan.sampling import condition_index

    target = model.metadata.target if model.inner.condition_probs is not None else None
    return condition_index(condition, target, model.metadata.columns[target].canonical_categories() if target else [],
                           untrained="this image model was trained without labels: --condition does not apply")


def tile_chunks(model: Any, n: int, *, seed: int, condition: dict[str, str] | None = None,
                chunk_rows: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``n`` synthetic tiles as (uint8 ``[m, size, size, channels]``, label indices or None) chunks
    of at most ``chunk_rows`` (the same seed gives the same tiles, whatever the chunk size).

    Raises:
        SynthreleaseError: bad ``n``, ``chunk_rows`` or ``condition``.
    """
    if n < 1 or chunk_rows < 1:
        raise SynthreleaseError(f"tiles and chunk size must be >= 1, got {n} and {chunk_rows}")
    from synthrelease.modalities.image.model import generate_tiles
    from synthrelease.modalities.image.private_evolution import EvolvedTiles, generate_evolved

    inner = model.inner
    fixed = _condition_index(model, condition)
    if isinstance(inner, EvolvedTiles):
        batches = generate_evolved(inner, n, seed=seed, fixed_class=fixed, batch=BATCH)
    else:
        inner.generator.eval()
        batches = generate_tiles(inner, n, seed=seed, fixed_class=fixed, batch=BATCH)
    tiles = np.empty((0, inner.size, inner.size, inner.channels), dtype=np.uint8)
    labels: np.ndarray | None = None if inner.condition_probs is None else np.empty(0, dtype=np.int64)
    for batch_tiles, batch_labels in batches:
        tiles = np.concatenate([tiles, batch_tiles])  # at most chunk_rows + BATCH tiles held
        if labels is not None and batch_labels is not None:
            labels = np.concatenate([labels, batch_labels])
        while len(tiles) >= chunk_rows:
            yield tiles[:chunk_rows], (None if labels is None else labels[:chunk_rows])
            tiles = tiles[chunk_rows:]
            labels = None if labels is None else labels[chunk_rows:]
    if len(tiles):
        yield tiles, labels


def _npy_header(fh: Any, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": shape})


def _write_npz(out: Path, chunks: Iterator[tuple[np.ndarray, np.ndarray | None]], n: int,
               shape: tuple[int, int, int], names: list[str] | None) -> None:
    from synthrelease.io.files import atomic_output

    parts = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.parts-"))
    try:
        index = (np.lib.format.open_memmap(parts / "labels.npy", mode="w+", dtype=np.int64, shape=(n,))
                 if names is not None else None)
        with atomic_output(out) as tmp, open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                done = 0
                with zf.open("images.npy", "w", force_zip64=True) as member:
                    _npy_header(member, np.dtype(np.uint8), (n, *shape))
                    for tiles, idx in chunks:
                        member.write(np.ascontiguousarray(tiles).tobytes())
                        if index is not None and idx is not None:
                            index[done:done + len(tiles)] = idx
                        done += len(tiles)
                if done != n:
                    raise SynthreleaseError(f"sampled {done} tiles, {n} expected")
                if index is not None and names is not None:
                    index.flush()
                    text = np.array([str(v) for v in names])  # the declared labels as unicode, like a release
                    with zf.open("labels.npy", "w", force_zip64=True) as member:
                        _npy_header(member, text.dtype, (n,))
                        for start in range(0, n, 1 << 16):
                            member.write(text[index[start:start + (1 << 16)]].tobytes())
            fh.flush()  # after the zip's central directory
            os.fsync(fh.fileno())
        del index
    finally:
        shutil.rmtree(parts, ignore_errors=True)


def _write_folder(out: Path, chunks: Iterator[tuple[np.ndarray, np.ndarray | None]], n: int,
                  target: str | None, names: list[str] | None) -> None:
    from PIL import Image

    from synthrelease.io.files import staged_directory

    width = max(6, len(str(n - 1)))
    with staged_directory(out) as tmp:
        with contextlib.ExitStack() as stack:
            writer = None
            if names is not None and target is not None:
                fh = stack.enter_context(open(tmp / "labels.csv", "w", encoding="utf-8", newline=""))
                writer = csv.writer(fh)
                writer.writerow(["image_id", target])
            done = 0
            for tiles, idx in chunks:
                for i, tile in enumerate(tiles):
                    name = str(done + i).zfill(width)
                    Image.fromarray(tile[..., 0] if tile.shape[-1] == 1 else tile).save(tmp / f"{name}.png",
                                                                                      format="PNG")
                    if writer is not None and idx is not None and names is not None:
                        writer.writerow([name, names[int(idx[i])]])
                done += len(tiles)
            if done != n:
                raise SynthreleaseError(f"sampled {done} tiles, {n} expected")


def write_tile_stream(model: Any, n: int, output: str | os.PathLike[str], *, seed: int,
                      condition: dict[str, str] | None = None, chunk_rows: int = 10_000) -> Path:
    """Sample ``n`` tiles from an image model and stream them to ``output``: an ``.npz`` file, or a folder
    of PNG tiles with ``labels.csv`` (see the module docstring). Written atomically.

    Raises:
        SynthreleaseError: ``output`` is neither, or a bad ``condition`` (before anything is written).
        InputFileError: a folder output that exists and is not empty.
    """
    out = Path(output)
    folder = is_folder_output(out)
    if not folder and out.suffix.lower() != ".npz":
        raise SynthreleaseError(f"{out}: an image model samples tiles to an .npz file or a folder (-o tiles/), "
                                "not a table file")
    if folder:
        check_folder_output(out)
    inner, meta = model.inner, model.metadata
    names = None
    if inner.condition_probs is not None and meta.target is not None:
        names = [str(v) for v in meta.columns[meta.target].declared_categories()]
    chunks = tile_chunks(model, n, seed=seed, condition=condition, chunk_rows=chunk_rows)
    next_chunk = next(chunks)  # a bad condition fails here, before any file exists

    def all_chunks() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        yield next_chunk
        yield from chunks

    out.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        _write_folder(out, all_chunks(), n, meta.target, names)
    else:
        _write_npz(out, all_chunks(), n, (inner.size, inner.size, inner.channels), names)
    return out
