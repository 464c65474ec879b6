"""Image-aware audits of a synthetic tile release: fidelity, diversity, memorisation, membership, utility.

INTERNAL ONLY: these audits read the private training and holdout tiles; nothing here is
differentially private. Their figures belong in the steward's internal report; only the
gate's verdict and coarse, rounded figures may leave it.

Fidelity, diversity, the membership attack and utility work in the feature space of
:func:`~synthrelease.modalities.image.features.feature_view` (colour, intensity and texture statistics of
each tile), standardised by the real training tiles' mean and standard deviation. That space
does not see shapes or cell morphology: a generator can match it while drawing implausible
cells. Memorisation is checked in pixel space too (L2 on [0, 1] and SSIM).

Every pairwise computation is blocked (at most ``BLOCK × BLOCK`` distances, or one block of
flattened tiles in float32, at a time), so memory stays bounded for thousands of tiles.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.attack_metrics import LOW_FPRS, attack_summary, roc_points
from synthrelease.audits.base import AuditResult
from synthrelease.modalities.image.features import feature_view
from synthrelease.modalities.image.scattering import scattering_features

BLOCK = 1024
"""Rows per block of blocked feature-space distance computations."""
PIXEL_BLOCK = 512
"""Tiles per block of pixel-space distances (512 flattened 64×64×3 tiles in float32: 25 MB)."""
PRDC_K = 5
"""Nearest neighbours defining the real and synthetic manifolds' radii (Naeem et al. 2020)."""
EXACT_COPY_L2 = 1e-6
NEAR_COPY_SSIM = 0.95
DIVERSITY_MAX_ROWS = 2000
"""Mean pairwise distances use a seeded sample of at most this many tiles per set."""

MEANINGS: dict[str, str] = {
    "kid": ("Kernel inception-style distance (unbiased MMD² with the cubic polynomial kernel) between real training "
            "and synthetic tiles in the standardised feature space; lower is better, and values near "
            "kid_holdout_vs_train are as close as two real samples — it sees colour, intensity and texture "
            "statistics, not cell shapes or tissue architecture."),
    "kid_holdout_vs_train": ("The same KID between the real holdout and the real training tiles: the level expected "
                             "from sampling noise alone, the reference for kid."),
    "kid_scattering": ("The same KID in the wavelet scattering space (synthrelease.modalities.image.scattering: "
                       "Morlet wavelet moduli at 3 scales, orders 1 and 2, rotation-averaged, of the grey and "
                       "haematoxylin maps): it sees texture and the size and spacing of nuclei, not colour."),
    "kid_scattering_holdout_vs_train": ("kid_scattering between the real holdout and the real training tiles: the "
                                        "reference for kid_scattering."),
    "prdc_precision": ("Share of synthetic tiles that fall inside the real tiles' 5-nearest-neighbour feature "
                       "manifold; higher means more realistic colour and texture statistics (not morphology)."),
    "prdc_recall": ("Share of real training tiles that fall inside the synthetic tiles' 5-nearest-neighbour feature "
                    "manifold; higher means the synthetic tiles cover more of the real variety in this feature space."),
    "prdc_density": ("How many real-tile neighbourhoods each synthetic tile falls into, divided by 5 (about 1 for a "
                     "matching distribution); higher than 1 means crowding into dense real regions."),
    "prdc_coverage": ("Share of real training tiles whose 5-nearest-neighbour ball contains at least one synthetic "
                      "tile; higher is better (about 0.97 for two samples of one distribution)."),
    "diversity_synthetic": ("Mean pairwise feature distance within the synthetic tiles divided by the same within "
                            "the training tiles; about 1 is good, well below 1 signals mode collapse in colour and "
                            "texture."),
    "nn_pixel_train_median": ("Median pixel-space L2 distance (on [0, 1]) from each synthetic tile to its nearest "
                              "training tile; much smaller than nn_pixel_holdout_median signals memorisation."),
    "nn_pixel_holdout_median": ("Median pixel-space L2 distance from each synthetic tile to its nearest holdout tile: "
                                "the reference level for nn_pixel_train_median."),
    "exact_copy_share": "Share of synthetic tiles that are pixel-exact copies of a training tile; 0 is good.",
    "near_copy_share_train": ("Share of synthetic tiles whose nearest training tile (pixel space) has SSIM ≥ 0.95 "
                              "with it: near copies; 0 is good."),
    "near_copy_share_holdout": ("The same share against the holdout tiles: the rate expected without memorisation, "
                                "the reference for near_copy_share_train."),
    "nn_mia_auc": ("ROC AUC of a membership attack that flags real tiles close (in feature space) to a synthetic tile "
                   "as training members; 0.5 means no leak, higher is worse."),
    "nn_tpr_at_fpr_1pct": ("Share of training tiles that attack flags when it wrongly flags at most 1 % of holdout "
                           "tiles; about 0.01 means no leak, higher is worse."),
    "nn_tpr_at_fpr_0_1pct": ("The same at 0.1 % false positives (only resolved with ≥ 1,000 holdout tiles); higher is "
                             "worse."),
    "tstr_auc": ("ROC AUC on the real holdout of a logistic regression on the feature view trained on synthetic "
                 "tiles and their labels (macro one-vs-rest for > 2 classes); closer to trtr_auc is better."),
    "trtr_auc": "The same classifier trained on the real training tiles: the reference level for tstr_auc.",
}
CAVEAT = ("Internal-only, not differentially private. The feature space sees colour, intensity and texture "
          "statistics of each tile alone; it cannot judge cell morphology, tissue architecture or stain "
          "artefacts a pathologist would notice: review a tile grid as well.")


def _check(name: str, images: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: images must be uint8 [n, H, W, 1 or 3], not {arr.dtype} {arr.shape}")
    if len(arr) < PRDC_K + 1:
        raise ValueError(f"{name}: needs at least {PRDC_K + 1} tiles, has {len(arr)}")
    if shape is not None and arr.shape[1:] != shape:
        raise ValueError(f"{name}: tile shape {arr.shape[1:]} differs from the training tiles' {shape}")
    return arr


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _kernel_sum(a: np.ndarray, b: np.ndarray, *, same: bool) -> float:
    """Σ k(a_i, b_j) with k(x, y) = (x·y / d + 1)³, over i ≠ j when ``same``; blocked."""
    d = a.shape[1]
    total = 0.0
    for i in range(0, len(a), BLOCK):
        for j in range(0, len(b), BLOCK):
            k = (a[i:i + BLOCK] @ b[j:j + BLOCK].T / d + 1.0) ** 3
            if same and i == j:
                np.fill_diagonal(k, 0.0)
            total += float(k.sum())
    return total


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (as KID, Bińkowski et al. 2018) of two feature sets."""
    m, n = len(x), len(y)
    return (_kernel_sum(x, x, same=True) / (m * (m - 1)) + _kernel_sum(y, y, same=True) / (n * (n - 1))
            - 2.0 * _kernel_sum(x, y, same=False) / (m * n))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return dist[:, k]  # column 0 is the point itself


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k nearest neighbours; blocked distances."""
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    fake_in_real = np.zeros(len(fake), dtype=bool)
    fake_density = np.zeros(len(fake))
    real_in_fake = np.zeros(len(real), dtype=bool)
    real_covered = np.zeros(len(real), dtype=bool)
    for i in range(0, len(real), BLOCK):
        for j in range(0, len(fake), BLOCK):
            d = np.sqrt(_sq_dists(real[i:i + BLOCK], fake[j:j + BLOCK]))  # [real, fake]
            inside_real = d < r_real[i:i + BLOCK, None]
            fake_in_real[j:j + BLOCK] |= inside_real.any(axis=0)
            fake_density[j:j + BLOCK] += inside_real.sum(axis=0)
            real_in_fake[i:i + BLOCK] |= (d < r_fake[None, j:j + BLOCK]).any(axis=1)
            real_covered[i:i + BLOCK] |= inside_real.any(axis=1)
    return {"prdc_precision": float(fake_in_real.mean()), "prdc_recall": float(real_in_fake.mean()),
            "prdc_density": float(fake_density.mean() / k), "prdc_coverage": float(real_covered.mean())}


def _mean_pairwise(x: np.ndarray) -> float:
    n = len(x)
    total = 0.0
    for i in range(0, n, BLOCK):
        for j in range(0, n, BLOCK):
            total += float(np.sqrt(_sq_dists(x[i:i + BLOCK], x[j:j + BLOCK])).sum())
    return total / (n * (n - 1))  # the diagonal contributes (numerically) zero


def _nearest(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query row's nearest reference row (feature space, sklearn)."""
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=1).fit(ref).kneighbors(query)
    return dist[:, 0], idx[:, 0]


def _nearest_pixel(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference tile of each query tile in pixel space (L2 on [0, 1]).

    Candidates come from blocked float32 matrix products (one block of flattened tiles at a
    time); the winner's distance is then recomputed exactly in float64.
    """
    q_flat, r_flat = query.reshape(len(query), -1), ref.reshape(len(ref), -1)
    best = np.full(len(query), np.inf)
    arg = np.zeros(len(query), dtype=np.int64)
    b = PIXEL_BLOCK
    for j in range(0, len(ref), b):
        r = r_flat[j:j + b].astype(np.float32) / 255.0
        r_norm = (r * r).sum(1)
        for i in range(0, len(query), b):
            q = q_flat[i:i + b].astype(np.float32) / 255.0
            d = (q * q).sum(1)[:, None] + r_norm[None, :] - 2.0 * (q @ r.T)
            k = d.argmin(axis=1)
            v = d[np.arange(len(k)), k]
            better = v < best[i:i + b]
            best[i:i + b][better] = v[better]
            arg[i:i + b][better] = j + k[better]
    exact = np.empty(len(query))
    for i in range(0, len(query), b):
        diff = q_flat[i:i + b].astype(np.float64) - r_flat[arg[i:i + b]].astype(np.float64)
        exact[i:i + b] = np.sqrt((diff * diff).sum(1)) / 255.0
    return exact, arg


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    h, w = a.shape[:2]
    win = min(7, h, w)
    win -= 1 - win % 2  # odd
    if win < 3:
        return 1.0 if np.array_equal(a, b) else 0.0
    x, y = a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0
    if a.shape[-1] == 1:
        return float(structural_similarity(x[..., 0], y[..., 0], data_range=1.0, win_size=win))
    return float(structural_similarity(x, y, data_range=1.0, channel_axis=-1, win_size=win))


def _balanced(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    return np.sort(rng.choice(n, size=m, replace=False)) if n > m else np.arange(n)


def _auc_on(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    classes = np.unique(y)
    proba = model.predict_proba(x)
    cols = {c: i for i, c in enumerate(model.classes_)}
    scores = np.column_stack([proba[:, cols[c]] if c in cols else np.zeros(len(x)) for c in classes])
    sums = scores.sum(axis=1, keepdims=True)
    scores = np.where(sums > 0, scores / np.where(sums > 0, sums, 1.0), 1.0 / len(classes))
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], scores[:, 1]))
    return float(roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=classes))


def _utility(feats: dict[str, np.ndarray], labels: dict[str, Any], seed: int) -> tuple[dict[str, float | None],
                                                                                         dict[str, Any]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if any(v is None for v in labels.values()):
        return {}, {"skipped": "labels not given for train, holdout and synthetic"}
    y = {k: np.asarray(pd.Series(v).astype(str)) for k, v in labels.items()}
    for k, v in y.items():
        if len(v) != len(feats[k]):
            raise ValueError(f"{k}_labels has {len(v)} entries for {len(feats[k])} tiles")
    classes = {k: sorted(set(v)) for k, v in y.items()}
    metrics: dict[str, float | None] = {"tstr_auc": None, "trtr_auc": None}
    details: dict[str, Any] = {"classes": {k: len(v) for k, v in classes.items()},
                               "model": "LogisticRegression(max_iter=2000) on the standardised feature view",
                               "evaluated_on": "holdout"}
    if len(classes["holdout"]) < 2:
        details["skipped"] = "the holdout has fewer than 2 classes"
        return metrics, details
    for name, source in (("tstr_auc", "synthetic"), ("trtr_auc", "train")):
        if len(classes[source]) < 2:
            details[f"{name}_skipped"] = f"the {source} tiles have fewer than 2 classes"
            continue
        with warnings.catch_warnings(record=True) as caught:  # separable synthetic features: record, go on
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(max_iter=2000, random_state=seed).fit(feats[source], y[source])
        details[f"{name}_converged"] = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        metrics[name] = _auc_on(model, feats["holdout"], y["holdout"])
    return metrics, details


def _checked_tiles(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray) -> dict[str, np.ndarray]:
    """The three tile sets as uint8 [n, H, W, C], checked train first; holdout and synthetic must share the
    training tiles' shape (ValueError otherwise). Reads private tiles; INTERNAL."""
    tiles = {"train": _check("train", train, None)}
    tiles["holdout"] = _check("holdout", holdout, tiles["train"].shape[1:])
    tiles["synthetic"] = _check("synthetic", synthetic, tiles["train"].shape[1:])
    return tiles


def _standardised_features(tiles: dict[str, np.ndarray],
                           featurise: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Feature view (or ``featurise``'s features) of each set, standardised by the training tiles' mean and
    std (std ≤ 1e-12 → 1).

    Reads private tiles; INTERNAL.
    """
    featurise = featurise or (lambda v: feature_view(v).to_numpy(np.float64))
    raw = {k: featurise(v) for k, v in tiles.items()}
    mean, std = raw["train"].mean(axis=0), raw["train"].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return {k: (v - mean) / std for k, v in raw.items()}


def _feature_fidelity(feats: dict[str, np.ndarray]) -> tuple[dict[str, float | None], dict[str, float]]:
    """(KID of synthetic and of holdout against train, synthetic PRDC; holdout PRDC, the noise floor). INTERNAL."""
    metrics: dict[str, float | None] = {"kid": kid(feats["train"], feats["synthetic"]),
                                        "kid_holdout_vs_train": kid(feats["train"], feats["holdout"])}
    metrics.update(prdc(feats["train"], feats["synthetic"]))
    return metrics, prdc(feats["train"], feats["holdout"])


def _scattering_fidelity(tiles: dict[str, np.ndarray]) -> dict[str, float | None]:
    """KID of synthetic and of holdout against train in the wavelet scattering space (texture at three
    scales, grey and haematoxylin). INTERNAL."""
    feats = _standardised_features(tiles, scattering_features)
    return {"kid_scattering": kid(feats["train"], feats["synthetic"]),
            "kid_scattering_holdout_vs_train": kid(feats["train"], feats["holdout"])}


def _diversity(feats: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[float | None, dict[str, Any]]:
    """(``diversity_synthetic``: mean pairwise feature distance, synthetic / train, None when train's is 0;
    details). Samples at most DIVERSITY_MAX_ROWS tiles per set with ``rng``, train first. INTERNAL."""
    sample = {k: feats[k][_balanced(rng, len(feats[k]), min(len(feats[k]), DIVERSITY_MAX_ROWS))]
              for k in ("train", "synthetic")}
    within_train = _mean_pairwise(sample["train"])
    within_syn = _mean_pairwise(sample["synthetic"])
    details = {"mean_pairwise_synthetic": within_syn, "mean_pairwise_train": within_train,
               "rows_sampled": {k: len(v) for k, v in sample.items()}}
    return (within_syn / within_train if within_train > 0 else None), details


def _memorisation(tiles: dict[str, np.ndarray], feats: dict[str, np.ndarray]) -> tuple[dict[str, float | None],
                                                                                      dict[str, Any]]:
    """Nearest train / holdout tile of each synthetic tile in pixel space (L2 on [0, 1]), SSIM with it and
    feature distance: (metrics, details). Reads private tiles; INTERNAL."""
    pix_train, idx_train = _nearest_pixel(tiles["synthetic"], tiles["train"])
    pix_holdout, idx_holdout = _nearest_pixel(tiles["synthetic"], tiles["holdout"])
    ssim_train = np.array([_ssim(s, tiles["train"][i]) for s, i in zip(tiles["synthetic"], idx_train, strict=True)])
    ssim_holdout = np.array([_ssim(s, tiles["holdout"][i])
                             for s, i in zip(tiles["synthetic"], idx_holdout, strict=True)])
    feat_syn_train, _ = _nearest(feats["synthetic"], feats["train"])
    feat_syn_holdout, _ = _nearest(feats["synthetic"], feats["holdout"])
    metrics: dict[str, float | None] = {
        "nn_pixel_train_median": float(np.median(pix_train)),
        "nn_pixel_holdout_median": float(np.median(pix_holdout)),
        "exact_copy_share": float(np.mean(pix_train < EXACT_COPY_L2)),
        "near_copy_share_train": float(np.mean(ssim_train >= NEAR_COPY_SSIM)),
        "near_copy_share_holdout": float(np.mean(ssim_holdout >= NEAR_COPY_SSIM)),
    }
    details = {
        "nn_pixel_train_p05": float(np.quantile(pix_train, 0.05)),
        "nn_pixel_holdout_p05": float(np.quantile(pix_holdout, 0.05)),
        "exact_copy_share_holdout": float(np.mean(pix_holdout < EXACT_COPY_L2)),
        "ssim_train_median": float(np.median(ssim_train)),
        "ssim_holdout_median": float(np.median(ssim_holdout)),
        "nn_feature_train_median": float(np.median(feat_syn_train)),
        "nn_feature_holdout_median": float(np.median(feat_syn_holdout)),
        "exact_copy_l2": EXACT_COPY_L2, "near_copy_ssim": NEAR_COPY_SSIM,
        "pixel_distance": "L2 over all pixels and channels of tiles scaled to [0, 1]",
        "ssim": "skimage.metrics.structural_similarity, data_range=1, channel_axis=-1, win_size=min(7, tile side)",
    }
    return metrics, details


def _membership_attack(feats: dict[str, np.ndarray], rng: np.random.Generator,
                       seed: int) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:
    """Score = minus the feature distance of a real tile to its nearest synthetic tile; members = train,
    non-members = holdout, the larger set subsampled by ``rng`` (train first) to the smaller's size.

    Returns (metrics, attack details, ROC curve). INTERNAL: scores of private tiles.
    """
    train_to_syn, _ = _nearest(feats["train"], feats["synthetic"])
    holdout_to_syn, _ = _nearest(feats["holdout"], feats["synthetic"])
    n_train, n_holdout = len(feats["train"]), len(feats["holdout"])
    m = min(n_train, n_holdout)
    members = -train_to_syn[_balanced(rng, n_train, m)]
    nonmembers = -holdout_to_syn[_balanced(rng, n_holdout, m)]
    attack = attack_summary(members, nonmembers, seed=seed)
    metrics: dict[str, float | None] = {"nn_mia_auc": attack["auc"]}
    for fpr in LOW_FPRS:
        metrics[f"nn_tpr_at_fpr_{fpr}"] = attack[f"tpr_at_fpr_{fpr}"]
    details = {**attack, "members": m, "non_members": m,
               "subsampled": "train" if n_train > m else ("holdout" if n_holdout > m else None),
               "method": ("score = minus the standardised feature distance of a real tile to its nearest "
                          "synthetic tile (higher = more likely a member); synthrelease.audits.attack_metrics")}
    return metrics, details, roc_points(members, nonmembers)


def _image_details(metrics: dict[str, float | None], tiles: dict[str, np.ndarray], holdout_prdc: dict[str, float],
                   diversity: dict[str, Any], memorisation: dict[str, Any], attack: dict[str, Any],
                   roc: dict[str, Any], utility: dict[str, Any]) -> dict[str, Any]:
    """The audit's details: meanings, counts, the noise floor, each step's breakdown, methods. INTERNAL."""
    return {
        "meanings": {k: MEANINGS[k] for k in metrics if k in MEANINGS},
        "tiles": {k: len(v) for k, v in tiles.items()},
        "tile_shape": list(tiles["train"].shape[1:]),
        "feature_space": ("synthrelease.modalities.image.features.feature_view, standardised by the real "
                          "training tiles' "
                          "mean and standard deviation (internal: computed from private tiles)"),
        "holdout_vs_train": {"notice": "PRDC of the real holdout against the real training tiles: the level "
                                       "expected from sampling noise alone", **holdout_prdc},
        "diversity": diversity,
        "memorisation": memorisation,
        "attack": attack,
        "plots": {"notice": "INTERNAL: attack scores of private tiles; never part of a bundle",
                  "roc": {"nn_feature": roc}},
        "utility": utility,
        "kid_kernel": "k(x, y) = (x·y / d + 1)³, d = feature count; unbiased MMD² over all pairs (blocked)",
        "prdc_k": PRDC_K,
        "seed_use": ("one np.random.default_rng(seed): the diversity samples, then the attack subsample; "
                     "attack_summary's bootstrap and the classifier's random_state use seed"),
        "caveat": CAVEAT,
    }


def run_image_audits(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray, *,
                     train_labels: Any = None, holdout_labels: Any = None, synthetic_labels: Any = None,
                     seed: int) -> AuditResult:
    """Audit synthetic tiles against the real training and holdout tiles. INTERNAL: reads private tiles.

    Metrics (``details["meanings"]`` has one sentence each): ``kid``, ``kid_holdout_vs_train``,
    ``kid_scattering``, ``kid_scattering_holdout_vs_train``,
    ``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage``,
    ``diversity_synthetic``, ``nn_pixel_train_median``, ``nn_pixel_holdout_median``,
    ``exact_copy_share``, ``near_copy_share_train``, ``near_copy_share_holdout``,
    ``nn_mia_auc``, ``nn_tpr_at_fpr_1pct``, ``nn_tpr_at_fpr_0_1pct`` and, when all three label
    sets are given, ``tstr_auc`` / ``trtr_auc`` (None when a side has fewer than 2 classes).

    The membership attack scores each real tile by minus its feature distance to the nearest
    synthetic tile; members = training tiles, non-members = holdout tiles, the larger set
    subsampled (seeded) to the size of the smaller.

    Args:
        train, holdout, synthetic: uint8 ``[n, H, W, C]`` (C = 1 or 3; ``[n, H, W]`` is grey), one
            shape for all, at least 6 tiles each.
        train_labels, holdout_labels, synthetic_labels: optional per-tile class labels.
        seed: seeds the diversity sample, the attack subsample, the bootstrap and the classifier.

    Returns:
        AuditResult named ``image`` (``internal_only``).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    tiles = _checked_tiles(train, holdout, synthetic)
    feats = _standardised_features(tiles)
    metrics, holdout_prdc = _feature_fidelity(feats)
    metrics.update(_scattering_fidelity(tiles))
    metrics["diversity_synthetic"], diversity = _diversity(feats, rng)
    memorisation_metrics, memorisation = _memorisation(tiles, feats)
    metrics.update(memorisation_metrics)
    attack_metrics, attack, roc = _membership_attack(feats, rng, seed)
    metrics.update(attack_metrics)
    utility_metrics, utility = _utility(
        feats, {"train": train_labels, "holdout": holdout_labels, "synthetic": synthetic_labels}, seed)
    metrics.update(utility_metrics)
    details = _image_details(metrics, tiles, holdout_prdc, diversity, memorisation, attack, roc, utility)
    return AuditResult("image", metrics, details, time.perf_counter() - started)
