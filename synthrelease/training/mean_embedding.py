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

Kernel ``centered``: φ(x) = (u − m)/‖u − m‖ with u = x/‖x‖ and m a DP estimate of the
mean direction (a first Gaussian release, sensitivity 1, n public). The part of every row
that all classes share no longer takes up the unit norm, so the class differences get a
larger share of it: more signal per unit of noise. The two releases split the budget as
1/σ² = 1/σ_center² + 1/σ_sums² (Gaussian RDP adds), with ``CENTER_WEIGHT`` of it on m.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from synthrelease.budget.accounting import MechanismEntry


def random_features(width: int, n_features: int, *, generator: torch.Generator) -> torch.Tensor:
    """Public frequencies W [width, D/2] with length scale ℓ = √width / 2 (no private input)."""
    scale = 2.0 / math.sqrt(width)
    return torch.randn(width, n_features // 2, generator=generator) * scale


CENTER_WEIGHT = 0.2
"""Share of the embedding's Gaussian budget (in 1/σ²) spent on the DP center of kernel ``centered``."""


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def feature_map(x: torch.Tensor, freqs: torch.Tensor | None, center: torch.Tensor | None = None) -> torch.Tensor:
    """φ(x) with ‖φ(x)‖ = 1 for every row.

    ``freqs`` None: the linear kernel x/‖x‖, or with ``center`` m: (u − m)/‖u − m‖, u = x/‖x‖.
    """
    if freqs is None:
        return _unit(_unit(x) - center) if center is not None else _unit(x)
    proj = x @ freqs
    return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) / math.sqrt(freqs.shape[1])


@dataclass
class ClassMeanEmbedding:
    """Noisy per-class sums of φ and the accountant entry (a DP release)."""

    freqs: torch.Tensor | None  # None: linear kernel
    sums: torch.Tensor  # [classes, D]
    entries: tuple[MechanismEntry, ...]
    center: torch.Tensor | None = None  # kernel "centered": the DP mean direction

    @classmethod
    def measure(cls, chunks: Callable[[], Iterable[torch.Tensor]] | list[torch.Tensor], cond_slice: slice, *,
                width: int, n_features: int, noise_multiplier: float, feature_generator: torch.Generator,
                noise_generator: torch.Generator, kernel: str = "rff", n_rows: int | None = None,
                ) -> ClassMeanEmbedding:
        """Release the noisy class sums of φ (``chunks``: encoded blocks, or a function giving them anew).

        ``noise_multiplier`` σ is the budget of the whole embedding; kernel ``centered``
        (which needs the public row count ``n_rows``) reads the rows twice and splits σ
        into two releases of the same total RDP (see the module docstring).
        """
        blocks = chunks if callable(chunks) else (lambda: chunks)
        freqs = random_features(width, n_features, generator=feature_generator) if kernel == "rff" else None
        center = None
        entries: tuple[MechanismEntry, ...] = ()
        sigma = float(noise_multiplier)
        if kernel == "centered":
            if n_rows is None or n_rows < 1:
                raise ValueError("kernel 'centered' needs the public row count n_rows")
            sigma_center = sigma / math.sqrt(CENTER_WEIGHT) if sigma > 0 else 0.0
            sigma = sigma / math.sqrt(1 - CENTER_WEIGHT) if sigma > 0 else 0.0
            total = sum(_unit(block.float()).double().sum(dim=0) for block in blocks())
            total = total + torch.randn(total.shape, generator=noise_generator, dtype=torch.float64) * sigma_center
            center = (total / n_rows).float()
            entries += (MechanismEntry("class mean embeddings: center (mean direction, Gaussian, sensitivity 1)",
                                       sigma_center, 1.0, 1),)
        sums: torch.Tensor | None = None
        for block in blocks():
            phi = feature_map(block.float(), freqs, center).double()
            part = block[:, cond_slice].double().T @ phi
            sums = part if sums is None else sums + part
        assert sums is not None
        sums = sums + torch.randn(sums.shape, generator=noise_generator, dtype=torch.float64) * sigma
        entries += (MechanismEntry(f"class mean embeddings ({kernel} features, Gaussian, sensitivity 1)",
                                   sigma, 1.0, 1),)
        return cls(freqs, sums.float(), entries, center)

    def loss(self, fake: torch.Tensor, cond: torch.Tensor, class_counts: np.ndarray) -> torch.Tensor:
        """Σ_k w_k ‖mean φ(fake | k) − noisy mean φ(real | k)‖² (weights: DP class shares)."""
        counts = torch.as_tensor(np.clip(class_counts, 1.0, None), dtype=torch.float32)
        target = self.sums / counts[:, None]
        mass = cond.sum(dim=0)
        fake_mean = (cond.T @ feature_map(fake, self.freqs, self.center)) / mass.clamp(min=1.0)[:, None]
        w = (counts / counts.sum()) * (mass > 0).float()
        return (w * ((fake_mean - target) ** 2).sum(dim=1)).sum() / w.sum().clamp(min=1e-9)
