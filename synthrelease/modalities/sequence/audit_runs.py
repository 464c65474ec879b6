"""What the retraining audits (shadow attack, empirical ε audit) need of sequences.

The audits themselves are the tables' (:mod:`synthrelease.audits.shadow`,
:mod:`synthrelease.audits.empirical`); this module hands them the sequence pieces:

* **canaries** (:func:`make_sequence_canaries`): random sequences over the declared alphabet,
  lengths uniform in the declared bounds, labels uniform over the declared classes, from
  PUBLIC metadata and a PUBLIC seed only — no private row is read. Uniform random letters
  are far from any real protein or gene fragment, so a canary is an outlier the model can
  only reproduce by memorising it;
* **distance space** (:func:`encode_sequences`): positional one-hot over ``max_length``
  positions (a letter or "ended") plus the label, scaled by 1/√2 so that the squared
  Euclidean distance of two sequences is the number of positions (and label) where they
  differ — the Hamming distance the black-box canary score and the shadow attack measure;
* **the audit run** (:func:`train_audit_run`): the release's autoregressive DP language
  model trained once on the audit table (own seed, reproducible private streams: every
  output is discarded), whose white-box canary score is the canary's letter log-likelihood
  under the FINAL model, calibrated by its shuffles (:func:`calibrated_log_likelihood`).

Threat model of the white-box score: the auditor sees the trained network (the model
`train` would share), not every privatized gradient of the run as the table DP-GAN's
transcript score does; a weaker adversary, so a looser (still valid) lower bound.

PRIVACY: the audit runs read whatever rows they are given — private rows in
``synthrelease audit-privacy`` and in the shadow attack — and are NOT DP; their results are
INTERNAL ONLY (the steward's internal report). Their models and tables are discarded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthrelease.errors import PrivacyParameterError
from synthrelease.metadata.alphabets import resolve_alphabet
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ignore_progress

N_REFERENCES = 8
"""Shuffles of each canary whose mean log-likelihood calibrates its score."""

SCORE_METHODS = {
    "white_box": "letter log-likelihood of the canary under the final autoregressive model minus the mean over "
                 f"{N_REFERENCES} shuffles of its letters (same label and length; white box on the final model, "
                 "not on the DP-SGD transcript)",
    "final_logit": "as white_box: the calibrated letter log-likelihood under the final model",
    "black_box": "minus the distance from the canary to its nearest synthetic sequence in the positional one-hot "
                 "space (squared distance = positions and label that differ)",
}
"""What each canary score of a sequence audit run is (the audit's details carry it)."""

_SCALE = 1.0 / math.sqrt(2.0)


def _column(metadata: Metadata) -> str:
    column = metadata.sequence_column
    if column is None:
        raise PrivacyParameterError(f"metadata {metadata.name!r} declares no sequence column")
    return column


def make_sequence_canaries(metadata: Metadata, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` canary records with every declared column (identifiers ``canary-00000``, ...).

    Public metadata and ``seed`` only: letters uniform over the alphabet, length uniform in
    ``[min_length, max_length]``, label uniform over the declared classes. Deterministic given ``seed``.
    """
    if n < 1:
        raise ValueError("need at least one canary")
    column = _column(metadata)
    spec = metadata.columns[column]
    letters = np.array(list(resolve_alphabet(spec.alphabet or "")))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(int(spec.min_length or 1), int(spec.max_length or 1) + 1, n)
    out: dict[str, list[Any]] = {}
    for name, col in metadata.columns.items():
        if col.type == "identifier":
            out[name] = [f"canary-{i:05d}" for i in range(n)]
        elif name == column:
            out[name] = ["".join(rng.choice(letters, size=int(k))) for k in lengths]
        else:  # the label: declared classes only
            classes = list(col.declared_categories())
            out[name] = [classes[i] for i in rng.integers(0, len(classes), n)]
    return pd.DataFrame(out)


def encode_sequences(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """float32 ``[n, max_length × (letters + 1) + classes]``: positional one-hot (a letter, or the
    sequence has ended) and the label, each scaled by 1/√2, so that squared distances count the
    differing positions and label. PUBLIC layout (declared alphabet, length, classes); reads only ``df``.
    """
    column = _column(metadata)
    spec = metadata.columns[column]
    letters = resolve_alphabet(spec.alphabet or "")
    width, length = len(letters) + 1, int(spec.max_length or 1)
    lookup = np.full(256, len(letters), dtype=np.int64)  # anything else reads as "ended"
    lookup[np.frombuffer(letters.encode("ascii"), dtype=np.uint8)] = np.arange(len(letters))
    codes = np.full((len(df), length), len(letters), dtype=np.int64)
    for i, seq in enumerate(df[column].astype(str)):
        raw = np.frombuffer(seq[:length].encode("ascii", "replace"), dtype=np.uint8)
        codes[i, :len(raw)] = lookup[raw]
    classes = _classes(metadata)
    out = np.zeros((len(df), length * width + len(classes)), dtype=np.float32)
    rows = np.repeat(np.arange(len(df)), length)
    out[rows, (np.arange(length) * width + codes).ravel()] = _SCALE
    if classes:
        index = {c: j for j, c in enumerate(classes)}
        labels = df[metadata.target].astype(str).map(index).to_numpy() if metadata.target in df.columns else []
        ok = ~pd.isna(labels)
        out[np.flatnonzero(ok), length * width + np.asarray(labels)[ok].astype(int)] = _SCALE
    return out


def _classes(metadata: Metadata) -> list[str]:
    if metadata.target is None:
        return []
    return [str(c) for c in metadata.columns[metadata.target].declared_categories()]


@torch.no_grad()
def letter_log_likelihood(model: Any, sequences: list[str], labels: list[str] | None, *,
                          batch: int = 512) -> np.ndarray:
    """Per sequence, the log-probability of its letters under an autoregressive model, given its
    label and length (the letters only, each over the letter tokens, as the sampler draws them)."""
    vocab = model.vocabulary
    network = model.network
    out = np.zeros(len(sequences), dtype=np.float64)
    for start in range(0, len(sequences), batch):
        part = sequences[start:start + batch]
        tokens = vocab.encode(part, None if labels is None else labels[start:start + batch])
        logits = network(tokens[:, :-1])[..., vocab.first_letter:vocab.size]
        target = tokens[:, 1:]
        letter = target >= vocab.first_letter
        logp = torch.log_softmax(logits.double(), dim=-1)
        picked = logp.gather(-1, (target - vocab.first_letter).clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out[start:start + len(part)] = (picked * letter).sum(1).numpy()
    return out


def calibrated_log_likelihood(model: Any, sequences: list[str], labels: list[str] | None, *, seed: int,
                              n_references: int = N_REFERENCES) -> np.ndarray:
    """Letter log-likelihood of each sequence minus the mean over ``n_references`` shuffles of its
    letters (same label, length and composition; never trained on): the share of its likelihood
    that comes from its letter ORDER, which only memorising it can raise (higher = more likely in)."""
    score = letter_log_likelihood(model, sequences, labels)
    if n_references < 1:
        return score
    rng = np.random.default_rng(seed)
    refs = np.zeros_like(score)
    for _ in range(n_references):
        shuffled = ["".join(rng.permutation(list(s))) for s in sequences]
        refs += letter_log_likelihood(model, shuffled, labels)
    return score - refs / n_references


@dataclass
class SequenceAuditRun:
    """One audit training run of the autoregressive model (in memory only, never saved)."""

    model: Any
    """The :class:`~synthrelease.modalities.base.ModalityModel` (autoregressive inner model)."""
    metadata: Metadata
    sampler: Callable[..., pd.DataFrame]
    """The modality's ``sample(model, n_rows, *, seed)``."""
    alignment: np.ndarray | None = None
    """Per-canary calibrated log-likelihoods under the final model (None without canaries)."""
    score_methods: dict[str, str] = dataclasses.field(default_factory=lambda: dict(SCORE_METHODS))

    @property
    def epsilon(self) -> float:
        """ε the run's accountant reports (at its ``target_delta``)."""
        return float(self.model.privacy.epsilon)

    def sample(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        """``n_rows`` synthetic sequences from the run's model (post-processing)."""
        return self.sampler(self.model, n_rows, seed=seed)

    def final_logit_scores(self, rows: pd.DataFrame, *, seed: int) -> np.ndarray:
        """Calibrated letter log-likelihood per row under the final model (higher = more likely in)."""
        column = _column(self.metadata)
        labels = None if self.metadata.target is None else [str(v) for v in rows[self.metadata.target]]
        return calibrated_log_likelihood(self.model.inner, list(rows[column].astype(str)), labels, seed=seed)


def train_audit_run(rows: pd.DataFrame, metadata: Metadata, config: Any, *, fit: Callable[..., Any],
                    sample: Callable[..., pd.DataFrame], condition_column: str | None,
                    canaries: pd.DataFrame | None = None, noise_scale: float = 1.0,
                    progress: ProgressCallback = ignore_progress) -> SequenceAuditRun:
    """Train the release's autoregressive DP model on ``rows`` (the modality's ``fit``) for an audit
    and score ``canaries``; ``sample`` is the modality's sampler, for the black-box score.

    Same settings as the release (``config``; the caller rescales the batch and sets the seed).
    Its private streams are reproducible from ``config.seed`` (:meth:`PrivateRandomness.for_discarded_run`):
    every output of the run is discarded, only the canaries' scores leave.

    Raises:
        PrivacyParameterError: the positional GAN (its batch and steps are not the audited
            settings' own: audit the default autoregressive model), or ``noise_scale`` ≠ 1
            (the autoregressive trainer has no test-only noise knob; check power with a large ε).
    """
    if getattr(config, "generator", "autoregressive") != "autoregressive":
        raise PrivacyParameterError("the shadow attack and the empirical ε audit retrain the autoregressive "
                                    "sequence model only; drop --train-option generator=positional_gan or the audits")
    if noise_scale != 1.0:
        raise PrivacyParameterError("the autoregressive sequence model's audit run has no noise-scale knob")
    model = fit(rows, metadata, config, condition_column=condition_column, progress=progress,
                randomness=PrivateRandomness.for_discarded_run(config.seed))
    run = SequenceAuditRun(model, metadata, sample)
    if canaries is not None:
        run.alignment = run.final_logit_scores(canaries, seed=SeedTree(config.seed).integer("audit-references"))
    return run
