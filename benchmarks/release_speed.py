"""Wall time of a whole adult release, stage by stage (run by hand, alone on the machine).

``synthrelease release`` on the peers' adult training split (26,048 rows, ``../shared/peers/split.py``)
with the curated metadata (``benchmarks/metadata/adult.yaml``) and ``policies/default.yaml`` at
``max_epsilon`` ε (default 1): validation, DP training, sampling, audits, the DP gate, the
internal report, the bundle and its signature. The stage split is the release's own clock
(the internal report's ``seconds``); peak RSS is the child process's. ``--rows N`` releases an
adult-like table of N rows instead: the training split's rows drawn with replacement (seed 0),
for the scaling curves (``benchmarks/scaling_plot.py``). Writes
benchmarks/results/release_speed[-TAG].{json,md}.

    OMP_NUM_THREADS=2 python benchmarks/release_speed.py [--epsilon 1] [--rows N] [--tag NAME]
"""
from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--rows", type=int, default=None, help="an adult-like table of this many rows")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    cli = [sys.executable, "-m", "synthrelease.cli"]
    with tempfile.TemporaryDirectory(prefix="release-speed-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, str(SHARED / "peers" / "split.py"), "--out", str(work / "splits")],
                       check=True, capture_output=True)
        policy = (ROOT / "policies" / "default.yaml").read_text().replace("max_epsilon: 5.0",
                                                                         f"max_epsilon: {a.epsilon}")
        (work / "policy.yaml").write_text(policy)
        table = work / "splits" / "adult_train.csv"
        if a.rows:
            import pandas as pd

            train = pd.read_csv(table)
            table = work / "adult_like.csv"
            train.sample(n=a.rows, replace=True, random_state=0).to_csv(table, index=False)
        rows = sum(1 for _ in table.open()) - 1
        subprocess.run([*cli, "keys", "generate", "--private", str(work / "k.pem"), "--public",
                        str(work / "k.pub.pem")], check=True, capture_output=True)
        t0 = time.perf_counter()
        done = subprocess.run([*cli, "release", str(table), "--metadata",
                               str(HERE / "metadata" / "adult.yaml"), "--policy", str(work / "policy.yaml"),
                               "--out", str(work / "bundle"), "--signing-key", str(work / "k.pem"), "--ledger",
                               str(work / "ledger.sqlite3"), "--epsilon", str(a.epsilon)],
                              capture_output=True, text=True, env={**os.environ, "CI": "true"})
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        found = sorted(work.glob("**/internal_report.json"))
        if not found:
            sys.exit(f"the release wrote no internal report (exit {done.returncode}): "
                     f"{(done.stderr or done.stdout).strip()[-500:]}")
        report = json.loads(found[0].read_text())
    seconds = report.get("seconds", {})
    res = {"epsilon": a.epsilon, "rows": rows, "exit_code": done.returncode, "wall_seconds": round(wall, 1),
           "peak_rss_mib": round(peak), "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
           "audit_seconds": {k: round(v.get("runtime_s") or 0, 1) for k, v in report.get("audits", {}).items()},
           "threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    stem = "release_speed" + (f"-{a.tag}" if a.tag else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Adult release wall time, stage by stage", "",
          f"Command: `OMP_NUM_THREADS={res['threads']} python benchmarks/release_speed.py --epsilon {a.epsilon:g}"
          + (f" --rows {a.rows}" if a.rows else "") + (f" --tag {a.tag}" if a.tag else "")
          + (f"` — {rows:,} rows drawn with replacement from the peers' adult training split"
             if a.rows else "` — the peers' adult training split (26,048 rows)")
          + ", curated metadata, policies/default.yaml at max_epsilon ε, run alone. Exit code "
          f"{done.returncode}; wall {res['wall_seconds']} s (process start to exit); peak RSS "
          f"{res['peak_rss_mib']} MiB.", "", "| stage | seconds (the release's own clock) |",
          "|---|---|", *[f"| {k} | {v} |" for k, v in res["stage_seconds"].items()], "",
          "Audit seconds: " + ", ".join(f"{k} {v}" for k, v in res["audit_seconds"].items()), ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(md))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
