"""Release-gate statistics in a form whose L2 sensitivity is bounded and stated.

These figures READ PRIVATE ROWS (the training rows and the holdout rows). Their exact
values are INTERNAL: only their noisy versions, released elsewhere by the DP gate with
Gaussian noise calibrated to ``Figure.l2_sensitivity``, may leave the organisation.

Setting: ``train`` (n1 private rows the generator saw), ``holdout`` (n0 private rows it
never saw), ``synthetic`` (the generator's output; PUBLIC and fixed) and ``metadata``
(public). Neighbouring inputs differ by one row added to or removed from ``train``, or one
row added to or removed from ``holdout``; the row may hold any value. The sizes n1 and n0
are public. Each sensitivity holds for both directions (n → n+1 and n → n−1), so it is
stated with the smaller neighbour, n − 1.

Everything a figure derives from rows (encodings, bins, models, random choices) comes
from the public metadata, the public synthetic table and ``seed`` only, never from the
private rows, so that a private row can only act through its own per-row term. A figure
that cannot be computed on tables this small (n1 ≤ 1, no column pairs, one class) is
None.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sdmetrics.column_pairs import ContingencySimilarity
from sdmetrics.single_column import KSComplement, TVComplement
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from synthrelease.audits._encoding import distance_embedding
from synthrelease.audits.domias import domias_scores
from synthrelease.audits.float16_shapes import column_blocks, counted_columns, ks_statistics
from synthrelease.audits.neighbours import EXACT_MAX_PAIRS, nearest
from synthrelease.audits.utility import MAX_NATIVE_CATEGORIES, _codes, _features, _numbers, _proba, model_features
from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import Metadata, canonical_category

MISSING = "<NA>"
"""Category string of a missing value (its own category in every discrete comparison)."""

PAIR_BINS = 10
"""Equal-width bins over a numerical column's declared domain for Column Pair Trends."""

COPY_TOLERANCE = 1e-6
"""Encoded distance at or below which a synthetic row is an exact copy of a training row."""

RADIUS_TOLERANCE = 1e-6
"""Slack on the coverage radius (as audits/coverage.py): a copy at radius 0 counts as covered."""

NEIGHBOUR_CANDIDATES = 4
"""Extra candidates an HNSW search returns beyond k (its recall gains from them); the exact search adds
``RERANK_EXTRA`` of its own. Every candidate's distance is recomputed exactly (no BLAS cancellation)."""

TSTR_MIN_SHARE = 0.01
"""Classes whose (noisy) share is outside (0.01, 0.99) are left out of the TSTR AUC mean."""

ATTACKS = ("dcr", "nndr", "density")
"""Membership attacks, each a per-row score from that row and the synthetic table only."""


@dataclass(frozen=True)
class Figure:
    """One gate statistic with its stated L2 sensitivity.

    ``values`` are EXACT and computed from private rows: internal only. The gate releases
    ``values`` plus Gaussian noise calibrated to ``l2_sensitivity`` and compares
    ``finish(noisy values)``.
    """

    name: str
    values: np.ndarray
    l2_sensitivity: float
    finish: Callable[[np.ndarray], float]
    meaning: str
    derivation: str


def _clip01(values: np.ndarray) -> float:
    """Post-processing of a scalar figure: its single value clipped to [0, 1]."""
    return float(np.clip(values[0], 0.0, 1.0))


def _scalar(name: str, value: float, sensitivity: float, meaning: str, derivation: str) -> Figure:
    """A length-1 figure finished by clipping to [0, 1]."""
    return Figure(name, np.array([value], dtype=np.float64), float(sensitivity), _clip01, meaning, derivation)


def _mean_sensitivity(n: int) -> float:
    """1/(n − 1): bound on the change of a mean of [0, 1] per-row terms over n rows when one row is
    added (≤ 1/(n+1)) or removed (≤ 1/(n−1)), n the rows before the change."""
    return 1.0 / (n - 1)


# --------------------------------------------------------------------------- column encodings


def _canonical(series: pd.Series) -> np.ndarray:
    """Canonical category strings of a column (object array); missing → ``MISSING``."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    labels = [canonical_category(u) for u in uniques]
    table = np.array([MISSING if v is None else v for v in labels] + [MISSING], dtype=object)
    return table[codes]


def _numeric_for_shape(series: pd.Series, lo: float, hi: float) -> np.ndarray:
    """Values clipped to the declared [lo, hi]; missing → a sentinel below ``lo`` (so every row
    stays in the empirical CDF)."""
    x = np.clip(_numbers(series), lo, hi)
    x[np.isnan(x)] = lo - (hi - lo) - 1.0
    return x


def _numeric_bins(series: pd.Series, lo: float, hi: float) -> np.ndarray:
    """Bin 0..PAIR_BINS−1 of equal width over the declared [lo, hi] (outside values → edge bins);
    missing → bin PAIR_BINS."""
    x = _numbers(series)
    missing = np.isnan(x)
    bins = np.clip(np.floor((np.nan_to_num(x, nan=lo) - lo) / (hi - lo) * PAIR_BINS), 0, PAIR_BINS - 1)
    return np.where(missing, PAIR_BINS, bins).astype(np.int64)


def _shape_column(df: pd.DataFrame, metadata: Metadata, column: str) -> np.ndarray:
    """Column Shapes input: clipped numbers with a missing sentinel (dates: days / seconds since
    1970-01-01), or canonical category strings."""
    spec = metadata.columns[column]
    if spec.is_numerical:
        return _numeric_for_shape(column_numbers(df[column], spec), *spec.domain())
    return _canonical(df[column])


def _pair_column(df: pd.DataFrame, metadata: Metadata, column: str) -> np.ndarray:
    """Column Pair Trends input: declared-domain bins (dates: of days / seconds since 1970-01-01),
    or canonical category strings."""
    spec = metadata.columns[column]
    if spec.is_numerical:
        return _numeric_bins(column_numbers(df[column], spec), *spec.domain())
    return _canonical(df[column])


# --------------------------------------------------------------------------- 1. quality score


def quality_pairs(metadata: Metadata, *, seed: int, max_pairs: int = 200) -> list[tuple[str, str]]:
    """Column pairs scored by Column Pair Trends: every pair of model columns, or ``max_pairs`` of
    them drawn without replacement with ``np.random.default_rng(seed)`` (public: metadata + seed).

    The drawn pairs are indexed in ``itertools.combinations`` order without listing every pair
    (20,000 columns have 2·10^8 pairs: 14 GiB as a list)."""
    cols = metadata.model_columns
    n = len(cols)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        return list(itertools.combinations(cols, 2))
    chosen = np.sort(np.random.default_rng(seed).choice(total, max_pairs, replace=False))
    first = np.arange(n, dtype=np.int64)
    starts = first * n - first * (first + 1) // 2  # index of pair (i, i + 1) in combinations order
    rows = np.searchsorted(starts, chosen, side="right") - 1
    return [(cols[i], cols[i + 1 + int(k - starts[i])]) for i, k in zip(rows.tolist(), chosen.tolist(), strict=True)]


def column_shape_scores(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """Per model column: sdmetrics ``KSComplement`` (numericals; missing as a sentinel below the
    declared minimum) or ``TVComplement`` (categoricals/booleans; canonical strings, missing a
    category). Float16 columns inside their declared bounds get the same KS by counting
    (:mod:`synthrelease.audits.float16_shapes`). Each score in [0, 1] moves by ≤ 1/(n1 − 1) per
    added/removed training row. Reads private rows: internal only."""
    cols = metadata.model_columns
    scores = dict(_counted_shape_scores(train, synthetic, metadata, counted_columns(train, synthetic, metadata, cols)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in cols:
            if c in scores:
                continue
            real, syn = _shape_column(train, metadata, c), _shape_column(synthetic, metadata, c)
            metric = KSComplement if metadata.columns[c].is_numerical else TVComplement
            scores[c] = float(metric.compute(pd.Series(real), pd.Series(syn)))
            release_mapped_pages()  # a spilled synthetic table: only this column's pages were resident
    return np.array([scores[c] for c in cols])


def _counted_shape_scores(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                          cols: list[str]) -> Iterator[tuple[str, float]]:
    """(column, KSComplement with missing values lowest) of the float16 ``cols`` whose values all
    lie inside the declared bounds (there clipping changes nothing); the rest are skipped. The
    bounds check reads private rows only to choose how the same score is computed."""
    for block, real, syn in column_blocks(train, synthetic, cols):
        lo, hi = (np.array([metadata.columns[c].domain()[k] for c in block]) for k in (0, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-missing column: nanmin warns
            inside = ((np.nanmin(real, 0) >= lo) & (np.nanmax(real, 0) <= hi) & (np.nanmin(syn, 0) >= lo)
                      & (np.nanmax(syn, 0) <= hi))
        scores = 1.0 - ks_statistics(real[:, inside], syn[:, inside], missing_lowest=True)
        yield from zip(np.array(block)[inside].tolist(), scores.tolist(), strict=True)


def pair_trend_scores(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                      pairs: list[tuple[str, str]]) -> np.ndarray:
    """Per pair: sdmetrics ``ContingencySimilarity`` (1 − total variation distance of the joint
    histograms) on declared-domain bins / canonical categories. Each moves by ≤ 1/(n1 − 1) per
    added/removed training row. Reads private rows: internal only."""
    used = sorted({c for pair in pairs for c in pair}, key=metadata.model_columns.index)
    real = {c: _pair_column(train, metadata, c) for c in used}
    syn = {c: _pair_column(synthetic, metadata, c) for c in used}
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in pairs:
            scores.append(float(ContingencySimilarity.compute(pd.DataFrame({a: real[a], b: real[b]}),
                                                              pd.DataFrame({a: syn[a], b: syn[b]}))))
    return np.array(scores)


def quality_score(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, seed: int,
                  max_pairs: int = 200) -> Figure | None:
    """DP-friendly sdmetrics QualityReport overall score: mean of Column Shapes and Column Pair Trends.

    Column Shapes: :func:`column_shape_scores`; Column Pair Trends: :func:`pair_trend_scores` on
    :func:`quality_pairs` (Pearson-based CorrelationSimilarity is left out: unbounded sensitivity).
    Unit: score in [0, 1], higher = closer marginals and pairwise joints.

    Guarantee: l2_sensitivity = 1/(n1 − 1). Every term is 1 − (sup or total-variation distance
    between the training rows' empirical distribution, over ALL n1 rows, and the fixed synthetic
    one); adding/removing a row moves that empirical distribution by ≤ 1/(n1 − 1) in both
    distances, so each term, each mean and the mean of the two means move by at most that.
    Values outside the declared bounds count at the bound. None when n1 ≤ 1, the synthetic table
    is empty, or there is no column pair. The exact value is internal.
    """
    n1 = len(train)
    if n1 <= 1 or len(synthetic) == 0:
        return None
    pairs = quality_pairs(metadata, seed=seed, max_pairs=max_pairs)
    if not pairs:
        return None
    shapes = column_shape_scores(train, synthetic, metadata)
    trends = pair_trend_scores(train, synthetic, metadata, pairs)
    value = 0.5 * (float(np.mean(shapes)) + float(np.mean(trends)))
    return _scalar("quality_score", value, _mean_sensitivity(n1),
                   "Similarity of the training rows' column distributions and column-pair joint histograms "
                   "to the synthetic ones (sdmetrics KS/TV/contingency complements); higher is better.",
                   "Each KS, TV or contingency term is one minus a sup or total-variation distance between the "
                   "training rows' empirical distribution and a fixed one, which one row moves by at most "
                   "1/(n1 - 1); averages keep that bound.")


# --------------------------------------------------------------------------- distances


def _encode(df: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """float64 metadata-only rows for distances (audits/_encoding.py: the plain encoding of the
    model columns, or on wide tables its exact public random projection; each row's image is
    a function of that row alone)."""
    return distance_embedding(df, metadata)


def nearest_distances(queries: np.ndarray, synthetic: np.ndarray, k: int) -> np.ndarray:
    """[n, k] ascending Euclidean distances of each query row to its k nearest synthetic rows.

    Up to :data:`~synthrelease.audits.neighbours.EXACT_MAX_PAIRS` query × synthetic pairs the
    search is exact (:func:`~synthrelease.audits.neighbours.nearest`: FAISS brute force
    on rows centred at the synthetic mean for ``k + RERANK_EXTRA`` candidates, re-ranked in
    float64; 1.4 s against scikit-learn's 2.4 s for 26,048 × 26,048 rows of 108 columns, the
    same distances); above it a FAISS HNSW graph built on the synthetic rows alone
    (approximate: a missed neighbour can only make a distance larger). The distances are
    recomputed from differences, without the GEMM cancellation, so an exact copy is at
    distance 0. Either way each row's result depends on that row and ``synthetic`` only (the
    centre and the graph come from the public synthetic rows), which the sensitivity bounds need.
    """
    if float(len(queries)) * len(synthetic) > EXACT_MAX_PAIRS:  # the graph's recall gains from extra candidates
        return nearest(synthetic, queries, min(k + NEIGHBOUR_CANDIDATES, len(synthetic)), method="hnsw")[0][:, :k]
    return nearest(synthetic, queries, k, method="exact")[0]


COVERAGE_CANDIDATES = 32
"""Synthetic rows checked per training row by :func:`coverage` above ``EXACT_MAX_PAIRS`` pairs."""


def _coverage_radii(synthetic: np.ndarray, k: int) -> np.ndarray:
    """Each synthetic row's distance to its k-th nearest OTHER synthetic row, + ``RADIUS_TOLERANCE``.

    Exact (scikit-learn's brute force) up to ``EXACT_MAX_PAIRS`` synthetic pairs, above it from a
    FAISS HNSW graph (:func:`~synthrelease.audits.neighbours.nearest`; the k + 1 nearest include
    the row itself at distance 0). Public either way: a function of the synthetic rows only.
    """
    if float(len(synthetic)) ** 2 > EXACT_MAX_PAIRS:
        return nearest(synthetic, synthetic, k + 1, method="hnsw")[0][:, k] + RADIUS_TOLERANCE
    return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(synthetic).kneighbors()[0][:, -1] + RADIUS_TOLERANCE


def _covered(queries: np.ndarray, synthetic: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Bool per query: some synthetic row s has ||x − s|| ≤ radii[s].

    Up to ``EXACT_MAX_PAIRS`` query × synthetic pairs: every pair, in blocks of the distance
    matrix (scikit-learn's BLAS kernel, ~64 MB at a time), never all of it. Above: the
    ``COVERAGE_CANDIDATES`` nearest synthetic rows of each query from a FAISS HNSW graph built on
    the synthetic rows alone (approximate: a covering row farther than those is missed). Either
    way a query's answer depends on that query and the public synthetic rows only, which the
    figure's sensitivity bound needs.
    """
    if float(len(queries)) * len(synthetic) > EXACT_MAX_PAIRS:
        dist, idx, _ = nearest(synthetic, queries, min(COVERAGE_CANDIDATES, len(synthetic)), method="hnsw")
        return (dist <= radii[idx]).any(axis=1)

    def reduce(block: np.ndarray, start: int) -> np.ndarray:
        return (block <= radii[None, :]).any(axis=1)

    return np.concatenate(list(pairwise_distances_chunked(queries, synthetic, reduce_func=reduce,
                                                          working_memory=64)))


# --------------------------------------------------------------------------- 2.-4. train-side shares


def coverage(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, k: int = 5) -> Figure | None:
    """Synthetic-manifold recall: share of training rows inside some synthetic row's k-NN ball.

    Radius of synthetic row s (public) = distance to its k-th nearest OTHER synthetic row, plus
    ``RADIUS_TOLERANCE``; a training row is covered if it is within the radius of some synthetic
    row (metadata-only encoding). Unit: share in [0, 1], higher = the synthetic data reaches more of
    the training data. Guarantee: l2_sensitivity = 1/(n1 − 1), a mean of per-row 0/1 terms that
    each depend on that row and the public synthetic table only. None when n1 ≤ 1 or the
    synthetic table has ≤ k rows. The exact value is internal.
    """
    n1 = len(train)
    if n1 <= 1 or len(synthetic) <= k:
        return None
    syn = _encode(synthetic, metadata)
    value = float(np.mean(_covered(_encode(train, metadata), syn, _coverage_radii(syn, k))))
    return _scalar("coverage", value, _mean_sensitivity(n1),
                   "Share of training rows inside the k-nearest-neighbour ball of some synthetic row "
                   "(synthetic-manifold recall); higher is better.",
                   "A mean over the n1 training rows of a 0/1 term fixed by the row and the public synthetic "
                   "table, so one row added or removed moves it by at most 1/(n1 - 1).")


def missing_category_share(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> Figure | None:
    """Share of training rows whose category the synthetic rows never produce, averaged over the
    categorical/boolean model columns (canonical strings; missing is the category ``<NA>``).

    Unit: share in [0, 1], lower is better. Guarantee: l2_sensitivity = 1/(n1 − 1): per column a
    mean of per-row 0/1 terms fixed by the row and the public synthetic table; the average over
    columns keeps the bound. None when n1 ≤ 1 or there is no categorical/boolean model column.
    The exact value is internal.
    """
    n1 = len(train)
    columns = [c for c in metadata.model_columns if c in metadata.discrete_columns]
    if n1 <= 1 or not columns:
        return None
    shares = [np.mean(~np.isin(_canonical(train[c]), np.unique(_canonical(synthetic[c])))) for c in columns]
    return _scalar("missing_category_share", float(np.mean(shares)), _mean_sensitivity(n1),
                   "Share of training rows whose category the synthetic data never produces, averaged over the "
                   "categorical columns (mode collapse); lower is better.",
                   "Per column a mean over the n1 training rows of a 0/1 term fixed by the row and the public "
                   "synthetic table, averaged over columns: one row moves it by at most 1/(n1 - 1).")


def exact_copy_share(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> Figure | None:
    """Share of distinct training rows (each counted once) with a synthetic row at encoded distance
    ≤ ``COPY_TOLERANCE``.

    Unit: share in [0, 1], lower is better. Guarantee: l2_sensitivity = 1/(n1 − 1), a mean over
    training rows of a 0/1 term fixed by the row and the public synthetic table (however many
    synthetic rows copy it). None when n1 ≤ 1 or the synthetic table is empty. The exact value is
    internal.
    """
    n1 = len(train)
    if n1 <= 1 or len(synthetic) == 0:
        return None
    return _copy_figure(nearest_distances(_encode(train, metadata), _encode(synthetic, metadata), 1)[:, 0])


def exact_copy_share_by_key(train_keys: np.ndarray, synthetic_keys: np.ndarray) -> Figure | None:
    """:func:`exact_copy_share` for records compared by a key (e.g. a sequence): the share of
    training records whose key some synthetic record has.

    Guarantee: as :func:`exact_copy_share`, l2_sensitivity = 1/(n1 − 1): a mean over training
    records of a 0/1 term fixed by the record and the public synthetic set.
    """
    n1 = len(train_keys)
    if n1 <= 1 or len(synthetic_keys) == 0:
        return None
    present = set(np.asarray(synthetic_keys).tolist())
    return _copy_figure(np.array([0.0 if k in present else 1.0 for k in np.asarray(train_keys).tolist()]))


def _copy_figure(d1: np.ndarray) -> Figure:
    """:func:`exact_copy_share` from each training row's distance to its nearest synthetic row."""
    return _scalar("exact_copy_share", float(np.mean(d1 <= COPY_TOLERANCE)), _mean_sensitivity(len(d1)),
                   "Share of training rows that the synthetic table reproduces exactly (memorisation); lower is "
                   "better.",
                   "A mean over the n1 training rows of a 0/1 term fixed by the row and the public synthetic "
                   "table, so one row added or removed moves it by at most 1/(n1 - 1).")


# --------------------------------------------------------------------------- 5. membership attacks


def product_of_marginals(synthetic: pd.DataFrame, metadata: Metadata, *, seed: int) -> np.ndarray:
    """PUBLIC DOMIAS reference: the encoded synthetic rows with each metadata column's block of
    encoded features (one-hot group, value + missing indicator) permuted independently with
    ``np.random.default_rng(seed)``, a sample of the product of the synthetic column marginals
    (on wide tables, in the public random projection of :func:`_encode`)."""
    return distance_embedding(synthetic, metadata, permute=np.random.default_rng(seed))


def _no_nan(scores: np.ndarray) -> np.ndarray:
    """NaN scores (both densities underflowed) become −inf: least member-like."""
    return np.where(np.isnan(scores), -np.inf, scores)


ATTACKS = ("dcr", "nndr", "density")


def attack_scores(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                  seed: int, attacks: tuple[str, ...] = ATTACKS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-row membership scores (higher = more member-like): attack → (train rows, holdout rows).

    ``dcr`` = −(distance to the nearest synthetic row); ``nndr`` = −d1/d2 (nearest over
    second-nearest synthetic distance; 0 when both are 0); ``density`` = DOMIAS
    log p_syn(x) − log p_ref(x) (audits/domias.py: PCA ≤ 20 dims and bandwidth rules) with the
    reference fitted on :func:`product_of_marginals`, not on real rows. Every score depends on its
    own row, the public synthetic table and ``seed`` only. Needs ≥ 2 synthetic rows. Reads private
    rows: internal only. ``attacks``: the subset to compute (the density attack is the costly one).
    """
    syn = _encode(synthetic, metadata)
    member, nonmember = _encode(train, metadata), _encode(holdout, metadata)
    queries = np.vstack([member, nonmember])
    scores: dict[str, np.ndarray] = {}
    if "dcr" in attacks or "nndr" in attacks:
        d = nearest_distances(queries, syn, 2)
        scores["dcr"] = -d[:, 0]
        scores["nndr"] = -np.divide(d[:, 0], d[:, 1], out=np.zeros(len(d)), where=d[:, 1] > 0)
    if "density" in attacks:
        reference = product_of_marginals(synthetic, metadata, seed=seed)
        scores["density"] = _no_nan(domias_scores(reference, syn, queries, seed=seed))
    n1 = len(member)
    return {name: (s[:n1], s[n1:]) for name, s in scores.items() if name in attacks}


def attack_auc(member: np.ndarray, nonmember: np.ndarray) -> float:
    """ROC AUC = mean over members of F_N(s_i), F_N(s) = (#{t_j < s} + ½ #{t_j = s}) / n0.

    Sensitivity 1/(min(n1, n0) − 1): a member is one [0, 1] term of a mean over n1; a non-member
    moves every F_N by ≤ 1/(n0 − 1). Equals sklearn's ``roc_auc_score``.
    """
    t = np.sort(np.asarray(nonmember, dtype=np.float64))
    s = np.asarray(member, dtype=np.float64)
    below, upto = np.searchsorted(t, s, side="left"), np.searchsorted(t, s, side="right")
    return float(np.mean((below + 0.5 * (upto - below)) / len(t)))


def partial_tpr(member: np.ndarray, nonmember: np.ndarray, alpha: float) -> float:
    """Normalised partial AUC: TPR averaged over FPR ∈ [0, α] = mean over members of
    max(0, 1 − G(s_i)/α), G(s) = share of non-members with score ≥ s (≈ α/2 with no signal).

    Sensitivity max(1/(n1 − 1), 1/(α (n0 − 1))): a member is one [0, 1] term; a non-member moves
    every G by ≤ 1/(n0 − 1), each term by ≤ that over α.
    """
    t = np.sort(np.asarray(nonmember, dtype=np.float64))
    g = (len(t) - np.searchsorted(t, np.asarray(member, dtype=np.float64), side="left")) / len(t)
    return float(np.mean(np.maximum(0.0, 1.0 - g / alpha)))


def _auc_sensitivity(n1: int, n0: int) -> float:
    return 1.0 / (min(n1, n0) - 1)


def _tpr_sensitivity(n1: int, n0: int, alpha: float) -> float:
    return max(1.0 / (n1 - 1), 1.0 / (alpha * (n0 - 1)))


MEMBERSHIP_FIGURES = ("dcr_mia_auc", "mia_auc_max", "tpr_at_fpr_0.01_max", "tpr_at_fpr_0.001_max")


def membership_figures(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                       *, seed: int, names: tuple[str, ...] = MEMBERSHIP_FIGURES) -> dict[str, Figure | None]:
    """Membership-inference figures from :func:`attack_scores` (computed once); lower is better.

    * ``dcr_mia_auc``: :func:`attack_auc` of ``dcr``; l2 = 1/(min(n1, n0) − 1).
    * ``mia_auc_max``: max over the three attacks' AUCs; l2 = 1/(min(n1, n0) − 1) (a max of
      figures that each move by ≤ Δ moves by ≤ Δ).
    * ``tpr_at_fpr_0.01_max``, ``tpr_at_fpr_0.001_max``: max over attacks of :func:`partial_tpr` at
      α = 0.01 / 0.001; l2 = max(1/(n1 − 1), 1/(α (n0 − 1))).

    Units: AUC and TPR in [0, 1]; finish = clip to [0, 1]. Every figure is None when n1 ≤ 1,
    n0 ≤ 1 or the synthetic table has < 2 rows. Exact values are internal. ``names``: the figures
    wanted (``dcr_mia_auc`` alone needs only the nearest-neighbour attack, the costly density
    attack runs only for the others). ``exact_copy_share`` may be asked for too: it is derived
    from the DCR attack's distances (the same figure as :func:`exact_copy_share`).
    """
    n1, n0 = len(train), len(holdout)
    if n1 <= 1 or n0 <= 1 or len(synthetic) < 2:
        return dict.fromkeys(names)
    attacks = ATTACKS if set(names) - {"dcr_mia_auc", "exact_copy_share"} else ("dcr",)
    scores = attack_scores(train, holdout, synthetic, metadata, seed=seed, attacks=attacks)
    aucs = {name: attack_auc(*pair) for name, pair in scores.items()}
    out: dict[str, Figure | None] = {
        "dcr_mia_auc": _scalar(
            "dcr_mia_auc", aucs["dcr"], _auc_sensitivity(n1, n0),
            "ROC AUC of the distance-to-closest-synthetic-record attack telling training rows from holdout rows; "
            "0.5 = no leak, lower is better.",
            "The AUC is a mean over members of a [0, 1] term and every term moves by at most 1/(n0 - 1) when a "
            "non-member is added or removed, so it moves by at most 1/(min(n1, n0) - 1)."),
        "mia_auc_max": _scalar(
            "mia_auc_max", max(aucs.values()), _auc_sensitivity(n1, n0),
            "Highest ROC AUC of three membership attacks (DCR, NNDR, DOMIAS density ratio); 0.5 = no leak, lower "
            "is better.",
            "Each attack's AUC moves by at most 1/(min(n1, n0) - 1) (scores are per row, from the public "
            "synthetic table), and so does their maximum."),
    }
    if "exact_copy_share" in names:  # the same nearest-neighbour distances: computed once
        out["exact_copy_share"] = _copy_figure(-scores["dcr"][0])
    if attacks == ("dcr",):
        return {k: v for k, v in out.items() if k in names}
    for alpha in (0.01, 0.001):
        name = f"tpr_at_fpr_{alpha:g}_max"
        out[name] = _scalar(
            name, max(partial_tpr(m, h, alpha) for m, h in scores.values()), _tpr_sensitivity(n1, n0, alpha),
            f"Highest membership-attack TPR averaged over false-positive rates in [0, {alpha:g}] (three attacks); "
            f"about {alpha / 2:g} = no leak, lower is better.",
            "A mean over members of a [0, 1] term, each moving by at most 1/(alpha (n0 - 1)) when a non-member is "
            "added or removed; the maximum over attacks keeps the bound max(1/(n1 - 1), 1/(alpha (n0 - 1))).")
    return {k: v for k, v in out.items() if k in names}


# --------------------------------------------------------------------------- 6. TSTR AUC


def class_auc_vector(scores: np.ndarray, labels: np.ndarray, n_classes: int, total: int | None = None) -> np.ndarray:
    """(U_1/k², …, U_C/k², m_1/k, …, m_C/k) of per-class one-vs-rest Mann-Whitney counts.

    ``scores``: [m, C] per-class scores; ``labels``: m class indices in 0..C−1.
    U_c = Σ_{i: y_i=c} Σ_{j: y_j≠c} [1(s_ic > s_jc) + ½ 1(s_ic = s_jc)] (from average ranks).
    k = ``total`` (a public slot count ≥ m, unlabelled slots counting nothing), or m.
    """
    m = len(labels) if total is None else int(total)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    u = np.array([rankdata(scores[:, c])[labels == c].sum() - counts[c] * (counts[c] + 1) / 2
                  for c in range(n_classes)])
    return np.concatenate([u / m**2, counts / m])


def class_auc_sensitivity(m: int) -> float:
    """2/(m − 1): L2 sensitivity of :func:`class_auc_vector` over m labelled rows, add or remove one.

    Adding a row of class a to k rows (k → k+1), shares p_c = k_c/k, q = 1 − p_a:
    ΔU_c/m² = δ_c/(k+1)² − U_c (2k+1)/(k²(k+1)²) with 0 ≤ δ_a ≤ k − k_a, 0 ≤ δ_c ≤ k_c (c ≠ a) and
    0 ≤ U_c ≤ k_c (k − k_c), so (k+1)|ΔU_c/m²| ≤ p_c max(1, 2(1 − p_c)) (c ≠ a), ≤ q max(1, 2(1 − q))
    (c = a); share changes are (k+1)·Δ = q (a) and −p_c (c ≠ a). With g(p) = p²(max(1, 2(1−p))² + 1),
    (k+1)²‖Δ‖² ≤ g(q) + Σ_{c≠a} g(p_c) ≤ 2 g(q) ≤ 4 (g(p)/p is non-decreasing, so Σ g(p_c) ≤ g(Σ p_c);
    g ≤ 2 on [0, 1]). Hence ‖Δ‖₂ ≤ 2/(k+1): ≤ 2/(m+1) for an added and ≤ 2/m for a removed row,
    both ≤ 2/(m − 1). Nearly tight: adding the first row of a new class, scored highest for it and
    lowest for the only other class, moves the vector by ≈ 2/(m+1).
    """
    return 2.0 / (m - 1)


def _class_auc_finish(n_classes: int, *, normalised_by_labelled: bool = True) -> Callable[[np.ndarray], float]:
    """finish(v) = mean over classes with 0.01 < p_c/S < 0.99 of clip(v_c/(p_c(S − p_c)), 0, 1),
    p_c = clip(v_{C+c}, 0, 1), S = 1 when the vector is normalised by the labelled count m,
    else S = Σ p_c (normalised by a public slot count); 0.5 (chance) when no class qualifies."""

    def finish(values: np.ndarray) -> float:
        u, p = values[:n_classes], np.clip(values[n_classes:], 0.0, 1.0)
        total = 1.0 if normalised_by_labelled else float(p.sum())
        if total <= 0:
            return 0.5
        ok = (p > TSTR_MIN_SHARE * total) & (p < (1 - TSTR_MIN_SHARE) * total)
        if not ok.any():
            return 0.5
        return float(np.mean(np.clip(u[ok] / (p[ok] * (total - p[ok])), 0.0, 1.0)))

    return finish


def slotted_class_auc_sensitivity(k: int) -> float:
    """2√3/k: L2 sensitivity of :func:`class_auc_vector` normalised by k public slots when one
    slot's record is replaced (the gate's slots, gate/dp_gate.py).

    Removing a labelled record y of class b from the slots: U_b loses at most m − m_b pairs,
    U_c (c ≠ b) at most m_c, so ‖ΔU‖² ≤ (m − m_b)² + Σ_{c≠b} m_c² ≤ 2(m − m_b)² ≤ 2k², i.e.
    ≤ 2/k² after the 1/k² scaling; the count of b moves by 1/k. Removing: ≤ √3/k; adding
    likewise; a replacement is one of each: ≤ 2√3/k (an unlabelled stand-in counts nothing).
    """
    return 2.0 * math.sqrt(3.0) / k


def tstr_scores(holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, target: str,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities [m, C], labels [m]) of the holdout rows with a declared label, from
    ``HistGradientBoostingClassifier(random_state=seed)`` trained on the synthetic rows only.

    Features and classes as the utility audit (audits/utility.py): model columns minus ``target``
    (above 1,000, the 256 that :func:`~synthrelease.audits.utility.model_features` picks on the
    synthetic rows), declared category codes (native categorical features up to 255 categories); classes =
    declared categories. If the synthetic rows hold fewer than two declared classes (or there is no
    feature), every score is 0 (chance). Each holdout row's scores depend on that row and the
    public synthetic table only. Reads private rows: internal only.
    """
    classes = metadata.columns[target].canonical_categories()
    # wide tables: the features chosen on the synthetic rows (public), as the utility audit
    feats = model_features(synthetic, metadata, [c for c in metadata.model_columns if c != target], target)
    y_hold = _codes(holdout[target], classes)
    keep = ~np.isnan(y_hold)
    labels = y_hold[keep].astype(np.int64)
    y_syn = _codes(synthetic[target], classes)
    ok = ~np.isnan(y_syn)
    if not feats or len(np.unique(y_syn[ok])) < 2:
        return np.zeros((len(labels), len(classes))), labels
    native = [not metadata.columns[c].is_numerical
              and len(metadata.columns[c].canonical_categories()) <= MAX_NATIVE_CATEGORIES for c in feats]
    model = HistGradientBoostingClassifier(random_state=seed, categorical_features=native if any(native) else None)
    model.fit(_features(synthetic, metadata, feats)[ok], y_syn[ok].astype(np.int64))
    return _proba(model, len(classes), _features(holdout, metadata, feats)[keep]), labels


def tstr_auc(holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, target: str,
             seed: int, scores: tuple[np.ndarray, np.ndarray] | None = None, total: int | None = None) -> Figure | None:
    """Train-on-synthetic, test-on-holdout ROC AUC (binary) or macro one-vs-rest AUC (multiclass).

    values = :func:`class_auc_vector` of :func:`tstr_scores` (2C numbers); finish(noisy values) =
    mean over classes with 0.01 < p_c < 0.99 of clip(v_c/(p_c(1 − p_c)), 0, 1), which on the exact
    values is sklearn's ROC AUC (two classes) or the macro one-vs-rest AUC. Unit: AUC in [0, 1],
    higher is better.

    Guarantee: l2_sensitivity = 2/(m − 1) (:func:`class_auc_sensitivity`), m = holdout rows with a
    declared label: a row with a missing/undeclared label changes nothing, one with a label moves m
    by one. m = n0 (public) when every holdout row carries a declared label, as for a non-nullable
    target on validated rows; otherwise the stated bound depends on the private m (see the report).
    None when the target declares < 2 classes or m ≤ 1. The exact values are internal.

    ``total``: ``holdout`` is the DP gate's k public slots (gate/dp_gate.py); the vector is
    then normalised by k and l2_sensitivity = 2√3/k (:func:`slotted_class_auc_sensitivity`), a
    function of public quantities only, whatever the private m.
    """
    n_classes = len(metadata.columns[target].canonical_categories())
    if n_classes < 2:
        return None
    scores, labels = scores or tstr_scores(holdout, synthetic, metadata, target=target, seed=seed)
    m = len(labels)
    if m <= 1 and total is None:
        return None
    if total is not None:
        return Figure("tstr_auc", class_auc_vector(scores, labels, n_classes, total),
                      slotted_class_auc_sensitivity(total),
                      _class_auc_finish(n_classes, normalised_by_labelled=False),
                      "ROC AUC on the holdout records of a classifier trained only on the synthetic rows (macro "
                      "one-vs-rest over classes); higher is better.",
                      "The released vector holds per-class Mann-Whitney counts over k^2 and class counts over k, k the "
                      "public number of holdout slots; replacing one slot's record moves it by at most 2 sqrt(3)/k in "
                      "L2 (derived in slotted_class_auc_sensitivity).")
    return Figure("tstr_auc", class_auc_vector(scores, labels, n_classes), class_auc_sensitivity(m),
                  _class_auc_finish(n_classes),
                  "ROC AUC on the holdout rows of a classifier trained only on the synthetic rows (macro one-vs-rest "
                  "over classes); higher is better.",
                  "The released vector holds per-class Mann-Whitney counts over m^2 and class shares; one labelled "
                  "holdout row added or removed moves it by at most 2/(m - 1) in L2 (derived in "
                  "class_auc_sensitivity).")


def tstr_accuracy(holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *, target: str,
                  seed: int, scores: tuple[np.ndarray, np.ndarray] | None = None) -> Figure | None:
    """Train-on-synthetic, test-on-holdout accuracy over ALL n0 holdout rows.

    The model is :func:`tstr_scores`' (trained on the synthetic rows only); a holdout row is
    right when its declared label is the class of highest predicted probability, and a row with
    a missing or undeclared label counts as wrong, so the denominator is the public n0. Unit:
    share of holdout rows in [0, 1], higher is better (a constant guess scores the largest class
    share).

    Guarantee: l2_sensitivity = 1/(n0 − 1): a mean over holdout rows of a 0/1 term fixed by the
    row and the public synthetic table. None when n0 ≤ 1. The exact value is internal.
    """
    n0 = len(holdout)
    if n0 <= 1:
        return None
    scores, labels = scores or tstr_scores(holdout, synthetic, metadata, target=target, seed=seed)
    correct = float(np.sum(np.argmax(scores, axis=1) == labels)) if len(labels) and scores.any() else 0.0
    return _scalar("tstr_accuracy", correct / n0, _mean_sensitivity(n0),
                   "Accuracy on the holdout rows of a classifier trained only on the synthetic rows; higher is "
                   "better (a constant guess scores the share of the most frequent class).",
                   "A mean over the n0 holdout rows of a 0/1 term that depends on the row and the public "
                   "synthetic rows only; one row added or removed moves it by at most 1/(n0 - 1).")


def sensitivity_for(name: str, *, n_train: int, n_holdout: int, slotted: bool = False) -> float:
    """The L2 sensitivity figure ``name`` states for parts of ``n_train`` and ``n_holdout`` rows
    (TSTR AUC at m = n_holdout labelled rows, or normalised by ``n_holdout`` slots when
    ``slotted``): the same bounds the figure functions above use."""
    train_side = ("quality_score", "coverage", "missing_category_share", "exact_copy_share")
    if name in train_side:
        return _mean_sensitivity(n_train)
    if name == "tstr_accuracy":
        return _mean_sensitivity(n_holdout)
    if name == "tstr_auc":
        return slotted_class_auc_sensitivity(n_holdout) if slotted else class_auc_sensitivity(n_holdout)
    if name in ("dcr_mia_auc", "mia_auc_max"):
        return _auc_sensitivity(n_train, n_holdout)
    alpha = {"tpr_at_fpr_0.01_max": 0.01, "tpr_at_fpr_0.001_max": 0.001}[name]
    return _tpr_sensitivity(n_train, n_holdout, alpha)
