"""Targeted shadow-modelling membership attack (Stadler, Oprisanu, Troncoso, USENIX Security 2022,
"Synthetic Data - Anonymisation Groundhog Day"), aimed at the most vulnerable training rows.

PRIVACY: this audit reads private rows — the targets ARE training rows, the reference
population is the holdout. It is NOT differentially private and its results (which row,
its AUC) are INTERNAL ONLY (the steward's internal report). Every shadow model and shadow
synthetic table is discarded when the audit returns; none of them enters a bundle, and
nothing here feeds back into the released model.

Game, per target t and shadow pair i (the attacker knows the generator, its configuration
and a reference population; it does not know the release's seed):

1. Targets: the ``n_targets`` training rows with the largest mean Euclidean distance to
   their k = 5 nearest other training rows in the metadata-only encoding
   (:func:`synthrelease.audits._encoding.encode_for_distance`, or the modality's own
   ``distance_encoding``: for sequences a positional one-hot whose squared distance is the
   number of differing positions) — the "vulnerable record" rule of Meeus et al. 2023
   (arXiv 2306.10308).
2. Reference population = the holdout (non-members), minus any holdout row whose encoding
   equals a target's. Pair i draws R_i (``shadow_rows`` rows, without replacement); the
   synthesizer is trained on R_i ("out") and on R_i ∪ {t} ("in": add/remove one row, the
   project's DP neighbouring relation), and ``synthetic_rows`` rows are sampled from each.
   R_i and its "out" table are shared by all targets (cost: ``n_pairs × (1 + n_targets)``
   synthesizer fits instead of ``2 × n_pairs × n_targets``).
3. Features of a synthetic table S (encoded as in 1.): Stadler's "naive" set — per encoded
   column mean, std and 10/50/90 % quantiles — plus target-specific distances: the 5
   smallest distances from t to S, the share of S within r_t of t (r_t = distance from t to
   its nearest reference row, known to the attacker) and the share of exact copies of t.
4. Per target and feature set ("distance" alone, "naive+distance"), a random forest (fixed
   ``random_state``) learns "in" vs "out"; it is scored by leave-pairs-out cross-validation
   (GroupKFold over pairs, so both tables of a pair are held out together and every
   training fold stays balanced); AUC from the out-of-fold probabilities. A target's AUC is
   that of the "distance" set, fixed in advance (taking the better of the two would bias
   it upwards); the "naive+distance" AUC is reported beside it. With few pairs the ~5 × width
   naive features let a forest find chance separators, and on the copy sanity check their
   forest generalised worse to the released table.

Noise: with P pairs each AUC rests on 2P tables. Measured on breast cancer with a
no-signal synthesizer (bootstrap of the holdout), one target, 20 attack seeds: P = 4 gives
mean 0.51, 95th percentile 0.91; P = 10 gives mean 0.48, 95th percentile 0.63, max 0.71
(benchmarks/results/shadow_attack.md). The max over several targets is biased further up.
Use ≥ 20 pairs before reading a gate threshold such as 0.6.

``shadow_mia_auc`` is the maximum over targets (the most exposed one) — with few pairs the
maximum of several noisy AUCs is biased upwards, so read it with ``n_shadow_pairs``;
``shadow_mia_auc_mean`` is the mean. Optional last step of Stadler et al.: with
``released=`` the per-target "distance" forest, fitted on all pairs, scores the
actual released table (subsampled to ``synthetic_rows`` if longer). Every target is a
member, so this is one draw per target, not an AUC; a population shift between the shadow
tables (reference rows) and the release (training rows) makes it less reliable than the
cross-validated AUC (cf. Sarmin et al. 2024 on the Groundhog game's preconditions).

Default synthesizer: the project's DP-GAN (:func:`fit_dp_synthesizer` +
:func:`sample_frame`) with ``training_config`` — same ε, δ, steps and Poisson sample rate
as the release (the batch size is rescaled to the shadow table's size so that
q = batch / rows is unchanged, and δ is lowered to ``default_delta`` only if it would not be
below 1/rows), each fit with its own child seed. Cost: ``n_fits`` fits × one fit's wall
time, reported in the details. Off by default; run when the policy requires it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

from synthrelease.audits._encoding import encode_for_distance
from synthrelease.audits.base import AuditResult
from synthrelease.errors import DataValidationError, PrivacyParameterError
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.parameters import default_delta
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

Synthesizer = Callable[[pd.DataFrame, int, int], pd.DataFrame]
"""``(train_rows, n_rows, seed) -> synthetic rows``: train on ``train_rows``, sample ``n_rows``."""

Encoder = Callable[[pd.DataFrame, Metadata], np.ndarray]
"""``(rows, metadata) -> float array [n, width]``: the space distances are measured in (default
:func:`encode_for_distance`; a modality may supply its own, e.g. sequences' positional one-hot)."""

K_VULNERABLE = 5  # neighbours for the vulnerability score
K_DISTANCES = 5  # smallest target-to-synthetic distances used as features
QUANTILES = (0.1, 0.5, 0.9)
EXACT_COPY = 1e-6
N_TREES = 100
MAX_FOLDS = 5
N_TARGET_FEATURES = K_DISTANCES + 2
# Column selectors into [naive | distance] feature rows; the first one is the attack that
# sets the metrics (fixed in advance: taking the better of the two would bias the AUC up).
FEATURE_SETS: dict[str, slice] = {"distance": slice(-N_TARGET_FEATURES, None), "naive+distance": slice(None)}


def vulnerable_rows(encoded: np.ndarray, n_targets: int, *, k: int = K_VULNERABLE) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``n_targets`` rows with the largest mean distance to their k nearest other rows.

    Returns ``(positions, scores)``, most vulnerable first (ties: lower position first).
    Reads whatever rows it is given (private training rows here; internal only).
    """
    k = max(1, min(k, len(encoded) - 1))
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(encoded)
    dist, _ = nn.kneighbors(encoded)
    score = dist[:, 1:].mean(axis=1)  # column 0 is the row itself (or an exact duplicate: distance 0)
    order = np.lexsort((np.arange(len(score)), -score))[:n_targets]
    return order, score[order]


def table_features(synthetic: np.ndarray) -> np.ndarray:
    """Stadler's "naive" features of one encoded synthetic table: per-column mean, std, quantiles."""
    return np.concatenate([synthetic.mean(axis=0), synthetic.std(axis=0),
                           np.quantile(synthetic, QUANTILES, axis=0).ravel()])


def target_features(synthetic: np.ndarray, target: np.ndarray, radius: float) -> np.ndarray:
    """Distances from the target to the synthetic rows: the 5 smallest, share within ``radius``, copy share."""
    d = np.sqrt(np.square(synthetic.astype(np.float64) - target.astype(np.float64)).sum(axis=1))
    k = min(K_DISTANCES, len(d))
    smallest = np.sort(np.partition(d, k - 1)[:k])
    smallest = np.pad(smallest, (0, K_DISTANCES - k), constant_values=smallest[-1])
    return np.concatenate([smallest, [np.mean(d <= radius), np.mean(d <= EXACT_COPY)]])


def retraining_synthesizer(metadata: Metadata, config: Any, *, condition_column: str | None, sample_rate: float,
                           fit: Callable[..., Any], sample: Callable[..., pd.DataFrame]) -> Synthesizer:
    """A modality's trainer and sampler as a shadow synthesizer, run with ``config`` at Poisson
    rate ``sample_rate`` (``config``: the release's settings, a dataclass with ``seed``,
    ``target_delta``, ``batch_size`` and optionally ``public_rows``).

    Each call trains a fresh model (its seed derived from the call's seed) on the rows it
    is given and samples ``n_rows`` rows; the model is dropped afterwards.
    """
    from synthrelease.privacy.randomness import SeedTree

    def fit_and_sample(train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        tree = SeedTree(seed)
        m = len(train)
        delta = config.target_delta if config.target_delta < 1.0 / m else default_delta(m)
        cfg = dataclasses.replace(config, seed=tree.integer("fit"), target_delta=delta,
                                  batch_size=max(1, round(m * sample_rate)),
                                  **({"public_rows": 0} if hasattr(config, "public_rows") else {}))
        model = fit(train, metadata, cfg, condition_column=condition_column)
        return sample(model, n_rows, seed=tree.integer("sample"))

    return fit_and_sample


def _check_settings(real_train: pd.DataFrame, holdout: pd.DataFrame, n_targets: int, n_shadow_pairs: int) -> None:
    if n_targets < 1:
        raise PrivacyParameterError(f"shadow attack: n_targets must be >= 1, got {n_targets}")
    if n_shadow_pairs < 2:
        raise PrivacyParameterError(f"shadow attack: n_shadow_pairs must be >= 2 (cross-validation over "
                                    f"pairs), got {n_shadow_pairs}")
    if len(real_train) < max(2, n_targets):
        raise DataValidationError(f"shadow attack: the training table has {len(real_train)} rows, "
                                  f"fewer than n_targets={n_targets} (or 2)")
    if len(holdout) < 2:
        raise DataValidationError("shadow attack: the holdout (reference population) needs at least 2 rows")


def _cv_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, random_state: int) -> np.ndarray:
    """Out-of-fold P(in) with leave-pairs-out folds."""
    clf = RandomForestClassifier(n_estimators=N_TREES, random_state=random_state, n_jobs=1)
    cv = GroupKFold(n_splits=min(MAX_FOLDS, len(np.unique(groups))))
    return cross_val_predict(clf, x, y, groups=groups, cv=cv, method="predict_proba")[:, 1]


@dataclasses.dataclass(frozen=True)
class _Targets:
    """The attacked training rows (INTERNAL: derived from private rows)."""

    positions: np.ndarray
    """Training-row positions, most vulnerable first."""
    vulnerability: np.ndarray
    """Mean distance of each target to its k nearest other training rows (encoded units)."""
    encoded: np.ndarray
    """The targets' metadata-only encodings, [n_targets, width]."""


def _select_targets(real_train: pd.DataFrame, metadata: Metadata, n_targets: int,
                    encode: Encoder = encode_for_distance) -> _Targets:
    """The ``n_targets`` most vulnerable training rows (reads private rows; INTERNAL)."""
    enc_train = encode(real_train, metadata)
    positions, vulnerability = vulnerable_rows(enc_train, min(n_targets, len(real_train)))
    return _Targets(positions, vulnerability, enc_train[positions])


def _reference_pool(enc_hold: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Positions of the holdout rows that are not exact copies of a target (reads private rows; INTERNAL).

    Raises:
        DataValidationError: fewer than 2 such rows.
    """
    to_target = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(targets).kneighbors(enc_hold)[0][:, 0]
    pool = np.flatnonzero(to_target > EXACT_COPY)
    if len(pool) < 2:
        raise DataValidationError("shadow attack: fewer than 2 holdout rows differ from the targets")
    return pool


def _shadow_sizes(pool_rows: int, train_rows: int, shadow_rows: int | None,
                  synthetic_rows: int | None) -> tuple[int, int]:
    """(rows per reference sample R_i, rows per shadow synthetic table), defaults filled in.

    Raises:
        PrivacyParameterError: a size outside [1, pool_rows] (reference) or below 1 (synthetic).
    """
    m = min(pool_rows, 500) if shadow_rows is None else int(shadow_rows)
    if not 1 <= m <= pool_rows:
        raise PrivacyParameterError(f"shadow attack: shadow_rows={m} must be in [1, {pool_rows}] "
                                    f"(the usable holdout rows)")
    n_syn = train_rows if synthetic_rows is None else int(synthetic_rows)
    if n_syn < 1:
        raise PrivacyParameterError(f"shadow attack: synthetic_rows must be >= 1, got {n_syn}")
    return m, n_syn


def _reference_radius(reference: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each target to its nearest reference row (reads private rows; INTERNAL)."""
    return NearestNeighbors(n_neighbors=1, algorithm="brute").fit(reference).kneighbors(targets)[0][:, 0]


def _require_synthesizer(synthesizer: Synthesizer | None) -> Synthesizer:
    """The synthesizer to retrain, or PrivacyParameterError when none was passed."""
    if synthesizer is None:
        raise PrivacyParameterError("shadow attack: pass the synthesizer to retrain (a modality's "
                                    "shadow_synthesizer, as the release stages do)")
    return synthesizer


class _ShadowFits:
    """Runs the shadow synthesizer fits: times each, reports ``audit:shadow`` progress after each."""

    def __init__(self, synthesizer: Synthesizer, n_rows: int, metadata: Metadata, report: ProgressCallback,
                 total: int, encode: Encoder = encode_for_distance) -> None:
        self._synthesizer, self._n_rows, self._metadata, self._encode = synthesizer, n_rows, metadata, encode
        self._report, self._total = report, total
        self.seconds: list[float] = []
        """Wall-clock seconds of each fit, in call order."""

    def start(self) -> None:
        """Report step 0 of ``total`` fits."""
        self._report(ProgressEvent("audit:shadow", step=0, total=self._total))

    def __call__(self, rows: pd.DataFrame, child: np.random.SeedSequence) -> np.ndarray:
        """Train on ``rows``, sample ``n_rows`` rows, return them encoded (reads private rows; INTERNAL).

        The synthesizer's seed is 31 bits of ``child``; the model and its table are dropped here.
        """
        t0 = time.perf_counter()
        out = self._synthesizer(rows.reset_index(drop=True), self._n_rows,
                                int(child.generate_state(1)[0] & 0x7FFFFFFF))
        self.seconds.append(time.perf_counter() - t0)
        self._report(ProgressEvent("audit:shadow", step=len(self.seconds), total=self._total))
        return self._encode(out, self._metadata)


def _shadow_features(real_train: pd.DataFrame, reference_rows: pd.DataFrame, pool: np.ndarray, shadow_rows: int,
                     targets: _Targets, radius: np.ndarray, pair_seeds: list[np.random.SeedSequence],
                     fit: _ShadowFits) -> list[np.ndarray]:
    """Per target, the [naive | distance] feature rows of every shadow table (reads private rows; INTERNAL).

    Rows per target: pair 0 "out", pair 0 "in", pair 1 "out", ... Pair i draws R_i (``shadow_rows`` rows of
    ``reference_rows`` at positions ``pool``, from its first child seed) and fits "out" once, then
    "in" = R_i ∪ {t} per target, each from its own child seed.
    """
    x: list[list[np.ndarray]] = [[] for _ in targets.positions]
    for ps in pair_seeds:
        sub, out_seed, *in_seeds = ps.spawn(2 + len(targets.positions))
        ref = reference_rows.iloc[np.random.default_rng(sub).choice(pool, size=shadow_rows, replace=False)]
        s_out = fit(ref, out_seed)
        base_out = table_features(s_out)
        for j, pos in enumerate(targets.positions):
            s_in = fit(pd.concat([ref, real_train.iloc[[pos]]], axis=0), in_seeds[j])
            x[j].append(np.concatenate([base_out, target_features(s_out, targets.encoded[j], radius[j])]))
            x[j].append(np.concatenate([table_features(s_in), target_features(s_in, targets.encoded[j], radius[j])]))
    return [np.vstack(rows) for rows in x]


def _encoded_release(released: pd.DataFrame | None, n_syn: int, metadata: Metadata,
                     root: np.random.SeedSequence, encode: Encoder = encode_for_distance) -> np.ndarray | None:
    """The released table, encoded, subsampled to ``n_syn`` rows if longer (seed: a new child of ``root``)."""
    if released is None:
        return None
    rel = released
    if len(rel) > n_syn:  # score on as many rows as the shadow tables had
        rel = rel.iloc[np.sort(np.random.default_rng(root.spawn(1)[0]).choice(len(rel), n_syn, replace=False))]
    return encode(rel, metadata)


def _cross_validated_attacks(x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                             clf_state: int) -> dict[str, dict[str, float]]:
    """Per feature set: leave-pairs-out AUC and advantage (TPR − FPR at P(in) > 0.5) of the forest."""
    by_features: dict[str, dict[str, float]] = {}
    for name, cols in FEATURE_SETS.items():
        scores = _cv_scores(x[:, cols], y, groups, clf_state)
        pred = scores > 0.5
        by_features[name] = {"auc": float(roc_auc_score(y, scores)),
                             "advantage": float(pred[y == 1].mean() - pred[y == 0].mean())}
    return by_features


def _released_p_member(x: np.ndarray, y: np.ndarray, clf_state: int, released: np.ndarray, target: np.ndarray,
                       radius: float) -> float:
    """P(member) of the target in the released table, by the primary-feature forest fitted on all pairs."""
    cols = FEATURE_SETS[next(iter(FEATURE_SETS))]
    clf = RandomForestClassifier(n_estimators=N_TREES, random_state=clf_state, n_jobs=1).fit(x[:, cols], y)
    feats = np.concatenate([table_features(released), target_features(released, target, radius)])[cols]
    return float(clf.predict_proba(feats[None, :])[0, 1])


def _attack_targets(x: list[np.ndarray], n_pairs: int, targets: _Targets, radius: np.ndarray, clf_state: int,
                    released_enc: np.ndarray | None) -> list[dict[str, Any]]:
    """One result row per target: position, vulnerability, radius, AUC per feature set, the primary
    set's AUC and advantage, and (with a release) its P(member). INTERNAL: rows of private data."""
    y = np.tile([0, 1], n_pairs)
    groups = np.repeat(np.arange(n_pairs), 2)
    primary = next(iter(FEATURE_SETS))
    per_target: list[dict[str, Any]] = []
    for j, pos in enumerate(targets.positions):
        row: dict[str, Any] = {"train_row_position": int(pos), "vulnerability": float(targets.vulnerability[j]),
                               "reference_radius": float(radius[j]),
                               "by_features": _cross_validated_attacks(x[j], y, groups, clf_state)}
        row.update(row["by_features"][primary], features=primary)
        if released_enc is not None:
            row["released_p_member"] = _released_p_member(x[j], y, clf_state, released_enc, targets.encoded[j],
                                                          radius[j])
        per_target.append(row)
    return per_target


def _shadow_metrics(per_target: list[dict[str, Any]], released_scored: bool) -> dict[str, float | None]:
    """``shadow_mia_auc`` (max over targets), ``shadow_mia_auc_mean`` and, with a release, its mean P(member)."""
    aucs = np.array([t["auc"] for t in per_target])
    metrics: dict[str, float | None] = {"shadow_mia_auc": float(aucs.max()), "shadow_mia_auc_mean": float(aucs.mean())}
    if released_scored:
        metrics["shadow_released_mean_p_member"] = float(np.mean([t["released_p_member"] for t in per_target]))
    return metrics


def _shadow_details(per_target: list[dict[str, Any]], *, n_shadow_pairs: int, shadow_rows: int, synthetic_rows: int,
                    pool_rows: int, fit_seconds: list[float], runtime: float, released_scored: bool) -> dict[str, Any]:
    """The audit's details: per-target rows, sizes, methods, fit count and timings (seconds). INTERNAL."""
    return {
        "targets": per_target,
        "n_targets": len(per_target), "n_shadow_pairs": n_shadow_pairs, "shadow_rows": shadow_rows,
        "synthetic_rows": synthetic_rows, "reference": "holdout (non-members), minus exact copies of the targets",
        "reference_pool_rows": pool_rows,
        "features": {"distance": "target distances (5 nearest, share within the reference radius, exact-copy "
                                 "share)", "naive+distance": "per encoded column mean/std/q10/q50/q90 + distance"},
        "classifier": f"RandomForest({N_TREES} trees), GroupKFold over pairs (leave-pairs-out)",
        "n_fits": len(fit_seconds), "seconds_per_fit_mean": float(np.mean(fit_seconds)),
        "seconds_per_fit_max": float(np.max(fit_seconds)), "seconds_fitting": float(np.sum(fit_seconds)),
        "seconds_total": runtime,
        "cost": f"{len(fit_seconds)} synthesizer fits (n_pairs × (1 + n_targets)), "
                f"{np.mean(fit_seconds):.2f} s each on average",
        "released_scored": released_scored,
        "note": "NOT DP; reads training rows (targets) and holdout rows; internal only. Shadow models "
                "and tables were discarded.",
    }


def run_shadow_attack(
    real_train: pd.DataFrame,
    holdout: pd.DataFrame,
    metadata: Metadata,
    training_config: Any,
    *,
    seed: int,
    n_targets: int = 5,
    n_shadow_pairs: int = 8,
    shadow_rows: int | None = None,
    synthetic_rows: int | None = None,
    synthesizer: Synthesizer | None = None,
    condition_column: str | None = None,
    released: pd.DataFrame | None = None,
    progress: ProgressCallback | None = None,
    encode: Encoder | None = None,
) -> AuditResult:
    """Shadow-modelling membership attack on the most vulnerable training rows (audit ``shadow``).

    Args:
        real_train: the private training rows (members); the targets are taken from them.
        holdout: private rows never trained on; the attacker's reference population.
        training_config: the release's settings (unused here: the caller builds ``synthesizer``
            from them; kept so that every audit is called alike).
        seed: root of every random choice (``np.random.SeedSequence(seed)`` children).
        n_targets, n_shadow_pairs: targets attacked; ("out", "in") table pairs per target.
        shadow_rows: rows of each reference sample R_i (default min(len(holdout), 500)).
        synthetic_rows: rows sampled per shadow table (default ``len(real_train)``, the size of
            the release the pipeline samples, so that shadow and released tables compare).
        synthesizer: ``(rows, n_rows, seed) -> synthetic rows`` (required: e.g. a modality's
            ``shadow_synthesizer``, built with :func:`retraining_synthesizer`).
        condition_column: the DP-GAN's condition column (default ``metadata.target``).
        released: the actual released synthetic table, scored per target (optional).
        encode: the distance space (default :func:`encode_for_distance`; a modality's
            ``distance_encoding``, e.g. sequences' positional one-hot).

    Returns:
        AuditResult ``shadow``: ``shadow_mia_auc`` (max over targets), ``shadow_mia_auc_mean``;
        details per target (training-row position, vulnerability score, AUC, advantage),
        ``n_fits``, seconds per fit and in total. NOT DP; INTERNAL ONLY.

    Raises:
        PrivacyParameterError: impossible settings; DataValidationError: too few rows.
    """
    started = time.perf_counter()
    _check_settings(real_train, holdout, n_targets, n_shadow_pairs)
    encode = encode or encode_for_distance
    targets = _select_targets(real_train, metadata, n_targets, encode)
    enc_hold = encode(holdout, metadata)
    pool = _reference_pool(enc_hold, targets.encoded)
    m, n_syn = _shadow_sizes(len(pool), len(real_train), shadow_rows, synthetic_rows)
    radius = _reference_radius(enc_hold[pool], targets.encoded)
    fit = _ShadowFits(_require_synthesizer(synthesizer), n_syn, metadata, progress or ignore_progress,
                      total=n_shadow_pairs * (1 + len(targets.positions)), encode=encode)

    root = np.random.SeedSequence(seed)
    pair_seeds = root.spawn(n_shadow_pairs)
    fit.start()
    x = _shadow_features(real_train, holdout, pool, m, targets, radius, pair_seeds, fit)
    clf_state = int(root.generate_state(1)[0] & 0x7FFFFFFF)
    released_enc = _encoded_release(released, n_syn, metadata, root, encode)
    per_target = _attack_targets(x, n_shadow_pairs, targets, radius, clf_state, released_enc)

    metrics = _shadow_metrics(per_target, released_enc is not None)
    runtime = time.perf_counter() - started
    details = _shadow_details(per_target, n_shadow_pairs=n_shadow_pairs, shadow_rows=m, synthetic_rows=n_syn,
                              pool_rows=len(pool), fit_seconds=fit.seconds, runtime=runtime,
                              released_scored=released is not None)
    return AuditResult("shadow", metrics, details, runtime_s=runtime)
