"""Column Shapes of wide float16 tables: sdmetrics per column vs counting the 65,536 codes (run by hand, alone).

A seeded single-cell-like pair of tables (ROWS real, ROWS synthetic, COLUMNS float16 genes in
[0, 10], a share 0.93 zeros, log1p-count values elsewhere) scored two ways, each timed:

* ``audit``: the fidelity audit's Column Shapes (``fidelity._column_shapes_in_blocks``) —
  sdmetrics' ``ColumnShapes`` property on float64 copies (the path before counting) vs the
  float16 tables (counted);
* ``dp_gate``: the DP gate's per-column scores (``dp_figures.column_shape_scores``) — the
  float64 copies (sdmetrics' ``KSComplement`` per column) vs the float16 tables (counted).

Prints and writes the seconds and the largest absolute difference of the per-column scores
to benchmarks/results/shape_speed[-TAG].{json,md}.

    OMP_NUM_THREADS=2 python benchmarks/shape_speed.py --rows 80000 --columns 2000 [--tag NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from synthrelease.audits import dp_figures, fidelity  # noqa: E402
from synthrelease.metadata.schema import Metadata  # noqa: E402

RESULTS = HERE / "results"


def _table(rows: int, columns: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.zeros((rows, columns), dtype=np.float16)
    for lo in range(0, columns, 500):  # in blocks: no float64 copy of the whole table
        hi = min(columns, lo + 500)
        block = np.log1p(rng.poisson(rng.uniform(1, 30, hi - lo), (rows, hi - lo))).astype(np.float16)
        values[:, lo:hi] = np.where(rng.random((rows, hi - lo)) < 0.93, 0, block)
    return pd.DataFrame(values, columns=[f"g{j}" for j in range(columns)], copy=False)


def _timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=80_000)
    ap.add_argument("--columns", type=int, default=2_000)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    from sdmetrics.reports.single_table._properties import ColumnShapes

    real, synthetic = _table(a.rows, a.columns, 0), _table(a.rows, a.columns, 1)
    cols = list(real.columns)
    meta = Metadata.model_validate({"version": 1, "columns": {c: {"type": "float", "min": 0, "max": 10}
                                                             for c in cols}})
    sdmeta = {"columns": {c: {"sdtype": "numerical"} for c in cols}}
    res: dict = {"rows": a.rows, "columns": a.columns}
    for name, fn, extra in (("audit", fidelity._column_shapes_in_blocks, (meta, cols, sdmeta, ColumnShapes)),
                            ("dp_gate", dp_figures.column_shape_scores, (meta,))):
        counted, t_counted = _timed(fn, real, synthetic, *extra)
        before, t_before = _timed(fn, real.astype(np.float64), synthetic.astype(np.float64), *extra)
        scores = (counted[1]["Score"].to_numpy(), before[1]["Score"].to_numpy()) if name == "audit" else \
            (counted, before)
        res[name] = {"sdmetrics_seconds": round(t_before, 2), "counted_seconds": round(t_counted, 2),
                     "speedup": round(t_before / t_counted, 1),
                     "max_abs_difference": float(np.max(np.abs(scores[0] - scores[1])))}
        print(name, res[name], flush=True)
    tag = f"-{a.tag}" if a.tag else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"shape_speed{tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# Column Shapes of wide float16 tables: sdmetrics vs counting", "",
             f"`OMP_NUM_THREADS=2 python benchmarks/shape_speed.py --rows {a.rows} --columns {a.columns}"
             f"{' --tag ' + a.tag if a.tag else ''}` (2 CPU cores, run alone).", "",
             f"{a.rows:,} real and {a.rows:,} synthetic rows × {a.columns:,} float16 columns.", "",
             "| path | sdmetrics per column (s) | counted (s) | speed-up | largest score difference |",
             "|---|---|---|---|---|"]
    lines += [f"| {k} | {res[k]['sdmetrics_seconds']} | {res[k]['counted_seconds']} | {res[k]['speedup']}× | "
              f"{res[k]['max_abs_difference']:.1e} |" for k in ("audit", "dp_gate")]
    (RESULTS / f"shape_speed{tag}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
