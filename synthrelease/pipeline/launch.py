"""Launch :mod:`synthrelease.pipeline.distributed` on N local processes with torchrun (``--standalone``).

Two users: ``synthrelease train --nproc N`` (:func:`run_distributed_training`, the ranks
charge the ledger themselves) and ``synthrelease release --nproc N``
(:func:`distributed_modality`: the table modality whose training step runs on N processes;
every other release stage — split, sampling, audits, gate, bundle — is the one-process one).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from synthrelease.errors import MetadataError, SynthreleaseError


def torchrun_command(data: str | os.PathLike[str], *, metadata_path: str | os.PathLike[str],
                     output: str | os.PathLike[str], nproc: int, epsilon: float, delta: float | None = None,
                     condition_column: str | None = None, seed: int = 0, accountant: str = "rdp",
                     n_steps: int | None = None, batch_size: int | None = None,
                     ledger_path: str | os.PathLike[str] | None = None,
                     policy_path: str | os.PathLike[str] | None = None, sep: str | None = None,
                     extra: tuple[str, ...] = ()) -> list[str]:
    """The torchrun command line of a one-machine run (also what to adapt for several machines)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "synthrelease.pipeline.distributed", str(data), "--metadata", str(metadata_path),
           "--epsilon", repr(float(epsilon)), "--seed", str(seed), "--accountant", accountant, "-o", str(output)]
    for flag, value in (("--delta", delta), ("--condition-column", condition_column), ("--steps", n_steps),
                        ("--batch-size", batch_size), ("--ledger", ledger_path), ("--policy", policy_path),
                        ("--sep", sep)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd + list(extra)


def run_distributed_training(data: str | os.PathLike[str], *, nproc: int, output: str | os.PathLike[str],
                             **options: Any) -> str:
    """Run the N-process training; return rank 0's summary lines.

    Each process gets ``OMP_NUM_THREADS`` = cores // N (unless set), so N processes do not
    oversubscribe the cores.

    Raises:
        SynthreleaseError: a process failed (its one-line error, or the exit code); no model
            file is written then (rank 0 writes it atomically, last).
    """
    cores = os.cpu_count() or 1
    if nproc > cores:  # checked before torchrun, so before rank 0 reserves any ε
        raise SynthreleaseError(f"--nproc {nproc}: this machine has {cores} core(s); local training processes "
                                "beyond the cores only slow training down (use torchrun across machines for more)")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    cmd = torchrun_command(data, output=output, nproc=nproc, **options)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        reason = errors[0] if errors else f"a training process failed (torchrun exit code {proc.returncode})"
        raise SynthreleaseError(f"distributed training on {nproc} processes failed: {reason}; no model written")
    return proc.stdout.strip()


def distributed_modality(kind: Any, nproc: int) -> Any:
    """``kind`` (the table modality) with its training step run on ``nproc`` local processes.

    Raises:
        MetadataError: ``kind`` is not the table modality.
    """
    if kind.name != "table":
        raise MetadataError(f"--nproc {nproc}: distributed training takes tables; this is a {kind.name} dataset "
                            "(use --nproc 1)")

    def fit(rows: Any, metadata: Any, config: Any, *, condition_column: str | None, progress: Any = None,
            reserved_entries: tuple[Any, ...] = (), randomness: Any = None) -> Any:
        # ``randomness`` is not passed on: every rank draws its own fresh OS entropy
        return fit_on_processes(rows, metadata, config, nproc=nproc, condition_column=condition_column,
                                reserved_entries=reserved_entries)

    return dataclasses.replace(kind, fit=fit)


def fit_on_processes(rows: Any, metadata: Any, config: Any, *, nproc: int, condition_column: str | None,
                     reserved_entries: tuple[Any, ...] = ()) -> Any:
    """Train the table generator on ``rows`` (a release's training rows) with ``nproc`` ranks.

    The rows go to a private temporary folder (mode 0700, removed afterwards) as a Parquet
    file with one row group per rank, so each rank reads only its shard; the metadata, the
    release's training settings (public) and the reserved accountant entries (the DP gate's)
    go beside it. The ranks do not touch the ledger: the calling release holds the
    reservation and charges it. The model comes back through a model file (tensors and
    JSON, read with ``weights_only=True``); its training history is not carried over.

    Raises:
        SynthreleaseError: a rank failed (its one-line error); MetadataError: fewer rows than ranks.
    """
    import yaml

    from synthrelease.modalities.model_files import load_model

    if len(rows) < nproc:
        raise MetadataError(f"--nproc {nproc}: {len(rows)} training rows; use fewer processes")
    with tempfile.TemporaryDirectory(prefix="synthrelease-ranks-") as tmp:
        folder = Path(tmp)
        data = folder / "train.parquet"
        rows.to_parquet(data, index=False, row_group_size=math.ceil(len(rows) / nproc))
        meta_path = folder / "metadata.yaml"
        meta_path.write_text(yaml.safe_dump(metadata.to_yaml_dict(), sort_keys=False))
        config_path = folder / "config.json"
        config_path.write_text(json.dumps(config.to_dict()))
        reserved_path = folder / "reserved.json"
        reserved_path.write_text(json.dumps([[e.label, e.noise_multiplier, e.sample_rate, e.steps]
                                             for e in reserved_entries]))
        output = folder / "model.pt"
        run_distributed_training(data, nproc=nproc, output=output, metadata_path=meta_path,
                                 epsilon=config.target_epsilon, condition_column=condition_column,
                                 seed=config.seed, accountant=config.accountant,
                                 extra=("--config", str(config_path), "--reserved-entries", str(reserved_path),
                                        "--ledger-held-by-release"))
        return load_model(output)
