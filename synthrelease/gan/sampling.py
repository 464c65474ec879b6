"""Sampling synthetic rows from a trained generator: pure post-processing.

Nothing here reads private data: the generator, the public encoder and the DP
condition frequencies are all outputs of the accounted training run, so every row
sampled carries the run's (ε, δ) guarantee however many rows are drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from synthrelease.errors import SynthreleaseError
from synthrelease.gan.trainer import TrainedModel
from synthrelease.io.spill import release_mapped_pages, should_spill, spilled_array
from synthrelease.metadata.schema import Metadata, canonical_category

DEFAULT_CHUNK_ROWS = 50_000
CHUNK_CELLS = 1 << 25
"""Encoded cells generated at once (128 MiB as float32): a wide table's chunks get fewer rows
(a 20,000-gene matrix, ~60,000 encoded columns: ~560 rows), a narrow table's keep ``chunk_rows``."""


def condition_index(condition: dict[str, str] | None, conditioned_on: str | None, categories: list[Any], *,
                    untrained: str) -> int | None:
    """The category index a ``--condition COLUMN=VALUE`` asks for (None without one).

    ``conditioned_on``: the model's condition column (None: ``untrained`` is the error);
    ``categories``: its canonical declared categories.

    Raises:
        SynthreleaseError: one line naming the column or value.
    """
    if not condition:
        return None
    if len(condition) != 1:
        raise SynthreleaseError("give at most one --condition COLUMN=VALUE")
    (column, value), = condition.items()
    if conditioned_on is None:
        raise SynthreleaseError(untrained)
    if column != conditioned_on:
        raise SynthreleaseError(f"--condition: the model is conditioned on {conditioned_on!r}, not {column!r}")
    canon = canonical_category(value)
    if canon not in categories:
        raise SynthreleaseError(f"--condition: {value!r} is not a declared category of {column!r}")
    return categories.index(canon)


def _condition_index(model: TrainedModel, condition: dict[str, str] | None) -> int | None:
    column = model.condition_column
    return condition_index(condition, column, model.encoder.categories(column) if column else [],
                           untrained="this model was trained without a condition column")


def sample_chunks(
    model: TrainedModel,
    n_rows: int,
    *,
    seed: int,
    condition: dict[str, str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    adjust_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ``n_rows`` synthetic rows in chunks of at most ``chunk_rows`` (flat memory).

    Args:
        model: a trained model.
        n_rows: rows to draw (≥ 1).
        seed: seed of the sampling streams (same seed → same rows).
        condition: optional ``{condition_column: category}`` to draw only that category.
        chunk_rows: rows per yielded DataFrame (at most :data:`CHUNK_CELLS` / encoded width).
        adjust_logits: optional ``(logits, first draw) → logits`` applied before a second
            draw (a modality's consistency constraints, e.g. a sequence's drawn length).

    Raises:
        SynthreleaseError: bad ``n_rows`` or ``condition``.
    """
    if n_rows < 1:
        raise SynthreleaseError(f"number of rows must be >= 1, got {n_rows}")
    fixed = _condition_index(model, condition)
    gen = torch.Generator()
    gen.manual_seed(int(np.random.SeedSequence([seed, 0x5A3]).generate_state(1)[0]))
    g = model.generator
    g.eval()
    probs = None if model.condition_probs is None else torch.as_tensor(model.condition_probs, dtype=torch.float64)
    chunk_rows = max(1, min(chunk_rows, CHUNK_CELLS // max(1, model.encoder.width)))
    done = 0
    while done < n_rows:
        m = min(chunk_rows, n_rows - done)
        # no_grad per chunk, never across the yield: a generator suspended (or abandoned) inside
        # a no_grad block would leave gradients off in its caller
        with torch.no_grad():
            cond = None
            if probs is not None:
                if fixed is None:
                    idx = torch.multinomial(probs, m, replacement=True, generator=gen)
                else:
                    idx = torch.full((m,), fixed, dtype=torch.long)
                cond = F.one_hot(idx, probs.shape[0]).float()
            z = torch.randn(m, g.latent_dim, generator=gen)
            raw = g.raw(z, cond)
            out = g.activate(raw, cond, tau=1.0, generator=gen, hard=True)
            if adjust_logits is not None:
                out = g.activate(adjust_logits(raw, out), cond, tau=1.0, generator=gen, hard=True)
        frame = model.encoder.decode(out.numpy())
        frame.index = pd.RangeIndex(done, done + m)
        yield frame
        done += m


def sample_frame(model: TrainedModel, n_rows: int, *, seed: int, condition: dict[str, str] | None = None,
                 adjust_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> pd.DataFrame:
    """All ``n_rows`` in one DataFrame (see :func:`sample_chunks`)."""
    return stack_chunks(sample_chunks(model, n_rows, seed=seed, condition=condition, adjust_logits=adjust_logits),
                        n_rows)


WIDE_BLOCK_MIN_COLUMNS = 64
"""From this many columns of one float dtype, :func:`stack_chunks` fills them into one array."""


def float_block_bytes(metadata: Metadata, n_rows: int) -> int:
    """Bytes of the block :func:`stack_chunks` fills for ``n_rows`` rows of the metadata's plain
    ``float`` columns (public quantities; 0 below :data:`WIDE_BLOCK_MIN_COLUMNS` of them)."""
    floats = sum(1 for s in metadata.columns.values() if s.type == "float")
    if floats < WIDE_BLOCK_MIN_COLUMNS:
        return 0
    return n_rows * floats * (2 if metadata.float_storage == "float16" else 8)


def stack_chunks(chunks: Iterator[pd.DataFrame], n_rows: int) -> pd.DataFrame:
    """The chunks of :func:`sample_chunks` as one frame, equal to ``pd.concat(list(chunks))``.

    Wide tables (≥ :data:`WIDE_BLOCK_MIN_COLUMNS` float columns of one dtype): those columns are
    copied chunk by chunk into one preallocated array and each chunk is let go at once, so the
    peak is the result plus one chunk, not the chunks plus their concatenation (2× the result:
    3 GiB more for 80,000 × 20,000 float16 rows). Other columns are concatenated per column,
    and the frame keeps the chunks' column order without a reordering copy. A block of at least
    :data:`synthrelease.io.spill.SPILL_ABOVE_BYTES` is held in a spill file, not on the heap
    (:mod:`synthrelease.io.spill`): the resident set then holds one chunk of it.
    """
    first = next(chunks)
    dtypes = first.dtypes
    floats = pd.Series([d for d in dtypes if isinstance(d, np.dtype) and d.kind == "f"], dtype=object)
    if floats.empty or floats.value_counts().iloc[0] < WIDE_BLOCK_MIN_COLUMNS:
        return pd.concat([first, *chunks], axis=0)
    wide = floats.value_counts().index[0]
    in_block = [isinstance(d, np.dtype) and d == wide for d in dtypes]
    positions = [i for i, b in enumerate(in_block) if b]
    shape = (len(positions), n_rows)  # column-major, pandas' own block layout: columns are contiguous
    block = spilled_array(shape, wide) if should_spill(shape[0] * shape[1] * wide.itemsize) else np.empty(shape, wide)
    others: dict[int, list[pd.Series]] = {i: [] for i, b in enumerate(in_block) if not b}
    done = 0
    chunk: pd.DataFrame | None = first
    while chunk is not None:
        m = len(chunk)
        block[:, done:done + m] = chunk.iloc[:, positions].to_numpy(dtype=wide).T
        for i, parts in others.items():
            parts.append(chunk.iloc[:, i])
        done += m
        release_mapped_pages()
        chunk = next(chunks, None)
    if done != n_rows:
        raise SynthreleaseError(f"sampling gave {done} rows, {n_rows} were asked for")
    index = pd.RangeIndex(n_rows)
    # one frame over the block (a view), then the other columns inserted at their places: a
    # concatenation of column runs would consolidate the runs into a heap copy of the block
    frame = pd.DataFrame(block.T, index=index, columns=first.columns[positions], copy=False)
    for i in sorted(others):
        frame.insert(i, first.columns[i], pd.concat(others[i], axis=0).set_axis(index))
    return frame
