"""Audit speed benchmark (run by hand): the default audit set on adult, and DCR at 200k × 200k.

Part ``adult``: the peers' adult split (``../shared/peers/split.py``: 26,048 train rows,
6,513 holdout rows); a synthetic table of 26,048 rows from the project's DP-GAN trained on
the train split at ε = 1, δ = 1e-5 (shipped defaults, seed 0; its training time is not part
of the audit time); then :func:`synthrelease.api.run_audits` with ``policies/default.yaml``
(fidelity with PRDC and category coverage, utility, membership with DCR/NNDR/DOMIAS), each
audit timed; ``--policy benchmarks/policies/adult-with-plausibility.yaml`` adds six Great
Expectations plausibility rules (range, allowed set, a < b, non-negative, conditional).

Part ``dcr``: :func:`synthrelease.audits.membership.nearest_distances` alone, 200,000
reference rows × 200,000 query rows × 20 columns (uniform [0, 1], seed 0, float64), i.e. the
DCR of every training row to its nearest synthetic row.

Each part runs in its own child process; peak memory is the child's ``ru_maxrss``
(resident set, includes Python, numpy and torch imports). Torch and BLAS use the
machine's cores (2 on the reference machine). Writes benchmarks/results/audit_speed.{json,md}.

    python benchmarks/audit_speed.py [--parts adult,dcr] [--splits DIR] [--dcr-rows 200000] [--policy FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
RESULTS = HERE / "results"


def part_adult(splits: Path, policy_path: Path) -> dict:
    import pandas as pd

    from synthrelease.api import default_training_config, run_audits
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.gan.trainer import train_dp_gan
    from synthrelease.metadata.load import load_metadata
    from synthrelease.policy.schema import load_policy
    from synthrelease.transforms.encoders import TableEncoder

    meta = load_metadata(HERE / "metadata" / "adult.yaml")
    train = pd.read_csv(splits / "adult_train.csv")
    holdout = pd.read_csv(splits / "adult_holdout.csv")
    cfg = default_training_config(len(train), epsilon=1.0, delta=1e-5, seed=0, metadata=meta,
                                  condition_column="income")
    t0 = time.perf_counter()
    model = train_dp_gan(train, TableEncoder(meta), cfg, condition_column="income")
    train_s = time.perf_counter() - t0
    synthetic = sample_frame(model, len(train), seed=1)
    policy, _ = load_policy(policy_path)
    t0 = time.perf_counter()
    audits = run_audits(train, holdout, synthetic, meta, policy, target="income", seed=0, training_config=cfg)
    total = time.perf_counter() - t0
    return {"rows": {"train": len(train), "holdout": len(holdout), "synthetic": len(synthetic)},
            "policy": str(policy_path.relative_to(ROOT)), "gan_train_seconds": round(train_s, 1),
            "audit_seconds": {name: round(a.runtime_s, 2) for name, a in audits.items()},
            "total_audit_seconds": round(total, 2),
            "headline_metrics": {name: {k: round(float(v), 4) for k, v in a.metrics.items() if v is not None}
                                 for name, a in audits.items()}}


def part_dcr(n_rows: int) -> dict:
    import numpy as np

    from synthrelease.audits.membership import nearest_distances

    rng = np.random.default_rng(0)
    reference = rng.random((n_rows, 20))
    query = rng.random((n_rows, 20))
    t0 = time.perf_counter()
    d = nearest_distances(reference, query)
    seconds = time.perf_counter() - t0
    return {"reference_rows": n_rows, "query_rows": n_rows, "columns": 20, "dtype": "float64",
            "seconds": round(seconds, 1), "median_distance": round(float(np.median(d)), 4)}


def child(part: str, args: argparse.Namespace, out: Path) -> None:
    result = part_adult(Path(args.splits), Path(args.policy).resolve()) if part == "adult" else part_dcr(args.dcr_rows)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    out.write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="adult,dcr")
    ap.add_argument("--splits", default="/tmp/splits", help="output folder of ../shared/peers/split.py")
    ap.add_argument("--dcr-rows", type=int, default=200_000)
    ap.add_argument("--policy", default=str(ROOT / "policies" / "default.yaml"),
                    help="policy whose audits run on adult (benchmarks/policies/adult-with-plausibility.yaml adds "
                         "Great Expectations rules)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args, Path(args.out))
        return
    if "adult" in args.parts and not (Path(args.splits) / "adult_train.csv").is_file():
        sys.exit(f"{args.splits}: no adult_train.csv; run python {SHARED}/peers/split.py --out {args.splits}")
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "command": "python " + " ".join(sys.argv), "parts": {}}
    for part in args.parts.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--child", part, "--out", str(out), "--splits", args.splits,
                            "--dcr-rows", str(args.dcr_rows), "--policy", args.policy], check=True)
            results["parts"][part] = json.loads(out.read_text()) | {"wall_seconds": round(time.perf_counter() - t0, 1)}
        print(part, json.dumps(results["parts"][part]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Audit speed", "", f"`{results['command']}` — {results['machine']['cpus']} CPUs, "
             f"Python {results['machine']['python']}", ""]
    if "adult" in results["parts"]:
        a = results["parts"]["adult"]
        lines += [f"## Audit set on adult ({a['policy']})", "",
                  f"{a['rows']['train']} train, {a['rows']['holdout']} holdout, {a['rows']['synthetic']} synthetic "
                  f"rows (DP-GAN ε = 1, trained in {a['gan_train_seconds']} s, not counted).", "",
                  "| audit | seconds |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in a["audit_seconds"].items()]
        lines += [f"| **total** | **{a['total_audit_seconds']}** |", "",
                  f"Peak RSS of the child process (training + audits): {a['peak_rss_mb']:.0f} MB. "
                  "Target: under 60 s.", ""]
    if "dcr" in results["parts"]:
        d = results["parts"]["dcr"]
        lines += ["## DCR alone", "", "| reference rows | query rows | columns | seconds | peak RSS MB |",
                  "|---|---|---|---|---|",
                  f"| {d['reference_rows']:,} | {d['query_rows']:,} | {d['columns']} | {d['seconds']} | "
                  f"{d['peak_rss_mb']:.0f} |", ""]
    (RESULTS / "audit_speed.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
