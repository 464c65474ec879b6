"""What every audit returns.

Audits read private rows (the real training table and the holdout). They are NOT
differentially private: their detailed results stay in the steward's internal report.
Only the gate's verdict and coarse, rounded figures may go into a shareable bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuditResult:
    """The result of one audit.

    Attributes:
        name: audit name (``fidelity``, ``utility``, ``membership``, ``plausibility``).
        metrics: headline numbers by metric name; the policy's clauses refer to these.
        details: JSON-able breakdowns (per column, per pair, per class...). INTERNAL ONLY.
        runtime_s: wall-clock seconds the audit took.
        internal_only: always True for audits that read private rows.
    """

    name: str
    metrics: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)
    runtime_s: float = 0.0
    internal_only: bool = True
