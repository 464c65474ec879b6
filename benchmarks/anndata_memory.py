"""Peak memory of reading an .h5ad: the chunked `read_table_as` versus `anndata.read_h5ad().to_df()`.

Writes a synthetic sparse CSR matrix (default 100,000 cells × 2,000 genes, ~5 % non-zero,
log1p-like values, obs: cell_type with 10 categories and a batch column) to a temporary .h5ad,
then reads it in a fresh child process with each reader and records wall time (the read alone, after
imports) and the child's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) next to the size of the
dense float32 result (n × g × 4 bytes); each reader runs --repeat times (interleaved, order alternating), reporting
the median read time and the largest peak RSS. The file is written by a child process too: on
Linux a child's ru_maxrss starts at its parent's RSS at fork time, so the parent stays small.
Writes benchmarks/results/anndata_memory.{json,md}.

    OMP_NUM_THREADS=1 python benchmarks/anndata_memory.py [--cells 100000] [--genes 2000] [--density 0.05]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

_CHILD = {
    "read_table_as": """
import resource, sys, time, json
import anndata  # formats imports it lazily; load it before the clock starts
from synthrelease.io.formats import read_table_as
t0 = time.perf_counter()
df, fmt = read_table_as(sys.argv[1])
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "shape": list(df.shape)}))
""",
    "anndata.read_h5ad().to_df()": """
import resource, sys, time, json
import anndata
t0 = time.perf_counter()
df = anndata.read_h5ad(sys.argv[1]).to_df()
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "shape": list(df.shape)}))
""",
    "baseline (imports only; s = import time)": """
import resource, sys, time, json
t0 = time.perf_counter()
import anndata, pandas, synthrelease.io.formats
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "shape": [0, 0]}))
""",
}


def _write(path: Path, cells: int, genes: int, density: float, seed: int) -> None:
    """A CSR count-like matrix built row block by row block (the writer itself stays small)."""
    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    nnz_per_row = rng.binomial(genes, density, cells)
    indptr = np.concatenate([[0], np.cumsum(nnz_per_row)]).astype(np.int64)
    indices = np.empty(indptr[-1], dtype=np.int32)
    for i in range(cells):  # distinct sorted gene indices per cell
        indices[indptr[i]:indptr[i + 1]] = np.sort(rng.choice(genes, nnz_per_row[i], replace=False))
    data = np.log1p(rng.poisson(2.0, indptr[-1]) + 1).astype(np.float32)
    X = sp.csr_matrix((data, indices, indptr), shape=(cells, genes))
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice([f"type{k}" for k in range(10)], cells)),
                        "batch": pd.Categorical(rng.choice(["b1", "b2", "b3"], cells))},
                       index=pd.Index([f"cell{i:07d}" for i in range(cells)], name="barcode"))
    var = pd.DataFrame(index=pd.Index([f"GENE{j:05d}" for j in range(genes)]))
    anndata.AnnData(X=X, obs=obs, var=var).write_h5ad(path)


def _child(code: str, path: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(results: list[dict]) -> dict:
    secs = sorted(r["seconds"] for r in results)
    return {"read_seconds_median": round(secs[len(secs) // 2], 2), "read_seconds_all": [round(x, 2) for x in secs],
            "peak_rss_mib": round(max(r["peak_rss_kib"] for r in results) / 1024), "shape": results[0]["shape"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)  # internal: the writing child
    a = ap.parse_args()
    if a.write_only:
        _write(a.write_only, a.cells, a.genes, a.density, a.seed)
        return
    work = Path(tempfile.mkdtemp(prefix="anndata-mem-"))
    try:
        path = work / "cells.h5ad"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-only", str(path), "--cells", str(a.cells), "--genes",
                        str(a.genes), "--density", str(a.density), "--seed", str(a.seed)], check=True)
        write_s = time.perf_counter() - t0
        dense_mib = a.cells * a.genes * 4 / 2**20
        raw: dict[str, list[dict]] = {name: [] for name in _CHILD}
        for r in range(a.repeat):  # alternate the order: a child's speed depends on what ran just before it
            for name, code in (list(_CHILD.items()) if r % 2 == 0 else list(_CHILD.items())[::-1]):
                raw[name].append(_child(code, path))
        runs = {name: _summary(r) for name, r in raw.items()}
        for name, r in runs.items():
            print(name, json.dumps(r), flush=True)
        file_mib = path.stat().st_size / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = runs["baseline (imports only; s = import time)"]["peak_rss_mib"]
    ours, naive = runs["read_table_as"], runs["anndata.read_h5ad().to_df()"]
    res = {
        "command": f"OMP_NUM_THREADS=1 python benchmarks/anndata_memory.py --cells {a.cells} --genes {a.genes} "
                   f"--density {a.density} --repeat {a.repeat}",
        "cells": a.cells, "genes": a.genes, "density": a.density, "h5ad_file_mib": round(file_mib),
        "write_seconds": round(write_s, 1), "dense_float32_result_mib": round(dense_mib),
        "runs": runs,
        "read_table_as_rss_over_dense": round(ours["peak_rss_mib"] / dense_mib, 2),
        "read_table_as_rss_above_baseline_over_dense": round((ours["peak_rss_mib"] - base) / dense_mib, 2),
        "naive_rss_over_dense": round(naive["peak_rss_mib"] / dense_mib, 2),
        "naive_rss_above_baseline_over_dense": round((naive["peak_rss_mib"] - base) / dense_mib, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   "shared 2-core box (others' jobs running); OMP_NUM_THREADS=1",
        "note": "peak RSS of each reading child process alone (it includes Python, numpy, pandas and anndata "
                "imports: see the baseline row); the dense float32 result is n x g x 4 bytes; read times on this "
                "shared machine vary several-fold between runs (first-touch page faults of the ~0.8 GB result "
                "dominate and depend on the kernel's memory state), so compare medians only roughly",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "anndata_memory.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Reading .h5ad: peak memory", "", f"Command: `{res['command']}`", "",
          f"Input: {a.cells:,} cells × {a.genes:,} genes, CSR, density {a.density:.0%} "
          f"({res['h5ad_file_mib']} MiB file), obs = cell_type (10 categories) + batch. "
          f"Dense float32 result: **{res['dense_float32_result_mib']} MiB**.", "",
          f"| reader (fresh process, {a.repeat} runs) | read s (median) | read s (all) | peak RSS MiB | "
          "peak RSS / dense result |", "|---|---|---|---|---|",
          *[f"| {name} | {r['read_seconds_median']} | {', '.join(map(str, r['read_seconds_all']))} | "
            f"{r['peak_rss_mib']} | {r['peak_rss_mib'] / dense_mib:.2f} |" for name, r in runs.items()], "",
          f"Peak RSS above the import baseline, relative to the dense result: read_table_as "
          f"{res['read_table_as_rss_above_baseline_over_dense']}×, anndata.read_h5ad().to_df() "
          f"{res['naive_rss_above_baseline_over_dense']}×.", "",
          f"Machine: {res['machine']}.", "", res["note"] + ".", ""]
    (RESULTS / "anndata_memory.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
