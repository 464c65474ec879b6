"""`synthrelease ledger`: the privacy-budget ledger."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from synthrelease.cli.app import cli
from synthrelease.errors import SynthreleaseError

_ledger_option = click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), default=None,
                              help="Ledger file (default: $SYNTHRELEASE_LEDGER or ~/.synthrelease/ledger.sqlite3).")


def _open_ledger(ledger_path: Path | None, *, must_exist: bool) -> Any:
    from synthrelease.budget.ledger import Ledger, default_ledger_path

    path = ledger_path if ledger_path is not None else default_ledger_path()
    if must_exist and not path.is_file():
        raise SynthreleaseError(f"{path}: no privacy ledger here (it is created by the first release)")
    return Ledger(path)


@cli.group()
def ledger() -> None:
    """The privacy-budget ledger: ε and δ spent per dataset (basic composition)."""


def _closed_stdout() -> None:
    """The reader of stdout went away (``ledger show | head``): send what is still buffered to
    /dev/null, so the interpreter's final flush cannot fail, and exit 0 quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise click.exceptions.Exit(0)


@ledger.command("show")
@click.argument("dataset", required=False)
@_ledger_option
def ledger_show(dataset: str | None, ledger_path: Path | None) -> None:
    """Per dataset: releases, ε and δ spent (summed), open reservations, and every entry.

    Read-only: never creates or changes a file (no ledger yet: says where it will be, exit 0).
    A reader that closes the output early (`ledger show | head`) ends it quietly with exit 0.
    """

    book = _open_ledger(ledger_path, must_exist=False)
    try:
        if not book.exists():
            click.echo(f"no privacy ledger yet at {book.path}: it is created by the first release or train")
            sys.stdout.flush()
            return
        names = [dataset] if dataset is not None else book.datasets()
        if dataset is not None and dataset not in book.datasets():
            raise SynthreleaseError(f"{book.path}: no entries for dataset '{dataset}'")
        click.echo(f"ledger {book.path} (basic composition: epsilon and delta summed over releases)")
        for name in names:
            t = book.totals(name)
            click.echo(f"{name}: spent epsilon {t.spent_epsilon:.4f} delta {t.spent_delta:.3g} in {t.releases} "
                       f"release(s); reserved epsilon {t.reserved_epsilon:.4f} in {t.open_reservations} open "
                       "reservation(s)")
            for e in book.entries(name):
                flag = ("  STALE: its process is gone; resolve with `synthrelease ledger recover`" if e.stale else
                        "  (process on another host: check it there)" if e.status == "reserved" and not e.running
                        else "")
                click.echo(f"  #{e.id} {e.status:9s} epsilon {e.epsilon:.4f} delta {e.delta:.3g} {e.created_utc} "
                           f"pid {e.pid}@{e.host} {e.note}{flag}")
        sys.stdout.flush()  # a closed pipe fails here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        _closed_stdout()


@ledger.command("recover")
@click.argument("entry_id", type=int)
@click.option("--spent", "--commit", "as_spent", is_flag=True,
              help="Count the reservation as spent (the safe choice when in doubt).")
@click.option("--cancel", "as_cancelled", is_flag=True,
              help="Cancel it: only if the release certainly never started training.")
@_ledger_option
def ledger_recover(entry_id: int, as_spent: bool, as_cancelled: bool, ledger_path: Path | None) -> None:
    """Resolve a reservation left by a killed release (ENTRY_ID: 1 to 2**63-1)."""
    if as_spent == as_cancelled:
        raise SynthreleaseError("ledger recover: give exactly one of --spent (alias --commit) or --cancel")
    book = _open_ledger(ledger_path, must_exist=True)
    entry = book.entry(entry_id)  # an id out of range: one line, exit 2
    if entry.running:
        raise SynthreleaseError(f"{book.path}: entry {entry_id} belongs to a running process (pid {entry.pid}); "
                                "wait for it to finish")
    done = book.recover(entry_id, spent=as_spent, note="recovered by a steward: " +
                        ("counted as spent" if as_spent else "cancelled"))
    try:
        click.echo(f"entry #{done.id} is now {done.status}")
        sys.stdout.flush()
    except BrokenPipeError:  # recovered; nobody reads the confirmation
        _closed_stdout()
