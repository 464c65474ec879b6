"""SIGTERM and SIGHUP as exceptions, so a stopped run cleans up like an interrupted one.

Without handlers, ``docker stop`` (SIGTERM) or a closed terminal (SIGHUP) kills the
process outright: the ledger reservation stays "reserved" and no internal report is
written. Inside :func:`stop_signals_raise`, both raise :class:`Stopped` in the main
thread; ``release`` and ``train`` then mark their ledger entry (spent once training has
started), remove their staging folder and write the internal report, and the CLI exits
with 128 + the signal number (143 for SIGTERM, 129 for SIGHUP; SIGINT: 130).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Stopped(BaseException):
    """The process received SIGTERM or SIGHUP. BaseException, so ``except Exception`` cannot swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` (main thread only; no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _raise) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
