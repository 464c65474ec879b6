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

Kernel ``values``: φ(x) = u/‖u‖ with u the row's numerical values rescaled to [0, 1] over
their PUBLIC bounds (on the encoder's scale; exactly 0 for a zero or missing entry), the
discrete blocks left out. The linear kernel's unit norm is mostly spent on indicator
entries and on the −1 that encodes every zero, so on zero-inflated expression data a
marker gene's shift takes a small part of it; in value space the same shift is a large
part of a row's norm (measured on pbmc68k: class-mean signal ≈ 6× larger per unit of
noise). The generator's soft indicators enter as P(present)·P(non-zero)·value. A constant
first feature (``COUNT_FEATURE``) makes the same release give DP class counts. A unit
vector has no scale, so a second, small Gaussian release (``NORM_WEIGHT`` of the budget, in
1/σ², as for ``centered``) measures a histogram of ‖u‖ over public log-spaced bins; its
mean M (post-processing) anchors the generated rows' mean ‖u‖. Without it the generator
matched the class profiles at about 3× the real expression level, and classifiers trained
on that data put their thresholds where real cells never are.

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

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import noisy_sum
from synthrelease.transforms.dp_marginals import NumericLayout


def random_features(width: int, n_features: int, *, generator: torch.Generator) -> torch.Tensor:
    """Public frequencies W [width, D/2] with length scale ℓ = √width / 2 (no private input)."""
    scale = 2.0 / math.sqrt(width)
    return torch.randn(width, n_features // 2, generator=generator) * scale


CENTER_WEIGHT = 0.2
"""Share of the embedding's Gaussian budget (in 1/σ²) spent on the DP center of kernel ``centered``."""

NORM_WEIGHT = 0.05
"""Share of the embedding's Gaussian budget (in 1/σ²) spent on the ‖u‖ histogram of kernel ``values``."""

MEASURE_ROWS = 512
"""Rows per piece when the release reads the table (bounds its transient memory)."""

COUNT_FEATURE = 0.5
"""Kernel ``values``: constant first feature c (the rest scaled by √(1 − c²), so ‖φ‖ ≤ 1 still):
the class sums' first entry is c·n_k plus noise, i.e. DP class counts at noise σ/c from the
same release — far less noisy than a separate small-ε histogram of the condition."""

NORM_BINS = 48
"""Log-spaced bins of the ‖u‖ histogram between √width/1000 and √width (all public), plus one for 0."""


def dp_mean_norm(norms: torch.Tensor, max_norm: float, sigma: float, generator: torch.Generator) -> float:
    """Mean of ``norms`` from a Gaussian-noised histogram over public bins (a DP release).

    Each row adds 1 to one bin: L2 sensitivity 1 under add/remove one row. Negative noisy
    counts are clipped to 0 (post-processing); the mean uses the bins' geometric centres.
    """
    edges = torch.logspace(math.log10(max_norm / 1000), math.log10(max_norm), NORM_BINS + 1, dtype=torch.float64)
    idx = torch.bucketize(norms.double().clamp(max=max_norm), edges)  # 0: below the first edge
    counts = torch.bincount(idx, minlength=NORM_BINS + 2)[: NORM_BINS + 2].double()
    counts[NORM_BINS] += counts[NORM_BINS + 1:].sum()
    counts = counts[: NORM_BINS + 1]
    noisy = noisy_sum(counts, sigma, generator).clamp(min=0)
    centres = torch.cat([torch.zeros(1, dtype=torch.float64), (edges[:-1] * edges[1:]).sqrt()])
    if float(noisy.sum()) <= 0:
        return float(max_norm) / 2
    return float((noisy * centres).sum() / noisy.sum())


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def numeric_values(x: torch.Tensor, layout: NumericLayout) -> torch.Tensor:
    """Each numerical column's value on [0, 1] over its public bounds, times P(present)·P(non-zero).

    Differentiable in ``x`` (the generator's soft indicators); exact for encoded real rows.
    """
    u = ((x[:, layout.value_idx] + 1.0) * 0.5).clamp(0.0, 1.0)
    for idx in (layout.present_idx, layout.nonzero_idx):
        has = idx >= 0
        if bool(has.any()):
            gate = torch.ones_like(u)
            gate[:, has] = x[:, idx[has]]
            u = u * gate
    return u


def nonzero_indicators(x: torch.Tensor, layout: NumericLayout) -> torch.Tensor:
    """P(non-zero) of every zero-inflated numerical column (exact 0/1 on encoded real rows)."""
    has = layout.nonzero_idx >= 0
    return x[:, layout.nonzero_idx[has]]


def feature_map(x: torch.Tensor, freqs: torch.Tensor | None, center: torch.Tensor | None = None,
                layout: NumericLayout | None = None, zero_weight: float = 0.0) -> torch.Tensor:
    """φ(x) with ‖φ(x)‖ ≤ 1 for every row (= 1 unless a ``values`` row is all zero).

    ``layout`` given: kernel ``values``, [c, √(1−c²)·u/‖u‖] with u = :func:`numeric_values`
    and c = ``COUNT_FEATURE``; with ``zero_weight`` w > 0 that share of the √(1−c²) part
    goes to the non-zero indicators z/√(#zero-inflated columns). ``freqs``
    None: the linear kernel x/‖x‖, or with ``center`` m: (u − m)/‖u − m‖, u = x/‖x‖.
    """
    if layout is not None:
        rest = 1.0 - COUNT_FEATURE ** 2
        parts = [torch.full((x.shape[0], 1), COUNT_FEATURE, dtype=x.dtype)]
        if zero_weight > 0 and bool((layout.nonzero_idx >= 0).any()):
            z = nonzero_indicators(x, layout)
            parts += [_unit(numeric_values(x, layout)) * math.sqrt(rest * (1.0 - zero_weight)),
                      z * math.sqrt(rest * zero_weight / z.shape[1])]
        else:
            parts.append(_unit(numeric_values(x, layout)) * math.sqrt(rest))
        return torch.cat(parts, dim=1)
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
    layout: NumericLayout | None = None  # kernel "values": where the numerical values are
    mean_norm: float | None = None  # kernel "values": DP mean of ‖u‖ over the real rows
    sums_sigma: float = 0.0  # σ of the Gaussian noise on each entry of ``sums``
    shrinkage: float = 0.0  # λ: soft-threshold class deviations at λ·σ/n_k (0 = off)
    zero_weight: float = 0.0  # kernel "values": share of the profile's norm on non-zero indicators

    @classmethod
    def measure(cls, chunks: Callable[[], Iterable[torch.Tensor]] | list[torch.Tensor], cond_slice: slice, *,
                width: int, n_features: int, noise_multiplier: float, feature_generator: torch.Generator,
                noise_generator: torch.Generator, kernel: str = "rff", n_rows: int | None = None,
                layout: NumericLayout | None = None, zero_weight: float = 0.0) -> ClassMeanEmbedding:
        """Release the noisy class sums of φ (``chunks``: encoded blocks, or a function giving them anew).

        ``noise_multiplier`` σ is the budget of the whole embedding; kernel ``centered``
        (which needs the public row count ``n_rows``) reads the rows twice and splits σ
        into two releases of the same total RDP (see the module docstring); kernel
        ``values`` needs the encoder's numerical ``layout`` (public).
        """
        if kernel == "values" and (layout is None or len(layout.columns) == 0):
            raise ValueError("kernel 'values' needs a layout with at least one numerical column")
        layout = layout if kernel == "values" else None
        source = chunks if callable(chunks) else (lambda: chunks)

        def blocks() -> Iterable[torch.Tensor]:  # small pieces: φ's float64 copy stays ~100 MB on 20k genes
            for chunk in source():
                yield from chunk.split(MEASURE_ROWS)
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
            total = noisy_sum(total, sigma_center, noise_generator)
            center = (total / n_rows).float()
            entries += (MechanismEntry("class mean embeddings: center (mean direction, Gaussian, sensitivity 1)",
                                       sigma_center, 1.0, 1),)
        sums: torch.Tensor | None = None
        norm_parts: list[torch.Tensor] = []  # kernel "values": ‖u‖ per row, read in the same pass
        for block in blocks():
            x = block.float()
            if layout is not None:
                norm_parts.append(numeric_values(x, layout).norm(dim=1))
            phi = feature_map(x, freqs, center, layout, zero_weight).double()
            part = block[:, cond_slice].double().T @ phi
            sums = part if sums is None else sums + part
        assert sums is not None
        mean_norm = None
        if layout is not None:  # noise order: the norm histogram first, then the class sums
            sigma_norm = sigma / math.sqrt(NORM_WEIGHT) if sigma > 0 else 0.0
            sigma = sigma / math.sqrt(1 - NORM_WEIGHT) if sigma > 0 else 0.0
            mean_norm = dp_mean_norm(torch.cat(norm_parts), math.sqrt(len(layout.columns)), sigma_norm,
                                     noise_generator)
            entries += (MechanismEntry("class mean embeddings: histogram of row norms (Gaussian, sensitivity 1)",
                                       sigma_norm, 1.0, 1),)
        sums = noisy_sum(sums, sigma, noise_generator)
        entries += (MechanismEntry(f"class mean embeddings ({kernel} features, Gaussian, sensitivity 1)",
                                   sigma, 1.0, 1),)
        return cls(freqs, sums.float(), entries, center, layout, mean_norm, sigma, zero_weight=zero_weight)

    def class_counts(self) -> np.ndarray | None:
        """Kernel ``values``: the DP class counts read off the constant feature (post-processing)."""
        if self.layout is None:
            return None
        return (self.sums[:, 0].double() / COUNT_FEATURE).numpy()

    def target(self, counts: torch.Tensor) -> torch.Tensor:
        """Per-class target means (post-processing of the release).

        With ``shrinkage`` λ > 0: overall mean m = Σ sums / Σ n plus each class's deviation
        soft-thresholded at λ·σ/n_k (its noise scale), so the generator does not spend its
        rows' norm on matching pure noise in every coordinate.
        """
        means = self.sums / counts[:, None]
        if self.shrinkage <= 0:
            return means
        overall = self.sums.sum(dim=0) / counts.sum()
        dev = means - overall
        tau = self.shrinkage * self.sums_sigma / counts[:, None]
        return overall + dev.sign() * (dev.abs() - tau).clamp(min=0.0)

    def loss(self, fake: torch.Tensor, cond: torch.Tensor, class_counts: np.ndarray) -> torch.Tensor:
        """Σ_k w_k ‖mean φ(fake | k) − noisy mean φ(real | k)‖² (weights: DP class shares).

        Kernel ``values`` adds (mean ‖u(fake)‖ / M − 1)², M the DP mean row norm.
        """
        counts = torch.as_tensor(np.clip(class_counts, 1.0, None), dtype=torch.float32)
        target = self.target(counts)
        mass = cond.sum(dim=0)
        phi = feature_map(fake, self.freqs, self.center, self.layout, self.zero_weight)
        fake_mean = (cond.T @ phi) / mass.clamp(min=1.0)[:, None]
        w = (counts / counts.sum()) * (mass > 0).float()
        loss = (w * ((fake_mean - target) ** 2).sum(dim=1)).sum() / w.sum().clamp(min=1e-9)
        if self.layout is not None and self.mean_norm is not None and self.mean_norm > 0:
            fake_norm = numeric_values(fake, self.layout).norm(dim=1).mean()
            loss = loss + (fake_norm / self.mean_norm - 1.0) ** 2
        return loss
