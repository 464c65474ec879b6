"""Sums over every process's rows, noised ONCE: the collective side of distributed DP releases.

A distributed run (``torchrun``, :mod:`synthrelease.pipeline.distributed`) splits the
private table into disjoint shards, one per process (rank). Every DP side release of
training (condition histogram, marginals, pair histograms, mean embeddings, correlations)
is a sum over rows plus Gaussian noise. :func:`noisy_sum` makes that one mechanism in a
distributed run too: the ranks' partial sums are added with ``all_reduce`` (exactly the
single-process sum, as the shards partition the rows), rank 0 alone draws the noise from
its secret generator, and the noisy total is broadcast, so every rank holds the same
release and the noise is added once — never once per rank (which would be world-size
times the variance, and each rank's noise would be a separate, unaccounted release).

In a single process (no active collective) :func:`noisy_sum` is ``values + noise``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Collective:
    """The process group of a distributed run (``rank`` 0 … ``world_size`` − 1)."""

    rank: int
    world_size: int

    @property
    def is_leader(self) -> bool:
        """Rank 0: the only rank that draws DP noise, charges the ledger and writes outputs."""
        return self.rank == 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The elementwise sum over all ranks (float64 on the wire; returns a new tensor)."""
        total = values.detach().to(torch.float64).clone()
        if self.world_size > 1:
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total.to(values.dtype)

    def broadcast(self, values: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``values`` on every rank (same shape and dtype everywhere)."""
        out = values.detach().clone()
        if self.world_size > 1:
            torch.distributed.broadcast(out, src=0)
        return out


    def union(self, keys: list[str]) -> list[str]:
        """The sorted union of every rank's ``keys`` (e.g. the category values each shard holds),
        the same list on every rank. Exchanged between the run's own processes only."""
        mine = sorted(set(keys))
        if self.world_size == 1:
            return mine
        # JSON bytes in padded uint8 tensors (plain tensor collectives; no pickled objects)
        payload = torch.frombuffer(bytearray(json.dumps(mine).encode("utf-8")), dtype=torch.uint8)
        size = torch.tensor([payload.numel()], dtype=torch.int64)
        torch.distributed.all_reduce(size, op=torch.distributed.ReduceOp.MAX)
        padded = torch.zeros(int(size.item()) + 1, dtype=torch.uint8)
        padded[:payload.numel()] = payload
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, padded)
        found: set[str] = set()
        for part in parts:
            raw = bytes(part.tolist())
            found.update(json.loads(raw[:raw.index(0)].decode("utf-8")))
        return sorted(found)


SINGLE = Collective(0, 1)
_ACTIVE: ContextVar[Collective] = ContextVar("synthrelease_collective", default=SINGLE)


def current() -> Collective:
    """The collective of the running code (:data:`SINGLE` outside :func:`active`)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def active(collective: Collective) -> Iterator[Collective]:
    """Run the enclosed DP releases as sums over ``collective``'s ranks."""
    token = _ACTIVE.set(collective)
    try:
        yield collective
    finally:
        _ACTIVE.reset(token)


def noisy_sum(values: torch.Tensor | np.ndarray, std: float, generator: torch.Generator) -> torch.Tensor | np.ndarray:
    """Σ over all ranks of ``values`` + N(0, std²) per entry, noise drawn once (rank 0), same result on every rank.

    ``values``: this rank's partial sum (a tensor or a NumPy array; the result has the same
    kind and dtype). ``generator``: the rank's SECRET generator (only rank 0's is used).
    """
    from synthrelease.privacy.randomness import gaussian_noise

    as_numpy = isinstance(values, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(values)) if as_numpy else values
    col = current()
    if col.world_size == 1:
        total = tensor + gaussian_noise(tuple(tensor.shape), std, generator)  # dtype promotion as `x + noise`
    else:
        total = col.sum(tensor).to(torch.promote_types(tensor.dtype, torch.float64))
        if col.is_leader:
            total = total + gaussian_noise(tuple(total.shape), std, generator)
        total = col.broadcast(total)
    return total.numpy() if as_numpy else total
