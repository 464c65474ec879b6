"""The distance audits' rows: the plain encoding on narrow tables, an exact public random
projection on wide ones (each row's image a function of that row alone)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthrelease.audits._encoding as enc
from synthrelease.audits.dp_figures import product_of_marginals
from synthrelease.metadata.schema import Metadata


def wide(n_num: int = 40) -> tuple[pd.DataFrame, Metadata]:
    cols = {f"g{j}": {"type": "float", "min": 0.0, "max": 10.0, "nullable": j % 7 == 0} for j in range(n_num)}
    cols["kind"] = {"type": "categorical", "categories": ["a", "b", "c"]}
    meta = Metadata.model_validate({"columns": cols})
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"g{j}": rng.uniform(0, 10, 60) for j in range(n_num)})
    df.loc[3, "g0"] = np.nan
    df["kind"] = rng.choice(["a", "b", "c"], 60)
    df.loc[5] = df.loc[2]  # an exact duplicate row
    return df, meta


def old_encoding(df: pd.DataFrame, meta: Metadata, dtype: type = np.float32) -> np.ndarray:
    """The previous implementation (float64 parts, hstack, float32), as reference."""
    parts = []
    for c in meta.model_columns:
        spec = meta.columns[c]
        if spec.is_numerical:
            x = pd.to_numeric(df[c]).to_numpy(dtype=np.float64)
            lo, hi = spec.domain()
            missing = np.isnan(x)
            scaled = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
            scaled[missing] = 0.5
            parts.append(scaled[:, None])
            if spec.nullable:
                parts.append(missing[:, None].astype(np.float64))
        else:
            cats = spec.canonical_categories()
            onehot = np.zeros((len(df), len(cats)))
            for i, v in enumerate(df[c]):
                onehot[i, cats.index(v)] = 1.0
            parts.append(onehot)
    return np.hstack(parts).astype(dtype)


def test_narrow_tables_keep_the_plain_encoding_and_marginal_permutation():
    df, meta = wide()
    plain = old_encoding(df, meta)
    assert np.array_equal(enc.encode_for_distance(df, meta), plain)
    assert np.array_equal(enc.distance_embedding(df, meta), plain.astype(np.float64))
    rng = np.random.default_rng(4)
    blocks = [enc.encode_for_distance(df, meta, [c]).astype(np.float64) for c in meta.model_columns]
    expected = np.hstack([b[rng.permutation(len(b))] for b in blocks])
    assert np.array_equal(product_of_marginals(df, meta, seed=4), expected)
    assert enc.embedding_note(meta) is None


@pytest.fixture
def projected(monkeypatch):
    monkeypatch.setattr(enc, "PROJECT_ABOVE_WIDTH", 10)  # 40 numericals (+6 indicators) + 3 one-hot > 10
    return wide()


def test_wide_rows_are_projected_exactly_row_by_row(projected, monkeypatch):
    df, meta = projected
    full = enc.distance_embedding(df, meta)
    assert full.shape == (60, enc.PROJECTION_DIMS)
    # the formula: the (float64) encoding rounded to 2^-24 @ the public ±1 matrix, × 2^-24 / 16
    q = np.rint(old_encoding(df, meta, np.float64) * 2.0 ** 24)
    assert np.array_equal(full, (q @ enc.projection_matrix(q.shape[1])) * 2.0 ** -28)
    # a row's image does not depend on the other rows, nor on the column groups
    for i in (0, 3, 59):
        assert np.array_equal(enc.distance_embedding(df.iloc[[i]], meta)[0], full[i])
    monkeypatch.setattr(enc, "GROUP_CELLS", 60 * 3)  # groups of 3 features
    assert np.array_equal(enc.distance_embedding(df, meta), full)
    assert np.array_equal(enc.distance_embedding(df.iloc[::-1], meta)[::-1], full)
    assert np.array_equal(full[5], full[2])  # identical rows, identical images
    assert "random projection to 256" in enc.embedding_note(meta)


def test_wide_projection_keeps_distances_roughly(projected):
    df, meta = projected
    x = enc.encode_for_distance(df, meta).astype(np.float64)
    y = enc.distance_embedding(df, meta)
    i, j = np.triu_indices(len(df), 1)
    true = np.linalg.norm(x[i] - x[j], axis=1)
    keep = true > 0
    ratio = np.linalg.norm(y[i] - y[j], axis=1)[keep] / true[keep]
    assert abs(np.mean(ratio ** 2) - 1) < 0.05  # squared distances kept in expectation
    assert 0.7 < ratio.min() and ratio.max() < 1.3  # JL spread at k = 256


def test_wide_marginal_permutation_is_projected_like_the_plain_one(projected):
    df, meta = projected
    rng = np.random.default_rng(4)
    plain, start, blocks = old_encoding(df, meta, np.float64), 0, []
    for c in meta.model_columns:
        w = enc.column_width(meta, c)
        blocks.append(plain[:, start:start + w][rng.permutation(len(df))])
        start += w
    q = np.rint(np.hstack(blocks) * 2.0 ** 24)
    expected = (q @ enc.projection_matrix(q.shape[1])) * 2.0 ** -28
    assert np.array_equal(product_of_marginals(df, meta, seed=4), expected)
