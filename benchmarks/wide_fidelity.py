"""Fidelity report on a wide table (run by hand, ALONE): 20,000 numerical columns.

Times ``synthrelease.audits.fidelity.run_fidelity`` (sdmetrics Column Shapes over every
column, Column Pair Trends over a seeded 40-column subset, PRDC coverage) on N real and N
synthetic rows of G columns: zero-inflated expression-like values (70 % zeros, the rest
log-normal) bounded in [0, 50], plus a 10-category label. Peak RSS of this process.

    python benchmarks/wide_fidelity.py [--rows 2000] [--columns 20000]

Writes benchmarks/results/wide_fidelity.{json,md}.
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
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--columns", type=int, default=20_000)
    a = ap.parse_args()
    import numpy as np
    import pandas as pd

    from synthrelease.audits.fidelity import run_fidelity
    from synthrelease.metadata.schema import Metadata

    rng = np.random.default_rng(0)
    genes = [f"g{j:05d}" for j in range(a.columns)]

    def table() -> pd.DataFrame:
        x = np.where(rng.random((a.rows, a.columns)) < 0.7, 0.0,
                     rng.lognormal(0.0, 1.0, (a.rows, a.columns))).clip(0, 50).astype(np.float32)
        df = pd.DataFrame(x, columns=genes)
        df["cell_type"] = rng.choice([f"t{i}" for i in range(10)], a.rows)
        return df

    real, synthetic = table(), table()
    meta = Metadata.model_validate({"version": 1, "target": "cell_type", "columns": {
        **{g: {"type": "float", "min": 0, "max": 50} for g in genes},
        "cell_type": {"type": "categorical", "categories": [f"t{i}" for i in range(10)]}}})
    t0 = time.perf_counter()
    result = run_fidelity(real, synthetic, meta, seed=0)
    seconds = time.perf_counter() - t0
    row = {"rows_each": a.rows, "columns": a.columns + 1, "seconds": round(seconds, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           **{k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}}
    command = "python benchmarks/wide_fidelity.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wide_fidelity.json").write_text(json.dumps({"command": command, **row}, indent=1) + "\n")
    (RESULTS / "wide_fidelity.md").write_text(
        "# Fidelity report on a wide table\n\n"
        f"Command: `{command}` (2 CPU cores). Two independent draws of the same distribution (so the scores "
        "show the ceiling, not a model). sdmetrics Column Shapes on every column, Column Pair Trends on a "
        "seeded 40-column subset, PRDC on at most 5,000 rows per side.\n\n"
        "| " + " | ".join(row) + " |\n|" + "---|" * len(row) + "\n| " + " | ".join(str(v) for v in row.values())
        + " |\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
