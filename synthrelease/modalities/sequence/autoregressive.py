"""An autoregressive DP language model of sequences: letters in order, not a bag of letters.

The model reads ``[BOS, label, length, x1 … xL, EOS]`` and predicts each letter from the label,
the length and every letter before it; each record's label and length are drawn from one DP
(label, length) histogram, and the letter logits start from a DP transition prior (both
Gaussian releases taking budget shares: :func:`~synthrelease.privacy.accounting.budget_share_noise`;
optionally a third, per-position letter counts, whose log-ratios to the label's composition
place motifs in aligned windows). A
stack of causal dilated 1-D convolutions (receptive field 63 tokens) over token and
position embeddings; every layer (Embedding, Linear) has Opacus per-sample
gradients, and Opacus' fast gradient clipping (ghost norms; Li et al. 2022, Bu et al. 2023)
clips each record without materialising its gradient. Autoregression under DP-SGD works for
tables too (MOSTLY AI's TabularARGN).

Privacy: one record = one sequence. Each DP-SGD step Poisson-samples records at rate q
(Opacus' :class:`~opacus.data_loader.DPDataLoader`, secret generator), clips each record's
gradient (the sum of its token losses, divided by the constant maximum length) at C and
adds Gaussian noise σ·C from a secret generator; σ is calibrated so that the steps and the
caller's reserved entries reach the target (ε, δ) in one accountant. The update divides by
the PUBLIC expected batch. Sampling is post-processing (a public seed).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import nn

from synthrelease.errors import InternalError
from synthrelease.gan.trainer import PrivacySpent, sample_rate_for
from synthrelease.modalities.sequence.config import PRIOR_LAGS
from synthrelease.privacy.accounting import MechanismEntry, budget_share_noise, calibrate_noise_multiplier, epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree, gaussian_noise
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

PAD, BOS, EOS = 0, 1, 2
_SPECIAL = 3
DILATIONS = (1, 2, 4, 8, 16)
KERNEL = 3
SGD_LABEL = "autoregressive DP-SGD"
_MODE = "ghost"


@dataclass(frozen=True)
class Vocabulary:
    """Token ids (all PUBLIC: the metadata's): PAD, BOS, EOS, one per label class, one per
    length ``min_length … max_length``, one per letter. A record is
    ``[BOS, label, length, x1 … xL, EOS, PAD …]`` (no classes: BOS in the label slot)."""

    letters: str
    classes: tuple[str, ...]
    max_length: int
    min_length: int

    @property
    def first_length(self) -> int:
        return _SPECIAL + len(self.classes)

    @property
    def first_letter(self) -> int:
        return self.first_length + self.max_length - self.min_length + 1

    @property
    def size(self) -> int:
        return self.first_letter + len(self.letters)

    @property
    def width(self) -> int:
        """Tokens per record: BOS, label, length, up to ``max_length`` letters, EOS."""
        return 4 + self.max_length

    def encode(self, sequences: list[str], labels: list[str] | None) -> torch.Tensor:
        """``[n, width]`` int64 token rows; sequences must hold ``min_length`` … ``max_length`` letters."""
        index = {c: i for i, c in enumerate(self.letters)}
        out = np.full((len(sequences), self.width), PAD, dtype=np.int64)
        out[:, 0] = BOS
        for i, seq in enumerate(sequences):
            out[i, 1] = _SPECIAL + self.classes.index(labels[i]) if self.classes and labels is not None else BOS
            out[i, 2] = self.first_length + len(seq) - self.min_length
            out[i, 3:3 + len(seq)] = [self.first_letter + index[ch] for ch in seq]
            out[i, 3 + len(seq)] = EOS
        return torch.from_numpy(out)

    def decode(self, rows: np.ndarray) -> tuple[list[str], list[str] | None]:
        seqs, labels = [], []
        for row in rows:
            letters = []
            for tok in row[3:]:
                if tok < self.first_letter:
                    break
                letters.append(self.letters[tok - self.first_letter])
            seqs.append("".join(letters))
            labels.append(self.classes[row[1] - _SPECIAL] if self.classes else "")
        return seqs, (labels if self.classes else None)


class CausalConvLM(nn.Module):
    """Next-token logits ``[n, T, V]`` from tokens ``[n, T]``; position t sees tokens ≤ t only.

    Every position from 1 on also gets the record's label embedding, from 2 on its length and
    the letters still to come (both read from tokens ≤ t), so the letters follow the label and
    the sequence ends where its length says. Each causal convolution is a Linear layer over
    the ``KERNEL`` dilated taps stacked per position (the function of a Conv1d): Opacus' fast
    gradient clipping (ghost norms) covers Linear and Embedding layers.
    """

    def __init__(self, vocabulary: Vocabulary, hidden: int = 64, lags: int = 0, transition_prior: bool = False,
                 prior_order: int = 1, position_prior: bool = False, lag_prior: bool = False,
                 prior_lags: tuple[int, ...] = PRIOR_LAGS) -> None:
        super().__init__()
        self.first_letter, self.letters = vocabulary.first_letter, len(vocabulary.letters)
        self.classes = len(vocabulary.classes)
        self.first_length, self.min_length = vocabulary.first_length, vocabulary.min_length
        self.token = nn.Embedding(vocabulary.size, hidden)
        self.position = nn.Embedding(vocabulary.width, hidden)
        self.label = nn.Embedding(vocabulary.size, hidden)  # separate tables: Opacus' ghost clipping
        self.length = nn.Embedding(vocabulary.size, hidden)  # refuses shared parameters
        self.remaining = nn.Embedding(vocabulary.max_length + 2, hidden)  # letters left; 0 after the end
        self.convs = nn.ModuleList(nn.Linear(KERNEL * hidden, 2 * hidden) for _ in DILATIONS)
        self.head = nn.Linear(hidden, vocabulary.size)
        # direct log-linear terms: few parameters, so DP noise hurts them least
        self.lag = nn.ModuleList(nn.Embedding(vocabulary.size, vocabulary.size) for _ in range(lags))
        self.composition = (nn.Linear(self.letters * (1 + self.classes), vocabulary.size, bias=False)
                            if lags else None)
        for direct in (*self.lag, *([self.composition] if self.composition is not None else [])):
            nn.init.zeros_(direct.weight)  # start as the convolutions alone
        self.register_buffer("positions", torch.arange(vocabulary.width), persistent=False)
        # DP transition log-probabilities [classes or 1, (1 + letters)^prior_order, letters] (a fixed
        # prior the network learns residuals to; filled by train_autoregressive or a model file)
        self.prior_order = prior_order
        self.register_buffer("transition", torch.zeros(max(1, self.classes), (1 + self.letters) ** prior_order,
                                                       self.letters) if transition_prior else None)
        # DP per-position log-ratios [classes or 1, max_length, letters] of the letter at each position
        # from the start to the label's composition (filled like the transition prior)
        self.register_buffer("position_bias", torch.zeros(max(1, self.classes), vocabulary.max_length, self.letters)
                             if position_prior else None)
        # DP log-ratios [classes or 1, len(prior_lags), letters, letters]: the letter k places back →
        # the next letter, over the label's composition (the helix's i, i + 3 / i + 4 pattern)
        self.prior_lags = tuple(prior_lags)
        self.register_buffer("lag_bias", torch.zeros(max(1, self.classes), len(self.prior_lags), self.letters,
                                                     self.letters) if lag_prior else None)
        if transition_prior or position_prior or lag_prior:  # the letters start as the priors' exactly
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, steps = tokens.shape
        positions = self.positions[:steps].expand(n, -1).contiguous()
        h = self.token(tokens.contiguous()) + self.position(positions)
        if steps > 1:  # the label, seen by every position from 1 on
            label = tokens[:, 1:2].expand(n, steps).contiguous()
            h = h + self.label(label) * (positions >= 1).unsqueeze(-1)
        if steps > 2:  # the length and the letters still to come, from position 2 on
            length = (tokens[:, 2:3] - self.first_length + self.min_length).clamp(min=0)
            left = (length - (positions - 2)).clamp(0, self.remaining.num_embeddings - 1)
            h = h + (self.length(tokens[:, 2:3].expand(n, steps).contiguous())
                     + self.remaining(left.contiguous())) * (positions >= 2).unsqueeze(-1)
        for conv, d in zip(self.convs, DILATIONS, strict=True):
            padded = F.pad(h, (0, 0, (KERNEL - 1) * d, 0))  # [n, T + pad, H]: zeros before the start
            taps = torch.cat([padded[:, k * d:k * d + steps] for k in range(KERNEL)], dim=-1)
            a, b = conv(taps).chunk(2, dim=-1)
            h = h + torch.tanh(a) * torch.sigmoid(b)  # gated residual (WaveNet)
        return self._with_prior(self.head(h) + self._direct(tokens), tokens)

    def _with_prior(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Add the DP priors to the letter logits of every position whose next token is a letter:
        the transition log-probabilities (the row is the context: each of the last ``prior_order``
        tokens is its letter + 1, or 0 (the start) for the length token and before it) and the
        position log-ratios of the next letter's position from the start."""
        n, steps = tokens.shape
        if (self.transition is None and self.position_bias is None and self.lag_bias is None) or steps < 3:
            return logits
        length = (tokens[:, 2:3] - self.first_length + self.min_length).clamp(min=0)
        left = length - (self.positions[:steps] - 2)  # letters still to come after position t
        label = (tokens[:, 1] - _SPECIAL).clamp(0, max(1, self.classes) - 1) if self.classes else \
            torch.zeros(n, dtype=torch.int64)
        label = label.unsqueeze(1).expand(n, steps)
        prior = logits.new_zeros(n, steps, self.letters)
        if self.transition is not None:
            letter = tokens - self.first_letter
            row = torch.where(letter >= 0, letter + 1, 0).clamp(max=self.letters)
            for _ in range(1, self.prior_order):  # prepend the token before: row = earlier · (1 + A) + later
                row = F.pad(row, (1, 0))[:, :steps] * (1 + self.letters) + row
            prior = prior + self.transition[label, row]  # [n, T, letters]
        if self.position_bias is not None:  # the letter predicted at position t is letter t − 2 (0-based)
            index = (self.positions[:steps] - 2).clamp(0, self.position_bias.shape[1] - 1)
            prior = prior + self.position_bias[label, index.expand(n, steps)]
        if self.lag_bias is not None:
            prior = prior + self._lag_terms(tokens, label)
        use = ((self.positions[:steps] >= 2) & (left > 0)).unsqueeze(-1)
        pad = logits.new_zeros(n, steps, self.first_letter)
        return logits + torch.cat([pad, prior * use], -1)

    def _lag_terms(self, tokens: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Σₖ lag_bias[label, k, letter k places before the predicted one, ·] (0 where that is no letter)."""
        n, steps = tokens.shape
        out = tokens.new_zeros(n, steps, self.letters, dtype=self.lag_bias.dtype)
        letter = tokens - self.first_letter
        is_letter = (letter >= 0) & (letter < self.letters)
        for j, k in enumerate(self.prior_lags):  # position t predicts token t + 1; k back from it is token t + 1 − k
            earlier = F.pad(letter, (k - 1, 0), value=-1)[:, :steps]
            ok = F.pad(is_letter, (k - 1, 0), value=False)[:, :steps]
            out = out + self.lag_bias[label, j, earlier.clamp(0, self.letters - 1)] * ok.unsqueeze(-1)
        return out

    def _direct(self, tokens: torch.Tensor) -> torch.Tensor | float:
        """Log-linear next-token terms: one table per lag (the token k − 1 places back) and a linear
        map of the prefix's letter shares, shared and per label (the sequence's own composition so far)."""
        if self.composition is None:
            return 0.0
        n, steps = tokens.shape
        out = 0.0
        for k, table in enumerate(self.lag):
            shifted = F.pad(tokens, (k, 0), value=PAD)[:, :steps]
            out = out + table(shifted.contiguous())
        letter = tokens - self.first_letter
        onehot = F.one_hot(letter.clamp(0, self.letters - 1), self.letters).float() * (letter >= 0).unsqueeze(-1)
        counts = onehot.cumsum(1)
        shares = counts / counts.sum(-1, keepdim=True).clamp(min=1)
        if self.classes and steps > 1:  # the shares again in the record's label block: per-label weights
            label = F.one_hot((tokens[:, 1] - _SPECIAL).clamp(0, self.classes - 1), self.classes).float()
            blocks = shares.unsqueeze(2) * label[:, None, :, None]  # [n, T, classes, letters]
            shares = torch.cat([shares, blocks.flatten(2)], -1)
        elif self.classes:
            shares = torch.cat([shares, shares.new_zeros(n, steps, self.classes * self.letters)], -1)
        return out + self.composition(shares)


@dataclass
class AutoregressiveModel:
    """A trained autoregressive sequence model: the network, its vocabulary and the privacy spent."""

    network: CausalConvLM
    vocabulary: Vocabulary
    config: Any
    privacy: PrivacySpent
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    reproducible_private_randomness: bool = False
    label_length: np.ndarray | None = None  # DP (label, length) frequencies [classes or 1, lengths]


HEADER_LABEL = "label × length histogram (Gaussian, sensitivity 1)"


def _dp_label_length(tokens: torch.Tensor, vocabulary: Vocabulary, config: Any, secret: PrivateRandomness,
                     reserved: tuple[MechanismEntry, ...]) -> tuple[MechanismEntry, np.ndarray]:
    """One Gaussian release of the (label, length) counts — each record one cell, sensitivity 1 —
    taking ``config.ar_header_budget_share`` of the budget; clipped at 0 and normalised
    (post-processing). Sampling draws each record's label and length from it."""
    classes = max(1, len(vocabulary.classes))
    lengths = vocabulary.max_length - vocabulary.min_length + 1
    label = ((tokens[:, 1] - _SPECIAL).clamp(min=0) if vocabulary.classes
             else torch.zeros(len(tokens), dtype=torch.int64))
    cell = label * lengths + tokens[:, 2] - vocabulary.first_length
    counts = torch.bincount(cell, minlength=classes * lengths).double()
    entry = budget_share_noise(config.ar_header_budget_share, epsilon=config.target_epsilon,
                               delta=config.target_delta, accountant=config.accountant, label=HEADER_LABEL,
                               prior=reserved)
    noisy = (counts + gaussian_noise(counts.shape, entry.noise_multiplier, secret.torch("ar-header"))).clamp(min=0)
    freq = noisy.numpy().reshape(classes, lengths)
    return entry, (freq / freq.sum() if freq.sum() > 0 else np.full(freq.shape, 1.0 / freq.size))


TRANSITION_LABELS = {1: "letter transition counts (Gaussian, each record's counts scaled to L2 norm ≤ 1)",
                     2: "order-2 letter transition counts (Gaussian, each record's counts scaled to L2 norm ≤ 1)"}
ORDER2_SHRINK = 10.0  # pseudo-counts per σ towards the order-1 prior (measured: benchmarks/sequence_probe.py)
ORDER1_FRACTION = 0.25  # of the prior's budget share, to the order-1 release (order 2: the rest)


def transition_counts(tokens: torch.Tensor, vocabulary: Vocabulary, order: int = 1) -> torch.Tensor:
    """PRIVATE sums ``[classes or 1, (1 + A)^order · A]`` of each record's transition counts of the
    given order (context of ``order`` tokens, each a letter or the start → next letter), every
    record's vector scaled to L2 norm ≤ 1: adding or removing one record moves the sums by at
    most 1 in L2 (the Gaussian mechanism's sensitivity)."""
    classes, a = max(1, len(vocabulary.classes)), len(vocabulary.letters)
    letter = F.pad(tokens[:, 2:] - vocabulary.first_letter, (order - 1, 0), value=-1)  # start padding
    rows = torch.where(letter >= 0, letter + 1, 0)  # 0: the start (the length token and before)
    prev = sum(rows[:, k:rows.shape[1] - order + k] * (1 + a) ** (order - 1 - k) for k in range(order))
    nxt = letter[:, order:]
    keep = nxt >= 0
    label = ((tokens[:, 1] - _SPECIAL).clamp(min=0) if vocabulary.classes
             else torch.zeros(len(tokens), dtype=torch.int64))
    cells = (1 + a) ** order * a
    record = torch.arange(len(tokens)).unsqueeze(1).expand_as(nxt)
    pairs, times = torch.unique(record[keep] * cells + (prev * a + nxt.clamp(min=0))[keep], return_counts=True)
    owner, times = pairs // cells, times.double()  # sparse: no [records × cells] matrix
    norm = torch.zeros(len(tokens), dtype=torch.float64).index_add_(0, owner, times ** 2).sqrt().clamp(min=1.0)
    sums = torch.zeros(classes * cells, dtype=torch.float64)
    return sums.index_add_(0, label[owner] * cells + pairs % cells, times / norm[owner]).view(classes, cells)


def _dp_transitions(tokens: torch.Tensor, vocabulary: Vocabulary, share: float, config: Any,
                    secret: PrivateRandomness, reserved: tuple[MechanismEntry, ...], order: int = 1,
                    base: torch.Tensor | None = None) -> tuple[MechanismEntry, torch.Tensor]:
    """One Gaussian release of :func:`transition_counts` of ``order`` (sensitivity 1) taking
    ``share`` of the budget. Post-processing: clip at 0, then shrink each row towards a base by pseudo-
    counts — order 1: the label's noisy composition, 2σ; order 2: the order-1 probabilities
    ``base`` of the context's last letter, ``ORDER2_SHRINK``·σ — and take the log.
    Returns ``[classes or 1, (1 + A)^order, A]`` log-probabilities."""
    classes, a = max(1, len(vocabulary.classes)), len(vocabulary.letters)
    counts = transition_counts(tokens, vocabulary, order)
    entry = budget_share_noise(share, epsilon=config.target_epsilon, delta=config.target_delta,
                               accountant=config.accountant, label=TRANSITION_LABELS[order], prior=reserved)
    sigma = entry.noise_multiplier
    noise = gaussian_noise(counts.shape, sigma, secret.torch(f"ar-transitions-{order}"))
    noisy = (counts + noise).clamp(min=0).view(classes, (1 + a) ** order, a)
    if base is None:
        composition = noisy.sum(1, keepdim=True)
        smoothed = noisy + 2 * sigma * composition / composition.sum(-1, keepdim=True).clamp(min=1e-12)
    else:  # context (earlier, last): shrink towards P1(· | last)
        smoothed = noisy + ORDER2_SHRINK * sigma * base.double().exp().repeat(1, 1 + a, 1)
    smoothed = smoothed + 1e-3
    return entry, (smoothed / smoothed.sum(-1, keepdim=True)).log().float()


POSITION_LABEL = "per-position letter counts (Gaussian, each record's letters scaled to L2 norm ≤ 1)"
POSITION_SHRINK = 2.0  # pseudo-counts per σ towards the label's composition


def position_counts(tokens: torch.Tensor, vocabulary: Vocabulary) -> torch.Tensor:
    """PRIVATE sums ``[classes or 1, max_length, A]`` of each record's one-hot letter at each position
    from the start, a record of L letters weighted 1/√L: its vector has L2 norm 1, so adding or
    removing one record moves the sums by at most 1 in L2 (the Gaussian mechanism's sensitivity)."""
    classes, a, width = max(1, len(vocabulary.classes)), len(vocabulary.letters), vocabulary.max_length
    letter = tokens[:, 3:3 + width] - vocabulary.first_letter  # < 0: EOS or padding
    keep = letter >= 0
    weight = (1.0 / keep.sum(1).clamp(min=1).double().sqrt()).unsqueeze(1).expand_as(letter)
    label = ((tokens[:, 1] - _SPECIAL).clamp(min=0) if vocabulary.classes
             else torch.zeros(len(tokens), dtype=torch.int64))
    cell = (label.unsqueeze(1) * width + torch.arange(width)) * a + letter.clamp(min=0)
    sums = torch.zeros(classes * width * a, dtype=torch.float64)
    return sums.index_add_(0, cell[keep], weight[keep]).view(classes, width, a)


def _dp_positions(tokens: torch.Tensor, vocabulary: Vocabulary, config: Any, secret: PrivateRandomness,
                  reserved: tuple[MechanismEntry, ...]) -> tuple[MechanismEntry, torch.Tensor]:
    """One Gaussian release of :func:`position_counts` (sensitivity 1) taking
    ``config.ar_position_budget_share`` of the budget; returns the log-ratios ``[classes or 1,
    max_length, A]`` of each position's letter frequencies to the label's composition
    (:func:`_log_ratio_release`, ``POSITION_SHRINK``; 0 where the noise leaves no signal)."""
    return _log_ratio_release(position_counts(tokens, vocabulary), (1,), config.ar_position_budget_share,
                              POSITION_LABEL, POSITION_SHRINK, config, secret.torch("ar-positions"), reserved)


def _log_ratio_release(counts: torch.Tensor, rows: tuple[int, ...], share: float, label: str, shrink: float,
                       config: Any, noise: torch.Generator,
                       reserved: tuple[MechanismEntry, ...]) -> tuple[MechanismEntry, torch.Tensor]:
    """One Gaussian release of PRIVATE ``counts`` (sensitivity 1) taking ``share`` of the budget.
    Post-processing: clip at 0, shrink each row (last axis: the next letter) towards the label's
    noisy composition (the counts summed over the axes ``rows``) by ``shrink``·σ pseudo-counts,
    and return the log-ratios of each row's letter frequencies to that composition."""
    entry = budget_share_noise(share, epsilon=config.target_epsilon, delta=config.target_delta,
                               accountant=config.accountant, label=label, prior=reserved)
    sigma = entry.noise_multiplier
    noisy = (counts + gaussian_noise(counts.shape, sigma, noise)).clamp(min=0)
    total = noisy.sum(rows, keepdim=True)
    composition = (total + 1e-3) / (total + 1e-3).sum(-1, keepdim=True)
    smoothed = noisy + shrink * sigma * composition + 1e-3
    return entry, ((smoothed / smoothed.sum(-1, keepdim=True)).log() - composition.log()).float()


LAG_LABEL = "lag-pair letter counts (Gaussian, each record's counts scaled to L2 norm ≤ 1)"
LAG_SHRINK = 2.0  # pseudo-counts per σ towards the label's composition
COVERED_LAG_WEIGHT = 0.5
"""Weight of the log-ratios of a lag the transition prior's context already covers (lag 2 under
the order-2 prior): both carry that letter's effect, so at full weight it counts twice. Measured
on amp_vs_uniprot (releases alone, 12 noise draws): TSTR unchanged against weight 1 (ε = 3:
0.9005 both; ε = 1: 0.865 both), 3-mer JS 0.087 → 0.074 and real-vs-synthetic accuracy
0.652 → 0.632 at ε = 3 (4 draws)."""


def lag_pair_counts(tokens: torch.Tensor, vocabulary: Vocabulary, lags: tuple[int, ...] = PRIOR_LAGS) -> torch.Tensor:
    """PRIVATE sums ``[classes or 1, len(lags), A, A]`` of each record's counts of (letter at i,
    letter at i + k) for each lag k, the record's vector scaled to L2 norm ≤ 1 (sensitivity 1)."""
    classes, a = max(1, len(vocabulary.classes)), len(vocabulary.letters)
    letter = tokens[:, 3:] - vocabulary.first_letter
    letter = torch.where((letter >= 0) & (letter < a), letter, -1)
    label = ((tokens[:, 1] - _SPECIAL).clamp(min=0) if vocabulary.classes
             else torch.zeros(len(tokens), dtype=torch.int64))
    per_record = torch.zeros(len(tokens), len(lags), a * a, dtype=torch.float64)
    for j, k in enumerate(lags):
        first, then = letter[:, :-k], letter[:, k:]
        keep = (first >= 0) & (then >= 0)
        record = torch.arange(len(tokens)).unsqueeze(1).expand_as(first)
        per_record[:, j].index_put_((record[keep], (first * a + then)[keep]),
                                    torch.ones(int(keep.sum()), dtype=torch.float64), accumulate=True)
    per_record = per_record.view(len(tokens), -1)
    per_record = per_record / per_record.norm(dim=1, keepdim=True).clamp(min=1.0)
    sums = torch.zeros(classes, per_record.shape[1], dtype=torch.float64).index_add_(0, label, per_record)
    return sums.view(classes, len(lags), a, a)


def _dp_lag_pairs(tokens: torch.Tensor, vocabulary: Vocabulary, config: Any, secret: PrivateRandomness,
                  reserved: tuple[MechanismEntry, ...]) -> tuple[MechanismEntry, torch.Tensor]:
    """One Gaussian release of :func:`lag_pair_counts` (sensitivity 1) taking
    ``config.ar_lag_budget_share`` of the budget; returns the log-ratios ``[classes or 1, lags, A, A]``
    of the later letter's frequencies given the earlier one to the label's composition
    (:func:`_log_ratio_release`, ``LAG_SHRINK``), weighted ``COVERED_LAG_WEIGHT`` for lags up to
    the transition prior's order."""
    entry, ratios = _log_ratio_release(lag_pair_counts(tokens, vocabulary, config.ar_prior_lags), (1, 2),
                                       config.ar_lag_budget_share, LAG_LABEL, LAG_SHRINK, config,
                                       secret.torch("ar-lags"), reserved)
    if config.ar_prior_budget_share > 0:  # post-processing: lags the transition prior's context already sees
        covered = [j for j, k in enumerate(config.ar_prior_lags) if k <= config.ar_prior_order]
        ratios[:, covered] *= COVERED_LAG_WEIGHT
    return entry, ratios


def _dp_priors(tokens: torch.Tensor, vocabulary: Vocabulary, config: Any, secret: PrivateRandomness,
               reserved: tuple[MechanismEntry, ...]) -> tuple[tuple[MechanismEntry, ...], torch.Tensor | None]:
    """The DP transition prior of order ``config.ar_prior_order``: order 1 takes
    ``ar_prior_budget_share`` of the budget in one release; order 2 gives ``ORDER1_FRACTION`` of
    it to the order-1 release and the rest to the order-2 one, shrunk towards the first (two entries)."""
    share = config.ar_prior_budget_share
    if share <= 0:
        return (), None
    if config.ar_prior_order == 1:
        entry, table = _dp_transitions(tokens, vocabulary, share, config, secret, reserved)
        return (entry,), table
    first, base = _dp_transitions(tokens, vocabulary, share * ORDER1_FRACTION, config, secret, reserved)
    second, table = _dp_transitions(tokens, vocabulary, share * (1 - ORDER1_FRACTION), config, secret, reserved,
                                    order=2, base=base)
    return (first, second), table


def _record_loss(network: nn.Module, tokens: torch.Tensor, first_letter: int) -> torch.Tensor:
    """Per-record loss ``[n]``: the cross-entropy of each next letter among the letters only, summed
    over the record's letters / the width. Sampling draws exactly that (label, length and the end
    come from the DP header), so training on the label, length and EOS targets would only push
    the shared letter logits towards predicting the end — flattening the letters the priors set."""
    logits = network(tokens[:, :-1])[..., first_letter:]
    target = tokens[:, 1:] - first_letter
    letter = target >= 0
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.clamp(min=0).reshape(-1), reduction="none")
    return (ce.view(target.shape) * letter).sum(1) / tokens.shape[1]


def train_autoregressive(sequences: list[str], labels: list[str] | None, vocabulary: Vocabulary, config: Any, *,
                         reserved_entries: tuple[MechanismEntry, ...] = (), randomness: PrivateRandomness | None = None,
                         progress: ProgressCallback = ignore_progress) -> AutoregressiveModel:
    """Train the (ε, δ)-DP autoregressive model (with ``reserved_entries``, in one accountant).

    Uses ``config``'s DP vocabulary: target_epsilon, target_delta, accountant, max_grad_norm,
    batch_size, n_steps, public_rows (0 = the exact count), ar_hidden, ar_lags, ar_lr, ar_ema, seed (public: the
    initialisation only).
    """
    started = time.perf_counter()
    secret = randomness or PrivateRandomness()
    tokens = vocabulary.encode(sequences, labels)
    # budget shares of what the caller's reserved entries leave (a release's counts, its DP gate)
    header_entry, label_length = _dp_label_length(tokens, vocabulary, config, secret, reserved_entries)
    prior_entries, transition = _dp_priors(tokens, vocabulary, config, secret, reserved_entries)
    position_entries, positions = ((), None)
    if config.ar_position_budget_share > 0:
        position_entry, positions = _dp_positions(tokens, vocabulary, config, secret, reserved_entries)
        position_entries = (position_entry,)
    lag_entries, lags = ((), None)
    if config.ar_lag_budget_share > 0:
        lag_entry, lags = _dp_lag_pairs(tokens, vocabulary, config, secret, reserved_entries)
        lag_entries = (lag_entry,)
    reserved_entries = (*prior_entries, *position_entries, *lag_entries, header_entry, *reserved_entries)
    public_rows = config.public_rows or len(sequences)
    q = sample_rate_for(public_rows, min(config.batch_size, public_rows))
    sgd = calibrate_noise_multiplier(target_epsilon=config.target_epsilon, target_delta=config.target_delta,
                                     sample_rate=q, steps=config.n_steps, accountant=config.accountant,
                                     prior=list(reserved_entries), label=SGD_LABEL)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SeedTree(config.seed).integer("ar-init"))
        network = CausalConvLM(vocabulary, config.ar_hidden, config.ar_lags, transition is not None,
                               config.ar_prior_order, positions is not None, lags is not None, config.ar_prior_lags)
    if lags is not None:
        network.lag_bias.copy_(lags)
    if transition is not None:
        network.transition.copy_(transition)
    if positions is not None:
        network.position_bias.copy_(positions)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.ar_lr)
    loader = DPDataLoader(torch.utils.data.TensorDataset(torch.arange(len(sequences))), sample_rate=q,
                          generator=secret.torch("poisson"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    made = engine.make_private(
        module=network, optimizer=optimizer, data_loader=loader, noise_multiplier=sgd.noise_multiplier,
        max_grad_norm=config.max_grad_norm, poisson_sampling=False, grad_sample_mode=_MODE,
        criterion=nn.CrossEntropyLoss(), noise_generator=secret.torch("dp-noise"))
    module, dp_optimizer, loader = made[0], made[1], made[-1]
    dp_optimizer.expected_batch_size = max(1, round(public_rows * q))
    dp_optimizer.secure_mode = True
    average = _WeightAverage(network, config.ar_ema)
    history = _run_steps(module, dp_optimizer, loader, tokens, config.n_steps, progress, average,
                         vocabulary.first_letter)
    entries = (*[MechanismEntry(SGD_LABEL, float(s), float(r), int(k)) for s, r, k in engine.accountant.history],
               *reserved_entries)
    if sum(e.steps for e in entries if e.label == SGD_LABEL) != config.n_steps:
        raise InternalError("the accountant did not record every DP-SGD step")
    spent = epsilon_for(entries, delta=config.target_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    module.disable_hooks()  # sampling is post-processing: no hook may keep activations
    network = module._module
    average.copy_to(network)
    network.eval()
    return AutoregressiveModel(network, vocabulary, config, PrivacySpent(spent, config.target_delta,
                                                                         config.accountant, entries),
                               history, time.perf_counter() - started, secret.reproducible, label_length)


class _WeightAverage:
    """Exponential moving average of the DP-SGD iterates (decay 0: the last iterate). A function of
    the noisy iterates only, so post-processing: no ε (De et al. 2022 use it for DP-SGD)."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = [p.detach().clone() for p in network.parameters()] if decay > 0 else []

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        if not self.shadow:
            return
        for avg, p in zip(self.shadow, network.parameters(), strict=True):
            avg.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)

    @torch.no_grad()
    def copy_to(self, network: nn.Module) -> None:
        if not self.shadow:
            return
        for avg, p in zip(self.shadow, network.parameters(), strict=True):
            p.copy_(avg)


def _run_steps(module: nn.Module, optimizer: Any, loader: Any, tokens: torch.Tensor, steps: int,
               progress: ProgressCallback, average: _WeightAverage, first_letter: int) -> list[dict[str, float]]:
    """``steps`` accounted DP-SGD steps over Poisson batches (an empty batch is still a step)."""
    history: list[dict[str, float]] = []
    done = 0
    while done < steps:
        for (idx,) in loader:
            optimizer.zero_grad(set_to_none=True)
            if len(idx):  # ghost clipping: each record's gradient norm, then p.grad = the clipped sum
                with warnings.catch_warnings():  # token ids need no gradient; Opacus' hooks still fire
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    DPTensorFastGradientClipping(module, optimizer, _record_loss(module, tokens[idx], first_letter),
                                                 "mean").backward()
            else:  # an empty Poisson batch: a zero clipped sum; Opacus still adds noise and counts the step
                for p in module.parameters():
                    p.grad = torch.zeros_like(p)
            optimizer.step()
            average.update(module)
            done += 1
            if done % 50 == 0 or done == steps:
                history.append({"step": float(done)})  # DP: a count of public steps, nothing else
                progress(ProgressEvent("train:autoregressive", done, steps))
            if done >= steps:
                break
    return history


@torch.no_grad()
def generate(model: AutoregressiveModel, n: int, *, seed: int, fixed_class: int | None = None,
             batch: int = 4096) -> tuple[list[str], list[str] | None]:
    """``n`` sequences (and labels) drawn token by token from the model (post-processing; public ``seed``).

    Each record's label (or ``fixed_class``) and length come from the DP (label, length)
    frequencies, then exactly that many letters from the network.
    """
    vocab = model.vocabulary
    gen = torch.Generator().manual_seed(int(seed))
    all_labels, all_lengths = _draw_headers(model, n, gen, fixed_class)
    seqs: list[str] = []
    labels: list[str] = []
    for start in range(0, n, batch):
        label, length_index = all_labels[start:start + batch], all_lengths[start:start + batch]
        m = len(label)
        rows = torch.full((m, vocab.width), PAD, dtype=torch.int64)
        rows[:, 0] = BOS
        rows[:, 1] = _SPECIAL + label if vocab.classes else BOS
        rows[:, 2] = vocab.first_length + length_index
        length = rows[:, 2] - vocab.first_length + vocab.min_length
        for t in range(3, 3 + int(length.max())):
            letters = _draw(model, rows, t, vocab.first_letter, vocab.size, gen, None)
            rows[:, t] = torch.where(t - 3 < length, letters, torch.tensor(EOS))
        s, lab = vocab.decode(rows.numpy())
        seqs += s
        labels += lab or []
    return seqs, (labels if vocab.classes else None)


def _draw_headers(model: AutoregressiveModel, n: int, gen: torch.Generator,
                  fixed_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and length index of ``n`` records from the DP (label, length) frequencies, in random order.

    Systematic sampling: one uniform offset, then every 1/n of the cumulative frequencies, so
    each (label, length) cell gets ⌊n·p⌋ or ⌈n·p⌉ records — the released histogram without the
    multinomial's sampling noise on top of the DP noise (post-processing, public ``gen``).
    """
    freq = torch.as_tensor(model.label_length, dtype=torch.float64)
    first_label = 0
    if fixed_class is not None:
        freq, first_label = freq[fixed_class:fixed_class + 1], fixed_class
    total = freq.sum()
    probs = freq.flatten() / total if total > 0 else torch.full((freq.numel(),), 1.0 / freq.numel(),
                                                                dtype=torch.float64)
    points = (torch.rand(1, generator=gen, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)) / n
    cell = torch.searchsorted(torch.cumsum(probs, 0), points, right=True).clamp(max=probs.numel() - 1)
    cell = cell[torch.randperm(n, generator=gen)]
    return first_label + cell // freq.shape[1], cell % freq.shape[1]


def _draw(model: AutoregressiveModel, rows: torch.Tensor, t: int, low: int, high: int, gen: torch.Generator,
          fixed: int | None) -> torch.Tensor:
    """Token t of every row, from ids ``low … high − 1`` only (``fixed``: that offset for all).

    Stratified across rows: row i inverts its own next-token CDF at ``(π(i) + Uᵢ) / n`` (π a
    random permutation, Uᵢ uniform), so each row's draw has exactly its model distribution while
    the batch's uniforms cover [0, 1) evenly — less sampling noise in the synthetic letter counts
    than independent draws (post-processing, public ``gen``)."""
    if fixed is not None:
        return torch.full((rows.shape[0],), low + fixed, dtype=torch.int64)
    logits = model.network(rows[:, :t])[:, -1, low:high]
    n = rows.shape[0]
    strata = torch.randperm(n, generator=gen).double() + torch.rand(n, generator=gen, dtype=torch.float64)
    cdf = torch.softmax(logits.double(), -1).cumsum(-1)
    picked = torch.searchsorted(cdf, (strata / n).unsqueeze(1), right=True).squeeze(1)
    return low + picked.clamp(max=high - low - 1)
