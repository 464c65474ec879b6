"""Numeric encoding of rows for distance-based audits, from PUBLIC metadata only.

Numericals are min-max scaled with the declared bounds (clipped to [0, 1]; dates and
datetimes as days / seconds since 1970-01-01, read with the declared format); missing
numericals become 0.5 plus a missing indicator; categoricals are one-hot over the
declared canonical categories (missing → all zeros). No parameter is fitted on rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import Metadata, canonical_category


def encode_for_distance(df: pd.DataFrame, metadata: Metadata, columns: list[str] | None = None) -> np.ndarray:
    """float32 [n, width] encoding of ``df`` for nearest-neighbour audits."""
    parts: list[np.ndarray] = []
    for c in columns or metadata.model_columns:
        spec = metadata.columns[c]
        if spec.is_numerical:
            x = column_numbers(df[c], spec).to_numpy(dtype=np.float64)
            lo, hi = spec.domain()
            missing = np.isnan(x)
            scaled = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
            scaled[missing] = 0.5
            parts.append(scaled[:, None])
            if spec.nullable:
                parts.append(missing[:, None].astype(np.float64))
        else:
            cats = spec.canonical_categories()
            index = {k: i for i, k in enumerate(cats)}
            codes = df[c].map(canonical_category).map(index).to_numpy()
            onehot = np.zeros((len(df), len(cats)))
            ok = ~pd.isna(codes)
            onehot[np.nonzero(ok)[0], codes[ok].astype(int)] = 1.0
            parts.append(onehot)
    return np.hstack(parts).astype(np.float32)
