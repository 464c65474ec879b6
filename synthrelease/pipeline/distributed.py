"""Distributed DP training of a table generator with torch.distributed (``torchrun``).

Run by ``synthrelease train … --nproc N`` (which spawns ``torchrun --standalone``) or, on
several machines, directly::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m synthrelease.pipeline.distributed DATA --metadata META --epsilon 3 -o model.pt

Why the guarantee and the ε equal the one-process run's (same table, same settings):

* **Shards.** Rank r keeps the rows whose index i satisfies i mod N = r (CSV/TSV: read in
  chunks, other rows dropped as they stream past; Parquet: row groups g with g mod N = r,
  only those row groups are read; ``.h5ad``: a contiguous block of cells, backed). The
  shards partition the table.
* **Sampling.** Each rank Poisson-samples its shard at the same rate q with its own secret
  generator (fresh OS entropy per rank); the union of the ranks' batches is exactly a Poisson
  sample of the whole table at rate q — the subsampled Gaussian mechanism the accountant
  charges. The step count, q and σ are the same as in one process.
* **Noise once.** Opacus' DPDDP + distributed DP optimizer: each rank clips its rows'
  gradients at C, the clipped sums are added over ranks, and only rank 0 adds N(0, σ²C²)
  (:mod:`opacus.optimizers.ddpoptimizer`). The side releases (condition histogram,
  marginals, pair histograms, mean embeddings, correlations) go through
  :func:`synthrelease.privacy.collective.noisy_sum`: partial sums all-reduced, noise
  drawn once by rank 0, the noisy result broadcast. One row still moves each sum by its
  sensitivity, so every mechanism and its accountant entry are unchanged.
* **One ledger entry.** Rank 0 alone reserves ε in the privacy ledger before training,
  charges it after, and writes the model file (atomically). A run whose rank dies leaves
  the reservation visible (as any killed release) and no model file.
* **Public row count.** As in one process, n (here the all-reduced sum of the shard sizes)
  sets q and the δ check; it is not released.
* **Persons.** With ``privacy_unit_column``, rows are sharded by a fixed hash of the
  person id (:func:`person_rank`), so each person's rows are on one rank and that rank
  keeps their first row, exactly the row one process keeps; n is then the number of
  persons.
* **DP discovery.** ``dp_categories`` and ``dp_bounds`` are histograms too: the ranks
  agree on the union of the values they hold (category discovery), their counts are
  summed and noised once (:func:`~synthrelease.privacy.collective.noisy_sum`), and every
  rank thresholds the same noisy counts; the threshold uses the global n.

A release on N processes (``synthrelease release … --nproc N``) runs the same stages as
one process; only its training step is this module, launched by
:func:`synthrelease.pipeline.launch.distributed_modality` on the release's training rows
(after its secret split), with the release's own training settings and the DP gate's
reserved accountant entry, while the release holds the ledger reservation.

Not distributed yet: image and sequence tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthrelease.errors import InputFileError, MetadataError, SynthreleaseError
from synthrelease.io.formats import detect_format
from synthrelease.privacy.collective import Collective, active

SHARD_READ_ROWS = 50_000
"""CSV rows parsed at a time while a rank streams past the other ranks' rows."""


def person_rank(ids: pd.Series, world_size: int) -> np.ndarray:
    """The rank each row's person goes to: a fixed (unsalted) hash of the id's text mod N,
    the same in every process, so all rows of one person land on one rank."""
    text = ids.astype(str).str.strip()
    return (pd.util.hash_pandas_object(text, index=False).to_numpy() % np.uint64(world_size)).astype(np.int64)


def read_shard(path: str | os.PathLike[str], *, rank: int, world_size: int, sep: str = ",",
               dtype: dict[str, Any] | None = None, unit_column: str | None = None) -> pd.DataFrame:
    """This rank's rows of a CSV/TSV (row i kept when i mod N = rank), a Parquet file
    (row group g kept when g mod N = rank; the other row groups are never read) or an
    ``.h5ad`` file (the contiguous block of cells ⌊n·r/N⌋ … ⌊n·(r+1)/N⌋ − 1, read in backed
    mode: the other cells' rows of X are never loaded).

    ``unit_column`` (the metadata's ``privacy_unit_column``): rows go by PERSON instead,
    every row whose person id hashes to this rank (:func:`person_rank`), in file order, so
    that each person's rows, and so their first row, are on one rank (CSV and Parquet are
    streamed in chunks / row groups, ``.h5ad`` reads its ``obs`` column and then only its
    cells' rows of X).

    Raises:
        InputFileError: unreadable file, a Parquet file with fewer row groups than ranks, or
            ``unit_column`` missing from the file.
    """
    p = Path(path)
    if p.suffix.lower() == ".h5ad":
        return _h5ad_shard(p, rank, world_size, unit_column)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InputFileError(f"{p}: not a readable Parquet file ({type(exc).__name__})") from None
        if unit_column is not None:
            if unit_column not in pf.schema_arrow.names:
                raise InputFileError(f"{p}: privacy_unit_column {unit_column!r} is not in the file")
            parts = []
            for g in range(pf.num_row_groups):
                group = pf.read_row_group(g).to_pandas()
                parts.append(group[person_rank(group[unit_column], world_size) == rank])
            return pd.concat(parts).reset_index(drop=True)
        groups = [g for g in range(pf.num_row_groups) if g % world_size == rank]
        if pf.num_row_groups < world_size:
            raise InputFileError(f"{p}: {pf.num_row_groups} row group(s) for {world_size} processes; write the "
                                 f"file with at least one row group per process (pyarrow row_group_size)")
        return pf.read_row_groups(groups).to_pandas()
    try:
        parts = []
        start = 0
        with pd.read_csv(p, sep=sep, chunksize=SHARD_READ_ROWS, dtype=dtype, keep_default_na=True) as chunks:
            for chunk in chunks:
                if unit_column is not None:
                    if unit_column not in chunk.columns:
                        raise InputFileError(f"{p}: privacy_unit_column {unit_column!r} is not in the file")
                    parts.append(chunk[person_rank(chunk[unit_column], world_size) == rank])
                else:
                    index = range(start, start + len(chunk))
                    parts.append(chunk.iloc[[i - start for i in index if i % world_size == rank]])
                start += len(chunk)
    except FileNotFoundError:
        raise InputFileError(f"{p}: file not found") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputFileError(f"{p}: not a readable table ({str(exc).splitlines()[0]})") from None
    if not parts:
        raise InputFileError(f"{p}: the table has no rows")
    return pd.concat(parts).reset_index(drop=True)


def _h5ad_shard(p: Path, rank: int, world_size: int, unit_column: str | None = None) -> pd.DataFrame:
    import anndata

    from synthrelease.io.formats import frame_from_anndata

    if not p.is_file():
        raise InputFileError(f"{p}: file not found")
    try:
        adata = anndata.read_h5ad(p, backed="r")
    except Exception as exc:  # h5py/anndata raise OSError, KeyError, ...
        raise InputFileError(f"{p}: cannot parse h5ad table: {type(exc).__name__}") from None
    try:
        n = int(adata.n_obs)
        if unit_column is not None:
            obs = adata.obs
            if unit_column in obs.columns:
                ids = pd.Series(obs[unit_column].to_numpy(), dtype=object)
            elif unit_column == (obs.index.name or "obs_id"):  # the obs index becomes this column
                ids = pd.Series(obs.index.to_numpy(), dtype=object)
            else:
                raise InputFileError(f"{p}: privacy_unit_column {unit_column!r} is not in obs")
            mine = np.flatnonzero(person_rank(ids, world_size) == rank)
            return frame_from_anndata(adata[mine].to_memory())[0]
        lo, hi = n * rank // world_size, n * (rank + 1) // world_size
        if hi <= lo:
            raise InputFileError(f"{p}: {n} cell(s) for {world_size} processes; use fewer processes")
        return frame_from_anndata(adata[lo:hi].to_memory())[0]
    finally:
        file = getattr(adata, "file", None)
        if file is not None:
            file.close()


def check_distributable(metadata: Any, source: str, nproc: int = 1) -> None:
    """Refuse (before any ε is reserved) what distributed training cannot do yet.

    Raises:
        MetadataError: not a table (image and sequence tables train in one process).
        SynthreleaseError: more local processes than this machine has cores (a public bound;
            the table's row count is private and cannot be consulted before the budget is).
    """
    if metadata.modality != "table":
        raise MetadataError(f"{source}: a {metadata.modality} dataset; distributed training takes tables")
    cores = os.cpu_count() or 1
    if nproc > cores:
        raise SynthreleaseError(f"--nproc {nproc}: this machine has {cores} core(s); local training processes beyond "
                                "the cores only slow training down (use torchrun across machines for more)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m synthrelease.pipeline.distributed",
                                 description="One rank of a distributed DP training run (launch with torchrun).")
    ap.add_argument("data")
    ap.add_argument("--metadata", required=True)
    ap.add_argument("--epsilon", type=float, required=True)
    ap.add_argument("--delta", type=float, default=None)
    ap.add_argument("--condition-column", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accountant", default="rdp")
    ap.add_argument("--ledger", default=None)
    ap.add_argument("--policy", default=None)
    ap.add_argument("--sep", default=None, help="field separator (default: from the extension, as one process)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="Seconds a rank waits for the others before the run fails.")
    # set by a release on N processes (synthrelease.pipeline.launch), which holds the ledger
    # reservation itself and passes its own training settings and the DP gate's entry
    ap.add_argument("--config", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reserved-entries", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ledger-held-by-release", action="store_true", help=argparse.SUPPRESS)
    return ap


def shard_separator(data: str | os.PathLike[str], sep: str | None) -> str:
    """The field separator a rank reads delimited text with: ``--sep`` when given, else the
    extension's (``.tsv`` → tab), exactly as one process reads the file."""
    return detect_format(data, sep).sep


def train_rank(args: argparse.Namespace, collective: Collective) -> dict[str, Any] | None:
    """Train on this rank's shard; rank 0 charges the ledger and writes the model (returns its summary)."""
    from synthrelease.gan.config import TrainingConfig
    from synthrelease.gan.defaults import default_training_config
    from synthrelease.gan.trainer import fit_dp_synthesizer
    from synthrelease.io.files import sha256_file
    from synthrelease.metadata.load import load_metadata
    from synthrelease.modalities.model_files import save_model
    from synthrelease.pipeline.charging import train_charged
    from synthrelease.privacy.accounting import MechanismEntry
    from synthrelease.privacy.dp_counts import TRAIN_COUNT_SHARE, count_entry
    from synthrelease.privacy.parameters import PrivacyLoss, public_default_delta
    from synthrelease.validation.expectations import validate_table

    metadata = load_metadata(args.metadata)
    if not metadata.reviewed:
        raise MetadataError(f"{args.metadata}: metadata not reviewed (set reviewed: true after checking it)")
    check_distributable(metadata, str(args.metadata))
    unit = metadata.privacy_unit_column
    sep = shard_separator(args.data, args.sep)
    shard = read_shard(args.data, rank=collective.rank, world_size=collective.world_size, sep=sep,
                       dtype={c: str for c, s in metadata.columns.items() if s.type in ("categorical", "identifier")},
                       unit_column=unit)
    if unit is not None:  # all of a person's rows are on this rank: keep their first, as one process does
        from synthrelease.pipeline.stages import first_rows_per_person

        shard = first_rows_per_person(shard, unit, 1, source=f"{args.data} (rank {collective.rank})")
    validate_table(shard, metadata, source=f"{args.data} (rank {collective.rank})")
    n_rows = int(collective.sum(torch.tensor([float(len(shard))])).item())
    cond = args.condition_column or metadata.target
    if args.config is not None:  # a release's own settings (public), computed for these n rows
        config = TrainingConfig(**json.loads(Path(args.config).read_text()))
        delta = config.target_delta
        reserved = tuple(MechanismEntry(*e) for e in json.loads(Path(args.reserved_entries).read_text())) \
            if args.reserved_entries is not None else ()
    else:  # `train --nproc`: the shareable model's settings come from a DP count of the rows, as on one process
        delta = args.delta if args.delta is not None else public_default_delta()
        counts = count_entry(TRAIN_COUNT_SHARE, epsilon=args.epsilon, delta=delta, accountant=args.accountant)
        public_rows = _dp_row_count(collective, len(shard), counts)
        config = default_training_config(public_rows, epsilon=args.epsilon, delta=delta, seed=args.seed,
                                         accountant=args.accountant, n_steps=args.steps,
                                         batch_size=args.batch_size, metadata=metadata, condition_column=cond)
        config = dataclasses.replace(config, public_rows=public_rows)
        reserved = (counts,)
    PrivacyLoss(args.epsilon, delta).check_delta_for_rows(config.public_rows or n_rows)

    def fit() -> Any:
        with active(collective):
            return fit_dp_synthesizer(shard, metadata, config, condition_column=cond, reserved_entries=reserved)

    if not collective.is_leader:
        fit()
        return None
    if args.ledger_held_by_release:  # the release reserved ε before its split and charges it itself
        model = fit()
        save_model(model, args.output)
        return {"epsilon": model.privacy.epsilon, "delta": model.privacy.delta, "rows": n_rows,
                "processes": collective.world_size, "seconds": model.train_seconds}
    # rank 0 alone: reserve before training, charge after (a stopped run is charged in full)
    model = train_charged(fit, dataset=metadata.name, epsilon=args.epsilon, delta=config.target_delta,
                          ledger_path=args.ledger, policy_path=args.policy, data_sha256=sha256_file(args.data),
                          content_sha256=None,
                          what=f"model of {args.data} ({collective.world_size} processes)")
    from synthrelease.io.formats import read_format

    model.table_format = read_format(args.data, args.sep).restricted_to(metadata.columns)  # `sample` writes it
    save_model(model, args.output)
    return {"epsilon": model.privacy.epsilon, "delta": model.privacy.delta, "rows": n_rows,
            "processes": collective.world_size, "seconds": model.train_seconds}


def _dp_row_count(collective: Any, shard_rows: int, entry: Any) -> int:
    """The DP count of the rows over every rank (the same value on each): the leader adds the Gaussian
    noise of ``entry`` (fresh OS entropy) to its shard's count, the sum runs over the ranks. Reads
    private counts; the result is DP and rounded to the row count the defaults use."""
    from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

    noise = float(gaussian_noise((1,), entry.noise_multiplier, PrivateRandomness().torch("count-noise"))[0]) \
        if collective.is_leader else 0.0
    noisy = float(collective.sum(torch.tensor([float(shard_rows) + noise], dtype=torch.float64)).item())
    return max(2, round(noisy))


def main(argv: list[str] | None = None) -> int:
    """torchrun entry point: init the process group (gloo on CPU, nccl with GPUs), train, clean up."""
    import torch.distributed as dist

    args = _parser().parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        sys.stderr.write("error: launch with torchrun (RANK/WORLD_SIZE not set), or use "
                         "`synthrelease train --nproc N`\n")
        return 2
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    collective = Collective(dist.get_rank(), dist.get_world_size())
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    try:
        summary = train_rank(args, collective)
        # every rank waits for the others before tearing the group down: a rank that leaves
        # while a peer's last send is in flight makes gloo abort the peer ("terminate called")
        dist.barrier()
        if summary is not None:
            sys.stdout.write(f"model: {args.output}\n")
            sys.stdout.write(f"epsilon spent: {summary['epsilon']:.4f} (delta {summary['delta']:g}); "
                             f"{summary['rows']} rows on {summary['processes']} processes in "
                             f"{summary['seconds']:.1f} s\n")
        return 0
    except SynthreleaseError as e:
        sys.stderr.write(f"error (rank {collective.rank}): {e}\n")
        return 2
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
