"""The steward's internal audit report. INTERNAL: never part of a shareable bundle.

Its numbers are computed on private rows: the audits' exact figures and the exact values
behind the DP gate's noisy figures are NOT differentially private. It holds no private
randomness (the DP noise used fresh OS entropy, never stored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from synthrelease._io import write_json_atomic, write_text_atomic
from synthrelease.policy.gate import GateDecision

INTERNAL_BANNER = (
    "INTERNAL — CONTAINS EXACT (NOT DIFFERENTIALLY PRIVATE) RESULTS COMPUTED ON PRIVATE DATA. "
    "Do not share outside the data steward's organisation."
)


def render_markdown(report: dict[str, Any], decision: GateDecision) -> str:
    """A short human summary of the internal report."""
    lines = [f"# Internal release report — {report['dataset']}", "", f"**{INTERNAL_BANNER}**", "",
             f"Verdict: **{'RELEASED' if decision.passed else 'REJECTED'}** under policy `{decision.policy_name}`",
             "", "| clause | threshold | measured | result | reason |", "|---|---|---|---|---|"]
    for c in decision.clauses:
        measured = "—" if c.measured is None else (f"{c.measured:.4g}" if isinstance(c.measured, float)
                                                   else str(c.measured))
        threshold = f"{c.threshold:g}" if isinstance(c.threshold, float) else str(c.threshold)
        lines.append(f"| {c.clause} | {c.comparator} {threshold} | {measured} | "
                     f"{'pass' if c.passed else 'FAIL'} | {c.reason} |")
    priv = report["privacy"]
    lines += ["", f"Privacy spent: ε = {priv['epsilon']:.4f} at δ = {priv['delta']:g} "
              f"({priv['accountant']} accountant)", ""]
    for name, audit in report["audits"].items():
        metrics = ", ".join(f"{k} = {v:.4g}" for k, v in audit["metrics"].items() if isinstance(v, float))
        lines.append(f"- **{name}** ({audit['runtime_s']:.1f} s): {metrics}")
    if report.get("bundle"):
        lines += ["", f"Bundle: `{report['bundle']}`"]
    return "\n".join(lines) + "\n"


def write_internal_report(report_dir: str | os.PathLike[str], report: dict[str, Any],
                          decision: GateDecision) -> Path:
    """Write ``internal_report.json`` and ``internal_report.md`` atomically; returns the JSON path."""
    d = Path(report_dir)
    d.mkdir(parents=True, exist_ok=True)
    body = {"_notice": INTERNAL_BANNER, **report}
    path = write_json_atomic(d / "internal_report.json", body)
    write_text_atomic(d / "internal_report.md", render_markdown(report, decision))
    return path
