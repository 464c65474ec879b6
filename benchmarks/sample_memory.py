"""Streamed sampling in flat memory: peak RSS of `synthrelease sample` for 100k vs N rows.

Trains a small model on the bundled demo table (ε = 3), then runs the CLI's `sample` in a
child process for 100,000 rows and for --rows (default 10,000,000) rows, recording wall
time, peak RSS and file size. Writes benchmarks/results/sample_memory.{json,md}.

    python benchmarks/sample_memory.py [--rows 10000000] [--format csv]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _cli(*args: str) -> tuple[float, float]:
    """Run the CLI in a child; its own wall time and peak RSS (os.wait4 gives that child's rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "synthrelease.cli", "-q", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"synthrelease {args[0]} failed with exit code {proc.returncode}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--format", choices=["csv", "parquet"], default="csv")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sample-mem-"))
    data = resources.files("synthrelease") / "data"
    with resources.as_file(data / "breast_cancer.csv") as csv, \
            resources.as_file(data / "breast_cancer.metadata.yaml") as meta:
        _cli("train", str(csv), "--metadata", str(meta), "--epsilon", "3", "-o", str(work / "m.pt"))
    rows = []
    for n in (100_000, a.rows):
        out = work / f"s{n}.{a.format}"
        secs, rss = _cli("sample", str(work / "m.pt"), "-n", str(n), "-o", str(out))
        rows.append({"rows": n, "seconds": round(secs, 1), "peak_rss_mb": round(rss),
                     "file_mb": round(out.stat().st_size / 2**20), "rows_per_s": round(n / secs)})
        out.unlink()
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    res = {"model": "demo table (31 columns), eps 3", "format": a.format, "chunk_rows": 50_000, "runs": rows,
           "note": "peak RSS of each sampling process alone (os.wait4); equal numbers mean flat memory"}
    (RESULTS / "sample_memory.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Streamed sampling memory", "", f"Command: `python benchmarks/sample_memory.py` ({a.format}, "
          "chunks of 50,000 rows, demo model).", "", "| rows | seconds | peak RSS MB | file MB | rows/s |",
          "|---|---|---|---|---|", *[f"| {r['rows']:,} | {r['seconds']} | {r['peak_rss_mb']} | {r['file_mb']} | "
                                   f"{r['rows_per_s']:,} |" for r in rows], "", res["note"], ""]
    (RESULTS / "sample_memory.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
