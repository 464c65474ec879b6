"""Private Evolution over the public tissue simulator (Sim-PE): DP tiles without training a network.

Private Evolution (Lin, Gopi, Kulkarni, Nori, Yekhanin, ICLR 2024) keeps a population of
candidates from a PUBLIC generator and moves it toward the private data using nothing but
DP nearest-neighbour vote histograms. Sim-PE (Lin et al. 2025) uses a simulator as that
public generator. Here the candidates are parameter vectors of the procedural tissue
simulator (:mod:`synthrelease.modalities.image.simulator`), whose stain family the
metadata declares. Each iteration runs these steps:

1. render every candidate (public parameters, public layout seed);
2. map candidates and private tiles to the tile feature view
   (:func:`synthrelease.modalities.image.features.feature_view`) and to wavelet scattering
   features (:mod:`synthrelease.modalities.image.scattering`), scaled by the view's DECLARED
   bounds and then all by the spread of each feature over the first, random population —
   tiles of the public prior (:func:`prior_scale`; no statistic of the private tiles enters
   the scaling);
3. let each private tile vote for its nearest candidate of its own label. A tile's vote
   weighs 1/m, where m is the public cap of tiles per person, so one person moves the vote
   histogram by at most 1 in L2 norm;
4. release the histogram with Gaussian noise σ (one accounted mechanism), and subtract a
   threshold of ``threshold_sigmas`` · σ;
5. draw the next population in proportion to the thresholded votes and perturb each draw
   (post-processing, public randomness).

Privacy: T iterations are T Gaussian releases of sensitivity 1 on the whole data (sample
rate 1). They share one accountant with the release's other entries, and σ is calibrated
so that the total is the target (ε, δ). Neither the simulator nor the candidates ever see
a private pixel, except through the noisy histograms. The model released is a population
of simulator parameters and their noisy weights. Sampling it renders fresh layouts: it is
post-processing.

Limits: the tiles can only be as varied as the simulator. A tissue it does not know
(another stain, another organ) gets the closest the simulator can draw. Without a declared
stain the modality keeps its DP GAN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthrelease.errors import PrivacyParameterError
from synthrelease.gan.trainer import PrivacySpent
from synthrelease.modalities.image import simulator
from synthrelease.privacy.accounting import MechanismEntry, calibrate_noise_multiplier, epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree, gaussian_noise
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

VOTE_LABEL = "Sim-PE vote histograms (Gaussian, sensitivity 1)"
REACH_LABEL = "simulator reach check (Gaussian count, sensitivity 1)"
REACH_PRIOR, REACH_REFERENCE = 500, 300
"""Public prior tiles the reach check compares against, and fresh prior tiles that set its radius."""
REACH_QUANTILE = 99.0
"""The radius: this percentile of the fresh prior tiles' distance to their nearest prior tile."""
REACH_MAX_NOISE = 0.1
"""The check runs only when its noise s.d. is at most this share of the public unit count;
noisier (few tiles, small ε), it could not tell in from out of reach: no ε is spent on it and
Sim-PE runs, as the declared stain says. Measured at 64 px (112 tiles) and ε = 1: σ/n ≈ 0.9,
the check flipped between the generators from run to run."""
REACH_MIN_SHARE = 0.5
"""Sim-PE runs when the DP share of private tiles within the radius is at least this; else the DCGAN.
Measured (``benchmarks/image_tiles.py`` data, no noise): the real H&E slide 0.84, the same tiles
with red and green swapped 0.007, simulated fluorescence 0.0, simulated IHC-DAB declared as H&E 0.52."""
VOTES_PER_SIGMA = 1.0
"""The population is sized so that a candidate's expected vote count is this many σ:
N = public persons / (VOTES_PER_SIGMA · σ), within [MIN_POPULATION per class, max_population].
Measured on the H&E slide at ε = 10 (3 runs each; KID, PRDC coverage): 1 with
evolution_variation 0.25 gives 0.25–0.56 and 0.35–0.38; with 0.15, 1 gave 0.35–0.38 and
0.29–0.37, 2 gave 0.49–0.59 and 0.25–0.30, 4 gave 0.57–0.73 and 0.16–0.25. More, noisier
candidates beat fewer, surer ones."""
MIN_POPULATION = 8


@dataclass(frozen=True)
class EvolutionPlan:
    """What a Sim-PE run does, from PUBLIC quantities only (the DP person count, ε, δ, settings).

    Attributes:
        votes: the vote histograms' mechanism (σ, T iterations) in the accountant.
        per_class: candidates per label class (the population is ``per_class`` × classes).
        variation: the perturbation scale of each iteration (normalised parameter units).
    """

    votes: MechanismEntry
    per_class: int
    variation: tuple[float, ...]


@dataclass
class EvolvedTiles:
    """A Sim-PE model: simulator parameters with noisy weights, no private tile.

    Attributes:
        parameters: [N, P] normalised simulator parameters of the final population.
        weights: [N] thresholded noisy votes (≥ 0) of the final population.
        classes: [N] label class of each candidate (all 0 when unconditional).
        condition_probs: label frequencies (the noisy vote mass per class; post-processing).
        stain, size, channels: what the simulator renders.
        sample_variation: the perturbation applied to each sampled tile's parameters.
    """

    parameters: np.ndarray
    weights: np.ndarray
    classes: np.ndarray
    condition_probs: np.ndarray | None
    stain: str
    size: int
    channels: int
    sample_variation: float
    config: Any
    privacy: PrivacySpent
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    reproducible_private_randomness: bool = False  # test-only noise: such a model is never saved


def plan_evolution(public_units: int, n_classes: int, config: Any,
                   reserved_entries: tuple[MechanismEntry, ...] = ()) -> EvolutionPlan:
    """σ for ``config.evolution_iterations`` vote releases so that they and ``reserved_entries``
    reach the target (ε, δ) in one accountant; the population size follows from σ.

    Raises:
        PrivacyParameterError: the reserved entries leave no budget, or too few iterations.
    """
    iterations = int(config.evolution_iterations)
    if iterations < 1:
        raise PrivacyParameterError("evolution_iterations must be >= 1")
    votes = calibrate_noise_multiplier(target_epsilon=config.target_epsilon, target_delta=config.target_delta,
                                       sample_rate=1.0, steps=iterations, accountant=config.accountant,
                                       prior=reserved_entries, label=VOTE_LABEL)
    classes = max(1, n_classes)
    total = int(public_units / (VOTES_PER_SIGMA * max(votes.noise_multiplier, 1e-9)))
    per_class = max(MIN_POPULATION, min(config.evolution_population, total) // classes)
    start, end = config.evolution_variation, config.evolution_variation / 4
    variation = tuple(float(v) for v in np.geomspace(start, end, iterations))
    return EvolutionPlan(votes=votes, per_class=per_class, variation=variation)


def scaled_features(tiles: np.ndarray) -> np.ndarray:
    """The tile feature view scaled to [0, 1] by its DECLARED bounds (public constants)."""
    from synthrelease.modalities.image.features import feature_view, view_columns

    columns = view_columns(tiles.shape[-1])
    frame = feature_view(tiles)
    lo = np.array([columns[c]["min"] for c in frame.columns])
    hi = np.array([columns[c]["max"] for c in frame.columns])
    return ((frame.to_numpy(dtype=np.float64) - lo) / (hi - lo)).astype(np.float32)


def vote_features(tiles: np.ndarray) -> np.ndarray:
    """What a vote compares: the bound-scaled tile view and the wavelet scattering features
    (:mod:`synthrelease.modalities.image.scattering`), side by side; each row from its tile alone."""
    from synthrelease.modalities.image.scattering import scattering_features

    return np.concatenate([scaled_features(tiles), scattering_features(tiles).astype(np.float32)], axis=1)


def prior_scale(prior_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread of each feature over tiles drawn from the PUBLIC prior (no private input).

    The declared bounds are far wider than what tissue spans for many features (a spectral
    slope bounded by ±8 varies by ±0.5; nuclei per pixel bounded by 0.5 stay under 0.03), so
    distances in the bound-scaled view would ignore them. Rescaling by the median and the
    10–90 % range of simulated tiles weighs every feature by how much tissue moves it; the
    prior is public, so the scale costs no ε. The spread is floored at 1 % of the bound range.
    """
    centre = np.median(prior_features, axis=0)
    spread = np.percentile(prior_features, 90, axis=0) - np.percentile(prior_features, 10, axis=0)
    return centre.astype(np.float32), np.maximum(spread, 0.01).astype(np.float32)


def _render(parameters: np.ndarray, seeds: np.ndarray, model_shape: tuple[str, int, int]) -> np.ndarray:
    stain, size, channels = model_shape
    return simulator.render_tiles(parameters, seeds, size=size, stain=stain, channels=channels)


def vote_histogram(private_features: np.ndarray, private_classes: np.ndarray, candidate_features: np.ndarray,
                   candidate_classes: np.ndarray, vote_weight: float) -> np.ndarray:
    """Each private tile's vote (weight ``vote_weight`` = 1/m) for its nearest candidate of its
    class (L2 in the scaled feature view). Reads private tiles' features; the exact histogram is
    never released, only its noisy version."""
    from sklearn.neighbors import NearestNeighbors

    hist = np.zeros(len(candidate_features))
    for c in np.unique(private_classes):
        pool = np.flatnonzero(candidate_classes == c)
        mine = private_features[private_classes == c]
        if len(pool) == 0 or len(mine) == 0:
            continue
        nearest = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(candidate_features[pool])
        idx = nearest.kneighbors(mine, return_distance=False)[:, 0]
        np.add.at(hist, pool[idx], vote_weight)
    return hist


def _noisy(hist: np.ndarray, sigma: float, secret: PrivateRandomness, iteration: int) -> np.ndarray:
    """The Gaussian release of one vote histogram (sensitivity 1; secret randomness)."""
    noise = gaussian_noise((len(hist),), sigma, secret.torch(f"sim-pe-votes-{iteration}"))
    return hist + noise.numpy()


def _next_population(parameters: np.ndarray, seeds: np.ndarray, classes: np.ndarray, weights: np.ndarray,
                     scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw each class's candidates in proportion to their thresholded noisy votes, then perturb
    their parameters by ``scale`` and give half of them a new layout (post-processing)."""
    chosen = np.empty(len(parameters), dtype=np.int64)
    for c in np.unique(classes):
        pool = np.flatnonzero(classes == c)
        w = weights[pool]
        p = w / w.sum() if w.sum() > 0 else np.full(len(pool), 1.0 / len(pool))
        chosen[pool] = rng.choice(pool, size=len(pool), p=p)
    new_parameters = simulator.perturb_parameters(parameters[chosen], scale, rng)
    new_seeds = np.where(rng.random(len(chosen)) < 0.5, seeds[chosen], rng.integers(0, 2**62, len(chosen)))
    return new_parameters, new_seeds


def evolve_tiles(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int, config: Any, *, stain: str,
                 public_units: int, tiles_per_unit: int, reserved_entries: tuple[MechanismEntry, ...] = (),
                 randomness: PrivateRandomness | None = None,
                 progress: ProgressCallback = ignore_progress) -> EvolvedTiles:
    """Evolve simulator candidates toward the private ``tiles`` (uint8 [n, size, size, channels]).

    Reads the private tiles (their feature view, for the votes). The guarantee: the returned
    model is (ε, δ)-DP together with ``reserved_entries``; per tile, or per person when
    ``tiles_per_unit`` = m > 1 and each person holds at most m of the tiles.
    """
    started = time.perf_counter()
    secret = randomness or PrivateRandomness()
    seeds_tree = SeedTree(config.seed)
    rng = seeds_tree.numpy("sim-pe")
    shape = (stain, int(tiles.shape[1]), int(tiles.shape[3]))
    plan = plan_evolution(public_units, n_classes, config, reserved_entries)
    sigma = plan.votes.noise_multiplier
    classes = max(1, n_classes)
    candidate_classes = np.repeat(np.arange(classes), plan.per_class)
    parameters = simulator.random_parameters(len(candidate_classes), rng)
    seeds = rng.integers(0, 2**62, len(candidate_classes))
    prior = vote_features(_render(parameters, seeds, shape))  # generation 0: the public prior itself
    centre, spread = prior_scale(prior)
    private_features = (vote_features(tiles) - centre) / spread
    private_classes = np.zeros(len(tiles), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    history: list[dict[str, float]] = []
    weights = np.zeros(len(parameters))
    for t, scale in enumerate(plan.variation):
        candidates = prior if t == 0 else vote_features(_render(parameters, seeds, shape))
        candidates = (candidates - centre) / spread
        hist = vote_histogram(private_features, private_classes, candidates, candidate_classes, 1.0 / tiles_per_unit)
        weights = np.maximum(_noisy(hist, sigma, secret, t) - config.evolution_threshold * sigma, 0.0)
        history.append({"iteration": t + 1, "population": float(len(parameters)),
                        "surviving_candidates": float((weights > 0).sum())})  # DP: post-processing of the votes
        progress(ProgressEvent("train:sim-pe", t + 1, len(plan.variation)))
        if t + 1 < len(plan.variation):
            parameters, seeds = _next_population(parameters, seeds, candidate_classes, weights, scale, rng)
    entries = (plan.votes, *reserved_entries)
    spent = epsilon_for(entries, delta=config.target_delta, accountant=config.accountant)
    privacy = PrivacySpent(spent, config.target_delta, config.accountant, entries)
    return EvolvedTiles(parameters, weights, candidate_classes, _class_frequencies(weights, candidate_classes,
                                                                                   n_classes),
                        stain, shape[1], shape[2], plan.variation[-1], config, privacy, history,
                        time.perf_counter() - started, reproducible_private_randomness=secret.reproducible)


@dataclass(frozen=True)
class ReachCheck:
    """The DP answer to "does the simulator reach these tiles?".

    Attributes:
        entry: the one Gaussian count release in the accountant.
        noisy_share: DP share of private tiles (of the public unit count) within the radius.
        radius: the PUBLIC distance (prior-scaled vote view) a tile must be within.
        in_reach: ``noisy_share >= REACH_MIN_SHARE`` (post-processing).
    """

    entry: MechanismEntry
    noisy_share: float
    radius: float
    in_reach: bool

    def as_history(self) -> dict[str, float]:
        return {"simulator_reach_share_dp": self.noisy_share, "simulator_reach_radius": self.radius,
                "simulator_in_reach": float(self.in_reach)}


def reach_entry(config: Any) -> MechanismEntry:
    """The reach check's Gaussian count: σ so that it alone spends ``reach_epsilon_share`` · ε (public)."""
    return calibrate_noise_multiplier(target_epsilon=config.reach_epsilon_share * config.target_epsilon,
                                      target_delta=config.target_delta, sample_rate=1.0, steps=1,
                                      accountant=config.accountant, label=REACH_LABEL)


def check_reach(tiles: np.ndarray, config: Any, *, stain: str, public_units: int, tiles_per_unit: int,
                secret: PrivateRandomness) -> ReachCheck:
    """Count the private tiles within a public radius of the simulator's prior; release the count once.

    The prior tiles, their scale and the radius come from the public seed alone. A tile weighs
    1/m (m tiles per person at most): sensitivity 1 per person. σ is calibrated so that this
    release alone spends ``config.reach_epsilon_share`` · ε; the caller passes its entry on as
    reserved, so one accountant covers it and everything trained after it.
    """
    from sklearn.neighbors import NearestNeighbors

    rng = SeedTree(config.seed).numpy("sim-pe-reach")
    shape = (stain, int(tiles.shape[1]), int(tiles.shape[3]))

    def prior_tiles(n: int) -> np.ndarray:
        return vote_features(_render(simulator.random_parameters(n, rng), rng.integers(0, 2**62, n), shape))

    prior = prior_tiles(REACH_PRIOR)
    centre, spread = prior_scale(prior)
    nearest = NearestNeighbors(n_neighbors=1).fit((prior - centre) / spread)
    reference = nearest.kneighbors((prior_tiles(REACH_REFERENCE) - centre) / spread)[0][:, 0]
    radius = float(np.percentile(reference, REACH_QUANTILE))
    inside = nearest.kneighbors((vote_features(tiles) - centre) / spread)[0][:, 0] <= radius
    entry = reach_entry(config)
    noisy = float(inside.sum() / tiles_per_unit) + float(
        gaussian_noise((1,), entry.noise_multiplier, secret.torch("sim-pe-reach"))[0])
    share = noisy / max(public_units, 1)
    return ReachCheck(entry, share, radius, share >= REACH_MIN_SHARE)


def evolve_within_reach(tiles: np.ndarray, labels: np.ndarray | None, n_classes: int, config: Any, *, stain: str,
                        public_units: int, tiles_per_unit: int, fallback: Callable[[tuple[MechanismEntry, ...]], Any],
                        reserved_entries: tuple[MechanismEntry, ...] = (),
                        randomness: PrivateRandomness | None = None,
                        progress: ProgressCallback = ignore_progress) -> Any:
    """Sim-PE when the DP reach check finds the tiles within the simulator's reach, else
    ``fallback(reserved)`` (the DP DCGAN); either way one accountant covers the check too.

    ``config.reach_epsilon_share`` = 0 skips the check (Sim-PE always), and so does a check
    too noisy to decide (:data:`REACH_MAX_NOISE`; public). The check's result is the first
    entry of the model's ``history`` (DP output).
    """
    secret = randomness or PrivateRandomness()
    too_noisy = (config.reach_epsilon_share > 0
                 and reach_entry(config).noise_multiplier > REACH_MAX_NOISE * max(public_units, 1))
    if config.reach_epsilon_share <= 0 or too_noisy:
        model = evolve_tiles(tiles, labels, n_classes, config, stain=stain, public_units=public_units,
                             tiles_per_unit=tiles_per_unit, reserved_entries=reserved_entries, randomness=secret,
                             progress=progress)
        if too_noisy:  # public: σ and the public unit count
            model.history.insert(0, {"simulator_reach_check_skipped_too_noisy": 1.0})
        return model
    reach = check_reach(tiles, config, stain=stain, public_units=public_units, tiles_per_unit=tiles_per_unit,
                        secret=secret)
    reserved = (reach.entry, *reserved_entries)
    if reach.in_reach:
        model = evolve_tiles(tiles, labels, n_classes, config, stain=stain, public_units=public_units,
                             tiles_per_unit=tiles_per_unit, reserved_entries=reserved, randomness=secret,
                             progress=progress)
    else:
        model = fallback(reserved)
    model.history.insert(0, reach.as_history())
    return model


def _class_frequencies(weights: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray | None:
    """Label frequencies from the final noisy vote mass per class (post-processing); uniform if empty."""
    if n_classes == 0:
        return None
    mass = np.array([weights[classes == c].sum() for c in range(n_classes)])
    return mass / mass.sum() if mass.sum() > 0 else np.full(n_classes, 1.0 / n_classes)


def generate_evolved(model: EvolvedTiles, n: int, *, seed: int, fixed_class: int | None = None,
                     batch: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``n`` uint8 tiles and label indices from the evolved population, ``batch`` at a time
    (post-processing; one PUBLIC stream from ``seed``): a class by the DP label frequencies (or
    ``fixed_class``), a candidate by its noisy weight, its parameters perturbed by
    ``sample_variation``, a fresh layout."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x51E]))
    for start in range(0, n, batch):
        m = min(batch, n - start)
        classes = None
        if model.condition_probs is not None:
            classes = (np.full(m, fixed_class, dtype=np.int64) if fixed_class is not None
                       else rng.choice(len(model.condition_probs), size=m, p=model.condition_probs))
            chosen = np.empty(m, dtype=np.int64)
            for c in np.unique(classes):
                where = np.flatnonzero(classes == c)
                chosen[where] = _draw_candidates(model, np.flatnonzero(model.classes == c), len(where), rng)
        else:
            chosen = _draw_candidates(model, np.arange(len(model.parameters)), m, rng)
        parameters = simulator.perturb_parameters(model.parameters[chosen], model.sample_variation, rng)
        seeds = rng.integers(0, 2**62, m)
        yield _render(parameters, seeds, (model.stain, model.size, model.channels)), classes


def sample_evolved(model: EvolvedTiles, n_rows: int, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``n_rows`` tiles (uint8 [n, size, size, channels]) and label indices (post-processing)."""
    parts = list(generate_evolved(model, n_rows, seed=seed))
    labels = [lab for _, lab in parts if lab is not None]
    return np.concatenate([t for t, _ in parts]), (np.concatenate(labels) if labels else None)


def _draw_candidates(model: EvolvedTiles, pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    w = model.weights[pool]
    p = w / w.sum() if w.sum() > 0 else np.full(len(pool), 1.0 / len(pool))
    return rng.choice(pool, size=n, p=p)


def torch_payload(model: EvolvedTiles) -> dict[str, torch.Tensor]:
    """The model's arrays as tensors for its model file (no pickle)."""
    return {"parameters": torch.as_tensor(model.parameters, dtype=torch.float64),
            "weights": torch.as_tensor(model.weights, dtype=torch.float64),
            "classes": torch.as_tensor(model.classes, dtype=torch.int64)}
