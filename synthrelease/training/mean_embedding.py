"""DP class-conditional mean embeddings in random Fourier features (DP-MERF style).

Harder, Adamczewski and Park, "DP-MERF: Differentially Private Mean Embeddings with
Random Features for Practical Privacy-Preserving Data Generation" (AISTATS 2021). Every
encoded private row x of class k adds φ(x) to class k's sum, φ(x) = √(1/D)·[cos(Wx), sin(Wx)]
with a PUBLIC seeded W ~ N(0, 1/ℓ²) of D rows, so ‖φ(x)‖ = 1 and the class sums have L2
sensitivity 1 under add/remove one row: one Gaussian mechanism, Opacus entry
``(σ, 1.0, 1)``. The generator then matches each class's noisy mean embedding
(post-processing). Unlike per-gene histograms (sensitivity √genes), the cost does not
grow with the number of columns, which is what wide expression matrices need.

Kernel ``linear``: φ(x) = x/‖x‖, the row's direction in the encoded space (also unit
norm, so the same sensitivity 1): the generator then matches each class's mean profile,
e.g. the marker-gene shifts that separate cell types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.budget.accounting import MechanismEntry


def random_features(width: int, n_features: int, *, generator: torch.Generator) -> torch.Tensor:
    """Public frequencies W [width, D/2] with length scale ℓ = √width / 2 (no private input)."""
    scale = 2.0 / math.sqrt(width)
    return torch.randn(width, n_features // 2, generator=generator) * scale


def feature_map(x: torch.Tensor, freqs: torch.Tensor | None) -> torch.Tensor:
    """φ(x) with ‖φ(x)‖ = 1 for every row (``freqs`` None: the linear kernel, x/‖x‖)."""
    if freqs is None:
        return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    proj = x @ freqs
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) / math.sqrt(freqs.shape[1])


@dataclass
class ClassMeanEmbedding:
    """Noisy per-class sums of φ and the accountant entry (a DP release)."""

    freqs: torch.Tensor | None  # None: linear kernel
    sums: torch.Tensor  # [classes, D]
    entry: MechanismEntry

    @classmethod
    def measure(cls, chunks: object, cond_slice: slice, *, width: int, n_features: int, noise_multiplier: float,
                feature_generator: torch.Generator, noise_generator: torch.Generator,
                kernel: str = "rff") -> ClassMeanEmbedding:
        """Read every private row once (``chunks``: iterable of encoded blocks); ``kernel``: rff or linear."""
        freqs = random_features(width, n_features, generator=feature_generator) if kernel == "rff" else None
        sums: torch.Tensor | None = None
        for block in chunks:  # type: ignore[attr-defined]
            phi = feature_map(block.float(), freqs).double()
            part = block[:, cond_slice].double().T @ phi
            sums = part if sums is None else sums + part
        assert sums is not None
        sums = sums + torch.randn(sums.shape, generator=noise_generator, dtype=torch.float64) * noise_multiplier
        entry = MechanismEntry(f"class mean embeddings ({kernel} features, Gaussian, sensitivity 1)",
                               float(noise_multiplier), 1.0, 1)
        return cls(freqs, sums.float(), entry)

    def loss(self, fake: torch.Tensor, cond: torch.Tensor, class_counts: np.ndarray) -> torch.Tensor:
        """Σ_k w_k ‖mean φ(fake | k) − noisy mean φ(real | k)‖² (weights: DP class shares)."""
        counts = torch.as_tensor(np.clip(class_counts, 1.0, None), dtype=torch.float32)
        target = self.sums / counts[:, None]
        mass = cond.sum(dim=0)
        fake_mean = (cond.T @ feature_map(fake, self.freqs)) / mass.clamp(min=1.0)[:, None]
        w = (counts / counts.sum()) * (mass > 0).float()
        return (w * ((fake_mean - target) ** 2).sum(dim=1)).sum() / w.sum().clamp(min=1e-9)
