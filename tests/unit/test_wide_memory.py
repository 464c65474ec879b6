"""Wide expression matrices in bounded memory: float16 storage, in-place block validation,
width-sized sampling chunks, and the fingerprint's fast column keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from synthrelease.errors import MetadataError
from synthrelease.metadata.schema import Metadata
from synthrelease.pipeline import stages
from synthrelease.validation.expectations import check_table

GENES = 12


def _atlas(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((n, GENES)) < 0.7, 0.0, rng.uniform(0, 10, (n, GENES)))
    df = pd.DataFrame(x, columns=[f"g{i}" for i in range(GENES)])
    df["cell_type"] = rng.choice(["a", "b", "c"], n)
    return df


def _meta(float16: bool = True, **extra_cols: dict) -> Metadata:
    cols: dict = {f"g{i}": {"type": "float", "min": 0.0, "max": 10.0, "zero_inflated": True} for i in range(GENES)}
    cols["cell_type"] = {"type": "categorical", "categories": ["a", "b", "c"]}
    cols |= extra_cols
    doc = {"name": "atlas", "reviewed": True, "target": "cell_type", "columns": cols}
    return Metadata.model_validate(doc | ({"float_storage": "float16"} if float16 else {}))


def _write_h5ad(df: pd.DataFrame, path) -> None:
    import anndata

    genes = [c for c in df.columns if c.startswith("g")]
    adata = anndata.AnnData(X=sp.csr_matrix(df[genes].to_numpy(np.float32)),
                            obs=pd.DataFrame({"cell_type": df["cell_type"].to_numpy()},
                                             index=pd.Index([f"c{i}" for i in range(len(df))], name="obs_id")))
    adata.var_names = genes
    adata.write_h5ad(path)


def test_float16_storage_is_the_same_table_from_csv_parquet_and_h5ad(tmp_path):
    df = _atlas()
    meta = _meta()
    meta_h5ad = _meta(obs_id={"type": "identifier"})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet", index=False)
    _write_h5ad(df, tmp_path / "a.h5ad")
    loaded = {name: stages.load(tmp_path / name, meta_h5ad if name.endswith("h5ad") else meta)
              for name in ("a.csv", "a.parquet", "a.h5ad")}
    for name, got in loaded.items():
        assert all(got.table[f"g{i}"].dtype == np.float16 for i in range(GENES)), name
        np.testing.assert_array_equal(got.table[[f"g{i}" for i in range(GENES)]].to_numpy(),
                                      df[[f"g{i}" for i in range(GENES)]].to_numpy().astype(np.float16))
    # one content fingerprint whatever the format (the ledger's third identity)
    assert len({got.content_sha256 for got in loaded.values()}) == 1
    # float32 storage (unset) is another table: float16 rounding changed the values
    assert stages.load(tmp_path / "a.csv", _meta(float16=False)).content_sha256 != loaded["a.csv"].content_sha256


def test_float16_storage_refuses_an_integer_gene_from_anndata(tmp_path):
    df = _atlas()
    _write_h5ad(df, tmp_path / "a.h5ad")
    meta = _meta(obs_id={"type": "identifier"}).model_dump()
    meta["columns"]["g3"] = {"type": "integer", "min": 0, "max": 10}
    with pytest.raises(MetadataError, match=r"column 'g3' is declared integer, but float_storage: float16"):
        stages.load(tmp_path / "a.h5ad", Metadata.model_validate(meta))


def _wide_frame(n_cols: int, n: int = 50) -> tuple[pd.DataFrame, Metadata]:
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.uniform(0, 1, (n, n_cols)).astype(np.float32), columns=[f"v{i}" for i in range(n_cols)])
    df["k"] = rng.integers(0, 5, n).astype(float)
    df["s"] = rng.uniform(0, 1, n).round(3).astype(str)  # numbers as text: checked through the typed copy
    cols = {f"v{i}": {"type": "float", "min": 0.0, "max": 1.0} for i in range(n_cols)}
    cols |= {"k": {"type": "integer", "min": 0, "max": 4}, "s": {"type": "float", "min": 0.0, "max": 1.0}}
    return df, Metadata.model_validate({"name": "w", "reviewed": True, "columns": cols})


def test_wide_block_checks_count_exactly_what_the_narrow_checks_count(monkeypatch):
    import synthrelease.validation.expectations as ex

    df, meta = _wide_frame(8)
    df.loc[[1, 7, 33], "v2"] = 1.5  # out of bounds, in different row blocks
    df.loc[[0, 49], "v5"] = np.nan  # missing in a non-nullable column
    df.loc[[4, 40], "k"] = 2.5  # not whole
    df.loc[[9], "s"] = "n/a"  # not a number
    df.loc[[11], "s"] = "7"  # a number out of bounds
    narrow = check_table(df, meta)
    monkeypatch.setattr(ex, "WIDE_NUMERIC_COLUMNS", 1)
    monkeypatch.setattr(ex, "VECTORISED_BLOCK_CELLS", 40)  # blocks of 4 rows: boundaries crossed
    wide = check_table(df, meta)
    key = {(f.column, f.expectation, f.unexpected_count) for f in narrow.failures}
    assert {(f.column, f.expectation, f.unexpected_count) for f in wide.failures} == key
    assert key == {("v2", "expect_column_values_to_be_between", 3), ("v5", "expect_column_values_to_not_be_null", 2),
                   ("k", "values_are_integers", 2), ("s", "values_are_numeric", 1),
                   ("s", "expect_column_values_to_be_between", 1), ("s", "expect_column_values_to_not_be_null", 1)}
    assert wide.n_checks == narrow.n_checks


def test_decoded_float16_values_never_cross_a_declared_bound():
    from synthrelease.transforms.encoders import TableEncoder

    meta = Metadata.model_validate({"name": "b", "reviewed": True, "float_storage": "float16", "columns": {
        "x": {"type": "float", "min": 0.05, "max": 0.1}, "c": {"type": "categorical", "categories": ["a"]}}})
    enc = TableEncoder(meta)
    encoded = np.zeros((400, enc.width), dtype=np.float32)
    encoded[:, enc.span("x", "value").start] = np.linspace(-1.5, 1.5, 400)  # beyond both ends: clipped
    encoded[:, enc.span("c", "category").start] = 1.0
    out = enc.decode(encoded)
    assert out["x"].dtype == np.float16
    x = out["x"].to_numpy().astype(np.float64)
    assert x.min() >= 0.05 and x.max() <= 0.1


def test_sampling_chunks_are_sized_by_the_encoded_width(monkeypatch, tiny_metadata, tiny_table):
    import synthrelease.gan.sampling as sampling
    from synthrelease.gan.config import TrainingConfig
    from synthrelease.gan.trainer import fit_dp_synthesizer

    cfg = TrainingConfig(target_epsilon=5.0, target_delta=1e-5, n_steps=2, batch_size=64)
    model = fit_dp_synthesizer(tiny_table, tiny_metadata, cfg, condition_column="outcome")
    monkeypatch.setattr(sampling, "CHUNK_CELLS", model.encoder.width * 37)
    sizes = [len(c) for c in sampling.sample_chunks(model, 100, seed=1, chunk_rows=50)]
    assert sizes == [37, 37, 26]
    assert len(sampling.sample_frame(model, 100, seed=1)) == 100
    # a stream left half-read (an error, a stop) must not leave gradients off in its caller
    stream = sampling.sample_chunks(model, 100, seed=1, chunk_rows=10)
    next(stream)
    assert torch.is_grad_enabled()


def test_an_abandoned_tile_stream_leaves_gradients_on():
    from synthrelease.modalities.image.model import ImageTrainingConfig, generate_tiles, train_tile_gan

    tiles = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    cfg = ImageTrainingConfig(target_epsilon=2.0, target_delta=1e-3, n_steps=1, batch_size=4, embedding_features=32,
                              generator_width=16, discriminator_width=8)
    stream = generate_tiles(train_tile_gan(tiles, None, 0, cfg), 40, seed=0, batch=8)
    next(stream)
    assert torch.is_grad_enabled()


def test_fast_column_keys_equal_sorting_every_cell():
    import hashlib

    from synthrelease.budget.fingerprint import _CELL, _Column

    rng = np.random.default_rng(5)
    n = 2000
    columns = {
        "sparse_f32": np.where(rng.random(n) < 0.9, 0, rng.random(n)).astype(np.float32),
        "f16": rng.random(n).astype(np.float16),
        "signed_zero_nan": np.where(rng.random(n) < 0.3, np.nan, np.where(rng.random(n) < 0.5, -0.0, 0.0)),
        "ints": rng.integers(-3, 3, n),
        "text": rng.choice(["a", "b", None, "1", " x "], n),
        "nullable_int": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 9, n)), dtype="Int64"),
    }
    for name, values in columns.items():
        col = _Column(pd.Series(values))
        cells = np.ascontiguousarray(col.cells(0, n))
        slow = hashlib.sha256(np.sort(cells.view(f"V{_CELL}").ravel()).tobytes()).digest()
        assert col.key(n) == slow, name


@pytest.mark.parametrize("float16", [False, True])
def test_block_decode_of_plain_floats_equals_the_per_column_decode(monkeypatch, float16):
    import synthrelease.transforms.encoders as enc_mod
    from synthrelease.transforms.encoders import TableEncoder

    cols: dict = {}
    for i in range(80):  # plain floats: every combination of zero-inflated, nullable, log1p
        cols[f"f{i}"] = {"type": "float", "min": 0.0 if i % 4 != 3 else -2.5, "max": 10.0 + i,
                         "zero_inflated": i % 2 == 0,
                         "nullable": i % 3 == 0, **({"transform": "log1p"} if i % 4 == 1 else {})}
    cols |= {"n": {"type": "integer", "min": 0, "max": 9}, "d": {"type": "float", "min": 0, "max": 1, "decimals": 2},
             "c": {"type": "categorical", "categories": ["x", "y"]},
             "t": {"type": "date", "min": "2000-01-01", "max": "2001-01-01"}}
    doc = {"name": "p", "reviewed": True, "columns": cols} | ({"float_storage": "float16"} if float16 else {})
    enc = TableEncoder(Metadata.model_validate(doc))
    encoded = np.random.default_rng(2).uniform(-1.3, 1.3, (300, enc.width)).astype(np.float32)
    encoded[:5] = 0.0  # ties: argmax picks the first
    block = enc.decode(encoded)
    monkeypatch.setattr(enc_mod, "PLAIN_FLOATS_AT_ONCE", 10**9)
    per_column = enc.decode(encoded)
    assert list(block.columns) == list(per_column.columns) == list(enc.columns)
    pd.testing.assert_frame_equal(block, per_column)
