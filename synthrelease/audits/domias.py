"""DOMIAS-style density-ratio membership score (van Breugel et al., AISTATS 2023).

A record is scored by p_synthetic(x) / p_reference(x): synthetic data that over-fits its
training rows is denser at those rows than the population is. Both densities are
Gaussian kernel density estimates in a space of at most 20 dimensions: the metadata-only
encoding (audits/_encoding.py) projected by a PCA fitted on all reference rows (fixed
``random_state``; components with a variance share below 1e-4 dropped, the rest
standardised). Bandwidths: the reference density is a smooth population estimate (Scott's
rule, n^(−1/(d+4))); the synthetic density is local, at a quarter of the median
nearest-neighbour spacing of the synthetic rows, so that synthetic data piled on training
rows shows (with Scott's rule for both, a synthesizer that copies its training rows reached
only AUC 0.62 on the test table; with the local bandwidth 0.95). Scores are differences of
log densities.

Exact up to ``EXACT_MAX_ROWS`` (50,000) rows, approximate above, each density on its own
(the choice and every random draw depend on the reference and synthetic tables and ``seed``
only, never on the queries, so a query's score depends on its own row alone):

* up to 50,000 reference / synthetic rows: scikit-learn ``KernelDensity`` (rtol 1e-4) over
  all rows, as always (the usual releases; results unchanged, cost unchanged: it grows with
  rows × queries);
* more reference rows: the reference density is the KDE of a seeded sample of
  ``DENSITY_SAMPLE`` (50,000) of them, Scott's rule for that sample size, summed exactly in
  blocks of query rows (a population estimate; a sample this size keeps it smooth);
* more synthetic rows: the KDE over ALL of them is estimated, not replaced by a sample's
  (a sample would lose the copies of the rows it misses, i.e. the membership signal):
  identical rows are merged with their counts, the kernel terms of each query's
  ``NEAR_K`` (32) nearest distinct rows are summed exactly (neighbour search of
  audits/neighbours.py: exact up to 200,000 distinct rows, FAISS HNSW above, recall
  measured), the rest by an unbiased Horvitz–Thompson estimate from a seeded sample of
  ``DENSITY_SAMPLE`` rows (weight n/50,000 each; sampled rows among the query's neighbours
  skipped). The median spacing is that of a seeded sample of ``SPACING_SAMPLE`` (10,000)
  rows to their nearest other row among all rows (exact search).

Why 50,000: it equals the exact cap (just above it the estimates use as many points as just
below), costs ≈ 3 ns per query and point on one core (1,000,000 queries × 2 densities ≈
5 min), and with a 5 % far-field sample (as at 1,000,000 synthetic rows) the synthetic log
density was within ±0.2 of the exact one for 98 % of queries (100,000 rows of 20-dimensional
Gaussian data), where cutting the sum at the 32 nearest rows alone was 0.15 low in the
median and 0.6 at the 99th percentile, and would cap piles of near-copies at 32 rows.

Memory above the caps: the neighbour search peaks at five [queries, 32] 8-byte arrays
(≈ 1.3 KiB per query row) plus its HNSW index (≈ 0.4 KiB per distinct synthetic row);
blocks of query rows × sampled points hold ≤ 64 MiB. Measured time and peak RSS:
benchmarks/results/domias_scale*.md. Random draws use ``np.random.default_rng`` streams
derived from ``seed``, never the global numpy state. Below the caps scikit-learn's KD-tree
is kept for unchanged results, though for queries more than ~7 bandwidths from every point
it is off by up to ~0.1 (the blocked sums above the caps are exact).

Reads private rows (the reference rows are real non-members, the queries training and
holdout rows); NOTHING here is differentially private: the scores, and every figure made
from them, are internal-only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity, NearestNeighbors

from synthrelease.audits.neighbours import EXACT_MAX_PAIRS, SearchInfo, nearest

MAX_DIMS = 20
EXACT_MAX_ROWS = 50_000
"""Up to this many reference (synthetic) rows, the reference (synthetic) density is exact."""
DENSITY_SAMPLE = 50_000
"""Sampled rows per density above ``EXACT_MAX_ROWS`` (reference KDE; synthetic far field)."""
SPACING_SAMPLE = 10_000
"""Synthetic rows whose nearest-neighbour spacing estimates the median above ``EXACT_MAX_ROWS``."""
NEAR_K = 32
"""Nearest distinct synthetic rows per query whose kernel terms are summed exactly."""
_BLOCK_ELEMENTS = 1 << 23  # query rows × points per block of kernel sums (64 MiB float64)
_QUERY_BLOCK = 1 << 16  # query rows per exact neighbour search (bounds its [rows, k] arrays)
_STREAM = 0xD0B1A5  # tags the Generators of this module: (seed, _STREAM, 0) reference, 1 synthetic


def _kde(points: np.ndarray, bandwidth: float) -> KernelDensity:
    return KernelDensity(kernel="gaussian", bandwidth=bandwidth, rtol=1e-4).fit(points)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM, stream])


def _log_norm(n: float, d: int, h: float) -> float:
    """log of the Gaussian KDE normaliser 1 / (n (2π)^(d/2) h^d), as scikit-learn's."""
    return -np.log(n) - 0.5 * d * np.log(2 * np.pi) - d * np.log(h)


def _log_kernel_sums(q: np.ndarray, points: np.ndarray, h: float, log_w: np.ndarray,
                     skip: np.ndarray | None = None) -> np.ndarray:
    """log Σ_j w_j exp(−‖q_i − p_j‖² / 2h²) for every query row, in blocks (logsumexp-stable).

    ``skip`` [n_q, k]: per query, columns of ``points`` left out of its sum (−1 = none).
    A query with every term left out gets −inf.
    """
    inv = 1.0 / (h * h)
    # one GEMM per block: [q, 1] @ [p / h², log w − ‖p‖² / 2h²]ᵀ = exponent + ‖q‖² / 2h²
    coef = np.vstack([points.T * inv, log_w - 0.5 * inv * np.einsum("ij,ij->i", points, points)])
    out = np.empty(len(q))
    step = max(1, _BLOCK_ELEMENTS // max(1, len(points)))
    for start in range(0, len(q), step):
        qb = q[start:start + step]
        a = np.hstack([qb, np.ones((len(qb), 1))]) @ coef
        if skip is not None:
            sb = skip[start:start + step]
            rows, cols = np.nonzero(sb >= 0)
            a[rows, sb[rows, cols]] = -np.inf
        top = a.max(axis=1)
        top = np.where(np.isfinite(top), top, 0.0)
        a -= top[:, None]
        np.exp(a, out=a)
        with np.errstate(divide="ignore"):
            out[start:start + step] = top + np.log(a.sum(axis=1)) - 0.5 * inv * np.einsum("ij,ij->i", qb, qb)
    return out


def _log_reference_density(points: np.ndarray, q: np.ndarray, rng: np.random.Generator,
                           project: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Scott-rule KDE of a seeded sample of ``DENSITY_SAMPLE`` reference rows at the queries."""
    sample = np.sort(rng.choice(len(points), size=min(len(points), DENSITY_SAMPLE), replace=False))
    ref = project(points[sample])
    d = ref.shape[1]
    h = float(len(ref) ** (-1.0 / (d + 4)))
    return _log_kernel_sums(q, ref, h, np.zeros(len(ref))) + _log_norm(len(ref), d, h)


def _log_synthetic_density(synthetic: np.ndarray, q: np.ndarray, rng: np.random.Generator,
                           project: Callable[[np.ndarray], np.ndarray], *,
                           seed: int, searches: list[SearchInfo] | None) -> np.ndarray:
    """Local-bandwidth KDE over all synthetic rows: exact near field + sampled far field."""
    n = len(synthetic)
    distinct, inverse, counts = np.unique(synthetic, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    u = project(distinct)
    d = u.shape[1]

    # bandwidth: a quarter of the median spacing (0 for a row with a duplicate) of sampled rows
    rows = inverse[rng.choice(n, size=min(n, SPACING_SAMPLE), replace=False)]
    spacing = np.zeros(len(rows))
    lone = counts[rows] == 1
    if lone.any() and len(u) > 1:
        spacing[lone] = nearest(u, u[rows[lone]], 2, method="exact")[0][:, 1]
    h = max(0.25 * float(np.median(spacing)), 1e-3)

    # near field: the k nearest distinct rows of every query, their terms exact
    k = min(NEAR_K, len(u))
    if float(len(u)) ** 2 <= EXACT_MAX_PAIRS:  # as nearest()'s "auto" for as many queries as rows
        dist, idx = np.empty((len(q), k)), np.empty((len(q), k), dtype=np.int64)
        info = SearchInfo("exact", 1.0, 0)
        for s in range(0, len(q), _QUERY_BLOCK):
            dist[s:s + _QUERY_BLOCK], idx[s:s + _QUERY_BLOCK], info = nearest(u, q[s:s + _QUERY_BLOCK], k,
                                                                              method="exact")
    else:
        dist, idx, info = nearest(u, q, k, method="hnsw", seed=seed)
    if searches is not None:
        searches.append(info)
    log_counts = np.log(counts)
    near = np.empty(len(q))
    step = max(1, _BLOCK_ELEMENTS // k)
    for s in range(0, len(q), step):
        a = log_counts[idx[s:s + step]] - dist[s:s + step] ** 2 / (2 * h * h)
        top = a.max(axis=1)
        near[s:s + step] = top + np.log(np.exp(a - top[:, None]).sum(axis=1))
    del dist

    # far field: rows of a seeded sample, weighted n / sample size, minus those in the near field
    sampled, mult = np.unique(inverse[rng.choice(n, size=min(n, DENSITY_SAMPLE), replace=False)],
                              return_counts=True)
    column = np.full(len(u), -1, dtype=np.int32)
    column[sampled] = np.arange(len(sampled))
    skip = column[idx]
    del idx
    log_w = np.log(mult) + np.log(n / min(n, DENSITY_SAMPLE))
    far = _log_kernel_sums(q, u[sampled], h, log_w, skip=skip)
    return np.logaddexp(near, far) + _log_norm(n, d, h)


def domias_scores(reference: np.ndarray, synthetic: np.ndarray, queries: np.ndarray, *, seed: int,
                  searches: list[SearchInfo] | None = None) -> np.ndarray:
    """log p_synthetic(q) − log p_reference(q) for each query row (higher = more member-like).

    Exact up to ``EXACT_MAX_ROWS`` reference / synthetic rows, approximated above (module
    docstring). ``seed`` fixes the PCA and every sample; ``searches`` collects how the
    synthetic neighbours were searched (only above the cap). Internal-only; not DP.
    """
    dims = int(min(MAX_DIMS, reference.shape[1], max(1, len(reference) - 1)))
    pca = PCA(n_components=dims, random_state=seed).fit(reference.astype(np.float64))
    keep = pca.explained_variance_ratio_ > 1e-4
    keep[0] = True
    scale = np.sqrt(pca.explained_variance_[keep])

    def project(x: np.ndarray) -> np.ndarray:
        return pca.transform(x.astype(np.float64))[:, keep] / scale

    q = project(queries)
    d = int(keep.sum())
    if len(synthetic) <= EXACT_MAX_ROWS:
        syn = project(synthetic)
        spacing = NearestNeighbors(n_neighbors=min(2, len(syn))).fit(syn).kneighbors(syn)[0][:, -1]
        local = max(0.25 * float(np.median(spacing)), 1e-3)
        log_syn = _kde(syn, local).score_samples(q)
    else:
        log_syn = _log_synthetic_density(synthetic, q, _rng(seed, 1), project, seed=seed, searches=searches)
    if len(reference) <= EXACT_MAX_ROWS:
        log_ref = _kde(project(reference), float(len(reference) ** (-1.0 / (d + 4)))).score_samples(q)
    else:
        log_ref = _log_reference_density(reference, q, _rng(seed, 0), project)
    return log_syn - log_ref
