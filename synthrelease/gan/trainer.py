"""The DP-GAN training loop on Opacus.

Privacy argument (add/remove one row = one person):

1. The condition column's category counts are released once through a Gaussian
   mechanism (L2 sensitivity 1, σ from :func:`histogram_noise_for`); they set the
   sampling frequencies of the condition. Accounted as ``(σ_h, q=1, 1 step)``.
2. Every discriminator step is one Poisson-subsampled Gaussian mechanism run by Opacus:
   a fresh batch from Opacus' ``DPDataLoader`` (each row kept with probability q), a
   per-row loss over the real rows and a FIXED number of fake rows (the expected batch
   size, a public number — never the sampled count, which would double the
   sensitivity), per-row gradients clipped to ``max_grad_norm`` by Opacus' ghost
   clipping, Gaussian noise of std ``σ·max_grad_norm`` added by Opacus' DPOptimizer.
   Fake rows depend only on the generator, itself a function of earlier noisy
   discriminator outputs, so clipping them costs no privacy. Opacus' accountant hook
   records one step per ``optimizer.step()``.
3. The generator is trained only through the discriminator (hooks off during its step),
   so it and everything sampled from it are post-processing.

ε reported = one Opacus accountant over (1) + Opacus' own history of (2), at δ.
σ is calibrated before training with the same accountant for the planned step count;
training always runs to that count (no early stopping, no model selection on private
data). Assumption: the number of rows n is public (it fixes the sample rate), as in
Opacus. Citations: Abadi et al. 2016 (DP-SGD); Xie et al. 2018 (DP-GAN); Lee and
Kifer 2021 / Bu et al. 2023 (ghost clipping, as implemented in Opacus).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from opacus.validators import ModuleValidator
from torch import nn

from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.gan.clipping import LinearChainClipper, clipped_backward
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.mean_embedding import ClassMeanEmbedding
from synthrelease.gan.models import POSITION_PREFIX, Discriminator, Generator, SequenceDiscriminator
from synthrelease.gan.rows import RowSource, encoded_rows
from synthrelease.io.formats import TableFormat
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import (
    MechanismEntry,
    budget_share_noise,
    calibrate_noise_multiplier,
    epsilon_for,
    histogram_noise_for,
)
from synthrelease.privacy.collective import current as current_collective
from synthrelease.privacy.collective import noisy_sum
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress
from synthrelease.transforms.dp_correlation import CorrelationMatcher, centres, measure_correlation
from synthrelease.transforms.dp_marginals import MarginalMeasurements, measure_marginals, numeric_layout
from synthrelease.transforms.dp_numeric_pairs import NumericPairMatcher, measure_numeric_pairs, pair_layout
from synthrelease.transforms.dp_pairs import PairMatcher, discrete_pairs, measure_pairs
from synthrelease.transforms.encoders import Span, TableEncoder
from synthrelease.transforms.marginal_loss import MarginalMatcher

if TYPE_CHECKING:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from synthrelease.privacy.collective import Collective

log = logging.getLogger(__name__)

ROW_CHUNK = 4096
"""Rows per block when a measurement reads every private row."""

_AuditCallback = Callable[[int, nn.Module, torch.Tensor | None, torch.Tensor | None], None]
"""AUDIT ONLY: ``(step, discriminator, fake_rows, real_rows)``, see :func:`train_dp_gan`."""


@dataclass(frozen=True)
class PrivacySpent:
    """The privacy cost of a run, read from the accountant.

    Attributes:
        epsilon: total ε over every entry (one accountant, not a hand sum), read at
            δ − ``threshold_delta``.
        delta: the total δ of the run (accountant δ plus ``threshold_delta``).
        accountant: ``rdp`` or ``prv``.
        entries: every accounted mechanism, in order.
        threshold_delta: δ spent outside the accountant by DP category thresholding (0 if none).
    """

    epsilon: float
    delta: float
    accountant: str
    entries: tuple[MechanismEntry, ...]
    threshold_delta: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for reports and manifests."""
        return {
            "epsilon": self.epsilon, "delta": self.delta, "accountant": self.accountant,
            "threshold_delta": self.threshold_delta,
            "mechanisms": [
                {"label": e.label, "noise_multiplier": e.noise_multiplier,
                 "sample_rate": e.sample_rate, "steps": e.steps} for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacySpent:
        """The inverse of :meth:`to_dict` (e.g. from a model file's JSON); KeyError/ValueError on bad input."""
        return cls(epsilon=float(d["epsilon"]), delta=float(d["delta"]), accountant=str(d["accountant"]),
                   entries=tuple(MechanismEntry(m["label"], float(m["noise_multiplier"]), float(m["sample_rate"]),
                                                int(m["steps"])) for m in d["mechanisms"]),
                   threshold_delta=float(d.get("threshold_delta", 0.0)))


@dataclass
class TrainedModel:
    """Everything needed to sample: the generator, the public encoder, DP condition frequencies.

    Holds no private rows and no discriminator.
    """

    generator: Generator
    encoder: TableEncoder
    config: TrainingConfig
    privacy: PrivacySpent
    condition_column: str | None
    condition_probs: np.ndarray | None
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    reproducible_private_randomness: bool = False
    """True only when trained with the test-only reproducible randomness: never saved or released."""
    table_format: TableFormat | None = None
    """How the training table was stored (CSV, TSV, Parquet, AnnData: which columns were ``obs`` and which
    genes), naming only the public metadata's columns; ``sample`` writes that format too. None: unknown."""


def _identity_collate(batch: torch.Tensor) -> torch.Tensor:
    return batch


def sample_rate_for(n_rows: int, batch_size: int) -> float:
    """The Poisson sample rate ``1 / round(n / batch_size)``.

    Opacus' ``make_private`` charges ``1 / len(data_loader)`` per step; choosing q with an
    integer reciprocal makes the calibrated and the charged rate identical.
    """
    return 1.0 / max(1, round(n_rows / batch_size))


def _condition_span(encoder: TableEncoder, column: str | None) -> Span | None:
    if column is None:
        return None
    return encoder.span(column, "category")


def _dp_condition_probs(
    rows: RowSource, span: Span, entry: MechanismEntry, generator: torch.Generator
) -> np.ndarray:
    """Gaussian-noised category counts → sampling probabilities (a DP release).

    Reads private rows; DP with L2 sensitivity 1 under add/remove one row; the entry
    is charged by the caller. Negative noisy counts are clipped to 0 and every
    category gets one pseudo-count so that rare categories can still be sampled.
    """
    counts = torch.zeros(span.width, dtype=torch.float64)
    for chunk in rows.chunks(ROW_CHUNK):
        counts += chunk[:, span.start:span.stop].double().sum(dim=0)
    noisy = noisy_sum(counts, entry.noise_multiplier, generator).clamp(min=0.0) + 1.0
    return (noisy / noisy.sum()).numpy()


def _batches(loader: DPDataLoader, width: int) -> Iterator[torch.Tensor]:
    while True:
        for batch in loader:
            if not isinstance(batch, torch.Tensor):  # an empty first batch comes back as []
                batch = torch.empty(0, width)
            yield batch


def train_dp_gan(
    train: pd.DataFrame,
    encoder: TableEncoder,
    config: TrainingConfig,
    *,
    condition_column: str | None,
    progress: ProgressCallback = ignore_progress,
    prior_entries: tuple[MechanismEntry, ...] = (),
    threshold_delta: float = 0.0,
    audit_callback: Callable[[int, nn.Module, torch.Tensor | None, torch.Tensor | None], None] | None = None,
    reserved_entries: tuple[MechanismEntry, ...] = (),
    randomness: PrivateRandomness | None = None,
    _unsafe_noise_scale: float = 1.0,
) -> TrainedModel:
    """Train a conditional DP-GAN on the private rows ``train``.

    ``prior_entries``: mechanisms already run on the same rows (e.g. DP bounds); they are
    composed with this run's in the one accountant that calibrates σ and reports ε.
    ``threshold_delta``: δ already spent outside the accountant (DP category thresholding);
    the accountant then works at δ − threshold_delta so that the total stays at δ.
    ``audit_callback``: AUDIT ONLY (:mod:`synthrelease.audits.empirical_privacy`): called
    once before training as ``(0, discriminator, None, None)`` and after every
    discriminator update (before the generator step) as ``(step, discriminator,
    fake_rows, real_rows)`` (the step's data-independent fake rows and its Poisson batch
    of encoded real rows); the parameters' ``.grad`` then hold that step's privatized
    gradient (Opacus hooks are off during the call; the callback must not modify the
    module). The discriminator and
    its gradients fall under the same (ε, δ) guarantee (DP-SGD's composition covers every
    iterate) but are never saved: the caller must discard them.
    ``reserved_entries``: mechanisms that will run on the same rows AFTER training (the DP
    release gate); σ is calibrated with them in the history, and the reported ε includes them.
    ``randomness``: the SECRET streams of every DP mechanism here (noise of the releases and
    of DP-SGD, Poisson masks); default: fresh OS entropy (:class:`PrivateRandomness`). Only
    tests pass the reproducible test-only kind. ``config.seed`` fixes public streams only
    (initialisation, latent noise, random features, the collapse probe).
    ``_unsafe_noise_scale``: TEST-ONLY knob that BREAKS the guarantee — the noise Opacus
    adds is multiplied by it while the accountant still records the calibrated σ (so the
    reported ε is a lie). Used only by the empirical audit's power checks and tests (1 =
    the correct mechanism, 0 = no noise); refused unless ``audit_callback`` is set.
    Never part of :class:`TrainingConfig`, config files or the CLI.

    Reads: every row of ``train`` (the private training table, already validated).
    Guarantee: (ε, δ)-DP for the returned model and anything sampled from it, with
    ε = ``result.privacy.epsilon`` ≤ ``config.target_epsilon`` at δ = ``config.target_delta``,
    add/remove-one-row neighbours; see the module docstring for the argument.
    Assumptions that would void it: rows are not one-per-person; the metadata (encoder)
    was derived from the private rows; the private randomness is disclosed or reproducible;
    n is secret.

    Raises:
        PrivacyParameterError: δ ≥ 1/n, or the budget cannot be met.
    """
    started = time.perf_counter()
    seeds = SeedTree(config.seed)  # public streams only
    secret = randomness if randomness is not None else PrivateRandomness()
    col = current_collective()  # a distributed run: ``train`` is this rank's shard of the rows
    exact_rows = _total_row_count(train, col)
    if _unsafe_noise_scale != 1.0 and audit_callback is None:
        raise InternalError("_unsafe_noise_scale breaks DP: only the empirical audit may set it")
    plan = _plan_run(exact_rows, config, threshold_delta)
    row_source = encoded_rows(train, encoder)  # encoded up front, or per batch for very wide tables
    releases = _measure_releases(row_source, encoder, config, condition_column, plan, seeds, secret, prior_entries)
    sgd = _calibrate_dp_sgd(config, plan, releases.entries, reserved_entries)
    nets = _build_networks(encoder, row_source.width, releases.cond_span, config, seeds)
    private = _make_discriminator_private(nets, row_source, plan, sgd, config, col, secret, _unsafe_noise_scale)
    streams = _fake_row_streams(releases.cond_probs, plan.expected_batch, seeds, col)
    history = _train_adversarially(nets, private, releases, streams, plan=plan, encoder=encoder, config=config,
                                   noise_multiplier=sgd.noise_multiplier, reserved_entries=reserved_entries,
                                   progress=progress, audit_callback=audit_callback)
    privacy = _privacy_spent(releases.entries, private.engine, reserved_entries, plan, config, threshold_delta)
    nets.generator.eval()
    return TrainedModel(
        generator=nets.generator, encoder=encoder, config=config, privacy=privacy,
        condition_column=condition_column if releases.cond_span else None,
        condition_probs=releases.cond_probs, history=history,
        train_seconds=time.perf_counter() - started, reproducible_private_randomness=secret.reproducible,
    )


# --- step 0: the run's public sizes -----------------------------------------------------------


@dataclass(frozen=True)
class _RunPlan:
    """The sizes a run is planned with; every one derives from the PUBLIC row count ``n_rows``.

    Attributes:
        n_rows: ``config.public_rows`` (a release's DP count) or, when that is 0, the exact count.
        accountant_delta: the δ left to the accountant (target δ − the thresholding δ).
        sample_rate: the Poisson rate q = ``sample_rate_for(n_rows, batch)``, calibrated and charged.
        expected_batch: ``max(1, int(n_rows · q))`` rows: the fake rows per step and Opacus' divisor.
        n_steps: discriminator (DP-SGD) steps; training always runs all of them.
    """

    n_rows: int
    accountant_delta: float
    sample_rate: float
    expected_batch: int
    n_steps: int


def _total_row_count(train: pd.DataFrame, col: Collective) -> int:
    """The exact number of training rows, summed over every rank of a distributed run (private)."""
    return len(train) if col.world_size == 1 else int(col.sum(torch.tensor([float(len(train))])).item())


def _plan_run(exact_rows: int, config: TrainingConfig, threshold_delta: float) -> _RunPlan:
    """Refuse unusable sizes and δ, then fix the run's public sizes.

    The exact count ``exact_rows`` is only checked (≥ 2) and used as n when ``config.public_rows`` is 0.

    Raises:
        PrivacyParameterError: fewer than 2 rows, δ ≥ 1/n, or ``threshold_delta`` not in [0, δ).
    """
    if exact_rows < 2:
        raise PrivacyParameterError("training needs at least 2 rows")
    # every size-scaled choice below uses the PUBLIC count (a release's DP count), never the exact one
    n_rows = config.public_rows or exact_rows
    if config.target_delta >= 1.0 / n_rows:
        raise PrivacyParameterError(
            f"delta={config.target_delta:g} must be below 1/n = {1.0 / n_rows:.3g} for n = {n_rows} "
            f"({'the DP count of the training rows' if config.public_rows else 'training rows'})"
        )
    if not 0 <= threshold_delta < config.target_delta:
        raise PrivacyParameterError(f"threshold δ {threshold_delta:g} must be below the target δ "
                                    f"{config.target_delta:g}")
    q = sample_rate_for(n_rows, min(config.batch_size, n_rows))
    return _RunPlan(n_rows=n_rows, accountant_delta=config.target_delta - threshold_delta, sample_rate=q,
                    expected_batch=max(1, int(n_rows * q)), n_steps=config.n_steps)


# --- step 1: the DP releases before training ---------------------------------------------------


@dataclass(frozen=True)
class _Releases:
    """The DP releases made before training and the generator-loss terms built on them.

    Attributes:
        entries: ``prior_entries`` followed by these releases' accountant entries, in order.
        cond_span: the condition column's one-hot span (None: unconditional).
        cond_probs: the condition's sampling frequencies (DP, or public uniform), summing to 1.
        marginals, embedding, pairs, related, correlation: the matching terms (None when off).
    """

    entries: list[MechanismEntry]
    cond_span: Span | None
    cond_probs: np.ndarray | None
    marginals: MarginalMatcher | None
    embedding: ClassMeanEmbedding | None
    pairs: PairMatcher | None
    related: NumericPairMatcher | None
    correlation: CorrelationMatcher | None

    def add_matching_losses(self, g_loss: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor | None,
                            config: TrainingConfig, n_rows: int) -> torch.Tensor:
        """``g_loss`` plus every release's weighted matching term on ``fake`` (post-processing)."""
        if self.marginals is not None and cond is not None:
            g_loss = g_loss + config.marginal_weight * self.marginals.loss(fake, cond)
        if self.pairs is not None:
            g_loss = g_loss + config.pair_weight * self.pairs.loss(fake)
        if self.related is not None:
            g_loss = g_loss + config.related_weight * self.related.loss(fake)
        if self.correlation is not None:
            g_loss = g_loss + config.correlation_weight * self.correlation.loss(fake)
        if self.embedding is not None and cond is not None and self.cond_probs is not None:
            g_loss = g_loss + config.embedding_weight * self.embedding.loss(fake, cond, self.cond_probs * n_rows)
        return g_loss


@dataclass(frozen=True)
class _ConditionRelease:
    """How the condition's sampling frequencies were obtained: ``entry`` is None when it cost nothing."""

    probs: np.ndarray | None
    entry: MechanismEntry | None = None
    measured: MarginalMeasurements | None = None
    matcher: MarginalMatcher | None = None


def _measure_releases(row_source: RowSource, encoder: TableEncoder, config: TrainingConfig,
                      condition_column: str | None, plan: _RunPlan, seeds: SeedTree, secret: PrivateRandomness,
                      prior_entries: tuple[MechanismEntry, ...]) -> _Releases:
    """Step 1: every DP release asked for before training, and the matching terms built on them.

    Reads private rows, each time through one Gaussian mechanism at the ε share the config
    gives it and δ = ``plan.accountant_delta``; charged in this order: the class mean
    embeddings, the conditional marginals or the condition histogram, the discrete pairs, the
    related numerical pairs, the correlation matrix. Noise comes from ``secret`` only.
    """
    cond_span = _condition_span(encoder, condition_column)
    entries: list[MechanismEntry] = list(prior_entries)
    embedding: ClassMeanEmbedding | None = None
    if cond_span is not None and config.embedding_epsilon_share > 0:
        embedding = _measure_class_embedding(row_source, encoder, cond_span, condition_column, config, plan,
                                             seeds, secret)
        entries.extend(embedding.entries)
    condition = _measure_condition(row_source, encoder, cond_span, condition_column, embedding, config, plan,
                                   seeds, secret)
    if condition.entry is not None:
        entries.append(condition.entry)
    pairs = _measure_discrete_pairs(row_source, encoder, condition_column, config, plan, secret)
    related = _measure_related_pairs(row_source, encoder, condition_column, config, plan, secret)
    correlation = _measure_correlation(row_source, encoder, condition_column, condition.measured, config, plan,
                                       secret)
    entries.extend(release[0] for release in (pairs, related, correlation) if release is not None)
    return _Releases(entries=entries, cond_span=cond_span, cond_probs=condition.probs, marginals=condition.matcher,
                     embedding=embedding, pairs=pairs[1] if pairs else None, related=related[1] if related else None,
                     correlation=correlation[1] if correlation else None)


def _noise_for_share(share: float, config: TrainingConfig, plan: _RunPlan) -> MechanismEntry:
    """The σ (as a one-step, q = 1 entry) of a Gaussian release taking ``share`` of the budget:
    alone spending ``share`` · ε (``share_unit: epsilon``), or σ₀/√share (``share_unit: budget``,
    :func:`~synthrelease.privacy.accounting.budget_share_noise`)."""
    if config.share_unit == "budget":
        return budget_share_noise(share, epsilon=config.target_epsilon, delta=plan.accountant_delta,
                                  accountant=config.accountant)
    return histogram_noise_for(epsilon=share * config.target_epsilon, delta=plan.accountant_delta,
                               accountant=config.accountant)


def _measure_class_embedding(row_source: RowSource, encoder: TableEncoder, cond_span: Span,
                             condition_column: str | None, config: TrainingConfig, plan: _RunPlan,
                             seeds: SeedTree, secret: PrivateRandomness) -> ClassMeanEmbedding:
    """The DP class-conditional mean embeddings (DP-MERF); reads private rows.

    Gaussian, sensitivity 1 per release (its ``entries``); public random features from ``seeds``.
    """
    sigma_e = _noise_for_share(config.embedding_epsilon_share, config, plan)
    embedding = ClassMeanEmbedding.measure(
        lambda: row_source.chunks(ROW_CHUNK), slice(cond_span.start, cond_span.stop), width=row_source.width,
        n_rows=plan.n_rows, n_features=config.embedding_features, noise_multiplier=sigma_e.noise_multiplier,
        feature_generator=seeds.torch("embedding-features"), noise_generator=secret.torch("embedding-noise"),
        kernel=config.embedding_kernel,
        layout=numeric_layout(encoder, condition_column or "") if config.embedding_kernel == "values" else None,
        zero_weight=config.embedding_zero_weight)
    embedding.shrinkage = config.embedding_shrinkage
    return embedding


def _measure_condition(row_source: RowSource, encoder: TableEncoder, cond_span: Span | None,
                       condition_column: str | None, embedding: ClassMeanEmbedding | None, config: TrainingConfig,
                       plan: _RunPlan, seeds: SeedTree, secret: PrivateRandomness) -> _ConditionRelease:
    """The condition's sampling frequencies; reads private rows (DP marginals or histogram).

    First that applies: the DP (condition × column) marginals, which also give the marginal
    matcher; the class counts of a ``values`` embedding (post-processing, free); the DP
    condition histogram (L2 sensitivity 1); uniform (public, free). None when unconditional.
    """
    if cond_span is not None and config.marginal_epsilon_share > 0:
        sigma_m = _noise_for_share(config.marginal_epsilon_share, config, plan)
        measured = measure_marginals(row_source, encoder, condition_column or "",
                                     noise_multiplier=sigma_m.noise_multiplier,
                                     generator=secret.torch("marginal-noise"), n_bins=config.marginal_bins)
        return _ConditionRelease(
            entry=measured.entry, probs=measured.condition_probs(), measured=measured,
            matcher=MarginalMatcher(measured, columns_per_step=config.marginal_columns_per_step,
                                    generator=seeds.torch("marginal-columns")))
    if embedding is not None and (counts := embedding.class_counts()) is not None:
        # kernel 'values': class counts from the embedding's own release (post-processing)
        noisy = np.clip(counts, 0.0, None) + 1.0
        return _ConditionRelease(probs=noisy / noisy.sum())
    if cond_span is not None and config.condition_epsilon_share > 0:
        hist = _noise_for_share(config.condition_epsilon_share, config, plan)
        probs = _dp_condition_probs(row_source, cond_span, hist, secret.torch("condition-noise"))
        return _ConditionRelease(entry=hist, probs=probs)
    if cond_span is not None:
        return _ConditionRelease(probs=np.full(cond_span.width, 1.0 / cond_span.width))  # public: uniform
    return _ConditionRelease(probs=None)


def _measure_discrete_pairs(row_source: RowSource, encoder: TableEncoder, condition_column: str | None,
                            config: TrainingConfig, plan: _RunPlan,
                            secret: PrivateRandomness) -> tuple[MechanismEntry, PairMatcher] | None:
    """DP joint histograms of the small discrete (non-condition) column pairs; reads private rows.

    One Gaussian release over every pair chosen from the public metadata; None when off or no pair fits.
    """
    pairs = discrete_pairs(encoder, condition_column, config.pair_max_cells) if config.pair_epsilon_share > 0 else []
    if not pairs:
        return None
    sigma_p = _noise_for_share(config.pair_epsilon_share, config, plan)
    measured_pairs = measure_pairs(lambda: row_source.chunks(ROW_CHUNK), pairs,
                                   noise_multiplier=sigma_p.noise_multiplier, generator=secret.torch("pair-noise"))
    return measured_pairs.entry, PairMatcher(measured_pairs)


def _measure_related_pairs(row_source: RowSource, encoder: TableEncoder, condition_column: str | None,
                           config: TrainingConfig, plan: _RunPlan,
                           secret: PrivateRandomness) -> tuple[MechanismEntry, NumericPairMatcher] | None:
    """DP joint histograms of the publicly declared related numerical pairs (one release); reads private rows.

    None when off or no pair is declared.
    """
    related = encoder.metadata.related_pairs if config.related_epsilon_share > 0 else []
    if not related:
        return None
    sub, idx = pair_layout(numeric_layout(encoder, condition_column or ""), related)
    sigma_r = _noise_for_share(config.related_epsilon_share, config, plan)
    measured_related = measure_numeric_pairs(lambda: row_source.chunks(ROW_CHUNK), sub, idx,
                                             n_bins=max(3, config.marginal_bins // 2),
                                             noise_multiplier=sigma_r.noise_multiplier,
                                             generator=secret.torch("related-pair-noise"))
    return measured_related.entry, NumericPairMatcher(measured_related, n_rows=plan.n_rows)


def _measure_correlation(row_source: RowSource, encoder: TableEncoder, condition_column: str | None,
                         marginals: MarginalMeasurements | None, config: TrainingConfig, plan: _RunPlan,
                         secret: PrivateRandomness) -> tuple[MechanismEntry, CorrelationMatcher] | None:
    """Every numerical pair's correlation in one DP release; reads private rows.

    Centred at the medians of the DP ``marginals`` (if measured); None when off or fewer than 2 numerical columns.
    """
    num_layout = numeric_layout(encoder, condition_column or "")
    if not (config.correlation_epsilon_share > 0 and len(num_layout.columns) >= 2):
        return None
    sigma_c = _noise_for_share(config.correlation_epsilon_share, config, plan)
    measured_corr = measure_correlation(lambda: row_source.chunks(ROW_CHUNK), num_layout,
                                        center=centres(num_layout, marginals),
                                        noise_multiplier=sigma_c.noise_multiplier,
                                        generator=secret.torch("correlation-noise"))
    return measured_corr.entry, CorrelationMatcher(measured_corr, n_rows=plan.n_rows)


# --- step 2: σ for DP-SGD ----------------------------------------------------------------------


def _calibrate_dp_sgd(config: TrainingConfig, plan: _RunPlan, releases: list[MechanismEntry],
                      reserved_entries: tuple[MechanismEntry, ...]) -> MechanismEntry:
    """σ for ``plan.n_steps`` discriminator steps at rate q so that the one accountant over
    ``releases``, the DP-SGD steps and ``reserved_entries`` (after training: the gate) reaches
    ``config.target_epsilon`` at ``plan.accountant_delta``; public inputs only."""
    return calibrate_noise_multiplier(
        target_epsilon=config.target_epsilon, target_delta=plan.accountant_delta,
        sample_rate=plan.sample_rate, steps=plan.n_steps, accountant=config.accountant,
        prior=[*releases, *reserved_entries],
    )


# --- step 3: the networks ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Networks:
    """The generator, the (not yet private) discriminator and their Adam optimizers."""

    generator: Generator
    discriminator: nn.Module
    generator_optimizer: torch.optim.Optimizer
    discriminator_optimizer: torch.optim.Optimizer


def _build_networks(encoder: TableEncoder, width: int, cond_span: Span | None, config: TrainingConfig,
                    seeds: SeedTree) -> _Networks:
    """Both networks, initialised from PUBLIC seeded streams only, and their optimizers.

    Raises:
        PrivacyParameterError: a conv1d discriminator without positional columns.
        opacus.validators.errors.UnsupportedModuleError: a layer Opacus cannot clip per row.
    """
    generator = Generator(config.latent_dim, cond_span.width if cond_span else 0,
                          config.generator_hidden, encoder.spans, cond_span)
    discriminator = _discriminator(encoder, width, config, seeds)
    _seed_init(generator, seeds.torch("generator-init"))
    _seed_init(discriminator, seeds.torch("discriminator-init"))
    ModuleValidator.validate(discriminator, strict=True)
    return _Networks(
        generator=generator, discriminator=discriminator,
        generator_optimizer=torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.9)),
        discriminator_optimizer=torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr,
                                                 betas=(0.5, 0.9)),
    )


# --- step 4: the discriminator under Opacus ----------------------------------------------------


@dataclass(frozen=True)
class _PrivateDiscriminator:
    """The discriminator under Opacus.

    Attributes:
        network: the discriminator the audit callback sees (DPDDP-wrapped on a distributed run).
        module: Opacus' per-row-gradient wrapper; its hooks are off for post-processing passes.
        optimizer: Opacus' DP optimizer: clips, adds noise σ·``max_grad_norm``, steps.
        engine: the privacy engine whose accountant records one entry step per optimizer step.
        batches: the endless Poisson batches of encoded PRIVATE rows, at rate q.
        clipper: book-keeping clipping (one backward pass) when every trainable layer is an
            ``nn.Linear``, ghost clipping is asked for and the run is on one process; else None.
    """

    network: nn.Module
    module: GradSampleModule
    optimizer: DPOptimizer
    engine: PrivacyEngine
    batches: Iterator[torch.Tensor]
    clipper: LinearChainClipper | None = None


def _make_discriminator_private(nets: _Networks, row_source: RowSource, plan: _RunPlan, sgd: MechanismEntry,
                                config: TrainingConfig, col: Collective, secret: PrivateRandomness,
                                unsafe_noise_scale: float) -> _PrivateDiscriminator:
    """Hand the discriminator, its optimizer and the private rows to Opacus' ``make_private``.

    Poisson sampling at ``plan.sample_rate`` and Gaussian noise of std ``sgd.noise_multiplier`` ×
    ``max_grad_norm``, both from ``secret``; the optimizer divides by the PUBLIC expected batch.
    ``unsafe_noise_scale`` ≠ 1 (audits only) breaks the guarantee.

    Raises:
        InternalError: Opacus' sample rate is not the calibrated one.
    """
    # Opacus' Poisson-sampling loader, built here so that it can take our secret generator
    # (make_private's own wrapper only takes torchcsprng's); make_private therefore gets
    # poisson_sampling=False, which leaves this DPDataLoader unchanged.
    # Distributed: each rank Poisson-samples ITS shard at the same rate q with its own secret
    # generator; the shards partition the rows, so the union is a Poisson sample of the whole
    # table at rate q, exactly what the accountant charges.
    loader = DPDataLoader(row_source, sample_rate=plan.sample_rate, generator=secret.torch("poisson-sampling"),
                          collate_fn=_identity_collate)
    discriminator = nets.discriminator
    if col.world_size > 1:  # Opacus' DPDDP: parameters broadcast from rank 0; the optimizer sums
        discriminator = DPDDP(discriminator)  # clipped gradients over ranks, rank 0 adds the noise once
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    made = engine.make_private(
        module=discriminator, optimizer=nets.discriminator_optimizer, data_loader=loader,
        criterion=nn.BCEWithLogitsLoss(), noise_multiplier=sgd.noise_multiplier,
        max_grad_norm=config.max_grad_norm, poisson_sampling=False,
        grad_sample_mode=config.grad_sample_mode, noise_generator=secret.torch("dp-noise"),
    )
    d_module, d_opt, loader = made[0], made[1], made[-1]
    # Opacus divides the noisy gradient sum by len(dataset)·q, the EXACT row count: replace it by
    # the public expected batch (from the DP count), so the update is post-processing of the
    # noisy sum. Distributed: Opacus takes the loader's dataset as the WHOLE table, here it is
    # this rank's shard, so set the per-rank share of the global expected batch that makes
    # Σ_ranks(clipped sums + noise) / world / share = (Σ clipped + noise) / (n·q)
    d_opt.expected_batch_size = plan.expected_batch / col.world_size
    # Opacus' floating-point-hardened noise (secure mode's sampler) with our secret generator;
    # PrivacyEngine(secure_mode=True) would also demand torchcsprng, which has no build here.
    d_opt.secure_mode = True
    if unsafe_noise_scale != 1.0:
        _break_noise(d_opt, unsafe_noise_scale)
    if abs(1.0 / len(loader) - plan.sample_rate) > 1e-12:
        raise InternalError("Opacus' sample rate differs from the calibrated one")
    book_keeping = (config.grad_sample_mode == "ghost" and not config.clip_fake_rows and col.world_size == 1
                    and LinearChainClipper.supports(nets.discriminator))
    return _PrivateDiscriminator(network=discriminator, module=d_module, optimizer=d_opt, engine=engine,
                                 batches=_batches(loader, row_source.width),
                                 clipper=LinearChainClipper(nets.discriminator, config.max_grad_norm)
                                 if book_keeping else None)


# --- step 5: adversarial training --------------------------------------------------------------


@dataclass(frozen=True)
class _FakeRowStreams:
    """The PUBLIC streams of fake rows and of the collapse probe (no private data, no privacy cost).

    The generator step draws from ``generator_latent`` / ``generator_conditions`` on every rank
    alike, so every rank's generator stays identical; on a distributed run each rank draws its
    share of the discriminator's fake rows (``discriminator_count``) from its own stream.
    """

    generator_latent: torch.Generator
    generator_conditions: _ConditionSampler
    discriminator_latent: torch.Generator
    discriminator_conditions: _ConditionSampler
    discriminator_count: int
    probe: torch.Generator


def _fake_row_streams(cond_probs: np.ndarray | None, expected_batch: int, seeds: SeedTree,
                      col: Collective) -> _FakeRowStreams:
    """The fake-row streams from the public seed tree; ``cond_probs`` are DP (or public) frequencies."""
    torch_gen = seeds.torch("generator-input")
    cond_sampler = _ConditionSampler(cond_probs, torch_gen)
    # the discriminator's fake rows: in a distributed run each rank adds its share from its own
    # PUBLIC stream, while the generator step draws the same rows on every rank (torch_gen),
    # so every rank's generator stays identical (post-processing of the shared discriminator)
    d_fake_gen = torch_gen if col.world_size == 1 else seeds.torch(f"discriminator-fakes-rank{col.rank}")
    return _FakeRowStreams(
        generator_latent=torch_gen, generator_conditions=cond_sampler, discriminator_latent=d_fake_gen,
        discriminator_conditions=cond_sampler if col.world_size == 1 else _ConditionSampler(cond_probs, d_fake_gen),
        discriminator_count=expected_batch if col.world_size == 1 else max(1, round(expected_batch / col.world_size)),
        probe=seeds.torch("collapse-probe"),
    )


def _train_adversarially(nets: _Networks, private: _PrivateDiscriminator, releases: _Releases,
                         streams: _FakeRowStreams, *, plan: _RunPlan, encoder: TableEncoder, config: TrainingConfig,
                         noise_multiplier: float, reserved_entries: tuple[MechanismEntry, ...],
                         progress: ProgressCallback, audit_callback: _AuditCallback | None) -> list[dict[str, float]]:
    """Step 5: ``plan.n_steps`` DP-SGD discriminator steps, a generator step every ``n_disc_steps``.

    Reads private rows only through the discriminator's DP-SGD steps (one accounted step
    each); the generator is post-processing. Returns the logged points (≈ 50, the last step
    included), each also sent to ``progress``; ``audit_callback``: see :func:`train_dp_gan`.
    """
    progress(ProgressEvent("train", 0, plan.n_steps, {"noise_multiplier": noise_multiplier}))
    nets.generator.train()
    private.module.train()
    if audit_callback is not None:
        with _hooks_off(private.module):
            audit_callback(0, private.network, None, None)
    history: list[dict[str, float]] = []
    log_every = max(1, plan.n_steps // 50)
    g_loss_val = float("nan")
    with warnings.catch_warnings():
        # Opacus' ghost clipping registers full backward hooks on a module whose input
        # needs no gradient; torch warns on every step, harmlessly.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for step in range(1, plan.n_steps + 1):
            real = next(private.batches)
            fake = _discriminator_step(nets.generator, private, real, streams, config)
            if audit_callback is not None:
                with _hooks_off(private.module):
                    audit_callback(step, private.network, fake, real)
            if step % config.n_disc_steps == 0:
                g_loss_val, fake = _generator_step(nets, private.module, releases, streams, plan, config)
            if step % log_every == 0 or step == plan.n_steps:
                point = _progress_point(step, nets.generator, private, fake, g_loss_val, releases, streams,
                                        encoder=encoder, config=config, plan=plan, reserved_entries=reserved_entries)
                history.append(point)
                progress(ProgressEvent("train", step, plan.n_steps, dict(point)))
    return history


@contextmanager
def _hooks_off(d_module: GradSampleModule) -> Iterator[None]:
    """Opacus' per-row hooks off for a post-processing pass (left off if the pass raises: the run is over)."""
    d_module.disable_hooks()
    yield
    d_module.enable_hooks()


def _fake_rows(generator: Generator, conditions: _ConditionSampler, latent: torch.Generator, n: int,
               config: TrainingConfig) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``n`` soft (Gumbel-softmax) fake rows and their one-hot conditions, from PUBLIC stream ``latent``."""
    cond = conditions(n)
    fake = generator.activate(generator.raw(_noise(n, config, latent), cond), cond,
                              tau=config.gumbel_tau, generator=latent, hard=False)
    return cond, fake


def _discriminator_step(generator: Generator, private: _PrivateDiscriminator, real: torch.Tensor,
                        streams: _FakeRowStreams, config: TrainingConfig) -> torch.Tensor:
    """One accounted DP-SGD step of the discriminator; reads the private Poisson batch ``real``.

    The loss covers ``real`` and a FIXED, public number of data-independent fake rows; each
    real row's gradient is clipped to ``max_grad_norm`` by Opacus, which then adds the noise
    and records the step. Returns this step's fake rows.
    """
    d_module, d_opt = private.module, private.optimizer
    d_fakes = streams.discriminator_count
    with torch.no_grad():
        _, fake = _fake_rows(generator, streams.discriminator_conditions, streams.discriminator_latent, d_fakes,
                             config)
    d_opt.zero_grad(set_to_none=True)
    if private.clipper is not None:
        _book_keeping_backward(d_module, private.clipper, real, fake, config)
    elif config.clip_fake_rows or config.grad_sample_mode != "ghost":
        # one forward over real + fake rows, every row clipped
        rows = torch.cat([real, fake], dim=0)
        labels = torch.cat([torch.ones(real.shape[0]), torch.zeros(d_fakes)])
        per_row = F.binary_cross_entropy_with_logits(d_module(rows), labels, reduction="none")
        if config.grad_sample_mode == "ghost":
            clipped_backward(d_module, per_row)
        else:
            per_row.mean().backward()
    else:
        # real rows: per-row clipping by Opacus' ghost clipping (p.grad = clipped sum);
        # fake rows: data-independent, their plain summed gradient is added before
        # Opacus adds the noise (sensitivity unchanged: C per real row).
        # Both in one backward pass (clipped_backward: Opacus' norms and coefficients, no wasted
        # weight gradients in the norm pass).
        with _hooks_off(d_module):
            fake_loss = F.binary_cross_entropy_with_logits(d_module(fake), torch.zeros(d_fakes), reduction="none")
            fake_loss = fake_loss.sum() * config.max_grad_norm
        if real.shape[0] > 0:  # an empty Poisson batch: no real-row forward (nothing to clip)
            per_row = F.binary_cross_entropy_with_logits(d_module(real), torch.ones(real.shape[0]),
                                                         reduction="none")
            clipped_backward(d_module, per_row, fake_loss)
        else:
            with _hooks_off(d_module):
                fake_loss.backward()
    d_opt.step()
    return fake


def _book_keeping_backward(d_module: GradSampleModule, clipper: LinearChainClipper, real: torch.Tensor,
                           fake: torch.Tensor, config: TrainingConfig) -> None:
    """The discriminator's clipped gradient in one forward and one backward pass over real + fake rows.

    Real rows: each gradient clipped to ``max_grad_norm`` with Opacus' coefficients; fake rows
    (data-independent): their plain gradient, weighted ``max_grad_norm`` — the same sum as the
    ghost-clipping branch (:class:`~synthrelease.gan.clipping.LinearChainClipper`).
    """
    labels = torch.cat([torch.ones(real.shape[0]), torch.zeros(fake.shape[0])])
    with _hooks_off(d_module):
        with clipper.recording():
            logits = d_module(torch.cat([real, fake], dim=0))
        per_row = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        clipper.backward(per_row, real.shape[0], public_weight=config.max_grad_norm)


def _generator_step(nets: _Networks, d_module: GradSampleModule, releases: _Releases, streams: _FakeRowStreams,
                    plan: _RunPlan, config: TrainingConfig) -> tuple[float, torch.Tensor]:
    """One generator step through the privatized discriminator plus the releases' matching terms.

    Post-processing (hooks off, no private row read). Returns the loss and this step's fake rows.
    """
    generator = nets.generator
    with _hooks_off(d_module):
        cond, fake = _fake_rows(generator, streams.generator_conditions, streams.generator_latent,
                                plan.expected_batch, config)
        g_loss = F.binary_cross_entropy_with_logits(d_module(fake), torch.ones(plan.expected_batch))
        g_loss = releases.add_matching_losses(g_loss, fake, cond, config, plan.n_rows)
        nets.generator_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        nets.generator_optimizer.step()
    return float(g_loss.detach()), fake


def _progress_point(step: int, generator: Generator, private: _PrivateDiscriminator, fake: torch.Tensor,
                    g_loss: float, releases: _Releases, streams: _FakeRowStreams, *, encoder: TableEncoder,
                    config: TrainingConfig, plan: _RunPlan,
                    reserved_entries: tuple[MechanismEntry, ...]) -> dict[str, float]:
    """The logged point of ``step``: the fake rows' discriminator loss, the generator loss, ε so far
    (reserved entries included) and the collapse probe. Post-processing only: no privacy cost."""
    d_loss_val = _fake_row_loss(private.module, fake, fake.shape[0])  # logged steps only
    eps_now = epsilon_for([*releases.entries, *_engine_entries(private.engine), *reserved_entries],
                          delta=plan.accountant_delta, accountant=config.accountant)
    return {"step": float(step), "d_loss_fake": d_loss_val, "g_loss": g_loss, "epsilon": eps_now,
            **_collapse_probe(generator, encoder, releases.cond_span, releases.cond_probs, config, streams.probe)}


# --- step 6: the privacy spent -----------------------------------------------------------------


def _privacy_spent(releases: list[MechanismEntry], engine: PrivacyEngine,
                   reserved_entries: tuple[MechanismEntry, ...], plan: _RunPlan, config: TrainingConfig,
                   threshold_delta: float) -> PrivacySpent:
    """The run's (ε, δ) from one accountant over the releases, Opacus' DP-SGD history and the reserved entries.

    Raises:
        InternalError: Opacus recorded other than ``plan.n_steps`` steps, or ε exceeds the target.
    """
    entries = (*releases, *_engine_entries(engine), *reserved_entries)
    steps_charged = sum(e.steps for e in entries if e.label.startswith("discriminator"))
    if steps_charged != plan.n_steps:
        raise InternalError(f"accountant recorded {steps_charged} steps, expected {plan.n_steps}")
    spent = epsilon_for(entries, delta=plan.accountant_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    return PrivacySpent(spent, config.target_delta, config.accountant, tuple(entries),
                        threshold_delta=threshold_delta)


PROBE_ROWS = 1000


def _discriminator(encoder: TableEncoder, width: int, config: TrainingConfig, seeds: SeedTree) -> nn.Module:
    """The critic the config asks for: an MLP, or a 1-D convolution over the positional columns."""
    if config.discriminator_kind == "mlp":
        return Discriminator(width, config.discriminator_hidden, projection=config.discriminator_projection,
                             generator=seeds.torch("discriminator-projection"))
    spans = [s for s in encoder.spans if s.column.startswith(POSITION_PREFIX) and s.role == "category"]
    if not spans or any(b.start != a.stop or b.width != a.width for a, b in itertools.pairwise(spans)):
        raise PrivacyParameterError("discriminator_kind conv1d needs contiguous positional columns "
                                    f"{POSITION_PREFIX}… of one width (a sequence table)")
    return SequenceDiscriminator(width, start=spans[0].start, length=len(spans), tokens=spans[0].width,
                                 hidden=config.discriminator_hidden)


def _collapse_probe(generator: Generator, encoder: TableEncoder, cond_span: Span | None,
                    cond_probs: np.ndarray | None, config: TrainingConfig,
                    probe_gen: torch.Generator) -> dict[str, float]:
    """Mode-collapse signals on 1,000 freshly sampled rows (post-processing: no privacy cost).

    ``coverage``: share of the declared categories of discrete columns (condition excluded)
    that appear at least once; ``collapsed_columns``: discrete columns where one category
    takes more than 95 % of the rows; ``min_class_share``: smallest share of a condition
    class among sampled rows (rare classes must not vanish).
    """
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        cond = None
        if cond_probs is not None:
            idx = torch.multinomial(torch.as_tensor(cond_probs), PROBE_ROWS, replacement=True, generator=probe_gen)
            cond = F.one_hot(idx, len(cond_probs)).float()
        out = generator.activate(generator.raw(torch.randn(PROBE_ROWS, config.latent_dim, generator=probe_gen), cond),
                                 cond, tau=1.0, generator=probe_gen, hard=True)
    generator.train(was_training)
    seen = declared = collapsed = 0
    for s in encoder.spans:
        if s.role != "category" or s == cond_span:
            continue
        counts = out[:, s.start:s.stop].sum(dim=0)
        seen += int((counts > 0).sum())
        declared += s.width
        collapsed += int(counts.max() > 0.95 * PROBE_ROWS) if s.width > 1 else 0
    probe = {"coverage": seen / declared if declared else 1.0, "collapsed_columns": float(collapsed)}
    if cond is not None:
        probe["min_class_share"] = float(cond.mean(dim=0).min())
    return probe


def fit_dp_synthesizer(
    train: pd.DataFrame,
    metadata: Metadata,
    config: TrainingConfig,
    *,
    condition_column: str | None,
    progress: ProgressCallback = ignore_progress,
    reserved_entries: tuple[MechanismEntry, ...] = (),
    randomness: PrivateRandomness | None = None,
) -> TrainedModel:
    """Discover undeclared categories and bounds with DP (if any), encode from the metadata, train.

    ``reserved_entries`` and ``randomness``: as :func:`train_dp_gan`.

    Guarantee: as :func:`train_dp_gan`, with the DP-categories and DP-bounds histograms (if
    run) composed in the same accountant and the category threshold's δ counted in the
    total δ, so the reported (ε, δ) covers preprocessing and training.
    """
    secret = randomness if randomness is not None else PrivateRandomness()
    pre = dp_preprocess(train, metadata, config, secret)
    return train_dp_gan(pre.rows, TableEncoder(pre.metadata), config, condition_column=condition_column,
                        progress=progress, prior_entries=pre.prior_entries, threshold_delta=pre.threshold_delta,
                        reserved_entries=reserved_entries, randomness=secret)


@dataclass(frozen=True)
class DPPreprocessed:
    """The private rows and metadata after DP category discovery and DP bounds (if asked for).

    ``prior_entries``: the accountant entries of those mechanisms; ``threshold_delta``: the
    δ of category thresholding, spent outside the accountant.
    """

    rows: pd.DataFrame
    metadata: Metadata
    prior_entries: tuple[MechanismEntry, ...]
    threshold_delta: float


def dp_preprocess(train: pd.DataFrame, metadata: Metadata, config: TrainingConfig,
                  randomness: PrivateRandomness | None = None) -> DPPreprocessed:
    """Run the DP preprocessing the metadata asks for (categories, then bounds).

    Its noise comes from ``randomness`` (default: fresh OS entropy), never from a seed.

    Reads the private rows only through the DP mechanisms of :mod:`synthrelease.transforms.
    dp_categories` and :mod:`synthrelease.privacy.dp_bounds`; with neither asked for it
    returns its inputs and spends nothing.
    """
    from synthrelease.privacy.dp_bounds import columns_needing_bounds, estimate_bounds
    from synthrelease.privacy.dp_categories import (
        columns_needing_categories,
        discover_categories,
        map_undiscovered,
    )

    secret = randomness if randomness is not None else PrivateRandomness()
    prior: tuple[MechanismEntry, ...] = ()
    threshold_delta = 0.0
    if columns_needing_categories(metadata):
        if config.categories_epsilon_share <= 0 or config.categories_delta_share <= 0:
            raise PrivacyParameterError("metadata asks for DP categories but categories_epsilon_share or "
                                        "categories_delta_share is 0")
        threshold_delta = config.categories_delta_share * config.target_delta
        sigma = histogram_noise_for(epsilon=config.categories_epsilon_share * config.target_epsilon,
                                    delta=config.target_delta - threshold_delta, accountant=config.accountant)
        found = discover_categories(train, metadata, noise_multiplier=sigma.noise_multiplier,
                                    threshold_delta=threshold_delta, generator=secret.torch("dp-categories"))
        train = map_undiscovered(train, found, metadata)
        metadata = found.metadata
        prior = (*prior, found.entry) if found.entry is not None else prior
    if columns_needing_bounds(metadata):
        if config.bounds_epsilon_share <= 0:
            raise PrivacyParameterError("metadata asks for DP bounds but bounds_epsilon_share is 0")
        sigma = histogram_noise_for(epsilon=config.bounds_epsilon_share * config.target_epsilon,
                                    delta=config.target_delta - threshold_delta, accountant=config.accountant)
        est = estimate_bounds(train, metadata, noise_multiplier=sigma.noise_multiplier,
                              generator=secret.torch("dp-bounds"))
        metadata = est.metadata
        prior = (*prior, est.entry) if est.entry is not None else prior
    return DPPreprocessed(train, metadata, prior, threshold_delta)




def _break_noise(optimizer: Any, scale: float) -> None:
    """TEST-ONLY: scale the noise Opacus adds; its accountant still reads the calibrated σ."""
    calibrated = optimizer.add_noise
    log.warning("DP noise deliberately scaled by %g for an empirical audit: this run is NOT DP", scale)

    def scaled_add_noise() -> None:
        sigma = optimizer.noise_multiplier
        optimizer.noise_multiplier = sigma * scale
        try:
            calibrated()
        finally:
            optimizer.noise_multiplier = sigma

    optimizer.add_noise = scaled_add_noise


def _engine_entries(engine: PrivacyEngine) -> list[MechanismEntry]:
    """Opacus' own record of the DP-SGD steps taken so far."""
    return [MechanismEntry("discriminator DP-SGD", float(s), float(q), int(n))
            for s, q, n in engine.accountant.history]


def _fake_row_loss(d_module: nn.Module, fake: torch.Tensor, n_fake: int) -> float:
    """The discriminator's loss on this step's fake rows, after the DP update.

    Post-processing of DP outputs (the privatized discriminator and the generator), so it
    may be shown and logged; the real rows' loss is not DP and is never reported.
    """
    d_module.disable_hooks()
    with torch.no_grad():
        value = float(F.binary_cross_entropy_with_logits(d_module(fake), torch.zeros(n_fake)))
    d_module.enable_hooks()
    return value


def _noise(n: int, config: TrainingConfig, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, config.latent_dim, generator=generator)


def _seed_init(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise Linear layers from an explicit generator (no global RNG)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)


class _ConditionSampler:
    """Draws one-hot conditions from the DP (or public) category frequencies."""

    def __init__(self, probs: np.ndarray | None, generator: torch.Generator) -> None:
        self.probs = None if probs is None else torch.as_tensor(probs, dtype=torch.float64)
        self.generator = generator

    def __call__(self, n: int) -> torch.Tensor | None:
        if self.probs is None:
            return None
        idx = torch.multinomial(self.probs, n, replacement=True, generator=self.generator)
        return F.one_hot(idx, self.probs.shape[0]).float()
