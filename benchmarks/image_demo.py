"""The image demo's release rate (run by hand): ``synthrelease demo --modality image`` N times.

Each run draws fresh secret noise (the DP mechanisms' randomness is never seeded), so the
verdict varies between runs; this counts how often the demo tiles pass their own policy
(``synthrelease/data/policies/tiles.yaml``: DP quality ≥ 0.6, no copies, no membership
signal, no blank tiles) and records the DP gate's exact and noisy quality.

    OMP_NUM_THREADS=2 python benchmarks/image_demo.py [--runs 5]

Writes benchmarks/results/image_demo.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def one_run(work: Path) -> dict[str, object]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "synthrelease.cli", "-q", "demo", "--modality", "image", "--out",
                           str(work)], capture_output=True, text=True, check=False)
    report = json.loads((work / "internal-report" / "internal_report.json").read_text())
    gate = report["dp_gate"]["quality_score"]
    return {"exit_code": proc.returncode, "released": proc.returncode == 0,
            "seconds": round(time.perf_counter() - t0, 1),
            "quality_exact": round(gate["exact"], 4), "quality_noisy": round(gate["value"], 4),
            "epsilon_spent": report["privacy"]["epsilon"], "generator": report["training"].get("generator")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.runs):
            rows.append(one_run(Path(tmp) / f"run{i}"))
            print(json.dumps(rows[-1]), flush=True)
    command = "OMP_NUM_THREADS=2 python benchmarks/image_demo.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "image_demo.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    released = sum(r["released"] for r in rows)
    md = ["# The image demo against its own policy", "", f"Command: `{command}` (2 CPU cores). "
          f"Released in {released} of {len(rows)} runs (policy `tiles-demo`: DP quality ≥ 0.6).", "",
          "| run | generator | released | quality exact | quality noisy (DP) | ε spent | seconds |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {i + 1} | {r['generator']} | {r['released']} | {r['quality_exact']} | {r['quality_noisy']} | "
           f"{r['epsilon_spent']:.3f} | {r['seconds']} |" for i, r in enumerate(rows)]
    (RESULTS / "image_demo.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
