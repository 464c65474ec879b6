"""Releases from TSV and AnnData files: the bundle carries the input's format too; bad files exit 2."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from click.testing import CliRunner

from synthrelease.cli import cli
from tests.conftest import check_croissant_bundle, release_workspace

FAST = ["--epsilon", "3", "--steps", "20", "--batch-size", "64"]


def _release(ws, data, out, *extra):
    return CliRunner().invoke(cli, ["-q", "release", str(data), "--metadata", str(ws / "meta.yaml"), "--policy",
                                    str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"), "--out",
                                    str(ws / out), *FAST, *extra])


def _verify(ws, out):
    return CliRunner().invoke(cli, ["verify", str(ws / out), "--public-key", str(ws / "k.pub")])


def test_a_tsv_release_writes_tsv_too(tmp_path):
    ws = release_workspace(tmp_path, rows=400)
    pd.read_csv(ws / "private.csv").to_csv(ws / "private.tsv", sep="\t", index=False)
    res = _release(ws, ws / "private.tsv", "b")
    assert res.exit_code == 0, res.output
    tsv = pd.read_csv(ws / "b" / "synthetic.tsv", sep="\t")
    assert tsv.equals(pd.read_csv(ws / "b" / "synthetic.csv"))
    assert _verify(ws, "b").exit_code == 0
    # the same file under a .txt name needs --sep
    (ws / "private.txt").write_text((ws / "private.tsv").read_text())
    res = _release(ws, ws / "private.txt", "c")
    assert res.exit_code == 2 and "private.txt" in res.output and len(res.output.strip().splitlines()) == 1
    assert _release(ws, ws / "private.txt", "d", "--sep", "\t").exit_code == 0


def test_a_sparse_anndata_release_writes_anndata(tmp_path):
    anndata = pytest.importorskip("anndata")
    ws = release_workspace(tmp_path, rows=10)
    rng = np.random.default_rng(0)
    n, genes = 400, [f"g{i}" for i in range(12)]
    cell_type = rng.choice(["T", "B", "NK"], n)
    dense = np.where(rng.random((n, len(genes))) < 0.6, 0.0, rng.gamma(2.0, 1.0, (n, len(genes))))
    dense[:, 0] += (cell_type == "T") * 3  # a marker gene
    adata = anndata.AnnData(X=sp.csr_matrix(np.clip(dense, 0, 9).astype(np.float32)),
                            obs=pd.DataFrame({"cell_type": cell_type}, index=[f"cell{i}" for i in range(n)]))
    adata.var_names = genes
    adata.write_h5ad(ws / "cells.h5ad")
    meta = {"version": 1, "name": "cells", "reviewed": True, "target": "cell_type", "license": "CC-BY-4.0",
            "creator": "Example Cell Atlas",
            "columns": {"obs_id": {"type": "identifier"},
                        "cell_type": {"type": "categorical", "categories": ["B", "NK", "T"]},
                        **{g: {"type": "float", "min": 0.0, "max": 9.0, "zero_inflated": True} for g in genes}}}
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    policy = yaml.safe_load((ws / "policy.yaml").read_text())
    for section in ("fidelity", "utility"):  # this test is about the format: no clause near its noise
        policy.pop(section, None)
    policy["membership"]["max_dcr_mia_auc"] = 1.0
    (ws / "policy.yaml").write_text(yaml.safe_dump(policy))
    res = _release(ws, ws / "cells.h5ad", "b")
    assert res.exit_code == 0, res.output
    out = anndata.read_h5ad(ws / "b" / "synthetic.h5ad")
    assert list(out.var_names) == genes and "cell_type" in out.obs.columns
    assert not set(out.obs_names) & set(adata.obs_names)  # synthetic cells never reuse real ids
    assert out.n_obs == len(pd.read_csv(ws / "b" / "synthetic.csv"))
    assert _verify(ws, "b").exit_code == 0
    doc = check_croissant_bundle(ws / "b", ws / "k.pub")  # the licence and creator pass through training
    assert doc["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert doc["creator"]["name"] == "Example Cell Atlas"
    h5ad = next(d for d in doc["distribution"] if d["name"] == "synthetic.h5ad")
    assert h5ad["encodingFormat"] == "application/x-hdf5" and h5ad["sameAs"] == "synthetic.csv"


@pytest.mark.parametrize(("name", "content"), [
    ("cohort.xlsx", b"PK\x03\x04 not really excel"),
    ("cohort.h5ad", b"\x89HDF garbage"),
    ("cohort.parquet", b"PAR1 garbage"),
    ("cohort.foo", b"a,b\n1,2\n"),
    ("cohort.csv", b""),
])
def test_bad_files_of_each_format_exit_2_with_one_line(tmp_path, name, content):
    ws = release_workspace(tmp_path, rows=10)
    (ws / name).write_bytes(content)
    res = _release(ws, ws / name, "b")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in res.output
    assert not (ws / "b").exists()


def _wide_h5ad_workspace(tmp_path):
    """A 300-cell × 70-gene float16 AnnData release workspace with every audit in the policy."""
    anndata = pytest.importorskip("anndata")
    ws = release_workspace(tmp_path, rows=10)
    rng = np.random.default_rng(1)
    n, genes = 300, [f"g{i}" for i in range(70)]  # ≥ 64 float16 columns: one block
    cell_type = rng.choice(["T", "B"], n)
    dense = np.where(rng.random((n, len(genes))) < 0.6, 0.0, rng.gamma(2.0, 1.0, (n, len(genes))))
    dense[:, 0] += (cell_type == "T") * 3
    adata = anndata.AnnData(X=sp.csr_matrix(np.clip(dense, 0, 9).astype(np.float32)),
                            obs=pd.DataFrame({"cell_type": cell_type}, index=[f"cell{i}" for i in range(n)]))
    adata.var_names = genes
    adata.write_h5ad(ws / "cells.h5ad")
    meta = {"version": 1, "name": "cells", "reviewed": True, "target": "cell_type", "float_storage": "float16",
            "columns": {"obs_id": {"type": "identifier"},
                        "cell_type": {"type": "categorical", "categories": ["B", "T"]},
                        **{g: {"type": "float", "min": 0.0, "max": 9.0, "zero_inflated": True} for g in genes}}}
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    policy = yaml.safe_load((ws / "policy.yaml").read_text())
    policy["fidelity"]["min_quality_score"] = 0.05  # every audit runs; these tests are about the spill
    policy["utility"] = {"min_tstr_accuracy": 0.05}
    policy["membership"]["max_dcr_mia_auc"] = 1.0  # a noisy 0.995 was seen on this tiny holdout
    (ws / "policy.yaml").write_text(yaml.safe_dump(policy))
    return ws, genes


def test_a_release_with_its_synthetic_block_spilled_is_the_same_release(tmp_path, monkeypatch):
    """A wide synthetic block held in the spill file (forced here; from 1 GiB by default) goes
    through every audit, the DP gate and the writers, and the bundle holds its rows."""
    anndata = pytest.importorskip("anndata")
    import synthrelease.gan.sampling as sampling
    from synthrelease.io import spill

    monkeypatch.setattr(spill, "SPILL_ABOVE_BYTES", 1)
    spilled: list[bool] = []
    real_spilled_array = spill.spilled_array
    monkeypatch.setattr(sampling, "spilled_array", lambda *a: spilled.append(True) or real_spilled_array(*a))
    ws, genes = _wide_h5ad_workspace(tmp_path)
    res = _release(ws, ws / "cells.h5ad", "b")
    assert res.exit_code == 0, res.output
    assert spilled == [True]
    out = anndata.read_h5ad(ws / "b" / "synthetic.h5ad")
    csv = pd.read_csv(ws / "b" / "synthetic.csv")
    parquet = pd.read_parquet(ws / "b" / "synthetic.parquet")
    assert out.n_obs == len(csv) == len(parquet) > 0
    np.testing.assert_allclose(np.asarray(out.X.todense() if sp.issparse(out.X) else out.X),
                               parquet[genes].to_numpy(dtype=np.float32))
    np.testing.assert_allclose(csv[genes].to_numpy(dtype=np.float32), parquet[genes].to_numpy(dtype=np.float32),
                               rtol=1e-3)
    assert _verify(ws, "b").exit_code == 0


def test_no_room_for_the_spill_refuses_before_any_budget_is_spent(tmp_path, monkeypatch):
    import shutil
    import tempfile
    from collections import namedtuple

    from synthrelease.budget.ledger import Ledger
    from synthrelease.io import spill
    from tests.conftest import one_line_error

    monkeypatch.setattr(spill, "SPILL_ABOVE_BYTES", 1)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    usage, real_usage = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",  # the temporary folder is full, --out is not
                        lambda folder: usage(1 << 30, 1 << 30, 1000) if str(folder) == str(tmp_path / "tmp")
                        else real_usage(folder))
    ws, _ = _wide_h5ad_workspace(tmp_path)
    line = one_line_error(_release(ws, ws / "cells.h5ad", "b"))
    assert "no room for the" in line and "TMPDIR" in line
    assert not (ws / "b").exists()
    ledger = Ledger(os.environ["SYNTHRELEASE_LEDGER"])
    assert not ledger.exists() or ledger.used("cells") == 0.0
