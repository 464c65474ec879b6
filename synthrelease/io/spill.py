"""Large synthetic blocks held in an unnamed temporary file instead of the heap.

A wide table's synthetic rows (80,000 × 20,000 float16: 3 GiB) would otherwise sit in
anonymous memory beside the private table through the audits, the gate and the bundle.
:func:`spilled_array` maps them from a temporary file that has no name (it is unlinked at
creation, so a killed run leaves nothing on disk), and :func:`release_mapped_pages` lets go of
the pages this process has touched: the rows stay in the kernel's page cache (reclaimable,
written back to the file under pressure) and are read again on the next access.

Two things call it: the block loops of sampling, audits and writers after each block, and a
pager thread every :data:`PAGER_SECONDS` while a spilled array is alive (for code that reads
the table without a block loop of its own: a random sample of its rows, a library's
per-column loop). Both are safe at any moment: the mappings are shared file mappings, whose
content (written pages included) stays in the file when their pages are let go.

Only synthetic rows (the DP model's output) are spilled; private rows never go to disk here.
The file lives in :func:`tempfile.gettempdir` (``TMPDIR``): point it at a disk, not at a
memory-backed ``tmpfs``, for the saving to be real.
"""
from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import threading
import weakref

import numpy as np
import pandas as pd

from synthrelease.errors import SynthreleaseError

SPILL_ABOVE_BYTES = 1 << 30
"""Blocks of at least this many bytes are spilled (smaller ones stay on the heap)."""

PAGER_SECONDS = 1.0
"""How often the pager thread lets go of the spilled arrays' resident pages."""

_LOCK = threading.Lock()
_MAPPED: list[weakref.ref[np.memmap]] = []
"""Weak references to the spilled arrays (dead ones are pruned as new ones are made)."""
_PAGER: list[threading.Thread] = []
"""The running pager thread, if any."""


def _live() -> list[np.memmap]:
    with _LOCK:
        return [a for a in (r() for r in _MAPPED) if a is not None]


def should_spill(n_bytes: int) -> bool:
    """True when a block of ``n_bytes`` is large enough to be held in a spill file."""
    return n_bytes >= SPILL_ABOVE_BYTES


def check_room(n_bytes: int) -> None:
    """Raise a one-line error unless the temporary folder has room for a spill of ``n_bytes``
    (a release calls it before any ε is spent, with the spill its sampling will need)."""
    if not should_spill(n_bytes):
        return
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if free < n_bytes:
        raise SynthreleaseError(_no_room(folder, n_bytes, free))


def _no_room(folder: str, n_bytes: int, free: int | None) -> str:
    have = "" if free is None else f" ({free / 2**30:.1f} GiB free)"
    return (f"temporary folder {folder}: no room for the {n_bytes / 2**30:.1f} GiB the synthetic rows are held "
            f"in{have}; set TMPDIR to a folder on a disk with room")


def spilled_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` mapped from an unnamed temporary file.

    The file's blocks are allocated up front (a full disk is a clear error here, not a crash on
    a later write), it is deleted when the last view of the array is let go (and, having no
    name, never outlives the process). Touched pages are resident until the next
    :func:`release_mapped_pages`.

    Raises:
        SynthreleaseError: the temporary folder has no room for it.
    """
    n_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    with tempfile.TemporaryFile(prefix="synthrelease-spill-") as handle:
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, max(1, n_bytes))
            else:  # no up-front allocation on this system: a sparse file
                handle.truncate(max(1, n_bytes))
        except OSError as e:
            raise SynthreleaseError(_no_room(tempfile.gettempdir(), n_bytes, None) + f" ({e.strerror})") from None
        array = np.memmap(handle, dtype=dtype, mode="r+", shape=shape)
    with _LOCK:
        _MAPPED[:] = [r for r in _MAPPED if r() is not None] + [weakref.ref(array)]
        if not _PAGER:
            pager = threading.Thread(target=_page_out_while_alive, name="synthrelease-spill-pager", daemon=True)
            _PAGER.append(pager)
            pager.start()
    return array


def _page_out_while_alive() -> None:
    """The pager: let go of pages every PAGER_SECONDS; ends when no spilled array is alive."""
    tick = threading.Event()
    while True:
        tick.wait(PAGER_SECONDS)
        with _LOCK:
            if not any(r() is not None for r in _MAPPED):
                _PAGER.clear()
                return
        release_mapped_pages()


def is_spilled(array: np.ndarray) -> bool:
    """True when ``array`` is (a view of) a :func:`spilled_array`."""
    live = {id(a) for a in _live()}
    base: object = array
    while isinstance(base, np.ndarray):
        if id(base) in live:
            return True
        base = base.base
    return False


def release_mapped_pages() -> None:
    """Let go of the resident pages of every live spilled array (their content is kept)."""
    for array in _live():
        handle = getattr(array, "_mmap", None)
        if handle is not None and not handle.closed:
            handle.madvise(mmap.MADV_DONTNEED)


TAKE_BLOCK_BYTES = 1 << 26
"""Bytes of a spilled table's columns read at once by :func:`take_rows` (64 MiB)."""


def take_rows(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``df.iloc[rows]``. On a frame holding a spilled block, the rows are taken a column block
    of about :data:`TAKE_BLOCK_BYTES` at a time, letting go of its pages after each: a sample
    spread over all rows touches every page of every column it reads."""
    blocks = getattr(getattr(df, "_mgr", None), "blocks", ())
    spilled = [b.values for b in blocks if isinstance(b.values, np.ndarray) and is_spilled(b.values)]
    if not spilled:
        return df.iloc[rows]
    width = max(1, TAKE_BLOCK_BYTES // max(1, spilled[0].itemsize * len(df)))
    pieces = []
    for lo in range(0, df.shape[1], width):
        pieces.append(df.iloc[rows, lo:lo + width])
        release_mapped_pages()
    return pd.concat(pieces, axis=1)
