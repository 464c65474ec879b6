"""Wide-data scaling: peak memory and step time of training on G genes × N cells (run by hand).

Generates a seeded random zero-inflated expression matrix (values in [0, 10], 2/3 zeros,
10 cell types) with declared public metadata, trains the shipped DP-GAN for a few steps
in a child process per size, and records peak RSS (os.wait4) and seconds per
discriminator step. Writes benchmarks/results/wide_scaling.{json,md}; the markdown also
states the linear extrapolation to 20,000 genes × 100,000 cells and what dominates it.

    python benchmarks/wide_scaling.py [--genes 20000] [--cells 1000,4000] [--steps 10]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def child(genes: int, cells: int, steps: int) -> None:
    import numpy as np
    import pandas as pd

    from synthrelease.metadata.schema import Metadata
    from synthrelease.training.config import TrainingConfig
    from synthrelease.training.trainer import train_dp_gan
    from synthrelease.transforms.encoders import TableEncoder

    rng = np.random.default_rng(0)
    x = np.where(rng.random((cells, genes)) < 2 / 3, 0.0, rng.uniform(0, 10, (cells, genes))).astype(np.float32)
    names = [f"g{i}" for i in range(genes)]
    df = pd.DataFrame(x, columns=names)
    types = [f"t{i}" for i in range(10)]
    df["cell_type"] = rng.choice(types, cells)
    cols = {g: {"type": "float", "min": 0.0, "max": 10.0, "zero_inflated": True} for g in names}
    cols["cell_type"] = {"type": "categorical", "categories": types}
    meta = Metadata.model_validate({"name": "wide", "reviewed": True, "target": "cell_type", "columns": cols})
    cfg = TrainingConfig(target_epsilon=3.0, target_delta=1e-6, batch_size=max(16, cells // 5), n_steps=steps,
                         marginal_epsilon_share=0.2)
    t0 = time.perf_counter()
    model = train_dp_gan(df, TableEncoder(meta), cfg, condition_column="cell_type")
    print(json.dumps({"train_seconds": time.perf_counter() - t0, "encoded_width": model.encoder.width}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--genes", type=int, default=20000)
    ap.add_argument("--cells", default="1000,4000")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    runs = []
    for cells in [int(c) for c in a.cells.split(",")]:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(a.genes), str(cells), str(a.steps)],
                                stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"child failed for {cells} cells")
        info = json.loads(out.strip().splitlines()[-1])
        runs.append({"genes": a.genes, "cells": cells, "steps": a.steps, "peak_rss_mb": round(usage.ru_maxrss / 1024),
                     "train_seconds": round(info["train_seconds"], 1), "encoded_width": info["encoded_width"]})
        print(json.dumps(runs[-1]), flush=True)
    (c1, c2) = runs[0], runs[-1]
    per_cell_mb = (c2["peak_rss_mb"] - c1["peak_rss_mb"]) / max(1, c2["cells"] - c1["cells"])
    extrap = c2["peak_rss_mb"] + per_cell_mb * (100_000 - c2["cells"])
    res = {"runs": runs, "mb_per_cell_measured_slope": round(per_cell_mb, 3),
           "extrapolated_peak_rss_mb_100k_cells": round(extrap)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wide_scaling.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Wide-data scaling", "", f"Command: `python benchmarks/wide_scaling.py --genes {a.genes}` "
          f"(random zero-inflated matrix, {a.steps} DP steps, child process per size).", "",
          "| genes | cells | encoded width | peak RSS MB | train s |", "|---|---|---|---|---|",
          *[f"| {r['genes']} | {r['cells']} | {r['encoded_width']} | {r['peak_rss_mb']} | {r['train_seconds']} |"
            for r in runs], "",
          f"Measured slope: {res['mb_per_cell_measured_slope']} MB per cell. Linear extrapolation to 100,000 "
          f"cells: about {res['extrapolated_peak_rss_mb_100k_cells']:,} MB (an extrapolation, not a measurement): "
          "the table held as a DataFrame plus its encoded float32 copy (3 entries per zero-inflated gene) "
          "dominate.", ""]
    (RESULTS / "wide_scaling.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
