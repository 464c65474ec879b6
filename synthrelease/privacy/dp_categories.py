"""DP discovery of category lists the metadata leaves undeclared (Gaussian thresholding).

A categorical column declared with ``dp_categories: {max_categories: K}`` instead of a
public ``categories`` list gets its list from the private rows:

1. each row adds 1 to the count of its (canonical) value in each such column, so the k
   histograms, over the keys present in both neighbouring tables, have L2 sensitivity √k;
2. Gaussian noise of std σ·√k is added to every observed value's count;
3. a value is released only if its noisy count exceeds τ = 1 + σ√k · Φ⁻¹(1 − δ_sel / k);
   at most K values are kept (largest noisy counts; ties broken by value), sorted;
4. every other value becomes the public label ``other_label`` (default ``<other>``), which
   is always part of the released list.

Guarantee (add/remove one row; Desfontaines et al. 2022, "Differentially private
partition selection", and Wilkins et al. 2024 for the Gaussian sparse histogram): on the
keys both neighbours share it is a Gaussian mechanism, Opacus entry ``(σ, 1.0, 1)``,
composed with the rest of the run in ONE accountant; the at most k keys that only one
neighbour has (count 1) pass the threshold with probability at most
k · Φ̄((τ − 1)/(σ√k)) = δ_sel, which is added to δ outside the accountant. So the run is
(ε_accountant(δ − δ_sel), δ)-DP. Only the released key set leaves this module (no counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from synthrelease.errors import PrivacyParameterError
from synthrelease.metadata.schema import Metadata, canonical_category_series
from synthrelease.privacy.accounting import MechanismEntry
from synthrelease.privacy.collective import current, noisy_sum


@dataclass(frozen=True)
class DPCategories:
    """The discovered category lists, the completed metadata, the accountant entry and δ_sel."""

    categories: dict[str, list[str]]
    metadata: Metadata
    entry: MechanismEntry | None
    threshold_delta: float


def columns_needing_categories(metadata: Metadata) -> list[str]:
    """Categorical model columns declared with ``dp_categories`` instead of ``categories``."""
    return [c for c in metadata.model_columns if metadata.columns[c].dp_categories is not None]


def threshold_for(noise_multiplier: float, n_columns: int, threshold_delta: float) -> float:
    """τ such that each of ``n_columns`` singleton keys passes with probability δ_sel / k."""
    if not 0 < threshold_delta < 1:
        raise PrivacyParameterError(f"category threshold δ must be in (0, 1), got {threshold_delta}")
    scale = noise_multiplier * math.sqrt(n_columns)
    return 1.0 + scale * float(norm.isf(threshold_delta / n_columns))


def discover_categories(df: pd.DataFrame, metadata: Metadata, *, noise_multiplier: float,
                        threshold_delta: float, generator: torch.Generator) -> DPCategories:
    """Release the frequent values of every ``dp_categories`` column of the private ``df``.

    Reads the private values of those columns. Guarantee: see the module docstring —
    Opacus entry ``(noise_multiplier, 1.0, 1)`` plus ``threshold_delta`` added to δ.
    Returns the metadata with ``categories`` filled in (released values, then ``other_label``).
    """
    cols = columns_needing_categories(metadata)
    if not cols:
        return DPCategories({}, metadata, None, 0.0)
    if noise_multiplier <= 0:
        raise PrivacyParameterError("category discovery needs a positive noise multiplier")
    scale = noise_multiplier * math.sqrt(len(cols))
    tau = threshold_for(noise_multiplier, len(cols), threshold_delta)
    found: dict[str, list[str]] = {}
    for c in cols:
        search = metadata.columns[c].dp_categories
        assert search is not None
        counts = canonical_category_series(df[c]).dropna().value_counts(sort=False)
        # every rank's values (one process: its own), sorted: independent of the rows' order
        keys = np.asarray(current().union([str(k) for k in counts.index]), dtype=object)
        values = counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64)
        noisy = noisy_sum(values, scale, generator)  # over every rank's rows, noised once
        passed = np.nonzero(noisy > tau)[0]
        passed = passed[np.argsort(-noisy[passed], kind="stable")][: search.max_categories]
        kept = sorted(str(k) for k in keys[passed] if str(k) != search.other_label)
        found[c] = kept
    raw = metadata.model_dump(mode="json")
    for c, kept in found.items():
        other = metadata.columns[c].dp_categories.other_label  # type: ignore[union-attr]
        raw["columns"][c].update(categories=[*kept, other], dp_categories=None)
    entry = MechanismEntry(f"DP categories ({len(cols)} thresholded histograms, Gaussian, sensitivity "
                           f"sqrt({len(cols)}))", float(noise_multiplier), 1.0, 1)
    return DPCategories(found, Metadata.model_validate(raw), entry, float(threshold_delta))


def map_undiscovered(df: pd.DataFrame, discovered: DPCategories, original: Metadata) -> pd.DataFrame:
    """Replace values outside the released lists with each column's ``other_label`` (a copy)."""
    if not discovered.categories:
        return df
    out = df.copy()
    for c, kept in discovered.categories.items():
        other = original.columns[c].dp_categories.other_label  # type: ignore[union-attr]
        canon = canonical_category_series(out[c])
        out[c] = canon.where(canon.isin(kept) | canon.isna(), other).astype(object)
    return out
