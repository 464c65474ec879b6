"""DP marginal counts: the float one-hot einsum against the integer bincount (run by hand).

One wide block like the 100,000 × 20,000 atlas's (1,600 rows × 20,000 zero-inflated
numerical columns, 10 classes, 10 bins), counted in the trainer's row chunks both ways;
the counts must be equal.

    OMP_NUM_THREADS=2 python benchmarks/marginal_counts.py

Writes benchmarks/results/marginal_counts.md.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from synthrelease.transforms.dp_marginals import NumericLayout, _class_cell_counts, numeric_cell_probs

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    torch.manual_seed(0)
    n, cols, n_bins, k = 1600, 20_000, 10, 10
    x = torch.rand(n, 2 * cols + 10, dtype=torch.float64) * 2 - 1
    x[:, cols:2 * cols] = (torch.rand(n, cols) < 0.07).double()  # non-zero indicators
    layout = NumericLayout(tuple(range(cols)), torch.arange(cols), torch.full((cols,), -1),
                           torch.arange(cols, 2 * cols))
    cond = torch.nn.functional.one_hot(torch.randint(0, k, (n,)), k).double()
    chunk = max(1, 32_000_000 // (cols * (n_bins + 2)))  # the trainer's chunking
    t = time.perf_counter()
    old = torch.zeros(k, cols, n_bins + 2, dtype=torch.float64)
    for i in range(0, n, chunk):
        old += torch.einsum("nk,ncb->kcb", cond[i:i + chunk],
                            numeric_cell_probs(x[i:i + chunk], layout, n_bins, smoothing=None))
    einsum_s = time.perf_counter() - t
    t = time.perf_counter()
    new = torch.zeros(k, cols, n_bins + 2, dtype=torch.float64)
    for i in range(0, n, chunk):
        new += _class_cell_counts(cond[i:i + chunk], x[i:i + chunk], layout, n_bins)
    bincount_s = time.perf_counter() - t
    lines = ["# DP marginal counts: einsum vs bincount", "",
             "Command: `OMP_NUM_THREADS=2 python benchmarks/marginal_counts.py` (2 CPU cores, nothing else running).",
             "", f"{n:,} rows × {cols:,} numerical columns, {k} classes, {n_bins} bins, chunks of {chunk} rows.", "",
             "| method | seconds |", "|---|---|", f"| float one-hot einsum (before) | {einsum_s:.2f} |",
             f"| integer bincount (now) | {bincount_s:.2f} |", "",
             f"Counts equal: {torch.equal(old, new)}.", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "marginal_counts.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
