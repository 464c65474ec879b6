"""Explicit randomness: child generators per stage from one seed.

No module of synthrelease touches numpy's or torch's global random state. Each stage
asks for its own generator by name, derived from one :class:`numpy.random.SeedSequence`,
so adding a stage never changes the stream of another.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


class SeedTree:
    """Derives independent, named numpy and torch generators from one root seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _child(self, stage: str) -> np.random.SeedSequence:
        key = int.from_bytes(hashlib.sha256(stage.encode()).digest()[:8], "little")
        return np.random.SeedSequence([self.seed, key])

    def numpy(self, stage: str) -> np.random.Generator:
        """A numpy generator for ``stage``."""
        return np.random.default_rng(self._child(stage))

    def torch(self, stage: str) -> torch.Generator:
        """A CPU torch generator for ``stage``."""
        g = torch.Generator()
        g.manual_seed(int(self._child(stage).generate_state(1, dtype=np.uint64)[0] >> 1))
        return g

    def integer(self, stage: str) -> int:
        """A 31-bit integer seed for ``stage`` (for libraries that take an int)."""
        return int(self._child(stage).generate_state(1)[0] & 0x7FFFFFFF)
