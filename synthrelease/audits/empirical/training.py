"""One audit training run of the project's DP-GAN, with its discriminator kept for scoring.

PRIVACY: reads the private training rows. The run's generator, discriminator and training
table (private rows + canaries) live only inside the audit and are discarded when it
returns; none of them enters a model file, a bundle or the release.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.ndimage import uniform_filter1d
from torch import nn

from synthrelease.budget.accounting import MechanismEntry, histogram_noise_for
from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy import default_delta
from synthrelease.progress import ProgressCallback, ignore_progress
from synthrelease.rng import SeedTree
from synthrelease.training.config import TrainingConfig
from synthrelease.training.trainer import TrainedModel, train_dp_gan
from synthrelease.transforms.encoders import TableEncoder


class GradientAlignment:
    """White-box score over the whole training transcript, for canaries known in advance.

    After every discriminator update, for each canary c: the per-row gradient g(c) of the
    discriminator's "real" loss at c (clipped to the run's clipping norm C, as DP-SGD clips
    it), dotted with the step's privatized gradient G̃ (what the parameters' ``.grad`` hold:
    clipped real-row sum + noise + fake-row gradient, scaled by Opacus). A canary in the
    Poisson batch contributes its own clipped gradient to G̃, so members score higher; the
    per-step mean over canaries is subtracted (common drift), and so is the component along
    the step's fake-row gradient F (data-independent, known to the trainer; it dominated
    the score's variance): score += ⟨g, G̃⟩ − ⟨g, F⟩⟨F, G̃⟩/‖F‖². The noisy gradients are
    exactly what DP-SGD's accounting covers, so any bound from this score must stay below
    the claimed ε. Per-row gradients of the ``Linear`` layers are formed in closed form from
    activations a and output gradients δ (‖δaᵀ‖ = ‖δ‖‖a‖), one forward/backward per step.
    g is taken at the parameters after the update (a 1-step lag, negligible at GAN rates).
    """

    def __init__(self, x: torch.Tensor, clip: float) -> None:
        self.x = x
        self.clip = clip
        self.per_step: list[np.ndarray] = []
        self.final: nn.Module | None = None

    def __call__(self, step: int, discriminator: nn.Module, fake: torch.Tensor) -> None:
        del step
        self.final = discriminator
        linears = [mod for mod in discriminator.modules() if isinstance(mod, nn.Linear)]
        if any(lin.weight.grad is None or lin.bias is None or lin.bias.grad is None for lin in linears):
            return
        inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []

        def keep(_mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            inputs.append(inp[0].detach())
            outputs.append(out)

        handles = [lin.register_forward_hook(keep) for lin in linears]
        try:
            with torch.enable_grad():
                logit = discriminator(self.x)
                loss = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit), reduction="sum")
                deltas = torch.autograd.grad(loss, outputs)
                n_can = len(outputs)
                f_logit = discriminator(fake.detach())
                f_loss = F.binary_cross_entropy_with_logits(f_logit, torch.zeros_like(f_logit), reduction="sum")
                f_grads = torch.autograd.grad(f_loss, [t for lin in linears for t in (lin.weight, lin.bias)])
        finally:
            for h in handles:
                h.remove()
        with torch.no_grad():
            inputs = inputs[:n_can]
            n = self.x.shape[0]
            dot = torch.zeros(n, dtype=torch.float64)
            dot_f = torch.zeros(n, dtype=torch.float64)
            sq = torch.zeros(n, dtype=torch.float64)
            f_sq = f_dot_g = 0.0
            for i, (lin, a, d) in enumerate(zip(linears, inputs, deltas, strict=True)):
                fw, fb = f_grads[2 * i], f_grads[2 * i + 1]
                gw, gb = lin.weight.grad, lin.bias.grad
                dot += (((d @ gw) * a).sum(1) + d @ gb).double()  # type: ignore[operator]
                dot_f += (((d @ fw) * a).sum(1) + d @ fb).double()
                sq += ((d * d).sum(1) * ((a * a).sum(1) + 1.0)).double()
                f_sq += float((fw * fw).sum() + (fb * fb).sum())
                f_dot_g += float((fw * gw).sum() + (fb * gb).sum())  # type: ignore[operator]
            if f_sq > 0:
                dot = dot - dot_f * (f_dot_g / f_sq)
            contrib = dot * torch.clamp(self.clip / sq.sqrt().clamp(min=1e-12), max=1.0)
            self.per_step.append((contrib - contrib.mean()).numpy())

    def scores(self, window: int = 5) -> np.ndarray:
        """Sum over steps of the positive part of each canary's high-passed contribution.

        A canary's own gradient enters G̃ only in the steps that sampled it (Poisson, each
        step independently), a spike of ~C²/batch; the other rows' cross terms drift
        slowly. Subtracting a centred moving average over ``window`` steps removes the drift
        and keeps the spikes (breast cancer, no noise, 200 canaries, 200 steps: AUC in-vs-out
        0.51 for the plain sum, 0.70 high-passed). Still a function of the noisy transcript.
        """
        if not self.per_step:
            return np.zeros(self.x.shape[0])
        steps = np.vstack(self.per_step)
        resid = steps - uniform_filter1d(steps, min(window, steps.shape[0]), axis=0, mode="nearest")
        return np.clip(resid, 0.0, None).sum(axis=0)


@dataclass
class AuditRun:
    """What the audit keeps of one training run (in memory only, never saved)."""

    model: TrainedModel
    discriminator: nn.Module
    config: TrainingConfig
    alignment: np.ndarray | None

    @property
    def epsilon(self) -> float:
        """ε the run's accountant reports (at ``config.target_delta``)."""
        return self.model.privacy.epsilon

    def final_logit_scores(self, rows: pd.DataFrame, *, seed: int, n_references: int = 8) -> np.ndarray:
        """Calibrated final-discriminator logit per row (higher = more likely a training row).

        Score = D(x) − mean_j D(x_j), where each reference x_j is x with one randomly
        chosen column changed (a numerical value moved to the opposite end of its range,
        a category to another one) — a nearby point that was never trained on. This
        removes the discriminator's smooth trend around x (measured on breast cancer,
        no noise, 500 canaries: AUC in-vs-out 0.64 for the raw logit, 0.75 calibrated).
        ``n_references = 0``: the raw logit.
        """
        x = torch.from_numpy(self.model.encoder.encode(rows))
        with torch.no_grad():
            score = self.discriminator(x).double().numpy()
            if n_references > 0:
                rng = np.random.default_rng(seed)
                refs = [self.discriminator(one_column_neighbours(x, self.model.encoder, rng)).double().numpy()
                        for _ in range(n_references)]
                score = score - np.mean(refs, axis=0)
        return score


def one_column_neighbours(x: torch.Tensor, encoder: TableEncoder, rng: np.random.Generator) -> torch.Tensor:
    """A copy of encoded rows ``x`` with one random column per row changed (vectorised per span).

    Continuous values are negated (opposite end of the range); a category moves to another
    category of its block (a cyclic shift by 1..width−1). Columns with a one-category block
    are never chosen; missing/zero indicators are left as they are.
    """
    spans = [s for s in encoder.spans if s.kind == "continuous" or (s.role == "category" and s.width > 1)]
    if not spans:
        return x.clone()
    n = x.shape[0]
    pick = rng.integers(0, len(spans), n)
    out = x.clone()
    for j, s in enumerate(spans):
        rows = torch.from_numpy(np.nonzero(pick == j)[0])
        if rows.numel() == 0:
            continue
        if s.kind == "continuous":
            out[rows, s.start] = -x[rows, s.start]
        else:
            block = x[rows, s.start:s.stop]
            shift = int(rng.integers(1, s.width))
            out[rows, s.start:s.stop] = torch.roll(block, shifts=shift, dims=1)
    return out


def audit_config(config: TrainingConfig, *, n_release: int, n_audit: int, seed: int) -> TrainingConfig:
    """The release's configuration for an audit table of ``n_audit`` rows.

    Same ε, steps, model and clipping; the batch is rescaled so that the Poisson sample rate
    (≈ batch / rows) is unchanged; δ is kept unless it is not below 1/n_audit (then
    :func:`default_delta`); the seed is the audit's own.
    """
    batch = max(1, round(config.batch_size * n_audit / max(1, n_release)))
    delta = config.target_delta if config.target_delta < 1.0 / n_audit else default_delta(n_audit)
    return dataclasses.replace(config, batch_size=batch, target_delta=delta, seed=seed)


def train_for_audit(rows: pd.DataFrame, metadata: Metadata, config: TrainingConfig, *,
                    condition_column: str | None, canaries: pd.DataFrame | None = None,
                    noise_scale: float = 1.0, progress: ProgressCallback = ignore_progress) -> AuditRun:
    """Train as :func:`~synthrelease.training.trainer.fit_dp_synthesizer` does, keeping D.

    With ``canaries`` (rows in the table's columns), their :class:`GradientAlignment` score
    is accumulated over every step (encoded with the run's own encoder).

    DP discovery of categories/bounds (when the metadata asks for it) is repeated exactly as
    in ``fit_dp_synthesizer`` (same seeds and shares) and composed in the same accountant.
    ``noise_scale`` ≠ 1 BREAKS the mechanism (test/power-check only; see ``train_dp_gan``).
    """
    from synthrelease.transforms.dp_bounds import columns_needing_bounds, estimate_bounds
    from synthrelease.transforms.dp_categories import (
        columns_needing_categories,
        discover_categories,
        map_undiscovered,
    )

    seeds = SeedTree(config.seed)
    prior: tuple[MechanismEntry, ...] = ()
    threshold_delta = 0.0
    if columns_needing_categories(metadata):
        if config.categories_epsilon_share <= 0 or config.categories_delta_share <= 0:
            raise PrivacyParameterError("metadata asks for DP categories but categories_epsilon_share or "
                                        "categories_delta_share is 0")
        threshold_delta = config.categories_delta_share * config.target_delta
        sigma = histogram_noise_for(epsilon=config.categories_epsilon_share * config.target_epsilon,
                                    delta=config.target_delta - threshold_delta, accountant=config.accountant)
        found = discover_categories(rows, metadata, noise_multiplier=sigma.noise_multiplier,
                                    threshold_delta=threshold_delta, generator=seeds.torch("dp-categories"))
        rows = map_undiscovered(rows, found, metadata)
        metadata = found.metadata
        prior = (*prior, found.entry) if found.entry is not None else prior
    if columns_needing_bounds(metadata):
        if config.bounds_epsilon_share <= 0:
            raise PrivacyParameterError("metadata asks for DP bounds but bounds_epsilon_share is 0")
        sigma = histogram_noise_for(epsilon=config.bounds_epsilon_share * config.target_epsilon,
                                    delta=config.target_delta - threshold_delta, accountant=config.accountant)
        est = estimate_bounds(rows, metadata, noise_multiplier=sigma.noise_multiplier,
                              generator=seeds.torch("dp-bounds"))
        metadata = est.metadata
        prior = (*prior, est.entry) if est.entry is not None else prior
    encoder = TableEncoder(metadata)
    x = torch.from_numpy(encoder.encode(canaries)) if canaries is not None else torch.zeros(0, encoder.width)
    tracker = GradientAlignment(x, config.max_grad_norm)
    model = train_dp_gan(rows, encoder, config, condition_column=condition_column,
                         progress=progress, prior_entries=prior, threshold_delta=threshold_delta,
                         audit_callback=tracker, _unsafe_noise_scale=noise_scale)
    if tracker.final is None:
        raise InternalError("the trainer did not hand back its discriminator")
    return AuditRun(model, tracker.final, config, tracker.scores() if canaries is not None else None)
