"""Nearest-neighbour audit at scale (run by hand, ALONE): exact blocked search, 1,000,000 × 1,000,000.

Times ``synthrelease.audits.membership.nearest_distances`` (the DCR audit's search:
scikit-learn brute-force k-NN, blocked by its ``working_memory``, then exact distances in
blocks) on N synthetic × N real rows of 20 uniform columns, in a child process whose peak
RSS is recorded. Exact search: recall 1 by construction.

    python benchmarks/nn_audit_scale.py [--rows 1000000] [--columns 20]

Writes benchmarks/results/nn_audit_scale.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--columns", type=int, default=20)
    a = ap.parse_args()
    import numpy as np

    from synthrelease.audits.membership import nearest_distances

    rng = np.random.default_rng(0)
    real = rng.random((a.rows, a.columns))
    synthetic = rng.random((a.rows, a.columns))
    t0 = time.perf_counter()
    d = nearest_distances(real, synthetic)
    seconds = time.perf_counter() - t0
    row = {"real_rows": a.rows, "synthetic_rows": a.rows, "columns": a.columns, "seconds": round(seconds, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "input_mib": round(2 * real.nbytes / 2 ** 20), "median_distance": round(float(np.median(d)), 4),
           "recall": 1.0}
    command = "python benchmarks/nn_audit_scale.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nn_audit_scale.json").write_text(json.dumps({"command": command, **row}, indent=1) + "\n")
    (RESULTS / "nn_audit_scale.md").write_text(
        "# Nearest-neighbour audit at scale (exact, blocked)\n\n"
        f"Command: `{command}` (2 CPU cores, OMP/BLAS threads as set). "
        "scikit-learn brute-force search blocked by `working_memory`, exact distances in blocks: recall 1.\n\n"
        "| " + " | ".join(row) + " |\n|" + "---|" * len(row) + "\n| " + " | ".join(str(v) for v in row.values())
        + " |\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
