"""An autoregressive DP language model of sequences: letters in order, not a bag of letters.

The model reads ``[BOS, label, x1 … xL, EOS]`` and predicts each next token: the label first
(so the label frequencies are learned inside the same DP-SGD run, no separate histogram
release), then each letter from the label and every letter before it, then the end. A
stack of causal dilated 1-D convolutions (receptive field 63 tokens) over token and
position embeddings; every layer (Embedding, Conv1d, Linear) has Opacus per-sample
gradients. Autoregression under DP-SGD works for tables too (MOSTLY AI's TabularARGN).

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
from torch import nn

from synthrelease.errors import InternalError
from synthrelease.gan.trainer import PrivacySpent, sample_rate_for
from synthrelease.privacy.accounting import MechanismEntry, calibrate_noise_multiplier, epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

PAD, BOS, EOS = 0, 1, 2
_SPECIAL = 3
DILATIONS = (1, 2, 4, 8, 16)
KERNEL = 3
SGD_LABEL = "autoregressive DP-SGD"


@dataclass(frozen=True)
class Vocabulary:
    """Token ids: PAD, BOS, EOS, one per label class, one per letter (all PUBLIC: the metadata's)."""

    letters: str
    classes: tuple[str, ...]
    max_length: int
    min_length: int

    @property
    def size(self) -> int:
        return _SPECIAL + len(self.classes) + len(self.letters)

    @property
    def width(self) -> int:
        """Tokens per record: BOS, label, up to ``max_length`` letters, EOS."""
        return 3 + self.max_length

    def letter_ids(self) -> np.ndarray:
        return np.arange(len(self.letters)) + _SPECIAL + len(self.classes)

    def encode(self, sequences: list[str], labels: list[str] | None) -> torch.Tensor:
        """``[n, width]`` int64 token rows (PAD after EOS); a missing label uses class 0's slot only
        when the model is unconditional (no classes: the label slot holds EOS's neighbour, BOS)."""
        index = {c: i for i, c in enumerate(self.letters)}
        out = np.full((len(sequences), self.width), PAD, dtype=np.int64)
        out[:, 0] = BOS
        for i, seq in enumerate(sequences):
            out[i, 1] = _SPECIAL + self.classes.index(labels[i]) if self.classes and labels is not None else BOS
            codes = [_SPECIAL + len(self.classes) + index[ch] for ch in seq[: self.max_length]]
            out[i, 2:2 + len(codes)] = codes
            out[i, 2 + len(codes)] = EOS
        return torch.from_numpy(out)

    def decode(self, rows: np.ndarray) -> tuple[list[str], list[str] | None]:
        first = _SPECIAL + len(self.classes)
        seqs, labels = [], []
        for row in rows:
            letters = []
            for tok in row[2:]:
                if tok == EOS or tok < first:
                    break
                letters.append(self.letters[tok - first])
            seqs.append("".join(letters))
            labels.append(self.classes[row[1] - _SPECIAL] if self.classes else "")
        return seqs, (labels if self.classes else None)


class CausalConvLM(nn.Module):
    """Next-token logits ``[n, T, V]`` from tokens ``[n, T]``; position t sees tokens ≤ t only."""

    def __init__(self, vocab_size: int, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, hidden)
        self.position = nn.Embedding(width, hidden)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, 2 * hidden, KERNEL, dilation=d) for d in DILATIONS)
        self.head = nn.Linear(hidden, vocab_size)
        self.register_buffer("positions", torch.arange(width), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # positions per record (batch first), so Opacus sees one position gradient per record
        h = self.token(tokens) + self.position(self.positions[: tokens.shape[1]].expand(tokens.shape[0], -1))
        h = h.transpose(1, 2)  # [n, H, T]
        for conv, d in zip(self.convs, DILATIONS, strict=True):
            a, b = conv(F.pad(h, ((KERNEL - 1) * d, 0))).chunk(2, dim=1)
            h = h + torch.tanh(a) * torch.sigmoid(b)  # gated residual (WaveNet)
        return self.head(h.transpose(1, 2))


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


def _record_loss(network: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Per-record loss ``[n]``: summed next-token cross-entropy over the record's tokens / the width."""
    logits = network(tokens[:, :-1])
    target = tokens[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return (ce.view(target.shape) * (target != PAD)).sum(1) / tokens.shape[1]


def train_autoregressive(sequences: list[str], labels: list[str] | None, vocabulary: Vocabulary, config: Any, *,
                         reserved_entries: tuple[MechanismEntry, ...] = (), randomness: PrivateRandomness | None = None,
                         progress: ProgressCallback = ignore_progress) -> AutoregressiveModel:
    """Train the (ε, δ)-DP autoregressive model (with ``reserved_entries``, in one accountant).

    Uses ``config``'s DP vocabulary: target_epsilon, target_delta, accountant, max_grad_norm,
    batch_size, n_steps, public_rows (0 = the exact count), ar_hidden, ar_lr, seed (public: the
    initialisation only).
    """
    started = time.perf_counter()
    secret = randomness or PrivateRandomness()
    tokens = vocabulary.encode(sequences, labels)
    public_rows = config.public_rows or len(sequences)
    q = sample_rate_for(public_rows, min(config.batch_size, public_rows))
    sgd = calibrate_noise_multiplier(target_epsilon=config.target_epsilon, target_delta=config.target_delta,
                                     sample_rate=q, steps=config.n_steps, accountant=config.accountant,
                                     prior=list(reserved_entries), label=SGD_LABEL)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SeedTree(config.seed).integer("ar-init"))
        network = CausalConvLM(vocabulary.size, vocabulary.width, config.ar_hidden)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.ar_lr)
    loader = DPDataLoader(torch.utils.data.TensorDataset(torch.arange(len(sequences))), sample_rate=q,
                          generator=secret.torch("poisson"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    module, dp_optimizer, loader = engine.make_private(
        module=network, optimizer=optimizer, data_loader=loader, noise_multiplier=sgd.noise_multiplier,
        max_grad_norm=config.max_grad_norm, poisson_sampling=False, grad_sample_mode="hooks",
        noise_generator=secret.torch("dp-noise"))
    dp_optimizer.expected_batch_size = max(1, round(public_rows * q))
    dp_optimizer.secure_mode = True
    history = _run_steps(module, dp_optimizer, loader, tokens, config.n_steps, progress)
    entries = (*[MechanismEntry(SGD_LABEL, float(s), float(r), int(k)) for s, r, k in engine.accountant.history],
               *reserved_entries)
    if sum(e.steps for e in entries if e.label == SGD_LABEL) != config.n_steps:
        raise InternalError("the accountant did not record every DP-SGD step")
    spent = epsilon_for(entries, delta=config.target_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    network = module._module
    network.eval()
    return AutoregressiveModel(network, vocabulary, config, PrivacySpent(spent, config.target_delta,
                                                                         config.accountant, entries),
                               history, time.perf_counter() - started, secret.reproducible)


def _run_steps(module: nn.Module, optimizer: Any, loader: Any, tokens: torch.Tensor, steps: int,
               progress: ProgressCallback) -> list[dict[str, float]]:
    """``steps`` accounted DP-SGD steps over Poisson batches (an empty batch is still a step)."""
    history: list[dict[str, float]] = []
    done = 0
    while done < steps:
        for (idx,) in loader:
            optimizer.zero_grad(set_to_none=True)
            if len(idx):
                loss = _record_loss(module, tokens[idx]).mean()
                with warnings.catch_warnings():  # token ids need no gradient; Opacus' hooks still fire
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    loss.backward()
            else:  # Opacus still adds noise and counts the step
                for p in module.parameters():
                    p.grad_sample = torch.zeros((0, *p.shape))
            optimizer.step()
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

    The label slot draws only label tokens (or is ``fixed_class``); letters and EOS follow,
    EOS only after ``min_length`` letters and always at ``max_length``.
    """
    vocab = model.vocabulary
    gen = torch.Generator().manual_seed(int(seed))
    first = _SPECIAL + len(vocab.classes)
    seqs: list[str] = []
    labels: list[str] = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        rows = torch.full((m, vocab.width), PAD, dtype=torch.int64)
        rows[:, 0] = BOS
        done = torch.zeros(m, dtype=torch.bool)
        for t in range(1, vocab.width):
            logits = model.network(rows[:, :t])[:, -1]
            allowed = torch.zeros(vocab.size, dtype=torch.bool)
            if t == 1:
                if not vocab.classes:
                    rows[:, 1] = BOS
                    continue
                allowed[_SPECIAL:first] = True
            else:
                letters = t - 2
                allowed[first:] = letters < vocab.max_length
                allowed[EOS] = letters >= vocab.min_length
            logits = logits.masked_fill(~allowed, float("-inf"))
            if t == 1 and fixed_class is not None:
                token = torch.full((m,), _SPECIAL + fixed_class, dtype=torch.int64)
            else:
                token = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            rows[:, t] = torch.where(done, torch.tensor(PAD), token)
            done |= token == EOS
            if t >= 2 and bool(done.all()):
                break
        s, lab = vocab.decode(rows.numpy())
        seqs += s
        labels += lab or []
    return seqs, (labels if vocab.classes else None)
