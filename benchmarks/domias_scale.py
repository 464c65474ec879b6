"""DOMIAS membership score at scale (run by hand, ALONE): 1,000,000 synthetic × 1,000,000 real rows.

Times ``synthrelease.audits.domias.domias_scores`` in a child process on seeded uniform rows of
20 columns (float32, as ``audits/_encoding.py`` gives): ``--rows`` synthetic rows, ``--rows``
real reference rows and ``--queries`` query rows. The default ``--queries`` is what
``audits/membership.py`` scores when the training and holdout tables both have ``--rows`` rows:
2·⌊rows/2⌋ (⌊rows/2⌋ training rows as members, ⌊rows/2⌋ holdout rows as non-members); its
reference would be the other ⌊rows/2⌋ holdout rows, here it is all ``--rows`` real rows (the
larger case). A ``--copy-share`` of the members are also copied into the synthetic rows, so
the AUC (members vs non-members) shows the approximate score still finds copies: ideal
0.5 + copy_share / 2, TPR at 1 % FPR ≈ copy_share.

Records the seconds of the call (data generation not counted; split into neighbour searches,
blocked kernel sums and the rest), the child's peak RSS (``os.wait4`` ``ru_maxrss``, inputs
included) and its RSS before the call.

    OMP_NUM_THREADS=1 python benchmarks/domias_scale.py [--rows 1000000] [--queries N] [--tag NAME]

Writes benchmarks/results/domias_scale[-TAG].{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = 20


def child(rows: int, queries: int, copy_share: float, seed: int, out: Path) -> None:
    """Generate the rows, run the scoring once, write the measurements to ``out``."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from synthrelease.audits import domias

    rng = np.random.default_rng(seed)
    reference = rng.random((rows, COLUMNS), dtype=np.float32)
    synthetic = rng.random((rows, COLUMNS), dtype=np.float32)
    query = rng.random((queries, COLUMNS), dtype=np.float32)
    half = queries // 2
    copied = rng.choice(half, size=round(copy_share * half), replace=False)
    synthetic[rng.choice(rows, size=len(copied), replace=False)] = query[copied]

    phases = {"neighbour_search": 0.0, "kernel_sums": 0.0}

    def timed(fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[phase] += time.perf_counter() - t
        return run

    domias.nearest = timed(domias.nearest, "neighbour_search")
    domias._log_kernel_sums = timed(domias._log_kernel_sums, "kernel_sums")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    searches: list[Any] = []
    t0 = time.perf_counter()
    scores = domias.domias_scores(reference, synthetic, query, seed=seed, searches=searches)
    seconds = time.perf_counter() - t0
    labels = np.r_[np.ones(half), np.zeros(queries - half)]
    threshold = np.quantile(scores[half:], 0.99)
    out.write_text(json.dumps({
        "seconds": round(seconds, 1),
        "seconds_neighbour_search": round(phases["neighbour_search"], 1),
        "seconds_kernel_sums": round(phases["kernel_sums"], 1),
        "seconds_other": round(seconds - sum(phases.values()), 1),
        "rss_before_call_mib": round(rss_before),
        "input_mib": round((reference.nbytes + synthetic.nbytes + query.nbytes) / 2 ** 20),
        "finite_scores": bool(np.all(np.isfinite(scores))),
        "auc_members_vs_non_members": round(float(roc_auc_score(labels, scores)), 4),
        "tpr_at_fpr_1pct": round(float(np.mean(scores[:half] > threshold)), 4),
        "search": [s.to_dict() for s in searches],
        "caps": {"exact_max_rows": domias.EXACT_MAX_ROWS, "density_sample": domias.DENSITY_SAMPLE,
                 "spacing_sample": domias.SPACING_SAMPLE, "near_k": domias.NEAR_K},
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows = real reference rows")
    ap.add_argument("--queries", type=int, default=None, help="query rows (default 2·⌊rows/2⌋, as membership.py)")
    ap.add_argument("--copy-share", type=float, default=0.1, help="share of members copied into the synthetic rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="results file suffix: domias_scale-TAG.{json,md}")
    ap.add_argument("--note", default="", help="free text for the results (e.g. machine not idle)")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    queries = 2 * (a.rows // 2) if a.queries is None else a.queries
    if a.child is not None:
        child(a.rows, queries, a.copy_share, a.seed, a.child)
        return

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--rows", str(a.rows), "--queries", str(queries),
                "--copy-share", str(a.copy_share), "--seed", str(a.seed), "--child", str(out)]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"child failed with exit code {proc.returncode}")
        measured = json.loads(out.read_text())
        wall = time.perf_counter() - started

    import faiss
    import numpy
    import sklearn

    row = {"synthetic_rows": a.rows, "reference_rows": a.rows, "query_rows": queries, "columns": COLUMNS,
           "seconds": measured.pop("seconds"), "peak_rss_mib": round(usage.ru_maxrss / 1024), **measured,
           "child_wall_seconds": round(wall, 1)}
    omp = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={omp} " if omp else "") + "python benchmarks/domias_scale.py "
               + shlex.join(sys.argv[1:]))
    env = {"cpus": os.cpu_count(), "omp_num_threads": omp, "python": platform.python_version(),
           "numpy": numpy.__version__, "scikit_learn": sklearn.__version__, "faiss": faiss.__version__}
    name = "domias_scale" + (f"-{a.tag}" if a.tag else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"command": command, "environment": env, "note": a.note,
                                                      **row}, indent=1) + "\n")
    table = {k: v for k, v in row.items() if k not in ("search", "caps")}
    caps = row["caps"]
    search = ", ".join(f"{s['method']} (recall@1 {s['recall_at_1']}" + (f" on {s['recall_sample']:,} rows)"
                                                                        if s["recall_sample"] else ")")
                       for s in row["search"]) or "none (exact KDE below the caps)"
    (RESULTS / f"{name}.md").write_text(
        f"# DOMIAS membership score at scale\n\n"
        f"Command: `{command}` ({env['cpus']} CPU cores; Python {env['python']}, numpy {env['numpy']}, "
        f"scikit-learn {env['scikit_learn']}, faiss {env['faiss']}). Seeded uniform float32 rows; "
        f"{a.copy_share:.0%} of the member queries copied into the synthetic rows. Approximation above "
        f"{caps['exact_max_rows']:,} rows per density: reference KDE of a {caps['density_sample']:,}-row sample; "
        f"synthetic KDE over all rows = exact terms of the {caps['near_k']} nearest distinct rows + a "
        f"{caps['density_sample']:,}-row Horvitz–Thompson sample of the rest; bandwidth from "
        f"{caps['spacing_sample']:,} sampled spacings. Near-field neighbour search: {search}. Peak RSS of the "
        "child process (os.wait4), inputs included." + (f" {a.note}" if a.note else "") + "\n\n"
        "| " + " | ".join(table) + " |\n|" + "---|" * len(table) + "\n| "
        + " | ".join(str(v) for v in table.values()) + " |\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
