"""Generator and discriminator networks.

The discriminator sees private rows and is trained with DP-SGD: it holds only
``nn.Linear`` (and, for sequences, ``nn.Conv1d``) layers and parameter-free activations,
so Opacus clips every layer per row (ghost clipping for Linear, its per-sample conv
gradients otherwise) and ``ModuleValidator`` accepts it (no BatchNorm). The generator never
sees private rows (it only receives the discriminator's noisy feedback), so it is
post-processing and may use BatchNorm over its own fake batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthrelease.transforms.encoders import Span


class _Residual(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


GROUPED_ABOVE_SPANS = 64
"""Tables with more spans activate them in groups of equal width (a few tensor ops instead
of one per span: a 20,000-gene matrix has ~40,000 spans). Same distribution; small tables
keep the per-span loop, so their seeded results are unchanged."""


class _SpanGroups:
    """Index tensors that activate all spans of one width at once."""

    def __init__(self, continuous: torch.Tensor, by_width: list[tuple[int, torch.Tensor]],
                 cond_idx: torch.Tensor | None, inverse: torch.Tensor) -> None:
        self.continuous = continuous
        self.by_width = by_width
        self.cond_idx = cond_idx
        self.inverse = inverse

    @classmethod
    def build(cls, spans: tuple[Span, ...], cond_span: Span | None) -> _SpanGroups:
        continuous = [s.start for s in spans if s.kind == "continuous"]
        widths: dict[int, list[list[int]]] = {}
        for s in spans:
            if s.kind == "discrete" and s != cond_span:
                widths.setdefault(s.width, []).append(list(range(s.start, s.stop)))
        by_width = [(w, torch.tensor(idx, dtype=torch.long)) for w, idx in sorted(widths.items())]
        cond_idx = torch.arange(cond_span.start, cond_span.stop) if cond_span is not None else None
        order = torch.cat([torch.tensor(continuous, dtype=torch.long), *[i.reshape(-1) for _, i in by_width],
                           *([cond_idx] if cond_idx is not None else [])])
        return cls(torch.tensor(continuous, dtype=torch.long), by_width, cond_idx, torch.argsort(order))

    def activate(self, raw: torch.Tensor, cond: torch.Tensor | None, *, tau: float,
                 generator: torch.Generator | None, hard: bool) -> torch.Tensor:
        """As :meth:`Generator.activate`, one group of equal-width spans at a time."""
        n = raw.shape[0]

        def discrete(block: torch.Tensor) -> torch.Tensor:  # [n, spans, w] → [n, spans · w]
            w = block.shape[2]
            if hard:
                probs = torch.softmax(block, dim=2).reshape(-1, w)
                draw = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                return F.one_hot(draw, w).to(raw.dtype).reshape(n, -1)
            u = torch.rand(block.shape, generator=generator, dtype=raw.dtype).clamp_(1e-10, 1 - 1e-10)
            return torch.softmax((block - torch.log(-torch.log(u))) / tau, dim=2).reshape(n, -1)

        parts = [torch.tanh(raw[:, self.continuous])]
        parts += [discrete(raw[:, idx]) for _, idx in self.by_width]
        if self.cond_idx is not None:
            parts.append(cond if cond is not None else discrete(raw[:, self.cond_idx].unsqueeze(1)))
        return torch.cat(parts, dim=1)[:, self.inverse]


class Generator(nn.Module):
    """Conditional MLP generator with residual blocks (as in CTGAN).

    Args:
        latent_dim: size of the Gaussian input z.
        cond_dim: size of the one-hot condition (0 for none).
        hidden: width of each residual block.
        spans: the encoder's spans, which decide each output's activation.
        cond_span: the span of the condition column (its output is set to the condition).
    """

    def __init__(self, latent_dim: int, cond_dim: int, hidden: int, spans: tuple[Span, ...],
                 cond_span: Span | None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        self.spans = spans
        self.cond_span = cond_span
        self.out_dim = spans[-1].stop
        dim = latent_dim + cond_dim
        self.block1 = _Residual(dim, hidden)
        self.block2 = _Residual(dim + hidden, hidden)
        self.head = nn.Linear(dim + 2 * hidden, self.out_dim)
        cont = [s.start for s in spans if s.kind == "continuous"]
        self.register_buffer("_continuous_idx", torch.tensor(cont, dtype=torch.long), persistent=False)
        self._groups = _SpanGroups.build(spans, cond_span) if len(spans) > GROUPED_ABOVE_SPANS else None

    def raw(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Unactivated outputs (logits for discrete spans, pre-tanh for continuous)."""
        x = z if cond is None or self.cond_dim == 0 else torch.cat([z, cond], dim=1)
        return self.head(self.block2(self.block1(x)))

    def activate(self, raw: torch.Tensor, cond: torch.Tensor | None, *, tau: float,
                 generator: torch.Generator | None, hard: bool) -> torch.Tensor:
        """Apply tanh to continuous outputs and (Gumbel-)softmax sampling to discrete blocks.

        ``hard=False`` (training): differentiable Gumbel-softmax with temperature ``tau``.
        ``hard=True`` (sampling): an exact one-hot draw from each block's softmax.
        """
        if self._groups is not None:
            return self._groups.activate(raw, cond, tau=tau, generator=generator, hard=hard)
        parts = []
        for s in self.spans:
            block = raw[:, s.start:s.stop]
            if self.cond_span is not None and s == self.cond_span and cond is not None:
                parts.append(cond)
            elif s.kind == "continuous":
                parts.append(torch.tanh(block))
            elif hard:
                probs = torch.softmax(block, dim=1)
                idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                parts.append(F.one_hot(idx, s.width).to(raw.dtype))
            else:
                u = torch.rand(block.shape, generator=generator, dtype=raw.dtype).clamp_(1e-10, 1 - 1e-10)
                gumbel = -torch.log(-torch.log(u))
                parts.append(torch.softmax((block + gumbel) / tau, dim=1))
        return torch.cat(parts, dim=1)


class Discriminator(nn.Module):
    """MLP critic over encoded rows: Linear layers and LeakyReLU only (DP-SGD friendly).

    ``projection`` k > 0: the rows first go through a fixed random projection
    P ~ N(0, 1/k) of shape [in_dim, k] (a buffer drawn from ``generator``, not trained and
    independent of the data). DP-SGD's noise grows with the square root of the number of
    trained parameters; on wide tables the first layer holds almost all of them, so a
    projection to k ≪ in_dim dimensions (Johnson–Lindenstrauss: distances kept) cuts the
    noise the discriminator sees by about √(in_dim / k).
    """

    def __init__(self, in_dim: int, hidden: int, *, projection: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        first = in_dim
        if projection > 0:
            self.register_buffer("projection", torch.randn(in_dim, projection, generator=generator)
                                 / math.sqrt(projection))
            first = projection
        else:
            self.projection: torch.Tensor | None = None
        self.net = nn.Sequential(
            nn.Linear(first, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per row (higher = looks real)."""
        if self.projection is not None:
            x = x @ self.projection
        return self.net(x).squeeze(1)


POSITION_PREFIX = "pos_"
"""Columns of a positional table (one per sequence position) start with this; the conv1d
critic reads the contiguous run of them (the sequence modality names its columns with it)."""


class SequenceDiscriminator(nn.Module):
    """1-D convolutional critic for positional sequence rows (DP-SGD friendly: Conv1d, Linear,
    LeakyReLU; no normalisation layer).

    The positions ``[start, start + length · tokens)`` of the encoded row are read as a
    [tokens × length] signal: two width-5 convolutions see k-mers up to 9 letters, a mean
    over positions pools them (any length), and an MLP reads the pooled features with the
    row's other entries (the label's one-hot).
    """

    def __init__(self, in_dim: int, *, start: int, length: int, tokens: int, channels: int = 64,
                 hidden: int = 128) -> None:
        super().__init__()
        stop = start + length * tokens
        if start < 0 or stop > in_dim:
            raise ValueError("the positional block lies outside the encoded row")
        self.start, self.length, self.tokens = start, length, tokens
        rest = [i for i in range(in_dim) if not start <= i < stop]
        self.register_buffer("rest_idx", torch.tensor(rest, dtype=torch.long), persistent=False)
        self.conv = nn.Sequential(
            nn.Conv1d(tokens, channels, kernel_size=5, padding=2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, kernel_size=5, padding=2),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Sequential(
            nn.Linear(channels + len(rest), hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per row (higher = looks real)."""
        block = x[:, self.start:self.start + self.length * self.tokens]
        signal = block.reshape(x.shape[0], self.length, self.tokens).transpose(1, 2)
        pooled = self.conv(signal).mean(dim=2)
        return self.head(torch.cat([pooled, x[:, self.rest_idx]], dim=1)).squeeze(1)
