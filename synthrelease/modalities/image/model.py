"""A DP conditional DCGAN for square image tiles (16, 32 or 64 pixels), trained with Opacus.

Privacy (the same machinery as tables, :mod:`synthrelease.gan.trainer`):

* privacy unit: one tile, or one person with at most ``m`` tiles (``units``): the DP-SGD
  sample is Opacus' Poisson sampling (:class:`~opacus.data_loader.DPDataLoader`, secret
  generator) over the UNITS, and every sampled unit brings all its tiles;
* the discriminator (Conv2d, GroupNorm, LeakyReLU, Linear: layers Opacus clips per
  sample; no BatchNorm) sees real tiles through DP-SGD: Opacus computes per-tile
  gradients, the tiles of one unit are summed into ONE per-unit gradient before Opacus'
  optimizer clips it at C and adds Gaussian noise σ·C from a secret generator (user-level
  DP-SGD); fake tiles are data-independent and each is clipped on its own;
* the label frequencies used to condition sampling are one Gaussian histogram release;
* the tile mean embedding (:mod:`synthrelease.modalities.image.embedding`, DP-MERF) is one Gaussian
  release of sensitivity 1 (each unit's tiles weighted 1/m); the generator matches it as
  a second loss term, post-processing;
* σ is calibrated with the same Opacus accountant over every mechanism of the run,
  the gate's reserved entry included, and the ε reported is the accountant's.

The generator only ever sees the discriminator's noisy feedback: post-processing.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.validators import ModuleValidator
from torch import nn

from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.gan.trainer import PrivacySpent, sample_rate_for
from synthrelease.privacy.accounting import MechanismEntry, calibrate_noise_multiplier, epsilon_for, histogram_noise_for
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree, gaussian_noise
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

if TYPE_CHECKING:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from synthrelease.modalities.image.embedding import TileMeanEmbedding


UPSAMPLING = ("resize_conv", "transpose")
"""How the generator doubles its resolution: nearest-neighbour resize then a 3 × 3 convolution
(Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard artifacts"; no uneven kernel
overlap, so no checkerboard), or the original DCGAN's 4 × 4 stride-2 transposed convolution
(model files written before resize-convolution became the default)."""


class TileGenerator(nn.Module):
    """DCGAN generator: (z, label one-hot) → a tile in [-1, 1] of ``size``² × ``channels``."""

    def __init__(self, latent_dim: int, n_classes: int, size: int, channels: int, width: int = 64,
                 upsampling: str = "resize_conv") -> None:
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLING)}, not {upsampling!r}")
        self.latent_dim, self.n_classes, self.size, self.channels = latent_dim, n_classes, size, channels
        ups = {16: 2, 32: 3, 64: 4}[size]
        self.fc = nn.Linear(latent_dim + n_classes, width * 4 * 4 * 4)
        layers: list[nn.Module] = []
        ch = width * 4
        for i in range(ups):
            out = channels if i == ups - 1 else max(width // (2 ** max(i - 1, 0)), 16)
            if upsampling == "transpose":
                layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, 1, 1)]
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


GENERATORS = ("dcgan", "sim_pe")
"""``dcgan``: the DP conditional DCGAN of this module; ``sim_pe``: Private Evolution over the public
tissue simulator (:mod:`synthrelease.modalities.image.private_evolution`; needs the column's ``stain``)."""


@dataclass(frozen=True)
class ImageTrainingConfig:
    """Settings of one DP image run (privacy vocabulary as :class:`TrainingConfig`;
    ``public_rows``: the DP or declared count of privacy units the sample rate uses, 0 = the exact one).

    ``generator`` picks the DP generator (:data:`GENERATORS`); the ``evolution_*`` settings are
    Sim-PE's: vote iterations T, the largest population, the first iteration's perturbation
    (normalised parameter units, decaying 4× over the run) and the vote threshold in σ.
    ``pretrain_steps`` > 0: the DCGAN is first trained, without DP and for free, on tiles of the
    public tissue simulator in ``pretrain_stain``, then fine-tuned with DP-SGD.
    ``reach_epsilon_share`` of ε (Sim-PE only; 0 = off) buys one DP count of the tiles within the
    simulator's reach; out of reach, the DCGAN is trained instead with the rest of the budget.
    ``upsampling``: the generator's resize-convolution (default) or transposed convolution."""

    target_epsilon: float
    target_delta: float
    accountant: str = "rdp"
    max_grad_norm: float = 1.0
    batch_size: int = 64
    n_steps: int = 500
    public_rows: int = 0
    condition_epsilon_share: float = 0.05
    embedding_epsilon_share: float = 0.8
    embedding_features: int = 200
    embedding_weight: float = 100.0
    latent_dim: int = 64
    generator_width: int = 64
    discriminator_width: int = 32
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    seed: int = 0
    generator: str = "dcgan"
    evolution_iterations: int = 6
    evolution_population: int = 2000
    evolution_variation: float = 0.25
    evolution_threshold: float = 1.0
    pretrain_stain: str = ""
    pretrain_steps: int = 0
    upsampling: str = "resize_conv"
    reach_epsilon_share: float = 0.05

    def __post_init__(self) -> None:
        if not self.target_epsilon > 0 or not 0 < self.target_delta < 1:
            raise PrivacyParameterError("epsilon must be > 0 and delta in (0, 1)")
        if self.batch_size < 1 or self.n_steps < 1 or self.max_grad_norm <= 0 or self.public_rows < 0:
            raise PrivacyParameterError("batch_size, n_steps must be >= 1, max_grad_norm > 0 and public_rows >= 0")
        if not 0 <= self.condition_epsilon_share < 1:
            raise PrivacyParameterError("condition_epsilon_share must be in [0, 1)")
        shares = self.condition_epsilon_share + self.embedding_epsilon_share
        if not 0 <= self.embedding_epsilon_share < 1 or shares >= 1:
            raise PrivacyParameterError("embedding_epsilon_share must be in [0, 1) and leave a share for DP-SGD")
        if self.embedding_features < 16 or self.embedding_weight < 0:
            raise PrivacyParameterError("embedding_features must be >= 16 and embedding_weight >= 0")
        if not 0 <= self.reach_epsilon_share <= 0.5:
            raise PrivacyParameterError("reach_epsilon_share must be in [0, 0.5]")
        if self.upsampling not in UPSAMPLING:
            raise PrivacyParameterError(f"upsampling must be one of {', '.join(UPSAMPLING)}, not {self.upsampling!r}")
        if self.generator not in GENERATORS:
            raise PrivacyParameterError(f"generator must be one of {', '.join(GENERATORS)}, not {self.generator!r}")
        if self.pretrain_stain not in ("", "he", "ihc_dab", "fluorescence") or not 0 <= self.pretrain_steps <= 100_000 \
                or (self.pretrain_steps > 0 and not self.pretrain_stain):
            raise PrivacyParameterError("pretrain_steps must be in [0, 100000] and needs pretrain_stain "
                                        "(he, ihc_dab or fluorescence)")
        if not (1 <= self.evolution_iterations <= 100 and 2 <= self.evolution_population <= 100_000
                and 0 <= self.evolution_variation <= 1 and 0 <= self.evolution_threshold <= 10):
            raise PrivacyParameterError("evolution_iterations must be in [1, 100], evolution_population in "
                                        "[2, 100000], evolution_variation in [0, 1], evolution_threshold in [0, 10]")

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
    reproducible_private_randomness: bool = False  # test-only noise: such a model is never saved


def _unit_index(n: int, units: np.ndarray | None, max_tiles_per_unit: int) -> tuple[torch.Tensor, int]:
    """[n_units, m] tile indices per unit (−1 padded) and m; a tile-level run is one tile per unit."""
    if units is None:
        return torch.arange(n).unsqueeze(1), 1
    codes = np.asarray(units)
    if codes.shape != (n,):
        raise InternalError("units must give one unit code per tile")
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    if int(counts.max()) > max_tiles_per_unit:
        raise InternalError(f"a unit has {int(counts.max())} tiles, above the cap of {max_tiles_per_unit}")
    table = np.full((len(counts), max_tiles_per_unit), -1, dtype=np.int64)
    fill = np.zeros(len(counts), dtype=np.int64)
    for i, u in enumerate(inverse):
        table[u, fill[u]] = i
        fill[u] += 1
    return torch.from_numpy(table), max_tiles_per_unit


def train_tile_gan(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int, config: ImageTrainingConfig, *,
                   units: np.ndarray | None = None, max_tiles_per_unit: int = 1,
                   reserved_entries: tuple[MechanismEntry, ...] = (), randomness: PrivateRandomness | None = None,
                   progress: ProgressCallback = ignore_progress) -> TileModel:
    """Train the (ε, δ)-DP conditional DCGAN on uint8 tiles [n, size, size, channels].

    ``labels``: class index per tile (or None); ``n_classes`` comes from the public metadata.
    ``units``: the privacy unit (person) of each tile, at most ``max_tiles_per_unit`` (a
    PUBLIC cap m) tiles each; None: every tile is its own unit.
    Guarantee: (ε, δ)-DP under add/remove one unit (all its tiles), ε = the accountant's
    total over the label histogram, the tile mean embedding, the DP-SGD steps and
    ``reserved_entries``. The label histogram counts tiles, so it is charged at sensitivity
    m (its σ is multiplied by m).
    """
    started = time.perf_counter()
    secret = randomness or PrivateRandomness()
    seeds = SeedTree(config.seed)
    n, size, channels = tiles.shape[0], tiles.shape[1], tiles.shape[3]
    privacy_units = _privacy_units(n, units, max_tiles_per_unit, config)
    data = _tile_rows(tiles, labels, n_classes)
    prior: list[MechanismEntry] = []
    label_entry, cond_probs = _dp_label_frequencies(data, privacy_units.tiles_per_unit, config, secret)
    if label_entry is not None:
        prior.append(label_entry)
    embedding = _measure_tile_embedding(data, labels, size, channels, privacy_units.tiles_per_unit, config, seeds,
                                        secret)
    if embedding is not None:
        prior.append(embedding.entry)
    plan = _plan_tile_dp_sgd(privacy_units.public_count, config, prior, reserved_entries)
    generator, discriminator = _build_tile_networks(data.classes, size, channels, config, seeds)
    if config.pretrain_steps:
        _pretrain_on_simulator(generator, discriminator, data.classes, size, channels, config, seeds)
    private = _make_tile_discriminator_private(discriminator, privacy_units.n_units, plan, config, secret)
    fakes = _FakeTiles(generator, cond_probs, data.classes, config.latent_dim, seeds.torch("latent"))
    history = _train_tiles(generator, private, fakes, data, privacy_units, embedding, plan=plan, prior=prior,
                           reserved_entries=reserved_entries, config=config, progress=progress)
    privacy = _tile_privacy_spent(prior, private.engine, reserved_entries, config)
    generator.eval()
    return TileModel(generator, config, privacy, cond_probs, size, channels, history, time.perf_counter() - started,
                     reproducible_private_randomness=secret.reproducible)


@dataclass(frozen=True)
class _PrivacyUnits:
    """The privacy units (persons) of a run and their tiles.

    Attributes:
        unit_tiles: [n_units, m] tile indices of each unit, −1 padded.
        tiles_per_unit: the PUBLIC cap m on one unit's tiles (1: every tile is its own unit).
        n_units: the exact unit count (private: only Opacus' loader sees it).
        public_count: the unit count the sample rate uses: ``config.public_rows`` or, if 0, ``n_units``.
    """

    unit_tiles: torch.Tensor
    tiles_per_unit: int
    n_units: int
    public_count: int


def _privacy_units(n: int, units: np.ndarray | None, max_tiles_per_unit: int,
                   config: ImageTrainingConfig) -> _PrivacyUnits:
    """Group the ``n`` tiles into privacy units and check δ against the public unit count.

    Raises:
        PrivacyParameterError: ``max_tiles_per_unit`` < 1, fewer than 2 units, or δ ≥ 1/n.
        InternalError: ``units`` is not one code per tile, or a unit has more than the cap.
    """
    if max_tiles_per_unit < 1:
        raise PrivacyParameterError("max_tiles_per_unit must be >= 1")
    unit_tiles, m = _unit_index(n, units, max_tiles_per_unit)
    n_units = unit_tiles.shape[0]
    if n_units < 2:
        raise PrivacyParameterError("at least 2 privacy units are needed to train")
    public_units = config.public_rows or n_units  # a release: the DP count, never the exact one
    if not config.target_delta < 1.0 / public_units:
        raise PrivacyParameterError(f"delta={config.target_delta:g} must be below 1/n = {1.0 / public_units:.3g} "
                                    f"for n = {public_units} privacy units")
    return _PrivacyUnits(unit_tiles=unit_tiles, tiles_per_unit=m, n_units=n_units, public_count=public_units)


@dataclass(frozen=True)
class _TileRows:
    """The private tiles as the networks see them (no release: an encoding).

    Attributes:
        images: [n, channels, size, size] float tiles in [-1, 1].
        rows: [n, channels·size² + classes]: each flat tile, then its label one-hot.
        classes: the number of label classes (0: unconditional).
    """

    images: torch.Tensor
    rows: torch.Tensor
    classes: int


def _tile_rows(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int) -> _TileRows:
    """Scale uint8 tiles [n, size, size, channels] to [-1, 1] and append the label one-hot; reads private tiles."""
    n = tiles.shape[0]
    images = torch.from_numpy(np.array(tiles, dtype=np.uint8)).float().div(127.5).sub(1.0).permute(0, 3, 1, 2)
    x = images.reshape(n, -1)
    classes = n_classes if labels is not None else 0
    if classes:
        x = torch.cat([x, F.one_hot(torch.as_tensor(labels, dtype=torch.long), classes).float()], dim=1)
    return _TileRows(images=images, rows=x, classes=classes)


def _dp_label_frequencies(data: _TileRows, tiles_per_unit: int, config: ImageTrainingConfig,
                          secret: PrivateRandomness) -> tuple[MechanismEntry | None, np.ndarray | None]:
    """The label sampling frequencies (summing to 1) and the entry they cost; reads private labels.

    One Gaussian histogram of the tile labels at ``condition_epsilon_share`` of ε; one unit
    moves at most m counts, so its noise is σ·m (entry charged at sensitivity 1, same RDP).
    Share 0: uniform, free. Unconditional: ``(None, None)``.
    """
    classes = data.classes
    if not classes:
        return None, None
    if not config.condition_epsilon_share > 0:
        return None, np.full(classes, 1.0 / classes)
    hist = histogram_noise_for(epsilon=config.condition_epsilon_share * config.target_epsilon,
                               delta=config.target_delta, accountant=config.accountant)
    # one unit moves at most m tile counts (L2 ≤ m): σ·m on counts, the same RDP as σ at sensitivity 1
    counts = data.rows[:, -classes:].double().sum(dim=0)
    noisy = counts + gaussian_noise(counts.shape, hist.noise_multiplier * tiles_per_unit, secret.torch("label-noise"))
    cond_probs = (noisy.clamp(min=0) + 1.0).numpy()
    return hist, cond_probs / cond_probs.sum()


def _measure_tile_embedding(data: _TileRows, labels: np.ndarray | None, size: int, channels: int,
                            tiles_per_unit: int, config: ImageTrainingConfig, seeds: SeedTree,
                            secret: PrivateRandomness) -> TileMeanEmbedding | None:
    """The DP per-class tile mean embedding (DP-MERF); reads private tiles.

    One Gaussian release of sensitivity 1 (each unit's tiles weighted 1/m) at
    ``embedding_epsilon_share`` of ε; PUBLIC feature map from ``seeds``. None when the share is 0.
    """
    from synthrelease.modalities.image.embedding import TileFeatureMap, TileMeanEmbedding

    if not config.embedding_epsilon_share > 0:
        return None
    n = data.images.shape[0]
    emb = calibrate_noise_multiplier(target_epsilon=config.embedding_epsilon_share * config.target_epsilon,
                                     target_delta=config.target_delta, sample_rate=1.0, steps=1,
                                     accountant=config.accountant, label="tile mean embeddings")
    feature_map = TileFeatureMap(size, channels, config.embedding_features, seed=seeds.integer("embedding"))
    tile_class = torch.as_tensor(labels, dtype=torch.long) if data.classes else torch.zeros(n, dtype=torch.long)
    return TileMeanEmbedding.measure(data.images, tile_class, torch.full((n,), 1.0 / tiles_per_unit), data.classes,
                                     feature_map=feature_map, noise_multiplier=emb.noise_multiplier,
                                     noise_generator=secret.torch("embedding-noise"))


@dataclass(frozen=True)
class _TileSgdPlan:
    """DP-SGD's public settings: Poisson rate q over units, expected units per step, calibrated σ."""

    sample_rate: float
    expected_batch: int
    sgd: MechanismEntry


def _plan_tile_dp_sgd(public_units: int, config: ImageTrainingConfig, prior: list[MechanismEntry],
                      reserved_entries: tuple[MechanismEntry, ...]) -> _TileSgdPlan:
    """q from the public unit count and σ for ``config.n_steps`` steps so that one accountant over
    ``prior``, the DP-SGD steps and ``reserved_entries`` reaches the target (ε, δ); public inputs only."""
    q = sample_rate_for(public_units, min(config.batch_size, public_units))
    sgd = calibrate_noise_multiplier(target_epsilon=config.target_epsilon, target_delta=config.target_delta,
                                     sample_rate=q, steps=config.n_steps, accountant=config.accountant,
                                     prior=[*prior, *reserved_entries])
    return _TileSgdPlan(sample_rate=q, expected_batch=max(1, round(public_units * q)), sgd=sgd)


def _build_tile_networks(classes: int, size: int, channels: int, config: ImageTrainingConfig,
                         seeds: SeedTree) -> tuple[TileGenerator, TileDiscriminator]:
    """Both networks, initialised from the PUBLIC seed (the global RNG is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):  # public initialisation; the global RNG is restored after
        torch.manual_seed(seeds.integer("init"))
        generator = TileGenerator(config.latent_dim, classes, size, channels, config.generator_width,
                                  config.upsampling)
        discriminator = TileDiscriminator(classes, size, channels, config.discriminator_width)
    ModuleValidator.validate(discriminator, strict=True)
    return generator, discriminator


@dataclass(frozen=True)
class _PrivateTileDiscriminator:
    """The discriminator under Opacus: per-tile-gradient module, DP optimizer, privacy engine and
    the Poisson loader over unit indices (secret generator)."""

    module: GradSampleModule
    optimizer: DPOptimizer
    engine: PrivacyEngine
    loader: DPDataLoader


PRETRAIN_TILES = 8192
"""Simulated tiles rendered once for public pre-training (random prior parameters, public seed)."""


def _pretrain_on_simulator(generator: TileGenerator, discriminator: TileDiscriminator, classes: int, size: int,
                           channels: int, config: ImageTrainingConfig, seeds: SeedTree) -> None:
    """Non-private GAN steps on tiles of the PUBLIC tissue simulator: no private tile is read, so
    no ε is spent. Labels of simulated tiles are drawn uniformly (the simulator has none).
    The global torch RNG is restored afterwards."""
    from synthrelease.modalities.image import simulator

    rng = seeds.numpy("pretrain-tiles")
    tiles = simulator.render_tiles(simulator.random_parameters(PRETRAIN_TILES, rng),
                                   rng.integers(0, 2**62, PRETRAIN_TILES), size=size, stain=config.pretrain_stain,
                                   channels=channels)
    public = _tile_rows(tiles, rng.integers(0, max(classes, 1), PRETRAIN_TILES) if classes else None, classes)
    stream = seeds.torch("pretrain")
    fakes = _FakeTiles(generator, np.full(classes, 1.0 / classes) if classes else None, classes, config.latent_dim,
                       stream)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.999))
    batch = config.batch_size
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    for _ in range(config.pretrain_steps):
        real = public.rows[torch.randint(0, PRETRAIN_TILES, (batch,), generator=stream)]
        with torch.no_grad():
            fake = fakes(batch)[0]
        d_loss = F.binary_cross_entropy_with_logits(discriminator(torch.cat([real, fake])), torch.cat([ones, zeros]))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fakes(batch)[0]), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    discriminator.zero_grad(set_to_none=True)
    generator.zero_grad(set_to_none=True)


def _make_tile_discriminator_private(discriminator: TileDiscriminator, n_units: int, plan: _TileSgdPlan,
                                     config: ImageTrainingConfig,
                                     secret: PrivateRandomness) -> _PrivateTileDiscriminator:
    """Hand the discriminator to Opacus' ``make_private``: Poisson sampling of units at q and noise
    σ·``max_grad_norm``, both from ``secret``; the update divides by the PUBLIC expected batch."""
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.999))
    loader = DPDataLoader(torch.utils.data.TensorDataset(torch.arange(n_units)), sample_rate=plan.sample_rate,
                          generator=secret.torch("poisson"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    d_module, d_opt, loader = engine.make_private(
        module=discriminator, optimizer=opt_d, data_loader=loader, noise_multiplier=plan.sgd.noise_multiplier,
        max_grad_norm=config.max_grad_norm, poisson_sampling=False, grad_sample_mode="hooks",
        noise_generator=secret.torch("dp-noise"))
    d_opt.expected_batch_size = plan.expected_batch  # Opacus' default is the EXACT count × q: use the public one
    d_opt.secure_mode = True
    return _PrivateTileDiscriminator(module=d_module, optimizer=d_opt, engine=engine, loader=loader)


class _FakeTiles:
    """Fake tiles from the generator; latent noise and labels (DP frequencies) from one PUBLIC stream."""

    def __init__(self, generator: TileGenerator, cond_probs: np.ndarray | None, classes: int, latent_dim: int,
                 stream: torch.Generator) -> None:
        self.generator, self.classes, self.latent_dim, self.stream = generator, classes, latent_dim, stream
        self.probs = torch.as_tensor(cond_probs) if cond_probs is not None else None

    def __call__(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``count`` fakes as discriminator rows (flat tile + label one-hot), as images, and their labels."""
        z = torch.randn(count, self.latent_dim, generator=self.stream)
        idx = (torch.multinomial(self.probs, count, replacement=True, generator=self.stream)
               if self.probs is not None else None)
        cond = F.one_hot(idx, self.classes).float() if idx is not None else None
        img = self.generator(z, cond)
        flat = img.flatten(1)
        return (torch.cat([flat, cond], dim=1) if cond is not None else flat), img, idx


def _train_tiles(generator: TileGenerator, private: _PrivateTileDiscriminator, fakes: _FakeTiles, data: _TileRows,
                 privacy_units: _PrivacyUnits, embedding: TileMeanEmbedding | None, *, plan: _TileSgdPlan,
                 prior: list[MechanismEntry], reserved_entries: tuple[MechanismEntry, ...],
                 config: ImageTrainingConfig, progress: ProgressCallback) -> list[dict[str, float]]:
    """``config.n_steps`` user-level DP-SGD discriminator steps, each followed by a generator step.

    Reads private tiles only through the discriminator's DP-SGD steps (one accounted step
    each); the generator step is post-processing. Returns the logged points (≈ 20, the last
    step included), each also sent to ``progress``.
    """
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.999))
    m = privacy_units.tiles_per_unit
    fake_tiles = max(1, plan.expected_batch * m) if m > 1 else plan.expected_batch
    history: list[dict[str, float]] = []
    batches = iter(private.loader)
    log_every = max(1, config.n_steps // 20)
    progress(ProgressEvent("train", 0, config.n_steps, {"noise_multiplier": plan.sgd.noise_multiplier}))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        step = 0
        while step < config.n_steps:
            try:
                (picked,) = next(batches)
            except StopIteration:
                batches = iter(private.loader)
                continue
            step += 1
            _tile_discriminator_step(private, fakes, data.rows, privacy_units, picked, fake_tiles)
            g_loss, e_loss = _tile_generator_step(private.module, opt_g, fakes, embedding, plan.expected_batch,
                                                  config)
            if step % log_every == 0 or step == config.n_steps:
                eps = epsilon_for([*prior, *_entries(private.engine), *reserved_entries], delta=config.target_delta,
                                  accountant=config.accountant)
                point = {"step": float(step), "g_loss": float(g_loss.detach()),
                         "embedding_loss": float(e_loss.detach()), "epsilon": eps}
                history.append(point)
                progress(ProgressEvent("train", step, config.n_steps, dict(point)))
    return history


def _tile_discriminator_step(private: _PrivateTileDiscriminator, fakes: _FakeTiles, rows: torch.Tensor,
                             privacy_units: _PrivacyUnits, picked: torch.Tensor, fake_tiles: int) -> None:
    """One accounted user-level DP-SGD step; reads the private tiles of the Poisson-sampled units ``picked``.

    Per-tile gradients (real and ``fake_tiles`` data-independent fakes, all through Opacus'
    hooks); with m > 1 a unit's tiles are summed into one per-unit gradient, then Opacus
    clips each at C, adds noise σ·C and records the step.
    """
    members = privacy_units.unit_tiles[picked]  # [b, m], −1 padded
    keep = members >= 0
    real = rows[members[keep]]
    owner = torch.arange(members.shape[0]).unsqueeze(1).expand_as(members)[keep]
    private.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = fakes(fake_tiles)[0]
    # one forward over real and fake tiles, every tile through Opacus' hooks (they
    # overwrite p.grad with the clipped sum, so fake tiles must pass through them too)
    batch = torch.cat([real, fake], dim=0)
    target = torch.cat([torch.ones(real.shape[0]), torch.zeros(fake_tiles)])
    F.binary_cross_entropy_with_logits(private.module(batch), target, reduction="sum").div(
        max(fake_tiles, 1)).backward()
    if privacy_units.tiles_per_unit > 1:
        _per_unit_grad_samples(private.module, owner, members.shape[0], real.shape[0])
    private.optimizer.step()


def _tile_generator_step(d_module: GradSampleModule, opt_g: torch.optim.Optimizer, fakes: _FakeTiles,
                         embedding: TileMeanEmbedding | None, expected: int,
                         config: ImageTrainingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One generator step on ``expected`` fakes: the privatized discriminator's loss plus the weighted
    embedding-matching loss. Post-processing (Opacus' hooks off). Returns both losses."""
    d_module.disable_hooks()
    fake_rows, fake_img, fake_idx = fakes(expected)
    g_loss = F.binary_cross_entropy_with_logits(d_module(fake_rows), torch.ones(expected))
    e_loss = embedding.loss(fake_img, fake_idx) if embedding is not None else torch.zeros(())
    opt_g.zero_grad(set_to_none=True)
    (g_loss + config.embedding_weight * e_loss).backward()
    opt_g.step()
    d_module.enable_hooks()
    return g_loss, e_loss


def _tile_privacy_spent(prior: list[MechanismEntry], engine: PrivacyEngine,
                        reserved_entries: tuple[MechanismEntry, ...], config: ImageTrainingConfig) -> PrivacySpent:
    """The run's (ε, δ) from one accountant over the releases, Opacus' DP-SGD history and the reserved entries.

    Raises:
        InternalError: Opacus did not record ``config.n_steps`` steps, or ε exceeds the target.
    """
    entries = (*prior, *_entries(engine), *reserved_entries)
    if sum(e.steps for e in entries if e.label.startswith("discriminator")) != config.n_steps:
        raise InternalError("the accountant did not record every DP-SGD step")
    spent = epsilon_for(entries, delta=config.target_delta, accountant=config.accountant)
    if spent > config.target_epsilon * (1 + 1e-9):
        raise InternalError(f"spent ε={spent:.4f} exceeds the target {config.target_epsilon}")
    return PrivacySpent(spent, config.target_delta, config.accountant, entries)


def _per_unit_grad_samples(module: nn.Module, owner: torch.Tensor, n_units: int, n_real: int) -> None:
    """Replace the per-tile gradients of the real tiles by one summed gradient per unit.

    Opacus' optimizer then clips each ROW of ``p.grad_sample`` at C: with the real tiles'
    rows summed per unit (``owner``: the unit of each real tile, 0…n_units−1), one unit's
    whole contribution is clipped together, so the sensitivity is C per unit whatever its
    tile count. Fake rows (after ``n_real``) keep their own rows.
    """
    for p in module.parameters():
        gs = getattr(p, "grad_sample", None)
        if gs is None:
            continue
        if isinstance(gs, list):
            gs = torch.cat(gs, dim=0)
        summed = torch.zeros((n_units, *gs.shape[1:]), dtype=gs.dtype).index_add_(0, owner, gs[:n_real])
        p.grad_sample = torch.cat([summed, gs[n_real:]], dim=0)


def _entries(engine: PrivacyEngine) -> list[MechanismEntry]:
    return [MechanismEntry("discriminator DP-SGD", float(s), float(q), int(k)) for s, q, k in engine.accountant.history]


def generate_tiles(model: TileModel, n: int, *, seed: int, fixed_class: int | None = None,
                   batch: int = 512) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``n`` uint8 tiles [m, size, size, channels] and their class indices, ``batch`` at a time
    (post-processing; one PUBLIC latent stream from ``seed``). ``fixed_class``: every tile of
    that class (conditional models only)."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0x1A6]).generate_state(1)[0]))
    probs = None if model.condition_probs is None else torch.as_tensor(model.condition_probs, dtype=torch.float64)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        with torch.no_grad():  # per batch, never across the yield (it would leak into the caller)
            z = torch.randn(m, model.config.latent_dim, generator=gen)
            cond = idx = None
            if probs is not None:
                idx = (torch.full((m,), fixed_class, dtype=torch.long) if fixed_class is not None
                       else torch.multinomial(probs, m, replacement=True, generator=gen))
                cond = F.one_hot(idx, probs.shape[0]).float()
            tile = model.generator(z, cond).permute(0, 2, 3, 1).add(1.0).mul(127.5).round().clamp(0, 255)
        yield tile.to(torch.uint8).numpy(), (None if idx is None else idx.numpy())


def sample_tiles(model: TileModel, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` uint8 tiles [n, size, size, channels] and their class indices (post-processing)."""
    parts = list(generate_tiles(model, n, seed=seed))
    labels = [lab for _, lab in parts if lab is not None]
    return np.concatenate([t for t, _ in parts]), (np.concatenate(labels) if labels else None)
