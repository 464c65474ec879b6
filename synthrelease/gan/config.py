"""Training configuration: one frozen object with every knob of a DP-GAN run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from synthrelease.errors import PrivacyParameterError
from synthrelease.privacy.accounting import ACCOUNTANTS


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one DP-GAN training run.

    Privacy (keyword vocabulary of Opacus):
        target_epsilon, target_delta: the total (ε, δ) of the run, preprocessing included.
        accountant: ``rdp`` or ``prv`` — used both to calibrate σ and to report ε.
        max_grad_norm: per-row clipping norm C of the discriminator's gradient.
        batch_size: expected Poisson batch size; the sample rate is ``1 / round(n / batch_size)``.
        public_rows: the row count n that the sample rate and every size-scaled step of
            training use: a release sets it from its DP count of the training rows
            (privacy/dp_counts.py), so that no setting, noise scale or generator weight is
            a function of the exact, private count. 0 = the training rows' own count (only
            for runs whose row count is public, e.g. the audits' retraining on synthetic rows).
        n_steps: discriminator steps, each one accounted sampled-Gaussian step.
        condition_epsilon_share: share of ε for the DP histogram of the condition column
            (its sampling frequencies) when conditional marginals are off.
        marginal_epsilon_share: share of ε for the DP (condition × column) marginals that
            guide the generator (0 = off); they also give the condition's frequencies.
        bounds_epsilon_share: share of ε for DP bounds of columns declared with
            ``dp_bounds`` (unused when every bound is public).
        categories_epsilon_share, categories_delta_share: shares of ε and δ for DP discovery
            of category lists declared with ``dp_categories`` (unused when every list is public).
        marginal_weight: weight of the marginal-matching term in the generator loss.
        marginal_bins: equal-width bins per continuous value (over the public bounds).
        embedding_epsilon_share, embedding_features, embedding_weight: share of ε for DP
            class-conditional mean embeddings in random features (DP-MERF; 0 = off), the
            number of features, and the weight of matching them in the generator loss.
        embedding_kernel: ``rff`` (random Fourier features), ``linear`` (each row's
            direction x/‖x‖: class mean profiles) or ``centered`` (the direction minus a DP
            mean direction, renormalised: more of the budget on class differences) or
            ``values`` (the numerical values on [0, 1] over their public bounds, as a unit
            vector: class mean profiles of expression data at full strength).
        embedding_shrinkage: λ ≥ 0; each class's noisy deviation from the overall mean
            embedding is soft-thresholded at λ × its noise scale before the generator
            matches it (post-processing; 0 = match the raw noisy means).
        embedding_zero_weight: kernel ``values`` only: share of the profile's norm given to
            the zero-inflated columns' non-zero indicators (class-wise shares of zeros).
        pair_epsilon_share, pair_max_cells, pair_weight: share of ε for DP joint histograms of the pairs
            of discrete non-condition columns with at most ``pair_max_cells`` cells (chosen
            from the metadata; 0 = off), and the weight of matching them.
        related_epsilon_share, related_weight: share of ε for DP joint histograms of the
            metadata's declared ``related_columns`` pairs, and the weight of matching them.
        correlation_epsilon_share, correlation_weight: share of ε for one DP release of the
            numerical columns' correlation matrix (0 = off), and the weight of matching it.
        share_unit: what the Gaussian releases' shares above (condition, marginals, embedding,
            pairs, related, correlation) divide: ``epsilon`` — each release alone spends
            share · ε, DP-SGD gets what the sub-additive composition leaves; ``budget`` — σ₀/√share
            (:func:`~synthrelease.privacy.accounting.budget_share_noise`), shares summing to 1
            spend exactly ε.
        marginal_columns_per_step: numerical columns matched per generator step (a fresh
            random subset each step on wider tables; 0 = all).

    Model:
        latent_dim, generator_hidden, discriminator_hidden: layer sizes.
        discriminator_projection: width of a fixed random projection of the rows in
            front of the discriminator (0 = none); cuts DP-SGD noise on wide tables.
        discriminator_kind: ``mlp`` (tables) or ``conv1d`` (sequences: a 1-D convolution
            over the positional columns ``pos_…``, see :mod:`synthrelease.modalities.sequence.positional`).
        n_disc_steps: discriminator steps per generator step.
        generator_lr, discriminator_lr: Adam learning rates.
        gumbel_tau: temperature of the Gumbel-softmax for discrete outputs.
        grad_sample_mode: Opacus per-sample-gradient mode (``ghost`` = fast gradient clipping).
        clip_fake_rows: also clip the fake rows' per-row gradients (one joint forward; slower).
            Off by default: fake rows are data-independent, so only real rows need clipping.
        seed: root of the PUBLIC random streams only (initialisation, latent noise, random
            features, the collapse probe). DP noise, Poisson masks and the split never
            come from it (:class:`synthrelease.privacy.randomness.PrivateRandomness`).
    """

    target_epsilon: float
    target_delta: float
    accountant: str = "rdp"
    max_grad_norm: float = 1.0
    batch_size: int = 500
    n_steps: int = 1000
    public_rows: int = 0
    condition_epsilon_share: float = 0.05
    marginal_epsilon_share: float = 0.5
    bounds_epsilon_share: float = 0.1
    categories_epsilon_share: float = 0.05
    categories_delta_share: float = 0.1
    marginal_weight: float = 10.0
    marginal_bins: int = 20
    marginal_columns_per_step: int = 2000
    embedding_epsilon_share: float = 0.0
    embedding_features: int = 2000
    embedding_weight: float = 10.0
    embedding_kernel: str = "rff"
    embedding_shrinkage: float = 0.0
    embedding_zero_weight: float = 0.0
    pair_epsilon_share: float = 0.0
    pair_max_cells: int = 100
    pair_weight: float = 10.0
    related_epsilon_share: float = 0.0
    related_weight: float = 10.0
    correlation_epsilon_share: float = 0.0
    correlation_weight: float = 10.0
    share_unit: str = "epsilon"
    latent_dim: int = 64
    generator_hidden: int = 256
    discriminator_hidden: int = 256
    discriminator_projection: int = 0
    discriminator_kind: str = "mlp"
    n_disc_steps: int = 1
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    gumbel_tau: float = 0.2
    grad_sample_mode: str = "ghost"
    clip_fake_rows: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyParameterError(f"accountant must be one of {', '.join(ACCOUNTANTS)}")
        if self.share_unit not in ("epsilon", "budget"):
            raise PrivacyParameterError("share_unit must be 'epsilon' or 'budget'")
        if not self.target_epsilon > 0:
            raise PrivacyParameterError(f"epsilon must be > 0, got {self.target_epsilon}")
        if not 0 < self.target_delta < 1:
            raise PrivacyParameterError(f"delta must be in (0, 1), got {self.target_delta}")
        if self.max_grad_norm <= 0:
            raise PrivacyParameterError("max_grad_norm must be > 0")
        if self.public_rows < 0:
            raise PrivacyParameterError("public_rows must be >= 0 (0 = the training rows' own count)")
        if self.batch_size < 1 or self.n_steps < 1 or self.n_disc_steps < 1:
            raise PrivacyParameterError("batch_size, n_steps and n_disc_steps must be >= 1")
        if not 0 <= self.condition_epsilon_share < 1:
            raise PrivacyParameterError("condition_epsilon_share must be in [0, 1)")
        if not 0 <= self.bounds_epsilon_share < 1:
            raise PrivacyParameterError("bounds_epsilon_share must be in [0, 1)")
        if not 0 <= self.categories_epsilon_share < 1 or not 0 <= self.categories_delta_share < 1:
            raise PrivacyParameterError("categories_epsilon_share and categories_delta_share must be in [0, 1)")
        if not 0 <= self.marginal_epsilon_share < 1:
            raise PrivacyParameterError("marginal_epsilon_share must be in [0, 1)")
        if self.discriminator_projection < 0:
            raise PrivacyParameterError("discriminator_projection must be >= 0 (0 = no projection)")
        if self.discriminator_kind not in ("mlp", "conv1d"):
            raise PrivacyParameterError(f"discriminator_kind must be mlp or conv1d, got {self.discriminator_kind!r}")
        if self.embedding_kernel not in ("rff", "linear", "centered", "values"):
            raise PrivacyParameterError(f"embedding_kernel must be rff, linear, centered or values, got "
                                        f"{self.embedding_kernel!r}")
        if not 0 <= self.embedding_epsilon_share < 1 or self.embedding_features < 2 or self.embedding_weight < 0:
            raise PrivacyParameterError("embedding_epsilon_share must be in [0, 1), embedding_features >= 2, "
                                        "embedding_weight >= 0")
        if not 0 <= self.pair_epsilon_share < 1 or self.pair_max_cells < 4 or self.pair_weight < 0:
            raise PrivacyParameterError("pair_epsilon_share must be in [0, 1), pair_max_cells >= 4, pair_weight >= 0")
        if not 0 <= self.related_epsilon_share < 1 or self.related_weight < 0:
            raise PrivacyParameterError("related_epsilon_share must be in [0, 1) and related_weight >= 0")
        if not 0 <= self.correlation_epsilon_share < 1 or self.correlation_weight < 0:
            raise PrivacyParameterError("correlation_epsilon_share must be in [0, 1) and correlation_weight >= 0")
        if self.embedding_shrinkage < 0 or not 0 <= self.embedding_zero_weight < 1:
            raise PrivacyParameterError("embedding_shrinkage must be >= 0 and embedding_zero_weight in [0, 1)")
        if self.marginal_columns_per_step < 0:
            raise PrivacyParameterError("marginal_columns_per_step must be >= 0")
        if self.marginal_bins < 2 or self.marginal_weight < 0:
            raise PrivacyParameterError("marginal_bins must be >= 2 and marginal_weight >= 0")
        if self.grad_sample_mode not in ("ghost", "hooks", "functorch"):
            raise PrivacyParameterError("grad_sample_mode must be ghost, hooks or functorch")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Finite, positive and memory-bounded values for the optimiser and model settings, so that a
        bad option is refused before any ε is reserved (not after training has started)."""
        for name in ("max_grad_norm", "generator_lr", "discriminator_lr", "gumbel_tau"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise PrivacyParameterError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("generator_lr", "discriminator_lr"):
            value = getattr(self, name)
            if value > 1.0:
                raise PrivacyParameterError(f"{name} must be at most 1 (an Adam learning rate), got {value!r}")
        for name in ("marginal_weight", "embedding_weight", "embedding_shrinkage", "pair_weight", "related_weight",
                     "correlation_weight"):
            if not math.isfinite(getattr(self, name)):
                raise PrivacyParameterError(f"{name} must be finite, got {getattr(self, name)!r}")
        for name, most in (("latent_dim", 4096), ("generator_hidden", 16384), ("discriminator_hidden", 16384),
                           ("discriminator_projection", 65536), ("embedding_features", 200_000),
                           ("marginal_bins", 10_000), ("n_disc_steps", 100), ("n_steps", 10_000_000),
                           ("batch_size", 10_000_000), ("pair_max_cells", 1_000_000)):
            value = getattr(self, name)
            if not 0 <= value <= most:
                raise PrivacyParameterError(f"{name} must be at most {most:,}, got {value!r}")
        if self.latent_dim < 1 or self.generator_hidden < 1 or self.discriminator_hidden < 1:
            raise PrivacyParameterError("latent_dim, generator_hidden and discriminator_hidden must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the internal report and the model file)."""
        return asdict(self)


def marginal_share_for(*, n_rows: int, n_histograms: int, n_classes: int, n_cells: int, epsilon: float,
                       delta: float, accountant: str = "rdp") -> float:
    """Share of ε for the conditional marginals, from PUBLIC quantities only.

    The marginals help when their per-cell noise is small next to the expected per-class
    cell count n / (classes × cells); on wide tables (thousands of histograms, few rows)
    they are mostly noise and the budget serves the discriminator better. Rule: 0.5 when
    that signal-to-noise ratio is at least 0.25, else 0.2 (measured on adult, breast
    cancer and pbmc68k: benchmarks/results/).
    """
    from synthrelease.privacy.accounting import histogram_noise_for

    sigma = histogram_noise_for(epsilon=0.5 * epsilon, delta=delta, accountant=accountant).noise_multiplier
    noise = sigma * n_histograms ** 0.5
    signal = n_rows / max(1, n_classes * n_cells)
    return 0.5 if signal / noise >= 0.25 else 0.2


MIN_MARGINAL_BINS = 4
BIN_SIGNAL_TO_NOISE = 0.5


def marginal_bins_for(*, n_rows: int, n_histograms: int, n_classes: int, epsilon: float, delta: float,
                      accountant: str = "rdp", max_bins: int = 20) -> int:
    """Bins per numerical marginal, from PUBLIC quantities only: fewer, wider bins on small tables.

    The largest b in [4, ``max_bins``] whose expected per-class cell count n / (classes ×
    (b + 2)) is at least 0.5 × the per-cell noise σ·√histograms (σ of a Gaussian release at
    half of ε, as :func:`marginal_share_for`). Measured on the clinical diabetes table (353
    training rows, ε = 1, 3 runs; benchmarks/results/small_tables-*.md): 8 bins instead of
    20 brought the synthetic/real std ratio from 1.69 to 1.35 and PRDC coverage from 0.14
    to 0.29; adult keeps 20 bins.
    """
    from synthrelease.privacy.accounting import histogram_noise_for

    sigma = histogram_noise_for(epsilon=0.5 * epsilon, delta=delta, accountant=accountant).noise_multiplier
    noise = sigma * n_histograms ** 0.5
    for bins in range(max_bins, MIN_MARGINAL_BINS - 1, -1):
        if n_rows / max(1, n_classes * (bins + 2)) >= BIN_SIGNAL_TO_NOISE * noise:
            return bins
    return MIN_MARGINAL_BINS
