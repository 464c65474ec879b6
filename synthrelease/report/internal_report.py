"""The steward's internal audit report. INTERNAL: never part of a shareable bundle.

Its numbers are computed on private rows: the audits' exact figures and the exact values
behind the DP gate's noisy figures are NOT differentially private. It holds no private
randomness (the DP noise used fresh OS entropy, never stored). Its ``plots`` entry and the
membership audit's ``plots`` details hold histograms, association matrices, a projected
sample of real rows and attack curves, all computed on private rows.

Three files are written side by side: ``internal_report.json`` (the record),
``internal_report.md`` (a short summary) and ``internal_report.html`` (the full,
self-contained page, drawn from the JSON alone: ``synthrelease report`` draws the same
page again from the JSON).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from synthrelease.gate.verdict import GateDecision
from synthrelease.io.files import write_json_atomic, write_text_atomic
from synthrelease.report import html
from synthrelease.report.internal import GDPR_NOTE, GDPR_RISK_TITLES

log = logging.getLogger(__name__)

HTML_NAME = "internal_report.html"



def render_markdown(report: dict[str, Any], decision: GateDecision) -> str:
    """A short human summary of the internal report."""
    lines = [f"# Internal release report — {report['dataset']}", "", f"**{html.INTERNAL_BANNER}**", "",
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
    lines += _gdpr_risk_lines(report["audits"].get("anonymeter"))
    if report.get("bundle"):
        lines += ["", f"Bundle: `{report['bundle']}`"]
    return "\n".join(lines) + "\n"


def _gdpr_risk_lines(audit: Any) -> list[str]:
    """The anonymeter audit's section of the Markdown summary (INTERNAL; never a gate clause)."""
    if not isinstance(audit, dict):
        return []
    d = audit.get("details") or {}
    lines = ["", "## GDPR anonymisation risks (anonymeter) — internal only, never a gate clause", "", GDPR_NOTE, ""]
    if d.get("skipped") or d.get("error"):
        return [*lines, f"Not measured: {d.get('skipped') or d.get('error')}"]
    for name in [k for k in GDPR_RISK_TITLES if k in (d.get("risks") or {})]:
        r, title = d["risks"][name], GDPR_RISK_TITLES[name]
        if "risk" in r:
            lines.append(f"- **{title}**: {r.get('sentence', '')}")
        else:
            lines.append(f"- **{title}**: not measured: {r.get('skipped') or r.get('error')}")
    return lines


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN/±inf float replaced by None (strict JSON readers refuse them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def render_html_file(json_path: Path) -> str:
    """The INTERNAL HTML page of the report at ``json_path``, drawn from the file alone.

    Raises:
        InputFileError: the file is not strict JSON or not an internal report.
    """
    from synthrelease.io.strict_json import loads_strict

    return html.render_internal_html(loads_strict(json_path.read_bytes(), source=str(json_path)), source=str(json_path))


def _write_html(d: Path, json_path: Path) -> None:
    """Write ``internal_report.html``; a rendering fault never fails the run (the JSON is the record)."""
    try:
        page = render_html_file(json_path)
    except Exception as e:  # a figure that cannot be drawn must not undo a signed release
        log.warning("could not render %s: %s: %s", d / HTML_NAME, type(e).__name__, e)

        page = html.render("render_failed.html.j2", banner=html.INTERNAL_BANNER, error=f"{type(e).__name__}: {e}",
                      json_name=json_path.name)
    write_text_atomic(d / HTML_NAME, page)


def write_internal_report(report_dir: str | os.PathLike[str], report: dict[str, Any],
                          decision: GateDecision) -> Path:
    """Write ``internal_report.json``, ``.md`` and ``.html`` atomically; returns the JSON path.

    The JSON gets the INTERNAL notice and the policy's name; non-finite floats become null.
    The HTML is drawn from the written JSON alone, so ``synthrelease report`` reproduces it.
    """
    d = Path(report_dir)
    d.mkdir(parents=True, exist_ok=True)
    body = _finite({"_notice": html.INTERNAL_BANNER, "policy_name": decision.policy_name, **report})
    path = write_json_atomic(d / "internal_report.json", body)
    write_text_atomic(d / "internal_report.md", render_markdown(report, decision))
    _write_html(d, path)
    return path
