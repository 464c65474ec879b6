"""How much the DP marginal targets widen each column, and what the unimodal fit gives back.

For each small table (``small_tables.py``'s loaders and split), the conditional marginals are
released 5 times at the default bins and the noise of a release ε of 0.5 (the default
marginal share of ε = 1, as one Gaussian release alone), then post-processed as the generator's
target is: the simplex projection alone (before), or the χ²-tested unimodal fit then the
projection (shipped, ``transforms/marginal_loss.py: unimodal_where_consistent``). Reported:
each column's pooled std from bin midpoints, divided by the same std of the exact binned
counts — median over columns and runs, and the share within 25 %.

    python benchmarks/marginal_spread.py [--datasets demo,diabetes,whas500,gbsg2,gse7390]

Writes benchmarks/results/marginal_spread.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _spread(counts: np.ndarray, mids: np.ndarray) -> np.ndarray:
    """Pooled (over classes) std of each column from its value bins' midpoints."""
    c = np.clip(counts.sum(axis=0)[:, 2:], 0.0, None) + 1e-12
    p = c / c.sum(axis=1, keepdims=True)
    mean = p @ mids
    return np.sqrt(np.maximum(p @ mids ** 2 - mean ** 2, 0.0))


def measure(name: str, runs: int = 5) -> dict:
    from opacus.accountants.utils import get_noise_multiplier
    from small_tables import load, split

    from synthrelease.api import default_training_config
    from synthrelease.transforms.dp_marginals import bin_edges, measure_marginals
    from synthrelease.transforms.encoders import TableEncoder
    from synthrelease.transforms.marginal_loss import project_counts, unimodal_where_consistent

    df, meta = load(name)
    train, _ = split(df, meta.target)
    cfg = default_training_config(len(train), epsilon=1.0, delta=1e-5, seed=0, metadata=meta,
                                  condition_column=meta.target)
    enc = TableEncoder(meta)
    x = torch.as_tensor(enc.encode(train), dtype=torch.float32)
    k = cfg.marginal_bins
    edges = np.concatenate([[-1.0], bin_edges(k).numpy(), [1.0]])
    mids = (edges[:-1] + edges[1:]) / 2
    sigma = get_noise_multiplier(target_epsilon=0.5, target_delta=1e-5, sample_rate=1.0, steps=1, accountant="rdp")
    exact = measure_marginals(x, enc, meta.target, noise_multiplier=1e-9, n_bins=k,
                              generator=torch.Generator().manual_seed(0))
    truth = _spread(exact.numeric_counts, mids)
    out: dict = {"dataset": name, "rows": len(train), "numerical_columns": len(exact.numeric.columns), "bins": k}
    ratios: dict[str, list] = {"projection": [], "unimodal + projection": []}
    for run in range(runs):  # seeded noise: a measurement of the post-processing, not a release
        m = measure_marginals(x, enc, meta.target, noise_multiplier=sigma, n_bins=k,
                              generator=torch.Generator().manual_seed(run))
        totals = np.clip(m.condition_counts, 1.0, None)[:, None]
        fitted = m.numeric_counts.copy()
        fitted[..., 2:] = unimodal_where_consistent(fitted[..., 2:], m.noise_std)
        ratios["projection"].append(_spread(project_counts(m.numeric_counts, totals), mids) / truth)
        ratios["unimodal + projection"].append(_spread(project_counts(fitted, totals), mids) / truth)
    for label, r in ratios.items():
        arr = np.concatenate(r)
        out[label] = {"median_ratio": round(float(np.median(arr)), 3),
                      "within_25pct": round(float(np.mean(np.abs(arr - 1) <= 0.25)), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="demo,diabetes,whas500,gbsg2,gse7390")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    rows = [measure(name) for name in a.datasets.split(",")]
    command = "python benchmarks/marginal_spread.py " + " ".join(sys.argv[1:])
    (HERE / "results" / "marginal_spread.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    md = ["# Spread of the DP marginal targets (std ratio to the exact binned counts)", "",
          f"Command: `{command}`. Release ε 0.5, default bins, 5 noise draws; median over columns and draws.", "",
          "| dataset | rows | numerical columns | bins | projection: median ratio | within 25 % "
          "| unimodal + projection: median ratio | within 25 % |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, u = r["projection"], r["unimodal + projection"]
        md.append(f"| {r['dataset']} | {r['rows']} | {r['numerical_columns']} | {r['bins']} | {p['median_ratio']} "
                  f"| {p['within_25pct']} | {u['median_ratio']} | {u['within_25pct']} |")
    (HERE / "results" / "marginal_spread.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
