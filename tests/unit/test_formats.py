"""Table formats: CSV, TSV, Parquet and AnnData (.h5ad) round trips and one-line errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from synthrelease.errors import InputFileError
from synthrelease.io import formats
from synthrelease.io.formats import (
    TableFormat,
    anndata_from_frame,
    detect_format,
    frame_from_anndata,
    read_table,
    read_table_as,
    write_table_as,
    write_table_atomic,
)

N_CELLS, N_GENES = 50, 20


def _table() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i}" for i in range(6)], "age": [30, 41, 52, 63, 74, 85],
                         "bmi": [21.5, 22.25, np.nan, 30.0, 27.125, 19.0], "sex": list("FMFMFM"),
                         "smoker": [True, False, False, True, False, True]})


def _adata(kind: str = "csr", seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    dense = rng.random((N_CELLS, N_GENES)).astype(np.float32)
    dense[rng.random((N_CELLS, N_GENES)) < 0.7] = 0.0  # ~70 % zeros, like counts
    dense = np.log1p(dense * 10).astype(np.float32)
    X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[kind](dense)
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], N_CELLS)),
                        "n_counts": rng.integers(100, 5000, N_CELLS),
                        "pct_mito": rng.random(N_CELLS).round(3)},
                       index=pd.Index([f"AAAC-{i:03d}" for i in range(N_CELLS)], name="barcode"))
    var = pd.DataFrame(index=pd.Index([f"GENE{j}" for j in range(N_GENES)]))
    return ad.AnnData(X=X, obs=obs, var=var)


def _dense(adata: ad.AnnData) -> np.ndarray:
    return adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)


def _one_line_naming(err: pytest.ExceptionInfo[InputFileError], path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert str(path) in msg, msg
    return msg


# ------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize(("name", "sep", "kind", "expected_sep"), [
    ("a.csv", None, "csv", ","), ("a.CSV", None, "csv", ","), ("a.tsv", None, "tsv", "\t"),
    ("a.Tab", None, "tsv", "\t"), ("a.txt", "\t", "tsv", "\t"), ("a.txt", ";", "csv", ";"),
    ("a.csv", "\t", "tsv", "\t"), ("a.tsv", ",", "csv", ","), ("a.csv.gz", None, "csv", ","),
    ("a.parquet", None, "parquet", ","), ("a.PQ", None, "parquet", ","), ("a.H5AD", None, "h5ad", ","),
    ("a.parquet", "\t", "parquet", ","), ("a.txt", "\\t", "tsv", "\t"), ("a.csv", "tab", "tsv", "\t"),
])
def test_detect_format(name, sep, kind, expected_sep):
    fmt = detect_format(name, sep)
    assert (fmt.kind, fmt.sep) == (kind, expected_sep)
    assert fmt.suffix == f".{kind}"


@pytest.mark.parametrize(("name", "needle"), [
    ("sheet.xlsx", "save the sheet as CSV"), ("old.XLS", "save the sheet as CSV"), ("data.foo", "'.foo'"),
    ("noext", "no extension"), ("notes.txt", "explicit separator"),
])
def test_detect_format_refuses_with_one_line(name, needle):
    with pytest.raises(InputFileError) as err:
        detect_format(name)
    msg = _one_line_naming(err, name)
    assert needle in msg and ".csv, .tsv, .parquet, .h5ad" in msg


def test_table_format_validates():
    with pytest.raises(ValueError, match="unknown table format"):
        TableFormat("xlsx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="h5ad"):
        TableFormat("csv", var_names=("g",))
    assert TableFormat("h5ad", var_names=["a", "b"]).var_names == ("a", "b")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- text and Parquet


@pytest.mark.parametrize(("name", "sep"), [("t.csv", None), ("t.tsv", None), ("t.tab", None), ("t.txt", "\t"),
                                           ("t.txt", ";"), ("t.csv", "|"), ("t.csv.gz", None),
                                           ("t.parquet", None), ("t.pq", None)])
def test_round_trip(tmp_path, name, sep):
    df = _table()
    fmt = detect_format(name, sep)
    written = write_table_as(tmp_path / name, df, fmt)
    assert written == tmp_path / name and sorted(p.name for p in tmp_path.iterdir()) == [name]
    back, fmt_back = read_table_as(written, sep)
    assert fmt_back == fmt
    pd.testing.assert_frame_equal(back, df)
    if fmt.kind in ("csv", "tsv") and not name.endswith(".gz"):
        assert written.read_text().splitlines()[0] == fmt.sep.join(df.columns)


def test_io_wrappers_keep_their_behaviour(tmp_path):
    df = _table()
    for name in ("w.csv", "w.parquet", "w.tsv"):
        write_table_atomic(tmp_path / name, df)
        pd.testing.assert_frame_equal(read_table(tmp_path / name), df)
    assert "\t" in (tmp_path / "w.tsv").read_text().splitlines()[0]
    assert (tmp_path / "w.csv").read_text().splitlines()[0] == "id,age,bmi,sex,smoker"
    pd.testing.assert_frame_equal(read_table(tmp_path / "w.tsv", sep="\t"), df)
    with pytest.raises(ValueError, match="TableFormat"):
        write_table_atomic(tmp_path / "w.h5ad", df)


def test_csv_keeps_skipinitialspace(tmp_path):
    (tmp_path / "s.csv").write_text("a, b\n1, x\n2, y\n")
    df = read_table(tmp_path / "s.csv")
    assert list(df.columns) == ["a", "b"] and df["b"].tolist() == ["x", "y"]


# ---------------------------------------------------------------------------------------- AnnData


@pytest.mark.parametrize("kind", ["dense", "csr", "csc"])
def test_h5ad_round_trip(tmp_path, kind):
    src = _adata(kind)
    src.write_h5ad(tmp_path / "cells.h5ad")
    df, fmt = read_table_as(tmp_path / "cells.h5ad")

    genes = [f"GENE{j}" for j in range(N_GENES)]
    assert list(df.columns) == ["barcode", "cell_type", "n_counts", "pct_mito", *genes]
    assert fmt == TableFormat("h5ad", obs_columns=("barcode", "cell_type", "n_counts", "pct_mito"),
                              var_names=tuple(genes), obs_id_column="barcode")
    assert df["barcode"].tolist() == list(src.obs_names)
    assert df["cell_type"].tolist() == src.obs["cell_type"].astype(str).tolist()
    assert df["n_counts"].dtype == np.int64 and df["n_counts"].tolist() == src.obs["n_counts"].tolist()
    assert (df[genes].dtypes == np.float32).all()
    np.testing.assert_array_equal(df[genes].to_numpy(), _dense(src))

    out = write_table_as(tmp_path / "out" / "syn.h5ad", df, fmt)
    assert sorted(p.name for p in out.parent.iterdir()) == ["syn.h5ad"]  # no temporary left behind
    back = ad.read_h5ad(out)
    assert sp.issparse(back.X) and back.X.format == "csr"  # ~70 % zeros
    assert list(back.var_names) == genes
    assert list(back.obs.columns) == ["cell_type", "n_counts", "pct_mito"]  # real cell ids not kept as a column
    assert list(back.obs_names) == [f"syn-{i}" for i in range(N_CELLS)]
    assert not set(back.obs_names) & set(src.obs_names)
    np.testing.assert_array_equal(back.X.toarray(), _dense(src))
    np.testing.assert_array_equal(back.obs["pct_mito"].to_numpy(), src.obs["pct_mito"].to_numpy())

    again, fmt_again = read_table_as(out)
    assert list(again.columns) == list(df.columns) and fmt_again == fmt
    assert again["barcode"].tolist() == [f"syn-{i}" for i in range(N_CELLS)]


@pytest.mark.parametrize("kind", ["dense", "csr", "csc"])
def test_h5ad_chunked_read_equals_whole_read(tmp_path, kind, monkeypatch):
    src = _adata(kind, seed=3)
    src.write_h5ad(tmp_path / "c.h5ad")
    whole, fmt = read_table_as(tmp_path / "c.h5ad", chunk_rows=N_CELLS * 10)
    chunked, fmt_chunked = read_table_as(tmp_path / "c.h5ad", chunk_rows=7)
    monkeypatch.setattr(formats, "H5AD_CHUNK_ROWS", 3)
    default, _ = read_table_as(tmp_path / "c.h5ad")
    assert fmt == fmt_chunked
    pd.testing.assert_frame_equal(chunked, whole)
    pd.testing.assert_frame_equal(default, whole)
    np.testing.assert_array_equal(whole[list(fmt.var_names)].to_numpy(), _dense(src))


@pytest.mark.parametrize("density", [0.3, 0.9])  # CSR, dense
def test_h5ad_and_parquet_writes_in_row_blocks_equal_whole_writes(tmp_path, monkeypatch, density):
    """Writing converts a row block at a time (no dense float32 or Arrow copy of a wide table):
    the files hold exactly what a whole conversion gives, float16 genes included."""
    rng = np.random.default_rng(5)
    genes = [f"g{j}" for j in range(9)]
    x = np.where(rng.random((23, 9)) < density, rng.gamma(2, 1, (23, 9)), 0).astype(np.float16)
    df = pd.DataFrame(x, columns=genes)
    df.insert(0, "cell_type", rng.choice(["a", "b"], 23).astype(object))
    df.insert(0, "obs_id", [f"c{i}" for i in range(23)])
    df.loc[:4, "cell_type"] = None  # a first row group holding only missing labels
    fmt = TableFormat("h5ad", obs_columns=("obs_id", "cell_type"), var_names=tuple(genes), obs_id_column="obs_id")
    whole = anndata_from_frame(df, fmt)
    monkeypatch.setattr(formats, "WRITE_BLOCK_CELLS", 9 * 4)  # 4 rows per block
    monkeypatch.setattr(formats, "PARQUET_ROW_GROUP_CELLS", 11 * 5)  # 5 rows per row group
    blocks = anndata_from_frame(df, fmt)
    assert sp.issparse(blocks.X) == (density < 0.5) == sp.issparse(whole.X)
    dense = blocks.X.toarray() if sp.issparse(blocks.X) else blocks.X
    np.testing.assert_array_equal(dense, x.astype(np.float32))
    if sp.issparse(blocks.X):
        blocks.X.check_format(full_check=True)
        assert blocks.X.has_canonical_format and blocks.X.nnz == np.count_nonzero(x)
    write_table_as(tmp_path / "t.parquet", df, TableFormat("parquet"))
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 5
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)


def test_h5ad_unnamed_index_becomes_obs_id(tmp_path):
    src = _adata("csr")
    src.obs.index.name = None
    src.write_h5ad(tmp_path / "u.h5ad")
    df, fmt = read_table_as(tmp_path / "u.h5ad")
    assert df.columns[0] == "obs_id" and fmt.obs_id_column == "obs_id"
    assert df["obs_id"].tolist() == list(src.obs_names)


def test_in_memory_conversions():
    src = _adata("csr")
    df, fmt = frame_from_anndata(src, chunk_rows=4)
    np.testing.assert_array_equal(df[list(fmt.var_names)].to_numpy(), _dense(src))
    df.loc[0, "GENE0"] = 99.0  # the frame is a copy, never a view of the AnnData
    assert _dense(src)[0, 0] != 99.0

    syn = df.drop(columns=["barcode"]).assign(extra=np.arange(N_CELLS))
    out = anndata_from_frame(syn, fmt)
    assert list(out.obs.columns) == ["cell_type", "n_counts", "pct_mito", "extra"]
    assert list(out.var_names) == list(fmt.var_names) and out.X.dtype == np.float32
    assert list(out.obs_names) == [f"syn-{i}" for i in range(N_CELLS)]
    assert sp.issparse(out.X)

    dense_df = df.copy()
    dense_df[list(fmt.var_names)] = 1.5  # no zeros: X stays dense
    assert isinstance(anndata_from_frame(dense_df, fmt).X, np.ndarray)


# ------------------------------------------------------------------------------------- bad files


def _raises_one_line(path, needle: str, sep: str | None = None) -> None:
    with pytest.raises(InputFileError) as err:
        read_table_as(path, sep)
    msg = _one_line_naming(err, path)
    assert needle in msg, msg


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("bad.h5ad", b"\x89HDF\x00garbage" * 50, "not an HDF5 file"),
    ("bad.parquet", b"PAR1 this is not parquet at all", "cannot parse parquet table: "),
    ("bad.xlsx", b"PK\x03\x04 a zip", "save the sheet as CSV"),
    ("bad.foo", b"a,b\n1,2\n", "unknown table format"),
    ("tabs.csv", b"a\tb\tc\n1\t2\t3\n4\t5\t6\n", "looks tab-separated; use a .tsv extension or --sep '\\t'"),
    ("commas.tsv", b"a,b,c\n1,2,3\n", "looks comma-separated"),
    ("semi.csv", b"a;b;c\n1;2;3\n", "looks semicolon-separated"),
    ("empty.csv", b"", "table has no rows or no columns"),
    ("header.csv", b"a,b,c\n", "table has no rows or no columns"),
    ("empty.tsv", b"", "table has no rows or no columns"),
])
def test_bad_files_raise_one_line(tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    _raises_one_line(tmp_path / name, needle)


def test_ragged_tsv_named_csv_gets_the_hint(tmp_path):
    (tmp_path / "r.csv").write_text("a\tb\n1\t2,5\n3\t4,5,6\n")  # commas inside fields: pandas errors
    _raises_one_line(tmp_path / "r.csv", "looks tab-separated")


def test_missing_file(tmp_path):
    _raises_one_line(tmp_path / "nope.csv", "data file not found")
    (tmp_path / "dir.h5ad").mkdir()
    _raises_one_line(tmp_path / "dir.h5ad", "a folder, not a data file")


def _damaged_h5ad(path: Path, how: str) -> Path:
    import h5py

    _adata("csr").write_h5ad(path)
    if how == "truncated":
        os.truncate(path, path.stat().st_size // 2)
        return path
    with h5py.File(path, "a") as f:
        if how == "no obs":
            del f["obs"]
        elif how == "text X":
            del f["X"]
            f.create_dataset("X", data=np.array([[b"secret"] * N_GENES] * N_CELLS))
        elif how == "short X":
            del f["X"]
            f.create_dataset("X", data=np.zeros((3, N_GENES), np.float32))
    return path


@pytest.mark.parametrize(("how", "needle"), [
    ("truncated", "a damaged or truncated HDF5 file"),
    ("no obs", "an HDF5 file without AnnData's 'obs'"),
    ("text X", "X holds byte strings, not numbers"),
    ("short X", f"X has shape (3, {N_GENES}), but obs has {N_CELLS} rows"),
])
def test_a_damaged_h5ad_says_what_is_wrong_not_the_exception_class(tmp_path, how, needle):
    """Issue 26.9: no ``KeyError``/``OSError`` wording, and never a value of the file."""
    path = _damaged_h5ad(tmp_path / "bad.h5ad", how)
    with pytest.raises(InputFileError) as err:
        read_table_as(path)
    message = _one_line_naming(err, path)
    assert needle in message and "secret" not in message
    assert not any(word in message for word in ("KeyError", "OSError", "ValueError"))


def test_empty_parquet(tmp_path):
    pd.DataFrame({"a": pd.Series([], dtype=float)}).to_parquet(tmp_path / "e.parquet")
    _raises_one_line(tmp_path / "e.parquet", "table has no rows or no columns")


def test_duplicated_gene_name(tmp_path):
    src = _adata("csr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata: "Variable names are not unique"
        src.var_names = ["GENE0", "GENE1", *[f"GENE{j}" for j in range(1, N_GENES - 1)]]
        src.write_h5ad(tmp_path / "dup.h5ad")
    _raises_one_line(tmp_path / "dup.h5ad", "gene name 'GENE1' appears more than once")
    with pytest.raises(InputFileError, match="appears more than once"):
        frame_from_anndata(src)


def test_gene_name_clashing_with_obs_column(tmp_path):
    src = _adata("csr")
    src.obs["GENE3"] = 1
    src.write_h5ad(tmp_path / "clash.h5ad")
    _raises_one_line(tmp_path / "clash.h5ad", "gene name 'GENE3' is also an obs column")


def test_failed_h5ad_write_is_atomic(tmp_path):
    df, fmt = frame_from_anndata(_adata("csr"))
    target = tmp_path / "keep.h5ad"
    target.write_bytes(b"previous release")
    bad = df.astype({"GENE0": object})
    bad.loc[0, "GENE0"] = "not a number"
    with pytest.raises(ValueError, match="numeric"):
        write_table_as(target, bad, fmt)
    assert target.read_bytes() == b"previous release"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5ad"]


@pytest.mark.parametrize("sep, name", [(",", "t.csv"), ("\t", "t.tsv"), (",", "t.csv.gz")])
def test_delimited_writes_in_row_blocks_equal_one_to_csv(tmp_path, monkeypatch, sep, name):
    """Uncompressed CSV/TSV are written a row block at a time: the same bytes as one ``to_csv``."""
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"x": rng.random(23).astype(np.float16), "y": rng.integers(0, 5, 23),
                       "note": np.where(rng.random(23) < 0.3, None, 'a "q", b').astype(object)})
    monkeypatch.setattr(formats, "WRITE_BLOCK_CELLS", 3 * 4)  # 4 rows per block
    fmt = TableFormat("tsv" if sep == "\t" else "csv", sep=sep)
    write_table_as(tmp_path / name, df, fmt)
    df.to_csv(tmp_path / ("whole-" + name), sep=sep, index=False)
    read = (lambda p: pd.read_csv(p, sep=sep)) if name.endswith(".gz") else (lambda p: p.read_bytes())
    got, expected = read(tmp_path / name), read(tmp_path / ("whole-" + name))
    if isinstance(got, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    else:
        assert got == expected
    write_table_as(tmp_path / "empty.csv", df.iloc[:0], TableFormat("csv"))
    assert (tmp_path / "empty.csv").read_text() == "x,y,note\n"


def test_a_compression_without_its_package_is_a_one_line_error(tmp_path, monkeypatch):
    """Issue 26.9: `.csv.zst` gave ImportError (pandas needs the optional zstandard package)."""
    import pandas as pd

    from synthrelease.errors import InputFileError
    from synthrelease.io.formats import read_table_as

    def missing(*args, **kwargs):
        raise ImportError("Missing optional dependency 'zstandard'.  Use pip or conda to install zstandard.")

    monkeypatch.setattr(pd, "read_csv", missing)
    path = tmp_path / "t.csv.zst"
    path.write_bytes(b"(\xb5/\xfd")
    with pytest.raises(InputFileError, match=r"t\.csv\.zst: .*'zstandard'") as exc:
        read_table_as(path)
    assert "\n" not in str(exc.value)


def test_a_corrupt_sparse_h5ad_is_a_one_line_error_not_a_crash(tmp_path):
    """Issue 26.5: an index out of range in a sparse X segfaulted (exit 139) when densified."""
    import anndata
    import h5py
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from synthrelease.errors import InputFileError
    from synthrelease.io.formats import read_table_as

    X = sp.random(20, 6, density=0.4, format="csr", dtype=np.float32, random_state=0)
    path = tmp_path / "cells.h5ad"
    anndata.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(20)]),
                    var=pd.DataFrame(index=[f"g{i}" for i in range(6)])).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        indices = f["X"]["indices"]
        indices[0] = 10**6  # out of range
    with pytest.raises(InputFileError, match=r"cells\.h5ad: .*outside the matrix") as exc:
        read_table_as(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("first_zero", [True, False])
def test_write_h5ad_stream_appends_chunks_to_sparse_or_dense_x(tmp_path, first_zero):
    """The storage is chosen on the first chunk (CSR when mostly zeros) and every later chunk is appended to it,
    whatever its own zeros; the obs index runs on across the chunks; the layout comes from the TableFormat."""
    from synthrelease.io.formats import write_h5ad_stream

    rng = np.random.default_rng(0)
    chunks = [pd.DataFrame({"kind": rng.choice(["a", "b"], k), "age": rng.integers(1, 9, k),
                            "g0": rng.random(k) * (not (first_zero and i == 0)), "g1": np.zeros(k) if i == 0 else
                            rng.random(k)}) for i, k in enumerate((4, 3, 5))]
    fmt = TableFormat("h5ad", obs_columns=("cell", "kind", "age"), var_names=("g0", "g1"), obs_id_column="cell")
    assert write_h5ad_stream(tmp_path / "s.h5ad", iter(chunks), fmt) == 12
    out = ad.read_h5ad(tmp_path / "s.h5ad")
    assert sp.issparse(out.X) == first_zero and list(out.var_names) == ["g0", "g1"]
    assert list(out.obs_names) == [f"syn-{i}" for i in range(12)] and out.obs.index.name == "cell"
    whole = pd.concat(chunks, ignore_index=True)
    x = out.X.toarray() if first_zero else out.X
    np.testing.assert_allclose(x, whole[["g0", "g1"]].to_numpy(dtype=np.float32))
    assert out.obs["age"].tolist() == whole["age"].tolist() and out.obs["kind"].tolist() == whole["kind"].tolist()
    with pytest.raises(ValueError, match="no rows"):
        write_h5ad_stream(tmp_path / "e.h5ad", iter([]), fmt)
    assert not (tmp_path / "e.h5ad").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.h5ad"]
