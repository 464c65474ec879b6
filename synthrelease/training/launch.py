"""Launch :mod:`synthrelease.training.distributed` on N local processes with torchrun (``--standalone``)."""

from __future__ import annotations

import os
import subprocess
import sys

from synthrelease.errors import SynthreleaseError


def torchrun_command(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str],
                     output: str | os.PathLike[str], nproc: int, epsilon: float, delta: float | None = None,
                     condition_column: str | None = None, seed: int = 0, accountant: str = "rdp",
                     n_steps: int | None = None, batch_size: int | None = None,
                     ledger_path: str | os.PathLike[str] | None = None,
                     policy_path: str | os.PathLike[str] | None = None) -> list[str]:
    """The torchrun command line of a one-machine run (also what to adapt for several machines)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "synthrelease.training.distributed", str(data), "--metadata", str(metadata_path),
           "--epsilon", repr(float(epsilon)), "--seed", str(seed), "--accountant", accountant, "-o", str(output)]
    for flag, value in (("--delta", delta), ("--condition-column", condition_column), ("--steps", n_steps),
                        ("--batch-size", batch_size), ("--ledger", ledger_path), ("--policy", policy_path)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def run_distributed_training(data: str | os.PathLike[str], *, nproc: int, output: str | os.PathLike[str],
                             **options: object) -> str:
    """Run the N-process training; return rank 0's summary lines.

    Each process gets ``OMP_NUM_THREADS`` = cores // N (unless set), so N processes do not
    oversubscribe the cores.

    Raises:
        SynthreleaseError: a process failed (its one-line error, or the exit code); no model
            file is written then (rank 0 writes it atomically, last).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = torchrun_command(data, output=output, nproc=nproc, **options)  # type: ignore[arg-type]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        reason = errors[0] if errors else f"a training process failed (torchrun exit code {proc.returncode})"
        raise SynthreleaseError(f"distributed training on {nproc} processes failed: {reason}; no model written")
    return proc.stdout.strip()
