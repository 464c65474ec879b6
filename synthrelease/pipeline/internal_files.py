"""The steward's internal files of a release: the report, a rejected sample, names that must not collide.

INTERNAL: none of these files is ever part of a shareable bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from synthrelease.errors import (
    InputFileError,
)
from synthrelease.gate.advice import advice_for
from synthrelease.gate.verdict import GateDecision
from synthrelease.io.formats import write_table_atomic
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import Modality

log = logging.getLogger(__name__)


INTERNAL_REPORT_NAME = "internal_report.json"


def write_stopped_report(report_root: Path, report: dict[str, Any], policy_name: str, error: BaseException,
                          epsilon: float, delta: float) -> None:
    """Best effort: record a release that stopped after training started (signal, crash, full disk)."""
    report.setdefault("privacy", {"epsilon": epsilon, "delta": delta, "accountant": "-",
                                  "note": "stopped after training started: the reserved ε is counted as spent"})
    report.setdefault("audits", {})
    report.update(stopped=f"{type(error).__name__}: {error}", bundle=None)
    try:
        write_report(report_root, report, GateDecision(policy_name, ()))
    except Exception as e:  # the original error is what the user must see
        log.warning("could not write the internal report of a stopped release: %s", e)


def write_report(report_root: Path, report: dict[str, Any], decision: GateDecision) -> Path:
    from synthrelease.report.internal_report import write_internal_report

    return write_internal_report(report_root, report, decision)


REJECTED_SAMPLE_NAME = "rejected_synthetic_sample.csv"


REPORT_FILE_PREFIXES = ("internal_report.", "rejected_")
"""Names the internal report writes in its folder: its three report files and the rejected
rows' files (``rejected_synthetic_sample.csv``, ``rejected_synthetic.fasta``, ``.npz``, …)."""


def refuse_report_collisions(report_root: Path) -> None:
    """Refuse, before anything is read or spent, a ``--report`` folder that already holds a file
    the internal report could write (an input placed there, an earlier run's files): the report
    never writes over a file, with or without ``--force``.

    Raises:
        InputFileError: naming the first such file.
    """
    if not report_root.is_dir():
        return
    for entry in sorted(report_root.iterdir()):
        if entry.name.startswith(REPORT_FILE_PREFIXES):
            raise InputFileError(f"{entry}: --report already holds this file, and the internal report never "
                                 "writes over a file; choose a new --report folder")


def write_rejected_sample(report_root: Path, synthetic: pd.DataFrame, kind: Modality, meta: Metadata) -> list[Path]:
    """The rejected synthetic rows in the internal report folder (never a bundle), as the bundle
    would have held them: the modality's own files prefixed ``rejected_`` (images:
    ``rejected_synthetic.npz``, listed first) and its bundle table as ``REJECTED_SAMPLE_NAME``
    (images: tile index and label, no raw pixel bytes); tables: the rows as that CSV alone."""
    paths: list[Path] = []
    if kind.outputs is not None:
        for name, write in kind.outputs(synthetic, meta).items():
            target = report_root / f"rejected_{name}"
            write(target)
            paths.append(target)
    table = kind.bundle_table(synthetic, meta) if kind.bundle_table is not None else synthetic
    paths.append(write_table_atomic(report_root / REJECTED_SAMPLE_NAME, table))
    return paths


def refusal_message(decision: GateDecision, report_path: Path) -> str:
    failed = "; ".join(f"{c.clause}: {c.reason} (to change: {advice_for(c.clause)})" for c in decision.failed)
    return (f"release rejected by policy '{decision.policy_name}': {failed}. "
            f"No shareable data was written; internal report: {report_path}")
