"""A DP conditional DCGAN for square image tiles (16, 32 or 64 pixels), trained with Opacus.

Privacy (the same machinery as tables, :mod:`synthrelease.training.trainer`):

* privacy unit: one tile (one row); the DP-SGD sample is Opacus' Poisson sampling
  (:class:`~opacus.data_loader.DPDataLoader`) with a secret generator;
* the discriminator (Conv2d, GroupNorm, LeakyReLU, Linear: layers Opacus clips per
  sample; no BatchNorm) sees real tiles through DP-SGD (per-tile clipping at C, Gaussian
  noise σ·C from a secret generator, Opacus' hardened sampling); fake tiles are
  data-independent and pass with hooks off;
* the label frequencies used to condition sampling are one Gaussian histogram release;
* σ is calibrated with the same Opacus accountant over every mechanism of the run,
  the gate's reserved entry included, and the ε reported is the accountant's.

The generator only ever sees the discriminator's noisy feedback: post-processing.
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
from opacus.validators import ModuleValidator
from torch import nn

from synthrelease.budget.accounting import MechanismEntry, calibrate_noise_multiplier, epsilon_for, histogram_noise_for
from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress
from synthrelease.rng import PrivateRandomness, SeedTree, gaussian_noise
from synthrelease.training.trainer import PrivacySpent, sample_rate_for


class TileGenerator(nn.Module):
    """DCGAN generator: (z, label one-hot) → a tile in [-1, 1] of ``size``² × ``channels``."""

    def __init__(self, latent_dim: int, n_classes: int, size: int, channels: int, width: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.n_classes, self.size, self.channels = latent_dim, n_classes, size, channels
        ups = {16: 2, 32: 3, 64: 4}[size]
        self.fc = nn.Linear(latent_dim + n_classes, width * 4 * 4 * 4)
        layers: list[nn.Module] = []
        ch = width * 4
        for i in range(ups):
            out = channels if i == ups - 1 else max(width // (2 ** max(i - 1, 0)), 16)
            layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
            if i < ups - 1:
                layers += [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.net = nn.Sequential(*layers)
        self.width = width

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = z if cond is None else torch.cat([z, cond], dim=1)
        h = F.relu(self.fc(x)).view(x.shape[0], self.width * 4, 4, 4)
        return torch.tanh(self.net(h))


class TileDiscriminator(nn.Module):
    """DCGAN critic with per-sample-clippable layers (Conv2d, GroupNorm, Linear, LeakyReLU) and a
    class projection."""

    def __init__(self, n_classes: int, size: int, channels: int, width: int = 32) -> None:
        super().__init__()
        downs = {16: 2, 32: 3, 64: 4}[size]
        layers: list[nn.Module] = []
        ch = channels
        for i in range(downs):
            out = width * (2 ** min(i, 2))
            layers.append(nn.Conv2d(ch, out, 4, 2, 1))
            if i > 0:
                layers.append(nn.GroupNorm(min(8, out), out))
            layers.append(nn.LeakyReLU(0.2))
            ch = out
        self.features = nn.Sequential(*layers)
        side = size // (2 ** downs)
        dim = ch * side * side
        self.head = nn.Linear(dim, 1)
        # projection discriminator (Miyato & Koyama 2018): the label meets the features through
        # an inner product, so the critic can judge whether a tile fits its class
        self.projection = nn.Linear(n_classes, dim, bias=False) if n_classes else None
        self.n_classes, self.size, self.channels = n_classes, size, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: flat rows [n, channels·size² + classes] (tile in [-1, 1], then the label one-hot)."""
        pixels = self.channels * self.size * self.size
        tile = x[:, :pixels].reshape(-1, self.channels, self.size, self.size)
        feats = self.features(tile).flatten(1)
        logit = self.head(feats).squeeze(1)
        if self.projection is not None:
            logit = logit + (self.projection(x[:, pixels:]) * feats).sum(dim=1)
        return logit


@dataclass(frozen=True)
class ImageTrainingConfig:
    """Settings of one DP image GAN run (privacy vocabulary as :class:`TrainingConfig`)."""

    target_epsilon: float
    target_delta: float
    accountant: str = "rdp"
    max_grad_norm: float = 1.0
    batch_size: int = 64
    n_steps: int = 500
    condition_epsilon_share: float = 0.05
    latent_dim: int = 64
    generator_width: int = 64
    discriminator_width: int = 32
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.target_epsilon > 0 or not 0 < self.target_delta < 1:
            raise PrivacyParameterError("epsilon must be > 0 and delta in (0, 1)")
        if self.batch_size < 1 or self.n_steps < 1 or self.max_grad_norm <= 0:
            raise PrivacyParameterError("batch_size, n_steps must be >= 1 and max_grad_norm > 0")
        if not 0 <= self.condition_epsilon_share < 1:
            raise PrivacyParameterError("condition_epsilon_share must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class TileModel:
    """A DP tile generator: no discriminator, no private tile."""

    generator: TileGenerator
    config: ImageTrainingConfig
    privacy: PrivacySpent
    condition_probs: np.ndarray | None
    size: int
    channels: int
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


def train_tile_gan(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int, config: ImageTrainingConfig, *,
                   reserved_entries: tuple[MechanismEntry, ...] = (), randomness: PrivateRandomness | None = None,
                   progress: ProgressCallback = ignore_progress) -> TileModel:
    """Train the (ε, δ)-DP conditional DCGAN on uint8 tiles [n, size, size, channels].

    ``labels``: class index per tile (or None); ``n_classes`` comes from the public metadata.
    Guarantee: (ε, δ)-DP under add/remove one tile, ε = the accountant's total over the
    label histogram, the DP-SGD steps and ``reserved_entries``.
    """
    started = time.perf_counter()
    secret = randomness or PrivateRandomness()
    seeds = SeedTree(config.seed)
    n, size = tiles.shape[0], tiles.shape[1]
    channels = tiles.shape[3]
    if n < 2:
        raise PrivacyParameterError("at least 2 tiles are needed to train")
    if not config.target_delta < 1.0 / n:
        raise PrivacyParameterError(f"delta={config.target_delta:g} must be below 1/n = {1.0 / n:.3g} for {n} tiles")
    x = torch.from_numpy(np.array(tiles, dtype=np.uint8)).float().div(127.5).sub(1.0).permute(0, 3, 1, 2).reshape(n, -1)
    classes = n_classes if labels is not None else 0
    if classes:
        x = torch.cat([x, F.one_hot(torch.as_tensor(labels, dtype=torch.long), classes).float()], dim=1)
    prior: list[MechanismEntry] = []
    cond_probs = None
    if classes:
        if config.condition_epsilon_share > 0:
            hist = histogram_noise_for(epsilon=config.condition_epsilon_share * config.target_epsilon,
                                       delta=config.target_delta, accountant=config.accountant)
            prior.append(hist)
            counts = x[:, -classes:].double().sum(dim=0)
            noisy = (counts + gaussian_noise(counts.shape, hist.noise_multiplier, secret.torch("label-noise")))
            cond_probs = (noisy.clamp(min=0) + 1.0).numpy()
            cond_probs = cond_probs / cond_probs.sum()
        else:
            cond_probs = np.full(classes, 1.0 / classes)
    q = sample_rate_for(n, min(config.batch_size, n))
    expected = max(1, int(n * q))
    sgd = calibrate_noise_multiplier(target_epsilon=config.target_epsilon, target_delta=config.target_delta,
                                     sample_rate=q, steps=config.n_steps, accountant=config.accountant,
                                     prior=[*prior, *reserved_entries])
    with torch.random.fork_rng(devices=[]):  # public initialisation; the global RNG is restored after
        torch.manual_seed(seeds.integer("init"))
        generator = TileGenerator(config.latent_dim, classes, size, channels, config.generator_width)
        discriminator = TileDiscriminator(classes, size, channels, config.discriminator_width)
    ModuleValidator.validate(discriminator, strict=True)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.999))
    loader = DPDataLoader(torch.utils.data.TensorDataset(x), sample_rate=q, generator=secret.torch("poisson"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    d_module, d_opt, loader = engine.make_private(
        module=discriminator, optimizer=opt_d, data_loader=loader, noise_multiplier=sgd.noise_multiplier,
        max_grad_norm=config.max_grad_norm, poisson_sampling=False, grad_sample_mode="hooks",
        noise_generator=secret.torch("dp-noise"))
    d_opt.secure_mode = True
    gen = seeds.torch("latent")
    probs = torch.as_tensor(cond_probs) if cond_probs is not None else None

    def fakes(m: int) -> torch.Tensor:
        z = torch.randn(m, config.latent_dim, generator=gen)
        cond = F.one_hot(torch.multinomial(probs, m, replacement=True, generator=gen), classes).float() \
            if probs is not None else None
        out = generator(z, cond).flatten(1)
        return torch.cat([out, cond], dim=1) if cond is not None else out

    history: list[dict[str, float]] = []
    batches = iter(loader)
    log_every = max(1, config.n_steps // 20)
    progress(ProgressEvent("train", 0, config.n_steps, {"noise_multiplier": sgd.noise_multiplier}))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        step = 0
        while step < config.n_steps:
            try:
                (real,) = next(batches)
            except StopIteration:
                batches = iter(loader)
                continue
            step += 1
            d_opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                fake = fakes(expected)
            # one forward over real and fake tiles, every tile clipped per sample (Opacus hooks
            # overwrite p.grad with the clipped sum, so fake tiles must pass through them too);
            # fake tiles are data-independent: the sensitivity stays C per real tile
            rows = torch.cat([real, fake], dim=0)
            target = torch.cat([torch.ones(real.shape[0]), torch.zeros(expected)])
            F.binary_cross_entropy_with_logits(d_module(rows), target, reduction="sum").div(max(expected, 1)).backward()
            d_opt.step()
            d_module.disable_hooks()
            g_loss = F.binary_cross_entropy_with_logits(d_module(fakes(expected)), torch.ones(expected))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            d_module.enable_hooks()
            if step % log_every == 0 or step == config.n_steps:
                eps = epsilon_for([*prior, *_entries(engine), *reserved_entries], delta=config.target_delta,
                                  accountant=config.accountant)
                point = {"step": float(step), "g_loss": float(g_loss.detach()), "epsilon": eps}
                history.append(point)
                progress(ProgressEvent("train", step, config.n_steps, dict(point)))
    entries = (*prior, *_entries(engine), *reserved_entries)
    if sum(e.steps for e in entries if e.label.startswith("discriminator")) != config.n_steps:
        raise InternalError("the accountant did not record every DP-SGD step")
    spent = epsilon_for(entries, delta=config.target_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    generator.eval()
    return TileModel(generator, config, PrivacySpent(spent, config.target_delta, config.accountant, entries),
                     cond_probs, size, channels, history, time.perf_counter() - started)


def _entries(engine: PrivacyEngine) -> list[MechanismEntry]:
    return [MechanismEntry("discriminator DP-SGD", float(s), float(q), int(k)) for s, q, k in engine.accountant.history]


def sample_tiles(model: TileModel, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` uint8 tiles [n, size, size, channels] and their class indices (post-processing)."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0x1A6]).generate_state(1)[0]))
    out, labels = [], []
    with torch.no_grad():
        for start in range(0, n, 512):
            m = min(512, n - start)
            z = torch.randn(m, model.config.latent_dim, generator=gen)
            cond = None
            if model.condition_probs is not None:
                idx = torch.multinomial(torch.as_tensor(model.condition_probs), m, replacement=True, generator=gen)
                cond = F.one_hot(idx, len(model.condition_probs)).float()
                labels.append(idx.numpy())
            tile = model.generator(z, cond).permute(0, 2, 3, 1).add(1.0).mul(127.5).round().clamp(0, 255)
            out.append(tile.to(torch.uint8).numpy())
    return np.concatenate(out), (np.concatenate(labels) if labels else None)
