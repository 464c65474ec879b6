"""Training settings scaled to a table, from PUBLIC quantities only (n, metadata, ε, δ)."""

from __future__ import annotations

from typing import Any

from synthrelease.gan.config import TrainingConfig, marginal_bins_for, marginal_share_for
from synthrelease.gan.trainer import sample_rate_for
from synthrelease.metadata.schema import Metadata

RELATED_EPSILON_SHARE = 0.2
"""ε share of the joint histograms of the metadata's ``related_columns`` pairs, when it declares any."""

CORRELATION_MIN_NUMERICAL = 20
"""From this many numerical columns (and below :data:`WIDE_MIN_NUMERICAL`), the DP correlation
release (:mod:`synthrelease.transforms.dp_correlation`) replaces the declared related-column
histograms: :data:`CORRELATION_SETTINGS`."""

CORRELATION_SETTINGS: dict[str, Any] = {
    "correlation_epsilon_share": 0.3, "correlation_weight": 10.0, "related_epsilon_share": 0.0}
"""One quadrant-correlation release (spectrally denoised) on 30 % of ε, matched at weight 10.
Measured at ε = 1 (``python benchmarks/small_tables.py``; shipped before: ``--tag
five-shipped``, 3 runs; with the release: ``--tag corr-matched-pairs`` and
``corr-matched-pairs-more``, 7 runs on demo and diabetes, 3 on gse7390): demo (30 numerical
columns) quality 0.739 → 0.777, TSTR AUC 0.922 → 0.941, strong pairs kept (sign and within
0.3) 22 % → 50 %; gse7390 (78) quality 0.403 → 0.480. On diabetes (10) it kept more strong
pairs (48 % → 55 %) but TSTR fell 0.936 → 0.782 (0.54–0.98 over runs), and on whas500 and
gbsg2 (6–7 columns: ``--tag five-corr30``) it cost quality and TSTR: hence 20 columns. A
steward can still ask for it on a narrower table (``release --train-option correlation_epsilon_share=0.3``)."""

WIDE_MIN_NUMERICAL = 100
"""The class-profile settings need this many numerical columns: on a few dozen columns
(the 455-row breast-cancer demo at ε = 1) they left TSTR AUC between 0.29 and 0.86 over 3
runs where per-column marginals on fewer bins give 0.95 (benchmarks/results/small_tables-*)."""

WIDE_TABLE_SETTINGS: dict[str, Any] = {
    "marginal_epsilon_share": 0.0, "embedding_kernel": "values", "embedding_epsilon_share": 0.85,
    "embedding_weight": 100.0, "embedding_shrinkage": 2.5, "embedding_zero_weight": 0.3,
}
"""Defaults where :func:`marginal_share_for` finds the marginals too noisy (wide tables): the
generator matches DP class mean profiles of the numerical values (kernel ``values``; its
release also gives the class counts), shrunk towards the overall mean at 2.5× their noise
scale, with 30 % of the profile's norm on the non-zero indicators; the DP discriminator
gets the remaining 15 % of ε. Measured on pbmc68k with the peers' evaluator (5 seeds,
benchmarks/results/synthesis.md): cell-type TSTR AUC 0.510 → 0.619 at ε = 1 and 0.502 →
0.742 at ε = 3; quality 0.65 → 0.62 at ε = 1, 0.67 → 0.68 at ε = 3."""


def default_training_config(n_rows: int, *, epsilon: float, delta: float, seed: int, accountant: str = "rdp",
                            n_steps: int | None = None, batch_size: int | None = None,
                            metadata: Metadata | None = None, condition_column: str | None = None) -> TrainingConfig:
    """Training settings scaled to the table, from public quantities only.

    Expected batch ≈ n/5 (16..500 rows), 1,000 discriminator steps, the numerical marginals'
    bins from :func:`marginal_bins_for` (fewer, wider bins on small tables) and their share
    of ε from :func:`marginal_share_for` (0.5, or 0.2 where they would be mostly noise).
    Where they would be mostly noise on a table with at least :data:`WIDE_MIN_NUMERICAL`
    numerical columns (expression matrices), :data:`WIDE_TABLE_SETTINGS` replace the
    marginals by DP class mean profiles and the step count is capped at about 100 epochs.
    Otherwise, from :data:`CORRELATION_MIN_NUMERICAL` numerical columns on, one DP correlation
    release (:data:`CORRELATION_SETTINGS`) replaces the related-column histograms.
    """
    batch = batch_size or max(16, min(500, n_rows // 5))
    steps = n_steps or 1000
    share = TrainingConfig.__dataclass_fields__["marginal_epsilon_share"].default
    bins = TrainingConfig.__dataclass_fields__["marginal_bins"].default
    declared = metadata is not None and bool(metadata.related_pairs)
    relations: dict[str, Any] = {"related_epsilon_share": RELATED_EPSILON_SHARE if declared else 0.0}
    if metadata is not None and condition_column is not None:
        n_classes = len(metadata.columns[condition_column].canonical_categories())
        n_histograms = len(metadata.model_columns)
        bins = marginal_bins_for(n_rows=n_rows, n_histograms=n_histograms, n_classes=n_classes,
                                 epsilon=epsilon, delta=delta, accountant=accountant, max_bins=bins)
        share = marginal_share_for(n_rows=n_rows, n_histograms=n_histograms, n_classes=n_classes,
                                   n_cells=bins + 2, epsilon=epsilon, delta=delta, accountant=accountant)
        numerical = [c for c in metadata.model_columns if c != condition_column and metadata.columns[c].is_numerical]
        if share < 0.5 and len(numerical) >= WIDE_MIN_NUMERICAL:
            # Wide, low signal-to-noise table (e.g. expression matrices): per-column marginals
            # are mostly noise, so the budget goes to the class mean profiles instead.
            if n_steps is None:
                steps = min(steps, max(100, round(100 / sample_rate_for(n_rows, min(batch, n_rows)))))
            return TrainingConfig(target_epsilon=epsilon, target_delta=delta, accountant=accountant,
                                  batch_size=batch, n_steps=steps, seed=seed, **WIDE_TABLE_SETTINGS)
        if CORRELATION_MIN_NUMERICAL <= len(numerical) < WIDE_MIN_NUMERICAL:
            # (a gram matrix of thousands of genes would not fit: wide tables never get it)
            relations = CORRELATION_SETTINGS
    return TrainingConfig(target_epsilon=epsilon, target_delta=delta, accountant=accountant,
                          batch_size=batch, n_steps=steps, seed=seed, marginal_epsilon_share=share,
                          marginal_bins=bins, **relations)
