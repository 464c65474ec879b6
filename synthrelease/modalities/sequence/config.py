"""Settings of a sequence release: the table DP vocabulary plus the choice of generator."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from synthrelease.errors import PrivacyParameterError
from synthrelease.gan.config import TrainingConfig

SEQUENCE_GENERATORS = ("autoregressive", "positional_gan")
"""``autoregressive``: the DP causal-convolution language model
(:mod:`synthrelease.modalities.sequence.autoregressive`), letters in order; ``positional_gan``:
the tabular DP-GAN on one column per position (:mod:`synthrelease.modalities.sequence.positional`)."""
PRIOR_LAGS = (2, 3, 4)
"""Default lags of the lag-pair prior (``ar_prior_lags``). 3 and 4: an α-helix turns every 3.6
residues, so an amphipathic peptide's hydrophobic letters recur 3 and 4 places apart — what its
hydrophobic moment measures. 2: the first letter of the order-2 context, whose effect on the
next letter the order-2 table spreads over (1 + A)·A cells per label and this one over A·A, so
it reaches the sampler with far less noise (measured on amp_vs_uniprot: README, the sequence
benchmark's "Current defaults")."""
LEGACY_PRIOR_LAGS = (3, 4)
"""The lags of model files written before the lags were a setting."""
FIXED_LENGTH_SHARES = {"ar_header_budget_share": 0.05, "ar_prior_budget_share": 0.45,
                       "ar_position_budget_share": 0.4, "ar_lag_budget_share": 0.0}
"""Budget shares when the metadata declares one length (aligned windows): the header is then
only the label frequencies, and a letter's position carries the signal. Measured on the
UCI splice windows at ε = 3 (``benchmarks/sequences.py --dataset splice``)."""


@dataclass(frozen=True)
class SequenceTrainingConfig(TrainingConfig):
    """:class:`TrainingConfig` (ε, δ, accountant, clipping, batch, steps, public rows, seed) plus:

    Attributes:
        generator: one of :data:`SEQUENCE_GENERATORS`.
        ar_hidden: channels of the autoregressive model's embeddings and convolutions.
        ar_lr: its Adam learning rate.
        ar_lags: direct log-linear next-token tables, one per lag (the last ``ar_lags`` tokens),
            plus a per-label map of the prefix's letter shares (0: the convolutions alone).
        ar_ema: decay of the exponential moving average of the DP-SGD iterates the model keeps
            (0: the last iterate); post-processing, no ε.
        ar_prior_budget_share: budget share (see below) of the Gaussian releases of per-label
            letter transition counts whose log-probabilities the network's letter logits start
            from (0: no such prior).
        ar_prior_order: 1 (one release: letter → next letter) or 2 (the order-1 release with
            ``ORDER1_FRACTION`` of the share, and order-2 counts — two letters → next — with the
            rest, shrunk towards it).
        ar_header_budget_share: budget share of the one Gaussian release of the (label, length)
            counts that sampling draws each record's label and length from.
        ar_position_budget_share: budget share of the Gaussian release of per-label letter counts
            at each position from the start (a position weight matrix); the letter logits add
            its log-ratio to the label's composition (0: no such prior). The default
            configuration gives it a share when the metadata declares one length (aligned
            windows such as splice sites), where a letter's position carries the signal.
        ar_lag_budget_share: budget share of the Gaussian release of per-label counts of letter
            pairs ``ar_prior_lags`` places apart; the letter logits add the log-ratio of the later
            letter given the earlier one to the label's composition (0: no such prior). Measured
            on amp_vs_uniprot at ε = 3 (4 seeds, the releases alone), lags 3 and 4 (a helix's
            turn): hydrophobic-moment KS 0.131 → 0.075, hydrophobicity 0.120 → 0.079, TSTR
            unchanged; aligned windows (:data:`FIXED_LENGTH_SHARES`) keep 0 (not measured there).
        ar_prior_lags: the lags of that release (distinct, 1 … 64; default
            :data:`PRIOR_LAGS` = 2, 3, 4: adding lag 2 to 3 and 4 lifted TSTR at
            ε = 3 from 0.895 to 0.900 and at ε = 1 from 0.856 to 0.866, releases alone, 12 noise draws).

    A budget share w gives a release the noise σ₀/√w, σ₀ being the σ that alone spends the whole
    (ε, δ) (:func:`synthrelease.privacy.accounting.budget_share_noise`): Gaussian releases with
    shares summing to 1 spend exactly ε together. DP-SGD is calibrated to the rest of the budget
    (1 − header − prior shares, and whatever the accountant's composition leaves).
        gan_batch_size, gan_steps: ``batch_size`` and ``n_steps`` when the generator is the
            positional GAN (``batch_size`` and ``n_steps`` are the autoregressive model's; an
            explicit ``--batch-size`` / ``--steps`` sets both).
    """

    generator: str = "autoregressive"
    ar_hidden: int = 64
    ar_lr: float = 2e-3
    ar_lags: int = 0
    ar_header_budget_share: float = 0.2
    ar_ema: float = 0.0
    ar_prior_budget_share: float = 0.55
    ar_prior_order: int = 2
    ar_position_budget_share: float = 0.0
    ar_lag_budget_share: float = 0.15
    ar_prior_lags: tuple[int, ...] = PRIOR_LAGS
    gan_batch_size: int = 500
    gan_steps: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generator not in SEQUENCE_GENERATORS:
            raise PrivacyParameterError(f"generator must be one of {', '.join(SEQUENCE_GENERATORS)}, "
                                        f"not {self.generator!r}")
        if not 8 <= self.ar_hidden <= 1024 or not 0 < self.ar_lr < 1:
            raise PrivacyParameterError("ar_hidden must be in [8, 1024] and ar_lr in (0, 1)")
        if not 0 <= self.ar_lags <= 64:
            raise PrivacyParameterError("ar_lags must be in [0, 64]")
        if not 0 <= self.ar_ema < 1:
            raise PrivacyParameterError("ar_ema must be in [0, 1)")
        if not 0 <= self.ar_prior_budget_share < 0.98:
            raise PrivacyParameterError("ar_prior_budget_share must be in [0, 0.98)")
        if self.ar_prior_order not in (1, 2):
            raise PrivacyParameterError("ar_prior_order must be 1 or 2")
        if not 0 < self.ar_header_budget_share < 0.5:
            raise PrivacyParameterError("ar_header_budget_share must be in (0, 0.5)")
        if not 0 <= self.ar_position_budget_share < 0.98:
            raise PrivacyParameterError("ar_position_budget_share must be in [0, 0.98)")
        if not 0 <= self.ar_lag_budget_share < 0.98:
            raise PrivacyParameterError("ar_lag_budget_share must be in [0, 0.98)")
        if (self.ar_header_budget_share + self.ar_prior_budget_share + self.ar_position_budget_share
                + self.ar_lag_budget_share > 0.98):
            raise PrivacyParameterError("ar_header_budget_share + ar_prior_budget_share + ar_position_budget_share + "
                                        "ar_lag_budget_share must be at most 0.98: DP-SGD needs the rest of the budget")
        lags = _lags(self.ar_prior_lags)
        if not lags or len(set(lags)) != len(lags) or not all(type(k) is int and 1 <= k <= 64 for k in lags):
            raise PrivacyParameterError("ar_prior_lags must be distinct whole numbers in [1, 64]")
        object.__setattr__(self, "ar_prior_lags", lags)  # a model file's list reads back as the tuple
        if self.gan_batch_size < 1 or self.gan_steps < 1:
            raise PrivacyParameterError("gan_batch_size and gan_steps must be >= 1")

    def for_generator(self) -> TrainingConfig:
        """The settings the chosen generator trains with (the positional GAN's batch and steps for it)."""
        if self.generator == "positional_gan":
            return dataclasses.replace(self, batch_size=self.gan_batch_size, n_steps=self.gan_steps)
        return self


def _lags(value: object) -> tuple[object, ...]:
    """``ar_prior_lags`` as a tuple: from a tuple or list (a model file), a number or a text
    ``"2,3,4"`` (``--train-option ar_prior_lags=2,3,4``); () when unreadable (refused after)."""
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        try:
            return tuple(int(part) for part in value.split(","))
        except ValueError:
            return ()
    return ()
