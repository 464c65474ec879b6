"""Typed progress events. The library never prints; the CLI renders these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from a long stage.

    Attributes:
        stage: short stage name ("validate", "train", "sample", "audit:fidelity", ...).
        step: steps done so far (0 when the stage starts).
        total: planned steps, or None when unknown.
        metrics: free-form numbers (losses, ε spent so far, ...).
        message: an optional one-line message.
    """

    stage: str
    step: int = 0
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


class ProgressCallback(Protocol):
    """Receives progress events."""

    def __call__(self, event: ProgressEvent) -> None:
        """Handle one event."""


def ignore_progress(event: ProgressEvent) -> None:
    """The default callback: drop every event."""
    del event
