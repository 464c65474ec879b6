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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from opacus.validators import ModuleValidator
from torch import nn

from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.mean_embedding import ClassMeanEmbedding
from synthrelease.gan.models import POSITION_PREFIX, Discriminator, Generator, SequenceDiscriminator
from synthrelease.gan.rows import RowSource, encoded_rows
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.accounting import (
    MechanismEntry,
    calibrate_noise_multiplier,
    epsilon_for,
    histogram_noise_for,
)
from synthrelease.privacy.collective import current as current_collective
from synthrelease.privacy.collective import noisy_sum
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress
from synthrelease.transforms.dp_correlation import CorrelationMatcher, centres_and_scales, measure_correlation
from synthrelease.transforms.dp_marginals import MarginalMeasurements, measure_marginals, numeric_layout
from synthrelease.transforms.dp_numeric_pairs import NumericPairMatcher, measure_numeric_pairs, pair_layout
from synthrelease.transforms.dp_pairs import PairMatcher, discrete_pairs, measure_pairs
from synthrelease.transforms.encoders import Span, TableEncoder
from synthrelease.transforms.marginal_loss import MarginalMatcher

log = logging.getLogger(__name__)

ROW_CHUNK = 4096
"""Rows per block when a measurement reads every private row."""


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
    exact_rows = len(train) if col.world_size == 1 else int(col.sum(torch.tensor([float(len(train))])).item())
    if _unsafe_noise_scale != 1.0 and audit_callback is None:
        raise InternalError("_unsafe_noise_scale breaks DP: only the empirical audit may set it")
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
    acc_delta = config.target_delta - threshold_delta  # δ left for the accountant
    row_source = encoded_rows(train, encoder)  # encoded up front, or per batch for very wide tables
    width = row_source.width
    q = sample_rate_for(n_rows, min(config.batch_size, n_rows))
    expected_batch = max(1, int(n_rows * q))
    n_disc_total = config.n_steps

    # 1. DP measurements before training: conditional marginals (which also give the
    #    condition's sampling frequencies), the class mean embeddings (kernel "values" also
    #    gives them) or, if all are off, the condition histogram.
    cond_span = _condition_span(encoder, condition_column)
    prior: list[MechanismEntry] = list(prior_entries)
    cond_probs: np.ndarray | None = None
    matcher: MarginalMatcher | None = None
    measured: MarginalMeasurements | None = None
    embedding: ClassMeanEmbedding | None = None
    if cond_span is not None and config.embedding_epsilon_share > 0:
        sigma_e = histogram_noise_for(epsilon=config.embedding_epsilon_share * config.target_epsilon,
                                      delta=acc_delta, accountant=config.accountant)
        embedding = ClassMeanEmbedding.measure(
            lambda: row_source.chunks(ROW_CHUNK), slice(cond_span.start, cond_span.stop), width=width, n_rows=n_rows,
            n_features=config.embedding_features, noise_multiplier=sigma_e.noise_multiplier,
            feature_generator=seeds.torch("embedding-features"), noise_generator=secret.torch("embedding-noise"),
            kernel=config.embedding_kernel,
            layout=numeric_layout(encoder, condition_column or "") if config.embedding_kernel == "values" else None,
            zero_weight=config.embedding_zero_weight)
        embedding.shrinkage = config.embedding_shrinkage
        prior.extend(embedding.entries)

    if cond_span is not None and config.marginal_epsilon_share > 0:
        sigma_m = histogram_noise_for(epsilon=config.marginal_epsilon_share * config.target_epsilon,
                                      delta=acc_delta, accountant=config.accountant)
        measured = measure_marginals(row_source, encoder, condition_column or "",
                                     noise_multiplier=sigma_m.noise_multiplier,
                                     generator=secret.torch("marginal-noise"), n_bins=config.marginal_bins)
        prior.append(measured.entry)
        cond_probs = measured.condition_probs()
        matcher = MarginalMatcher(measured, columns_per_step=config.marginal_columns_per_step,
                                  generator=seeds.torch("marginal-columns"))
    elif embedding is not None and (counts := embedding.class_counts()) is not None:
        # kernel 'values': class counts from the embedding's own release (post-processing)
        noisy = np.clip(counts, 0.0, None) + 1.0
        cond_probs = noisy / noisy.sum()
    elif cond_span is not None and config.condition_epsilon_share > 0:
        hist = histogram_noise_for(
            epsilon=config.condition_epsilon_share * config.target_epsilon,
            delta=acc_delta, accountant=config.accountant,
        )
        prior.append(hist)
        cond_probs = _dp_condition_probs(row_source, cond_span, hist, secret.torch("condition-noise"))
    elif cond_span is not None:
        cond_probs = np.full(cond_span.width, 1.0 / cond_span.width)  # public: uniform

    pair_matcher: PairMatcher | None = None
    pairs = discrete_pairs(encoder, condition_column, config.pair_max_cells) if config.pair_epsilon_share > 0 else []
    if pairs:
        sigma_p = histogram_noise_for(epsilon=config.pair_epsilon_share * config.target_epsilon,
                                      delta=acc_delta, accountant=config.accountant)
        measured_pairs = measure_pairs(lambda: row_source.chunks(ROW_CHUNK), pairs,
                                       noise_multiplier=sigma_p.noise_multiplier,
                                       generator=secret.torch("pair-noise"))
        prior.append(measured_pairs.entry)
        pair_matcher = PairMatcher(measured_pairs)

    related_matcher: NumericPairMatcher | None = None
    related = encoder.metadata.related_pairs if config.related_epsilon_share > 0 else []
    if related:  # publicly declared related numerical columns: DP joint histograms (one release)
        sub, idx = pair_layout(numeric_layout(encoder, condition_column or ""), related)
        sigma_r = histogram_noise_for(epsilon=config.related_epsilon_share * config.target_epsilon,
                                      delta=acc_delta, accountant=config.accountant)
        measured_related = measure_numeric_pairs(lambda: row_source.chunks(ROW_CHUNK), sub, idx,
                                                 n_bins=max(3, config.marginal_bins // 2),
                                                 noise_multiplier=sigma_r.noise_multiplier,
                                                 generator=secret.torch("related-pair-noise"))
        prior.append(measured_related.entry)
        related_matcher = NumericPairMatcher(measured_related, n_rows=n_rows)

    correlation_matcher: CorrelationMatcher | None = None
    num_layout = numeric_layout(encoder, condition_column or "")
    if config.correlation_epsilon_share > 0 and len(num_layout.columns) >= 2:
        # every numerical pair's correlation in one release, centred and scaled by the DP marginals
        sigma_c = histogram_noise_for(epsilon=config.correlation_epsilon_share * config.target_epsilon,
                                      delta=acc_delta, accountant=config.accountant)
        center, scale = centres_and_scales(num_layout, measured)
        measured_corr = measure_correlation(lambda: row_source.chunks(ROW_CHUNK), num_layout, center=center,
                                            scale=scale, noise_multiplier=sigma_c.noise_multiplier,
                                            generator=secret.torch("correlation-noise"))
        prior.append(measured_corr.entry)
        correlation_matcher = CorrelationMatcher(measured_corr, n_rows=n_rows)

    # 2. σ for the planned number of discriminator steps, same accountant, with the
    #    mechanisms reserved for after training (the DP release gate) in the history.
    sgd = calibrate_noise_multiplier(
        target_epsilon=config.target_epsilon, target_delta=acc_delta,
        sample_rate=q, steps=n_disc_total, accountant=config.accountant, prior=[*prior, *reserved_entries],
    )

    torch_gen = seeds.torch("generator-input")
    generator = Generator(config.latent_dim, cond_span.width if cond_span else 0,
                          config.generator_hidden, encoder.spans, cond_span)
    discriminator = _discriminator(encoder, width, config, seeds)
    _seed_init(generator, seeds.torch("generator-init"))
    _seed_init(discriminator, seeds.torch("discriminator-init"))
    ModuleValidator.validate(discriminator, strict=True)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.9))

    # Opacus' Poisson-sampling loader, built here so that it can take our secret generator
    # (make_private's own wrapper only takes torchcsprng's); make_private therefore gets
    # poisson_sampling=False, which leaves this DPDataLoader unchanged.
    # Distributed: each rank Poisson-samples ITS shard at the same rate q with its own secret
    # generator; the shards partition the rows, so the union is a Poisson sample of the whole
    # table at rate q, exactly what the accountant charges.
    loader = DPDataLoader(row_source, sample_rate=q, generator=secret.torch("poisson-sampling"),
                          collate_fn=_identity_collate)
    if col.world_size > 1:  # Opacus' DPDDP: parameters broadcast from rank 0; the optimizer sums
        discriminator = DPDDP(discriminator)  # clipped gradients over ranks, rank 0 adds the noise once
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    made = engine.make_private(
        module=discriminator, optimizer=opt_d, data_loader=loader,
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
    d_opt.expected_batch_size = expected_batch / col.world_size
    # Opacus' floating-point-hardened noise (secure mode's sampler) with our secret generator;
    # PrivacyEngine(secure_mode=True) would also demand torchcsprng, which has no build here.
    d_opt.secure_mode = True
    if _unsafe_noise_scale != 1.0:
        _break_noise(d_opt, _unsafe_noise_scale)
    if abs(1.0 / len(loader) - q) > 1e-12:
        raise InternalError("Opacus' sample rate differs from the calibrated one")

    cond_sampler = _ConditionSampler(cond_probs, torch_gen)
    # the discriminator's fake rows: in a distributed run each rank adds its share from its own
    # PUBLIC stream, while the generator step draws the same rows on every rank (torch_gen),
    # so every rank's generator stays identical (post-processing of the shared discriminator)
    d_fake_gen = torch_gen if col.world_size == 1 else seeds.torch(f"discriminator-fakes-rank{col.rank}")
    d_cond_sampler = cond_sampler if col.world_size == 1 else _ConditionSampler(cond_probs, d_fake_gen)
    d_fakes = expected_batch if col.world_size == 1 else max(1, round(expected_batch / col.world_size))
    probe_gen = seeds.torch("collapse-probe")
    real_label = torch.ones(expected_batch)
    batches = _batches(loader, width)
    history: list[dict[str, float]] = []
    log_every = max(1, n_disc_total // 50)
    g_loss_val = float("nan")
    progress(ProgressEvent("train", 0, n_disc_total, {"noise_multiplier": sgd.noise_multiplier}))
    generator.train()
    d_module.train()
    if audit_callback is not None:
        d_module.disable_hooks()
        audit_callback(0, discriminator, None, None)
        d_module.enable_hooks()
    with warnings.catch_warnings():
        # Opacus' ghost clipping registers full backward hooks on a module whose input
        # needs no gradient; torch warns on every step, harmlessly.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for step in range(1, n_disc_total + 1):
            # --- discriminator: one accounted DP-SGD step --------------------------------
            real = next(batches)
            with torch.no_grad():
                cond = d_cond_sampler(d_fakes)
                fake = generator.activate(generator.raw(_noise(d_fakes, config, d_fake_gen), cond), cond,
                                          tau=config.gumbel_tau, generator=d_fake_gen, hard=False)
            d_opt.zero_grad(set_to_none=True)
            if config.clip_fake_rows or config.grad_sample_mode != "ghost":
                # one forward over real + fake rows, every row clipped
                rows = torch.cat([real, fake], dim=0)
                labels = torch.cat([torch.ones(real.shape[0]), torch.zeros(d_fakes)])
                per_row = F.binary_cross_entropy_with_logits(d_module(rows), labels, reduction="none")
                if config.grad_sample_mode == "ghost":
                    DPTensorFastGradientClipping(d_module, d_opt, per_row, "mean").backward()
                else:
                    per_row.mean().backward()
            else:
                # real rows: per-row clipping by Opacus' ghost clipping (p.grad = clipped sum);
                # fake rows: data-independent, their plain summed gradient is added before
                # Opacus adds the noise (sensitivity unchanged: C per real row).
                if real.shape[0] > 0:  # an empty Poisson batch: no real-row forward (nothing to clip)
                    per_row = F.binary_cross_entropy_with_logits(d_module(real), torch.ones(real.shape[0]),
                                                                 reduction="none")
                    DPTensorFastGradientClipping(d_module, d_opt, per_row, "mean").backward()
                d_module.disable_hooks()
                fake_loss = F.binary_cross_entropy_with_logits(d_module(fake), torch.zeros(d_fakes),
                                                               reduction="none")
                (fake_loss.sum() * config.max_grad_norm).backward()
                d_module.enable_hooks()
            d_opt.step()
            if audit_callback is not None:
                d_module.disable_hooks()
                audit_callback(step, discriminator, fake, real)
                d_module.enable_hooks()

            # --- generator: post-processing of the discriminator -------------------------
            if step % config.n_disc_steps == 0:
                d_module.disable_hooks()
                cond = cond_sampler(expected_batch)
                fake = generator.activate(generator.raw(_noise(expected_batch, config, torch_gen), cond), cond,
                                          tau=config.gumbel_tau, generator=torch_gen, hard=False)
                g_loss = F.binary_cross_entropy_with_logits(d_module(fake), real_label)
                if matcher is not None and cond is not None:
                    g_loss = g_loss + config.marginal_weight * matcher.loss(fake, cond)
                if pair_matcher is not None:
                    g_loss = g_loss + config.pair_weight * pair_matcher.loss(fake)
                if related_matcher is not None:
                    g_loss = g_loss + config.related_weight * related_matcher.loss(fake)
                if correlation_matcher is not None:
                    g_loss = g_loss + config.correlation_weight * correlation_matcher.loss(fake)
                if embedding is not None and cond is not None and cond_probs is not None:
                    g_loss = g_loss + config.embedding_weight * embedding.loss(fake, cond, cond_probs * n_rows)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                d_module.enable_hooks()
                g_loss_val = float(g_loss.detach())

            if step % log_every == 0 or step == n_disc_total:
                d_loss_val = _fake_row_loss(d_module, fake, fake.shape[0])  # logged steps only
                eps_now = epsilon_for([*prior, *_engine_entries(engine), *reserved_entries], delta=acc_delta,
                                      accountant=config.accountant)
                point = {"step": float(step), "d_loss_fake": d_loss_val, "g_loss": g_loss_val, "epsilon": eps_now,
                         **_collapse_probe(generator, encoder, cond_span, cond_probs, config, probe_gen)}
                history.append(point)
                progress(ProgressEvent("train", step, n_disc_total, dict(point)))

    entries = (*prior, *_engine_entries(engine), *reserved_entries)
    steps_charged = sum(e.steps for e in entries if e.label.startswith("discriminator"))
    if steps_charged != n_disc_total:
        raise InternalError(f"accountant recorded {steps_charged} steps, expected {n_disc_total}")
    spent = epsilon_for(entries, delta=acc_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    generator.eval()
    return TrainedModel(
        generator=generator, encoder=encoder, config=config,
        privacy=PrivacySpent(spent, config.target_delta, config.accountant, tuple(entries),
                             threshold_delta=threshold_delta),
        condition_column=condition_column if cond_span else None,
        condition_probs=cond_probs, history=history,
        train_seconds=time.perf_counter() - started, reproducible_private_randomness=secret.reproducible,
    )


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
