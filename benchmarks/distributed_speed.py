"""Distributed DP training speed (run by hand, ALONE): 1 vs N processes on this machine.

Trains the table generator on ``../shared/data/adult.csv`` (32,561 rows; metadata
``benchmarks/metadata/adult.yaml``) to the same ε with ``synthrelease train --nproc N`` for
each N, and records the wall time of the whole command, rank 0's training time, steps/s,
the peak RSS of any one process, the discriminator's gradient size and the bytes one
all-reduce moves per rank and step (ring all-reduce: 2·(N−1)/N × the gradient's bytes).

    python benchmarks/distributed_speed.py [--nprocs 1,2] [--steps 300] [--epsilon 1]

Writes benchmarks/results/distributed_speed.{json,md}. Each process gets
OMP_NUM_THREADS = 2 // N threads (2 cores here), so the runs use the same cores.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "adult.csv"
META = HERE / "metadata" / "adult.yaml"
RESULTS = HERE / "results"


def gradient_bytes(steps: int, epsilon: float) -> int:
    """Bytes of the discriminator's float32 gradient with the default settings for adult."""
    import pandas as pd

    from synthrelease.gan.defaults import default_training_config
    from synthrelease.gan.trainer import _discriminator
    from synthrelease.metadata.load import load_metadata
    from synthrelease.privacy.randomness import SeedTree
    from synthrelease.transforms.encoders import TableEncoder

    meta = load_metadata(META)
    n = sum(1 for _ in open(DATA)) - 1
    config = default_training_config(n, epsilon=epsilon, delta=1e-6, seed=0, accountant="rdp", n_steps=steps,
                                     batch_size=None, metadata=meta, condition_column=meta.target)
    encoder = TableEncoder(meta)
    width = encoder.encode(pd.read_csv(DATA, nrows=5)).shape[1]
    disc = _discriminator(encoder, width, config, SeedTree(0))
    return 4 * sum(p.numel() for p in disc.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", default="1,2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--epsilon", type=float, default=1.0)
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    out_dir = Path("/tmp/synthrelease-distributed-bench")
    out_dir.mkdir(exist_ok=True)
    grad = gradient_bytes(a.steps, a.epsilon)
    rows = []
    for n in [int(x) for x in a.nprocs.split(",")]:
        model = out_dir / f"adult-{n}.pt"
        model.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "synthrelease.cli", "-q", "train", str(DATA), "--metadata", str(META),
               "--epsilon", str(a.epsilon), "--steps", str(a.steps), "--ledger", str(out_dir / f"ledger-{n}.sqlite3"),
               "-o", str(model), "--force", "--nproc", str(n)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // n))}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"N={n} failed: {proc.stderr.strip().splitlines()[-1:]}")
        from synthrelease.modalities.model_files import load_model

        m = load_model(model)
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        row = {"processes": n, "epsilon_spent": m.privacy.epsilon, "steps": a.steps,
               "wall_seconds": round(wall, 1), "train_seconds_rank0": round(m.train_seconds, 1),
               "steps_per_second": round(a.steps / m.train_seconds, 2),
               "peak_rss_mib_any_process": round(peak / 1024),
               "gradient_mib": round(grad / 2 ** 20, 3),
               "allreduce_mib_per_rank_per_step": round(2 * (n - 1) / n * grad / 2 ** 20, 3) if n > 1 else 0.0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python benchmarks/distributed_speed.py " + " ".join(sys.argv[1:])
    (RESULTS / "distributed_speed.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    cols = list(rows[0])
    md = ["# Distributed DP training: 1 vs N processes (adult, 2 CPU cores)", "",
          f"Command: `{command}`. Same ε, δ, q, σ and step count in every run (the accountant entries are equal). "
          "Each process gets 2 // N OpenMP threads. `peak_rss_mib_any_process`: the largest RSS of one child "
          "process seen so far (torchrun's agent included).", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (RESULTS / "distributed_speed.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
