"""An expression atlas at scale from a sparse ``.h5ad``, end to end through the CLI (run by hand).

Writes a seeded random single-cell-like matrix (CELLS × GENES, CSR, a share DENSITY of
non-zeros holding log1p counts in (0, 10], 10 cell types, each with its own 200 marker
genes) to ``cells.h5ad`` in chunks, declares public metadata for it (every gene float in
[0, 10], zero-inflated; ``cell_type`` categorical; the obs index ``obs_id`` an identifier;
``float_storage: float16`` unless ``--float32``),
then runs ``synthrelease train`` or ``synthrelease release`` on it in a child process under
``/usr/bin/time -v`` and records wall time, peak RSS and (release) the per-stage seconds of
the internal report.

    OMP_NUM_THREADS=2 python benchmarks/h5ad_scale.py --cells 100000 --genes 20000 --job release

Writes benchmarks/results/h5ad_scale-JOB-CELLSxGENES.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TYPES = [f"type{i}" for i in range(10)]


def write_atlas(path: Path, cells: int, genes: int, density: float, seed: int, chunk: int = 10_000) -> None:
    """The seeded random atlas as a CSR ``.h5ad`` (built chunk by chunk)."""
    import anndata

    rng = np.random.default_rng(seed)
    labels = rng.choice(TYPES, cells)
    blocks = []
    for lo in range(0, cells, chunk):
        hi = min(cells, lo + chunk)
        n = hi - lo
        nnz_per_row = rng.binomial(genes, density, n)
        indptr = np.concatenate([[0], np.cumsum(nnz_per_row)])
        indices = np.concatenate([np.sort(rng.choice(genes, k, replace=False)) for k in nnz_per_row])
        data = np.log1p(rng.gamma(1.5, 2.0, indptr[-1])).astype(np.float32)
        block = sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(n, genes))
        # markers: each type raises its own 200 genes
        for t, name in enumerate(TYPES):
            rows = np.flatnonzero(labels[lo:hi] == name)
            marker = np.arange(t * 200, (t + 1) * 200) % genes
            sub = block[rows][:, marker].toarray()
            boost = np.where(rng.random(sub.shape) < 0.5, rng.uniform(2, 5, sub.shape), 0).astype(np.float32)
            block[np.ix_(rows, marker)] = np.minimum(10.0, sub + boost)
        block.sort_indices()
        blocks.append(block.tocsr())
    x = sp.vstack(blocks, format="csr", dtype=np.float32)
    del blocks
    adata = anndata.AnnData(X=x, obs=pd.DataFrame({"cell_type": pd.Categorical(labels, categories=TYPES)},
                                                  index=pd.Index([f"c{i}" for i in range(cells)], name="obs_id")))
    adata.var_names = [f"g{i}" for i in range(genes)]
    adata.write_h5ad(path)


def _run_sampling_rss(cmd: list[str]) -> tuple[subprocess.CompletedProcess, list[tuple[float, int, int]]]:
    """Run ``cmd``; sample the RSS of its process tree every 0.5 s: [(seconds, RSS MiB, anonymous
    RSS MiB)] (the rest of the RSS is file-backed pages, e.g. a spilled synthetic block)."""
    import threading

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timeline: list[tuple[float, int, int]] = []
    t0 = time.perf_counter()

    def tree(pid: int) -> list[int]:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return [pid]
        return [pid, *(q for k in kids for q in tree(int(k)))]

    def rss_kib(pid: int, key: str = "VmRSS:") -> int:
        try:
            line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(key))
            return int(line.split()[1])
        except (OSError, StopIteration):
            return 0

    def watch() -> None:
        while proc.poll() is None:
            pids = tree(proc.pid)
            timeline.append((time.perf_counter() - t0, sum(rss_kib(p) for p in pids) // 1024,
                             sum(rss_kib(p, "RssAnon:") for p in pids) // 1024))
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out, err = proc.communicate()
    thread.join(timeout=2)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), timeline


def _stage_peaks(timeline: list[tuple[float, int, int]], seconds: dict[str, float], which: int = 1) -> dict[str, int]:
    """Peak RSS (``which`` 1) or anonymous RSS (2) per release stage, the stages placed by their
    durations in the report (in order, after interpreter start-up, which counts with ``validate``)."""
    order = ["validate", "train", "sample", "audits", "dp_gate", "bundle"]
    bounds, end = [], 0.0
    start_up = max(0.0, (timeline[-1][0] if timeline else 0.0) - float(seconds.get("total", 0.0)))
    for k in order:
        if k in seconds:
            end += float(seconds[k])
            bounds.append((k, start_up + end))
    peaks: dict[str, int] = {}
    lo = 0.0
    for k, hi in bounds:
        vals = [row[which] for row in timeline if lo <= row[0] < hi]
        peaks[k] = max(vals) if vals else 0
        lo = hi
    rest = [row[which] for row in timeline if row[0] >= lo]
    if rest:
        peaks["after (report, bundle signing, exit)"] = max(rest)
    return peaks


def metadata(genes: int, float16: bool = True) -> dict:
    cols: dict = {"obs_id": {"type": "identifier"}, "cell_type": {"type": "categorical", "categories": TYPES}}
    cols |= {f"g{i}": {"type": "float", "min": 0.0, "max": 10.0, "zero_inflated": True} for i in range(genes)}
    meta = {"name": "atlas", "reviewed": True, "target": "cell_type", "columns": cols}
    return meta | ({"float_storage": "float16"} if float16 else {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--density", type=float, default=0.07)
    ap.add_argument("--job", choices=["train", "release"], default="release")
    ap.add_argument("--epsilon", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="Keep (and reuse) the generated atlas here.")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--float32", action="store_true", help="Leave out the metadata's float_storage: float16.")
    ap.add_argument("--lenient", action="store_true",
                    help="Release: fidelity ≥ 0.3 and TSTR accuracy ≥ 0.05, so a short run reaches the bundle.")
    a = ap.parse_args()
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="h5ad-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"cells-{a.cells}x{a.genes}.h5ad"
    t0 = time.perf_counter()
    if not data.exists():
        write_atlas(data, a.cells, a.genes, a.density, seed=0)
    write_s = time.perf_counter() - t0
    (work / "meta.yaml").write_text(yaml.safe_dump(metadata(a.genes, not a.float32), sort_keys=False))
    policy = yaml.safe_load((HERE.parent / "policies" / "default.yaml").read_text())
    policy["utility"] = {"min_tstr_accuracy": 0.3}
    if a.lenient:  # every clause stays (all audits and DP figures run); thresholds a short run can meet
        policy["fidelity"]["min_quality_score"] = 0.3
        policy["utility"]["min_tstr_accuracy"] = 0.05
    (work / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    exe = Path(sys.executable).parent / "synthrelease"
    if not (work / "k.pem").exists():
        subprocess.run([str(exe), "keys", "generate", "--private", str(work / "k.pem"), "--public",
                        str(work / "k.pub")], check=True, capture_output=True)
    stamp = time.strftime("%H%M%S")
    steps = ["--steps", str(a.steps)] if a.steps else []
    if a.job == "train":
        cmd = [str(exe), "train", str(data), "--metadata", str(work / "meta.yaml"), "-o",
               str(work / f"model-{stamp}.pt"), "--epsilon", str(a.epsilon), "--ledger", str(work / "l.sqlite3"),
               *steps]
    else:
        cmd = [str(exe), "release", str(data), "--metadata", str(work / "meta.yaml"), "--policy",
               str(work / "policy.yaml"), "--signing-key", str(work / "k.pem"), "--out", str(work / f"b-{stamp}"),
               "--epsilon", str(a.epsilon), "--ledger", str(work / "l.sqlite3"), *steps]
    run, timeline = _run_sampling_rss(["/usr/bin/time", "-v", *cmd])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", run.stderr).group(1)
    row: dict = {"cells": a.cells, "genes": a.genes, "density": a.density, "job": a.job, "epsilon": a.epsilon,
                 "steps": a.steps, "exit_code": run.returncode, "wall": wall, "peak_rss_mib": round(peak_kb / 1024),
                 "file_mib": round(data.stat().st_size / 2**20),
                 "dense_float32_mib": round(a.cells * a.genes * 4 / 2**20),
                 "generate_s": round(write_s, 1),
                 "log_tail": [ln for ln in (run.stdout + run.stderr).splitlines()
                              if ln.strip() and not ln.startswith("\t")][-25:]}
    if a.job == "train" and run.returncode == 0:  # then the streamed sampler, in its own process
        samp = [str(exe), "sample", str(work / f"model-{stamp}.pt"), "-n", str(a.cells), "-o",
                str(work / f"synthetic-{stamp}.parquet")]
        srun = subprocess.run(["/usr/bin/time", "-v", *samp], capture_output=True, text=True)
        row["sample"] = {
            "rows": a.cells, "exit_code": srun.returncode,
            "wall": re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", srun.stderr).group(1),
            "peak_rss_mib": round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                                                srun.stderr).group(1)) / 1024),
            "file_mib": round((work / f"synthetic-{stamp}.parquet").stat().st_size / 2**20)
            if srun.returncode == 0 else None}
    report = work / f"b-{stamp}.internal-report" / "internal_report.json"
    if report.exists():
        rep = json.loads(report.read_text())
        row["stage_seconds"] = {k: round(v, 1) for k, v in rep.get("seconds", {}).items()}
        row["stage_peak_rss_mib"] = _stage_peaks(timeline, rep.get("seconds", {}))
        row["stage_peak_anon_rss_mib"] = _stage_peaks(timeline, rep.get("seconds", {}), which=2)
        row["audit_seconds"] = {k: round(v.get("runtime_s") or 0, 1) for k, v in rep.get("audits", {}).items()}
        row["verdict_clauses"] = [(c["clause"], c.get("measured"), c["passed"]) for c in rep.get("gate", [])]
    RESULTS.mkdir(exist_ok=True)
    command = "OMP_NUM_THREADS=2 python benchmarks/h5ad_scale.py " + " ".join(sys.argv[1:])
    name = f"h5ad_scale-{a.job}-{a.cells}x{a.genes}" + (f"-{a.tag}" if a.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps({"command": command, "row": row}, indent=1) + "\n")
    md = [f"# Expression atlas at scale: {a.job} from .h5ad", "", f"Command: `{command}` (2 CPU cores).", "",
          f"Input: {a.cells:,} cells × {a.genes:,} genes, CSR, density {a.density:g} ({row['file_mib']} MiB file; "
          f"dense float32 would be {row['dense_float32_mib']:,} MiB).", "",
          "| job | exit | wall | peak RSS (MiB) |", "|---|---|---|---|",
          f"| {a.job} | {run.returncode} | {wall} | {row['peak_rss_mib']:,} |", ""]
    if "sample" in row:
        smp = row["sample"]
        md[-2:-1] = [md[-2], f"| sample {smp['rows']:,} rows → Parquet (streamed) | {smp['exit_code']} | "
                     f"{smp['wall']} | "
                     f"{smp['peak_rss_mib']:,} |"]
    if "stage_peak_rss_mib" in row:
        md += ["Peak RSS per stage (MiB, sampled every 0.5 s): "
               + ", ".join(f"{k} {v:,}" for k, v in row["stage_peak_rss_mib"].items()), "",
               "Of which anonymous memory (the rest: file-backed pages such as the spilled synthetic block): "
               + ", ".join(f"{k} {v:,}" for k, v in row["stage_peak_anon_rss_mib"].items()), ""]
    if "stage_seconds" in row:
        md += ["Stage seconds: " + ", ".join(f"{k} {v}" for k, v in row["stage_seconds"].items()), "",
               "Audit seconds: " + ", ".join(f"{k} {v}" for k, v in row["audit_seconds"].items()), ""]
    md += ["Output tail:", "", "```", *row["log_tail"], "```", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
