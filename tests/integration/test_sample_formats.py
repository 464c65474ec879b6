"""`sample` writes the formats `release` writes (issue 31.4): a model trained on an ``.h5ad`` table samples to
``.h5ad`` laid out as its input (genes in X, the other columns in obs, fresh cell ids), and every table model
to TSV too; chunk by chunk, atomically; any other suffix is one line listing the accepted ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml

from tests.conftest import TINY_METADATA, make_tiny_table, one_line_error, run_cli

anndata = pytest.importorskip("anndata")

GENES = [f"g{i}" for i in range(8)]
FAST = ["--epsilon", "3", "--steps", "8", "--batch-size", "64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 300-cell AnnData table (sparse X, a text and a NUMERICAL obs column) and a model trained on it."""
    ws = tmp_path_factory.mktemp("cells")
    rng = np.random.default_rng(0)
    n = 300
    cell_type = rng.choice(["B", "T"], n)
    dense = np.where(rng.random((n, len(GENES))) < 0.7, 0.0, rng.gamma(2.0, 1.0, (n, len(GENES))))
    obs = pd.DataFrame({"cell_type": cell_type, "donor_age": rng.integers(20, 80, n)},
                       index=pd.Index([f"cell{i}" for i in range(n)], name="cell_id"))
    adata = anndata.AnnData(X=sp.csr_matrix(np.clip(dense, 0, 9).astype(np.float32)), obs=obs)
    adata.var_names = GENES
    adata.write_h5ad(ws / "cells.h5ad")
    meta = {"version": 1, "name": "cells", "reviewed": True, "target": "cell_type",
            "columns": {"cell_id": {"type": "identifier"},
                        "cell_type": {"type": "categorical", "categories": ["B", "T"]},
                        "donor_age": {"type": "integer", "min": 20, "max": 80},
                        **{g: {"type": "float", "min": 0.0, "max": 9.0, "zero_inflated": True} for g in GENES}}}
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    res = run_cli("train", str(ws / "cells.h5ad"), "--metadata", str(ws / "meta.yaml"), *FAST, "--ledger",
                  str(ws / "l.sqlite3"), "-o", str(ws / "model.pt"))
    assert res.exit_code == 0, res.output
    return ws


def test_a_model_trained_on_h5ad_samples_to_h5ad_laid_out_as_its_input(trained, tmp_path):
    model = str(trained / "model.pt")
    layout = yaml.safe_load(torch.load(model, weights_only=True)["info_json"])["table_format"]
    assert layout == {"kind": "h5ad", "sep": ",", "obs_columns": ["cell_id", "cell_type", "donor_age"],
                      "var_names": GENES, "obs_id_column": "cell_id"}  # public names only
    res = run_cli("sample", model, "-n", "100", "--chunk-rows", "30", "-o", str(tmp_path / "s.h5ad"))
    assert res.exit_code == 0 and "wrote 100 rows" in res.output, res.output
    out = anndata.read_h5ad(tmp_path / "s.h5ad")
    assert list(out.var_names) == GENES and list(out.obs.columns) == ["cell_type", "donor_age"]
    assert list(out.obs_names) == [f"syn-{i}" for i in range(100)] and out.obs.index.name == "cell_id"
    assert set(out.obs["cell_type"]) <= {"B", "T"} and out.obs["donor_age"].between(20, 80).all()
    # the same draws as a CSV of the same seed and chunks: the chunks are stitched in order
    assert run_cli("sample", model, "-n", "100", "--chunk-rows", "30", "-o", str(tmp_path / "s.csv")).exit_code == 0
    csv = pd.read_csv(tmp_path / "s.csv")
    x = out.X.toarray() if sp.issparse(out.X) else np.asarray(out.X)
    np.testing.assert_allclose(x, csv[GENES].to_numpy(dtype=np.float32), rtol=1e-6)
    assert out.obs["cell_type"].astype(str).tolist() == csv["cell_type"].astype(str).tolist()
    # and TSV, the other format a release writes
    assert run_cli("sample", model, "-n", "100", "--chunk-rows", "30", "-o", str(tmp_path / "s.tsv")).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.tsv", sep="\t"), csv)


@pytest.mark.parametrize("name", ["s.xlsx", "s.h5", "s"])
def test_another_suffix_is_one_line_listing_the_accepted_ones(trained, tmp_path, name):
    msg = one_line_error(run_cli("sample", str(trained / "model.pt"), "-n", "5", "-o", str(tmp_path / name)))
    assert ".csv, .tsv, .parquet, .h5ad" in msg and name in msg and not (tmp_path / name).exists()


def test_a_failed_h5ad_sample_writes_nothing(trained, tmp_path):
    res = run_cli("sample", str(trained / "model.pt"), "-n", "5", "-o", str(tmp_path / "s.h5ad"), "--condition",
                  "cell_type=NK")
    assert "not a declared category" in one_line_error(res)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_a_model_trained_on_csv_samples_to_h5ad_with_its_numbers_as_genes(tmp_path):
    make_tiny_table(200, seed=3).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    res = run_cli("train", str(tmp_path / "t.csv"), "--metadata", str(tmp_path / "m.yaml"), *FAST, "--ledger",
                  str(tmp_path / "l.sqlite3"), "-o", str(tmp_path / "m.pt"))
    assert res.exit_code == 0, res.output
    assert run_cli("sample", str(tmp_path / "m.pt"), "-n", "40", "-o", str(tmp_path / "s.h5ad")).exit_code == 0
    out = anndata.read_h5ad(tmp_path / "s.h5ad")
    assert out.n_obs == 40 and set(out.var_names) == {"age", "bmi", "dose"}
    assert {"sex", "smoker", "stage", "outcome"} <= set(out.obs.columns)
