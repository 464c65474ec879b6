"""Release of pbmc68k from an AnnData file, end to end through the CLI (run by hand).

Converts ``../shared/data/pbmc68k_reduced.csv`` (700 cells × 765 genes + cell_type) into a
sparse ``.h5ad`` (genes as ``var_names``, cell_type in ``obs``), then runs
``synthrelease release cells.h5ad`` under ``/usr/bin/time -v`` with the pbmc68k metadata
(plus ``obs_id`` as an identifier) and a policy of the default's privacy and data clauses
plus a TSTR accuracy floor, and records verdict, ε, wall time, peak RSS and the
bundle's AnnData layout.

    OMP_NUM_THREADS=2 python benchmarks/h5ad_release.py [--epsilon 1]

Writes benchmarks/results/h5ad_release.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "pbmc68k_reduced.csv"
RESULTS = HERE / "results"


def main() -> None:
    import anndata

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilon", type=float, default=1.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="h5ad-release-"))
    df = pd.read_csv(DATA)
    genes = [c for c in df.columns if c != "cell_type"]
    adata = anndata.AnnData(X=sp.csr_matrix(df[genes].to_numpy(np.float32)),
                            obs=pd.DataFrame({"cell_type": df["cell_type"].astype(str).to_numpy()},
                                             index=[f"cell{i}" for i in range(len(df))]))
    adata.var_names = genes
    adata.write_h5ad(work / "cells.h5ad")
    meta = yaml.safe_load((HERE / "metadata" / "pbmc68k.yaml").read_text())
    meta["columns"] = {"obs_id": {"type": "identifier"}, **meta["columns"]}
    (work / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    policy = yaml.safe_load((HERE.parent / "policies" / "default.yaml").read_text())
    policy.pop("fidelity", None)
    policy.pop("membership", None)
    policy["utility"] = {"min_tstr_accuracy": 0.3}
    (work / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    exe = Path(sys.executable).parent / "synthrelease"
    subprocess.run([str(exe), "keys", "generate", "--private", str(work / "k.pem"), "--public",
                    str(work / "k.pub")], check=True, capture_output=True)
    cmd = [str(exe), "-q", "release", str(work / "cells.h5ad"), "--metadata", str(work / "meta.yaml"), "--policy",
           str(work / "policy.yaml"), "--signing-key", str(work / "k.pem"), "--out", str(work / "bundle"),
           "--epsilon", str(a.epsilon), "--ledger", str(work / "ledger.sqlite3")]
    run = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", run.stderr).group(1)
    row = {"epsilon": a.epsilon, "exit_code": run.returncode, "verdict": "released" if run.returncode == 0 else
           "rejected" if run.returncode == 1 else "error", "wall": wall, "peak_rss_mib": round(peak_kb / 1024),
           "stdout_tail": run.stdout.strip().splitlines()[-12:],
           "stderr_tail": [ln for ln in run.stderr.splitlines() if "Command being timed" not in ln][:3]}
    if run.returncode == 0:
        out = anndata.read_h5ad(work / "bundle" / "synthetic.h5ad")
        row |= {"synthetic_cells": out.n_obs, "synthetic_genes": out.n_vars, "obs_columns": list(out.obs.columns),
                "sparse_x": sp.issparse(out.X)}
    RESULTS.mkdir(exist_ok=True)
    command = "OMP_NUM_THREADS=2 python benchmarks/h5ad_release.py " + " ".join(sys.argv[1:])
    (RESULTS / "h5ad_release.json").write_text(json.dumps({"command": command, "row": row}, indent=1) + "\n")
    md = ["# pbmc68k released from AnnData (.h5ad)", "", f"Command: `{command}` (2 CPU cores; "
          "700 cells × 765 genes as a CSR `.h5ad`; policy: default privacy/data clauses + TSTR accuracy ≥ 0.3).",
          "", "| ε | verdict | wall | peak RSS (MiB) | synthetic AnnData |", "|---|---|---|---|---|",
          f"| {a.epsilon:g} | {row['verdict']} | {wall} | {row['peak_rss_mib']} | "
          f"{row.get('synthetic_cells', '—')} × {row.get('synthetic_genes', '—')}, obs {row.get('obs_columns', '—')}, "
          f"sparse X {row.get('sparse_x', '—')} |", "", "CLI output (tail):", "", "```",
          *row["stdout_tail"], "```"]
    (RESULTS / "h5ad_release.md").write_text("\n".join(md) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
