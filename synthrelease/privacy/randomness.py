"""Explicit randomness, in two kinds that never mix.

* :class:`SeedTree` — PUBLIC streams from a user seed: generator initialisation, the
  latent noise of training and sampling, random features, audit model seeds, canaries.
  Knowing the seed tells an attacker nothing about the private rows.
* :class:`PrivateRandomness` — SECRET streams for every DP mechanism (Gaussian noise of
  every release and of DP-SGD, Opacus' Poisson batch masks) and for the train/holdout
  coins. Each stream is seeded with 64 fresh bits of operating-system entropy
  (:func:`secrets.randbits`) when it is created; the seed is never stored, logged or
  derived from a user seed. Replaying a release on a table with and without one person
  is then impossible: the attacker would have to guess a fresh 64-bit seed per stream.

Gaussian noise is drawn by :func:`gaussian_noise`, the floating-point-hardened sampler
of Opacus' ``secure_mode`` (Holohan & Braghin 2021: the sum of four Gaussians of std σ,
halved, after discarding one draw), so that the low bits of a noisy value do not reveal
the noise (Mironov 2012 style attacks). What remains (stated in README): torch's
generator is a Mersenne Twister, not a cryptographic generator (torchcsprng, which
Opacus' secure mode wants, has no build for the pinned torch); its 64-bit seed is secret
and fresh, but a CSPRNG would be stronger.

No module of synthrelease touches numpy's or torch's global random state.
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import torch

from synthrelease.errors import InternalError


class SeedTree:
    """Derives independent, named numpy and torch generators from one PUBLIC root seed.

    For public randomness only (see the module docstring); never for DP noise, Poisson
    sampling or the train/holdout split.
    """

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


class PrivateRandomness:
    """Secret randomness for DP mechanisms and the split: fresh OS entropy per stream, never stored.

    ``PrivateRandomness()`` is the only form a release accepts. Tests that need
    reproducible private streams use :meth:`unsafe_reproducible_for_tests`, whose
    instances say so (``reproducible`` is True) and are refused by ``release``, by
    ``train``/``save_model`` and by every other path that writes shareable output.
    """

    def __init__(self) -> None:
        self._tree: SeedTree | None = None

    @classmethod
    def unsafe_reproducible_for_tests(cls, seed: int) -> PrivateRandomness:
        """TEST-ONLY: private streams derived from ``seed``. BREAKS the DP guarantee (replayable)."""
        out = cls()
        out._tree = SeedTree(seed)
        return out

    @classmethod
    def for_discarded_run(cls, seed: int) -> PrivateRandomness:
        """Reproducible streams for a training run whose DP outputs are all DISCARDED.

        Only for the empirical privacy audit's canary runs: their model, discriminator and
        table never leave the audit (only its ε lower bound does), so replaying them reveals
        nothing, and a seeded run makes the audit repeatable. ``reproducible`` is True, so
        such a model can never be saved or released.
        """
        return cls.unsafe_reproducible_for_tests(seed)

    @property
    def reproducible(self) -> bool:
        """True only for the test-only hook: such randomness must never reach a release."""
        return self._tree is not None

    def torch(self, stage: str) -> torch.Generator:
        """A fresh secret CPU torch generator for the DP mechanism ``stage``."""
        if self._tree is not None:
            return self._tree.torch(f"private:{stage}")
        g = torch.Generator()
        g.manual_seed(secrets.randbits(63))
        return g

    def numpy(self, stage: str) -> np.random.Generator:
        """A fresh secret numpy generator (128 bits of OS entropy) for ``stage``."""
        if self._tree is not None:
            return self._tree.numpy(f"private:{stage}")
        return np.random.default_rng(secrets.randbits(128))

    def require_secret(self, what: str) -> None:
        """Refuse reproducible (test-only) randomness on a path that produces shareable output."""
        if self.reproducible:
            raise InternalError(f"{what}: refused: private randomness is the test-only reproducible kind, "
                                "which voids the DP guarantee")


def gaussian_noise(shape: tuple[int, ...] | torch.Size, std: float, generator: torch.Generator,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """N(0, std²) noise, hardened against floating-point attacks as Opacus' ``secure_mode``.

    One draw is discarded, then four independent N(0, std²) draws are summed and halved
    (variance std²), so a released noisy value no longer pins down one generator output
    (Holohan & Braghin 2021, section 5.1; ``opacus.optimizers.optimizer._generate_noise``).
    """
    shape = tuple(shape)
    if std == 0:
        return torch.zeros(shape, dtype=dtype)
    torch.randn((1,), generator=generator, dtype=dtype)  # discarded, as in Opacus
    total = torch.zeros(shape, dtype=dtype)
    for _ in range(4):
        total += torch.randn(shape, generator=generator, dtype=dtype)
    return total * (std / 2.0)
