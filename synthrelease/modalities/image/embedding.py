"""DP mean embeddings of image tiles in public random features (DP-MERF for images).

Harder, Adamczewski and Park, "DP-MERF" (AISTATS 2021), applied to tiles. Each tile x is
mapped by a PUBLIC feature map (all its parameters drawn from a public seed, never from
pixels) to

    φ(x) = [c, √(1 − c²) · ψ(x)],  ψ(x) = [ψ_layout(x), ψ_texture(x), ψ_colour(x)] / √3,

three random-Fourier-feature blocks, each of norm ≤ 1:

* ``layout``: random Fourier features of the tile averaged down to 8 × 8 pixels (where
  the dark and light, pink and purple regions sit, at a coarse scale);
* ``texture``: random Fourier features of the spatial mean and standard deviation of 64
  random 5 × 5 convolution filters after a ReLU (edges, grain, nuclei-sized blobs);
* ``colour``: the mean over the tile's pixels of random Fourier features of each pixel's
  colour (the stain gamut: which colours occur, not only their average).

So ‖φ(x)‖ ≤ 1 for every tile. Under add/remove one privacy unit (one tile, or one person
whose at most ``m`` tiles each enter with weight 1/m) the per-class sums Σ φ change by at
most 1 in L2: ONE Gaussian mechanism of sensitivity 1, Opacus entry ``(σ, 1.0, 1)``.
The constant first feature c makes the same release give DP class counts (sums[:, 0]/c),
which turn the sums into means without reading any private count. The generator then
matches each class's noisy mean embedding: post-processing, any number of steps.

What the embedding can see: colour distribution, coarse layout, local texture statistics.
What it cannot: the shapes of cells or structures larger than a few pixels beyond their
texture statistics. The DP-SGD discriminator of :mod:`synthrelease.modalities.image.model` is the
part that can judge local realism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.randomness import gaussian_noise

COUNT_FEATURE = 0.3
"""c: weight of the constant feature that carries the DP counts (the rest scaled by √(1 − c²))."""
N_FILTERS = 64
FILTER_SIZE = 5
POOLED_SIDE = 8
MEASURE_TILES = 256
"""Tiles embedded together when measuring (bounded transient memory)."""


class TileFeatureMap:
    """φ: tiles in [-1, 1], [n, channels, size, size] → [n, 1 + 3·D] with ‖φ‖ ≤ 1 (public parameters)."""

    def __init__(self, size: int, channels: int, n_features: int, *, seed: int) -> None:
        gen = torch.Generator().manual_seed(int(seed))
        half = max(8, n_features // 2)
        self.size, self.channels, self.half = size, channels, half
        self.filters = torch.randn(N_FILTERS, channels, FILTER_SIZE, FILTER_SIZE, generator=gen) / math.sqrt(
            channels * FILTER_SIZE * FILTER_SIZE)
        self.filter_bias = torch.randn(N_FILTERS, generator=gen) * 0.5
        widths = {"layout": channels * POOLED_SIDE * POOLED_SIDE, "texture": 2 * N_FILTERS, "colour": channels}
        # length scale ℓ = √width / 2 on each block's input (inputs on [-1, 1] or similar)
        self.freqs = {k: torch.randn(w, half, generator=gen) * (2.0 / math.sqrt(w)) for k, w in widths.items()}

    @property
    def dim(self) -> int:
        return 1 + 3 * 2 * self.half

    def _rff(self, block: str, v: torch.Tensor) -> torch.Tensor:
        proj = v @ self.freqs[block]
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1) / math.sqrt(self.half)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        n = tiles.shape[0]
        layout = self._rff("layout", F.adaptive_avg_pool2d(tiles, POOLED_SIDE).flatten(1))
        h = F.relu(F.conv2d(tiles, self.filters, self.filter_bias))
        texture = self._rff("texture", torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1))
        colour = self._rff("colour", tiles.flatten(2).transpose(1, 2)).mean(dim=1)
        psi = torch.cat([layout, texture, colour], dim=1) / math.sqrt(3.0)
        const = torch.full((n, 1), COUNT_FEATURE, dtype=psi.dtype)
        return torch.cat([const, psi * math.sqrt(1.0 - COUNT_FEATURE ** 2)], dim=1)


@dataclass
class TileMeanEmbedding:
    """Noisy per-class sums of φ (a DP release) and the accountant entry."""

    feature_map: TileFeatureMap
    sums: torch.Tensor  # [classes, 1 + 3·D] (classes = 1 when unconditional)
    entry: MechanismEntry

    @classmethod
    def measure(cls, tiles: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor, n_classes: int, *,
                feature_map: TileFeatureMap, noise_multiplier: float,
                noise_generator: torch.Generator) -> TileMeanEmbedding:
        """Release Σ_{tiles of class k} w·φ(tile) + N(0, σ²I) for every class k.

        ``tiles``: [n, channels, size, size] in [-1, 1]; ``classes``: class index per tile
        (zeros when unconditional); ``weights``: per-tile weight w with Σ w ≤ 1 over any one
        privacy unit's tiles (1 for tile-level units, 1/m with at most m tiles per person),
        so the L2 sensitivity of the sums is 1.
        """
        if float(weights.max()) > 1.0 + 1e-9:
            raise ValueError("tile weights must be at most 1")
        sums = torch.zeros(max(1, n_classes), feature_map.dim, dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, tiles.shape[0], MEASURE_TILES):
                stop = start + MEASURE_TILES
                phi = feature_map(tiles[start:stop].float()).double() * weights[start:stop, None].double()
                sums.index_add_(0, classes[start:stop].long(), phi)
        sums = sums + gaussian_noise(sums.shape, float(noise_multiplier), noise_generator)
        entry = MechanismEntry("tile mean embeddings (random features, Gaussian, sensitivity 1)",
                               float(noise_multiplier), 1.0, 1)
        return cls(feature_map, sums.float(), entry)

    def class_counts(self) -> np.ndarray:
        """DP (weighted) tile counts per class, read off the constant feature (post-processing)."""
        return (self.sums[:, 0].double() / COUNT_FEATURE).numpy()

    def targets(self) -> torch.Tensor:
        """Per-class noisy mean embeddings (the constant feature dropped), counts floored at 1."""
        counts = torch.as_tensor(np.clip(self.class_counts(), 1.0, None), dtype=torch.float32)
        return self.sums[:, 1:] / counts[:, None]

    def loss(self, fake: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """Σ_k w_k ‖mean φ(fake | k) − target_k‖² (w: the DP class shares; differentiable in ``fake``)."""
        targets = self.targets()
        phi = self.feature_map(fake)[:, 1:]
        if classes is None:
            return ((phi.mean(dim=0) - targets[0]) ** 2).sum()
        onehot = F.one_hot(classes, targets.shape[0]).float()
        mass = onehot.sum(dim=0)
        fake_mean = (onehot.T @ phi) / mass.clamp(min=1.0)[:, None]
        counts = torch.as_tensor(np.clip(self.class_counts(), 1.0, None), dtype=torch.float32)
        w = counts / counts.sum() * (mass > 0).float()
        return (w * ((fake_mean - targets) ** 2).sum(dim=1)).sum() / w.sum().clamp(min=1e-9)
