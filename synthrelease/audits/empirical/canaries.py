"""Canary records for the empirical privacy audit, from PUBLIC metadata and a seed only.

A canary is a row inside the declared domain but far from typical data: every numerical
value lies in the outer 10 % of its declared (possibly log-scaled) range, at a random end,
never missing and never exactly zero; every categorical value is drawn uniformly from
the declared categories (random combinations are rare in real data). Nothing here reads
private rows, so the canaries carry no private information.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthrelease.metadata.schema import ColumnSpec, Metadata
from synthrelease.transforms.encoders import TableEncoder

EXTREME_SHARE = 0.1
"""Numerical canary values lie in this outer share of the encoded [-1, 1] range, at either end."""


def canary_metadata(metadata: Metadata) -> Metadata:
    """The metadata with a concrete public domain for every column, for generating canaries.

    ``dp_bounds`` columns get their public search range; ``dp_categories`` columns get only
    their public ``other_label`` (the only value known without reading rows). The training
    run itself still uses the original metadata.
    """
    cols: dict[str, ColumnSpec] = {}
    for name, spec in metadata.columns.items():
        if spec.dp_bounds is not None:
            lo, hi = spec.domain()
            spec = spec.model_copy(update={"dp_bounds": None, "min": lo, "max": hi})
        elif spec.dp_categories is not None:
            spec = spec.model_copy(update={"dp_categories": None, "categories": [spec.dp_categories.other_label]})
        cols[name] = spec
    return metadata.model_copy(update={"columns": cols})


def make_canaries(metadata: Metadata, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` canary rows with every declared column (identifiers ``canary-00000``, ...).

    Deterministic given ``seed``; columns in metadata order, values in the declared domain.
    """
    if n < 1:
        raise ValueError("need at least one canary")
    meta = canary_metadata(metadata)
    encoder = TableEncoder(meta)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, encoder.width), dtype=np.float32)
    rows = np.arange(n)
    for s in encoder.spans:
        if s.kind == "continuous":
            side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            x[:, s.start] = side * (1.0 - EXTREME_SHARE * rng.random(n))
        elif s.role == "missing":
            x[:, s.start] = 1.0  # present
        elif s.role == "zero":
            x[:, s.start + 1] = 1.0  # not exactly zero
        else:
            x[rows, s.start + rng.integers(0, s.width, n)] = 1.0
    decoded = encoder.decode(x)
    out = {}
    for name, spec in meta.columns.items():
        out[name] = [f"canary-{i:05d}" for i in rows] if spec.type == "identifier" else decoded[name]
    return pd.DataFrame(out)
