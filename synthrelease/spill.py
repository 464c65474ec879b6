"""Large synthetic blocks held in an unnamed temporary file instead of the heap.

A wide table's synthetic rows (80,000 × 20,000 float16: 3 GiB) would otherwise sit in
anonymous memory beside the private table through the audits, the gate and the bundle.
:func:`spilled_array` maps them from a temporary file that has no name (it is unlinked at
creation, so a killed run leaves nothing on disk), and :func:`release_mapped_pages` lets go of
the pages this process has touched: the rows stay in the kernel's page cache (reclaimable,
written back to the file under pressure) and are read again on the next access. The block
loops of sampling, audits and writers call it after each block, so the resident set holds one
block of these rows, not all of them.

Only synthetic rows (the DP model's output) are spilled; private rows never go to disk here.
The file lives in :func:`tempfile.gettempdir` (``TMPDIR``): point it at a disk, not at a
memory-backed ``tmpfs``, for the saving to be real.
"""
from __future__ import annotations

import mmap
import tempfile
import weakref

import numpy as np

SPILL_ABOVE_BYTES = 1 << 30
"""Blocks of at least this many bytes are spilled (smaller ones stay on the heap)."""

_MAPPED: list[weakref.ref[np.memmap]] = []
"""Weak references to the spilled arrays (dead ones are pruned as new ones are made)."""


def _live() -> list[np.memmap]:
    return [a for a in (r() for r in _MAPPED) if a is not None]


def should_spill(n_bytes: int) -> bool:
    """True when a block of ``n_bytes`` is large enough to be held in a spill file."""
    return n_bytes >= SPILL_ABOVE_BYTES


def spilled_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` mapped from an unnamed temporary file.

    The file is deleted when the last view of the array is let go (and, having no name, never
    outlives the process). Pages touched are resident until :func:`release_mapped_pages`.
    """
    with tempfile.TemporaryFile(prefix="synthrelease-spill-") as handle:
        n_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        handle.truncate(max(1, n_bytes))
        array = np.memmap(handle, dtype=dtype, mode="r+", shape=shape)
    _MAPPED[:] = [r for r in _MAPPED if r() is not None] + [weakref.ref(array)]
    return array


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
    """Let go of the resident pages of every live spilled array (their content is kept: the
    mappings are shared file mappings, so dropped pages are read back from the file)."""
    for array in _live():
        handle = getattr(array, "_mmap", None)
        if handle is not None and not handle.closed:
            handle.madvise(mmap.MADV_DONTNEED)
