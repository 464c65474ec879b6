"""Distributed shards partition the table: every row on exactly one rank, Parquet read by row group."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthrelease.errors import InputFileError
from synthrelease.pipeline import distributed
from synthrelease.privacy.collective import SINGLE, noisy_sum


@pytest.mark.parametrize("world", [1, 2, 3])
def test_csv_shards_partition_the_rows(tmp_path, monkeypatch, world):
    monkeypatch.setattr(distributed, "SHARD_READ_ROWS", 7)  # several chunks
    df = pd.DataFrame({"i": range(50), "c": [f"v{i % 4}" for i in range(50)]})
    df.to_csv(tmp_path / "t.csv", index=False)
    shards = [distributed.read_shard(tmp_path / "t.csv", rank=r, world_size=world) for r in range(world)]
    seen = sorted(i for s in shards for i in s["i"])
    assert seen == list(range(50))
    assert all(set(s["i"] % world) == {r} for r, s in enumerate(shards))


def test_parquet_shards_are_whole_row_groups(tmp_path):
    table = pa.table({"i": list(range(40))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=10)  # 4 row groups
    a = distributed.read_shard(tmp_path / "t.parquet", rank=0, world_size=2)
    b = distributed.read_shard(tmp_path / "t.parquet", rank=1, world_size=2)
    assert list(a["i"]) == [*range(0, 10), *range(20, 30)] and list(b["i"]) == [*range(10, 20), *range(30, 40)]
    with pytest.raises(InputFileError, match="row group"):
        distributed.read_shard(tmp_path / "t.parquet", rank=0, world_size=5)
    with pytest.raises(InputFileError, match="not found"):
        distributed.read_shard(tmp_path / "missing.csv", rank=0, world_size=2)


def test_single_process_noisy_sum_is_values_plus_noise():
    import numpy as np
    import torch

    assert SINGLE.world_size == 1 and SINGLE.is_leader
    x = np.arange(5, dtype=float)
    a = noisy_sum(x, 0.0, torch.Generator().manual_seed(0))
    assert isinstance(a, np.ndarray) and np.array_equal(a, x)
    t = noisy_sum(torch.zeros(10_000, dtype=torch.float64), 2.0, torch.Generator().manual_seed(1))
    assert 3.6 < float(t.var()) < 4.4


def test_h5ad_shards_are_contiguous_cell_blocks_read_backed(tmp_path):
    import anndata
    import numpy as np
    import scipy.sparse as sp

    from synthrelease.io.formats import read_table_as

    rng = np.random.default_rng(0)
    x = sp.random(25, 6, density=0.3, format="csr", random_state=1, dtype=np.float32)
    obs = pd.DataFrame({"cell_type": rng.choice(["a", "b"], 25)}, index=[f"c{i}" for i in range(25)])
    anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(6)])).write_h5ad(tmp_path / "t.h5ad")
    whole, _ = read_table_as(tmp_path / "t.h5ad")
    shards = [distributed.read_shard(tmp_path / "t.h5ad", rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [8, 8, 9]
    pd.testing.assert_frame_equal(pd.concat(shards).reset_index(drop=True), whole, check_dtype=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "h5ad"])
def test_person_shards_keep_each_persons_rows_on_one_rank(tmp_path, monkeypatch, fmt):
    import numpy as np
    import scipy.sparse as sp

    from synthrelease.pipeline.stages import first_rows_per_person

    monkeypatch.setattr(distributed, "SHARD_READ_ROWS", 9)  # several CSV chunks
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"person": [f"p{k}" for k in rng.integers(0, 17, n)], "i": range(n), "x": rng.random(n)})
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(df), path, row_group_size=13)
    else:
        import anndata

        adata = anndata.AnnData(X=sp.csr_matrix(df[["x"]].to_numpy(np.float32)),
                                obs=pd.DataFrame({"person": df["person"].to_numpy(), "i": df["i"].to_numpy()},
                                                 index=[f"c{k}" for k in range(n)]))
        adata.var_names = ["x"]
        adata.write_h5ad(path)
    shards = [distributed.read_shard(path, rank=r, world_size=3, unit_column="person", dtype={"person": str})
              for r in range(3)]
    assert sorted(i for s in shards for i in s["i"]) == list(range(n))  # a partition of the rows
    owners = {p: r for r, s in enumerate(shards) for p in s["person"]}
    assert all(owners[p] == r for r, s in enumerate(shards) for p in s["person"])  # a person on ONE rank
    assert all(list(s["i"]) == sorted(s["i"]) for s in shards)  # file order kept
    # the first row of each person on its rank is the first row one process keeps
    firsts = sorted(i for s in shards for i in first_rows_per_person(s, "person", 1, source="t")["i"])
    assert firsts == sorted(first_rows_per_person(df, "person", 1, source="t")["i"])
    with pytest.raises(InputFileError, match="privacy_unit_column 'nobody'"):
        distributed.read_shard(path, rank=0, world_size=3, unit_column="nobody")


def test_a_rank_reads_a_tsv_with_tabs_unless_told_otherwise(tmp_path):
    """Without --sep a .tsv is tab-separated on every rank, as one process reads it (it was read with ',')."""
    assert distributed.shard_separator(tmp_path / "t.tsv", None) == "\t"
    assert distributed.shard_separator(tmp_path / "t.csv", None) == ","
    assert distributed.shard_separator(tmp_path / "t.txt", ";") == ";"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    shard = distributed.read_shard(tmp_path / "t.tsv", rank=0, world_size=1,
                                   sep=distributed.shard_separator(tmp_path / "t.tsv", None))
    assert list(shard.columns) == ["a", "b"]
