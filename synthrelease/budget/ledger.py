"""The privacy-budget ledger: every release's ε and δ per dataset, never overspent.

An embedded SQLite database (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``).
Each release is one entry with a status:

* ``reserved``: budget held before training starts (its process may still be running);
* ``spent``: training ran, so the ε was spent — whether the gate then released or
  rejected (a rejected release read the private rows too);
* ``cancelled``: refused before any private row reached training; costs nothing.

Composition across releases of one dataset is **basic composition**: ε_total = Σ ε_i and
δ_total = Σ δ_i over its spent and reserved entries. It holds for any mix of mechanisms
(no assumption on how each release was computed), at the price of being loose for many
small releases.

Never overspending: :meth:`Ledger.reserve` runs ``BEGIN IMMEDIATE`` (SQLite's write lock)
so "sum what is spent or reserved, compare with the cap, insert the reservation" is one
transaction; two processes reserving at once are serialised and the second sees the first.
A release killed mid-way (SIGKILL, power loss) leaves its entry ``reserved``: it keeps
counting against the cap (training may have finished and its output may exist) until a
steward resolves it with :meth:`Ledger.recover` (``synthrelease ledger recover``);
:meth:`LedgerEntry.stale` flags reservations whose process is gone.

Datasets are identified by the metadata's declared ``name`` (public, chosen by the
steward), not by the bytes of the file, so an updated or re-exported file cannot escape
a cap; the SHA-256 of the file used is recorded in each entry. The cap check also counts
entries recorded for the *same file bytes* under another name (the same people's rows),
so renaming a dataset in its metadata does not escape its cap either.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from synthrelease.errors import BudgetExceededError, InputFileError, InternalError

SCHEMA_VERSION = 1
LEDGER_ENV = "SYNTHRELEASE_LEDGER"
STATUSES = ("reserved", "spent", "cancelled")
_TOLERANCE = 1e-9  # relative, as the trainer's own check of spent ε against its target


def _exceeds(value: float, limit: float) -> bool:
    return value > limit * (1 + _TOLERANCE) + _TOLERANCE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    data_sha256 TEXT,
    epsilon REAL NOT NULL CHECK (epsilon >= 0),
    delta REAL NOT NULL CHECK (delta >= 0 AND delta < 1),
    status TEXT NOT NULL CHECK (status IN ('reserved', 'spent', 'cancelled')),
    created_utc TEXT NOT NULL,
    updated_utc TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS entries_dataset ON entries (dataset, status);
"""


def default_ledger_path() -> Path:
    """``$SYNTHRELEASE_LEDGER`` if set, else ``~/.synthrelease/ledger.sqlite3``."""
    env = os.environ.get(LEDGER_ENV)
    return Path(env) if env else Path.home() / ".synthrelease" / "ledger.sqlite3"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LedgerEntry:
    """One release of one dataset (ε, δ in the release's own accounting)."""

    id: int
    dataset: str
    data_sha256: str | None
    epsilon: float
    delta: float
    status: str
    created_utc: str
    updated_utc: str
    host: str
    pid: int
    note: str

    @property
    def running(self) -> bool:
        """A reservation whose process is still alive on this host (its release is under way)."""
        return self.status == "reserved" and self.host == socket.gethostname() and _pid_alive(self.pid)

    @property
    def stale(self) -> bool:
        """A reservation whose process (on this host) is gone: needs ``ledger recover``."""
        return self.status == "reserved" and self.host == socket.gethostname() and not _pid_alive(self.pid)


@dataclass(frozen=True)
class BudgetTotals:
    """Basic composition over one dataset's entries: ε and δ summed."""

    dataset: str
    spent_epsilon: float
    spent_delta: float
    reserved_epsilon: float
    reserved_delta: float
    releases: int
    open_reservations: int

    @property
    def committed_epsilon(self) -> float:
        """ε spent plus ε reserved: what counts against a lifetime cap."""
        return self.spent_epsilon + self.reserved_epsilon


@dataclass(frozen=True)
class Reservation:
    """Budget held for one release; ``used_before``: ε spent or reserved by others at that moment."""

    entry_id: int
    dataset: str
    epsilon: float
    delta: float
    used_before: float


class Ledger:
    """The ledger file at ``path`` (created on first use, with its folder).

    Every method opens its own connection, so one :class:`Ledger` may be used from
    several threads and many processes may share the file (local filesystems only:
    SQLite's WAL needs shared memory, so not NFS).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise InputFileError(f"{self.path}: cannot open the privacy ledger: {e}") from None
        try:
            con.execute("PRAGMA busy_timeout = 60000")
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise InputFileError(f"{self.path}: the privacy ledger needs SQLite WAL mode (got {mode})")
            con.execute("PRAGMA synchronous = FULL")
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO ledger_info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = con.execute("SELECT value FROM ledger_info WHERE key = 'schema_version'").fetchone()[0]
            if version != str(SCHEMA_VERSION):
                raise InputFileError(f"{self.path}: privacy ledger schema version {version}, this tool reads "
                                     f"{SCHEMA_VERSION}")
            yield con
        except sqlite3.DatabaseError as e:
            raise InputFileError(f"{self.path}: privacy ledger is unreadable or not a ledger: {e}") from None
        finally:
            con.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding SQLite's write lock from its first statement."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @staticmethod
    def _totals(con: sqlite3.Connection, dataset: str) -> BudgetTotals:
        rows = con.execute("SELECT status, COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0), COUNT(*) "
                           "FROM entries WHERE dataset = ? GROUP BY status", (dataset,)).fetchall()
        by = {status: (eps, delta, count) for status, eps, delta, count in rows}
        spent, reserved = by.get("spent", (0.0, 0.0, 0)), by.get("reserved", (0.0, 0.0, 0))
        return BudgetTotals(dataset, float(spent[0]), float(spent[1]), float(reserved[0]), float(reserved[1]),
                            int(spent[2]), int(reserved[2]))

    @staticmethod
    def _used(con: sqlite3.Connection, dataset: str, data_sha256: str | None) -> tuple[float, float]:
        """(ε spent or reserved on ``dataset`` or on the same file bytes, of it from other names)."""
        own = con.execute("SELECT COALESCE(SUM(epsilon), 0) FROM entries WHERE status IN ('spent', 'reserved') "
                          "AND dataset = ?", (dataset,)).fetchone()[0]
        other = 0.0 if data_sha256 is None else con.execute(
            "SELECT COALESCE(SUM(epsilon), 0) FROM entries WHERE status IN ('spent', 'reserved') "
            "AND dataset != ? AND data_sha256 = ?", (dataset, data_sha256)).fetchone()[0]
        return float(own) + float(other), float(other)

    def used(self, dataset: str, data_sha256: str | None = None) -> float:
        """ε that counts against ``dataset``'s lifetime cap: spent plus reserved, on its name or
        (when ``data_sha256`` is given) on the same file bytes under another name."""
        with self._connect() as con:
            return self._used(con, dataset, data_sha256)[0]

    def totals(self, dataset: str) -> BudgetTotals:
        """ε and δ spent and reserved on ``dataset`` (basic composition)."""
        with self._connect() as con:
            return self._totals(con, dataset)

    def reserve(self, dataset: str, epsilon: float, delta: float, *, cap: float | None,
                data_sha256: str | None = None, note: str = "") -> Reservation:
        """Hold ``epsilon``/``delta`` for one release of ``dataset``, atomically against ``cap``.

        Raises:
            BudgetExceededError: spent + reserved + ``epsilon`` would exceed ``cap`` (the
                message names the dataset, the cap, the ε used and requested, and the ledger).
        """
        if not (epsilon >= 0 and 0 <= delta < 1):
            raise InternalError(f"ledger reservation needs ε >= 0 and δ in [0, 1), got {epsilon}, {delta}")
        with self._write() as con:
            t = self._totals(con, dataset)
            used, other = self._used(con, dataset, data_sha256)
            if cap is not None and _exceeds(used + epsilon, cap):
                same_file = f", ε {other:.4g} under other names for the same file" if other else ""
                raise BudgetExceededError(
                    f"{self.path}: dataset '{dataset}' has used ε {used:.4g} of its lifetime cap {cap:g} "
                    f"(spent {t.spent_epsilon:.4g}, reserved {t.reserved_epsilon:.4g}{same_file}); "
                    f"this release asks for ε {epsilon:g}")
            now = _now()
            cur = con.execute(
                "INSERT INTO entries (dataset, data_sha256, epsilon, delta, status, created_utc, updated_utc, "
                "host, pid, note) VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                (dataset, data_sha256, float(epsilon), float(delta), now, now, socket.gethostname(), os.getpid(),
                 note))
            entry_id = cur.lastrowid
        assert entry_id is not None
        return Reservation(int(entry_id), dataset, float(epsilon), float(delta), used)

    def _close(self, entry_id: int, status: str, note: str, epsilon: float | None = None,
               delta: float | None = None) -> LedgerEntry:
        with self._write() as con:
            row = con.execute("SELECT status, epsilon, delta FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise InputFileError(f"{self.path}: no ledger entry {entry_id}")
            if row[0] != "reserved":
                raise InputFileError(f"{self.path}: ledger entry {entry_id} is already {row[0]}, not reserved")
            eps = row[1] if epsilon is None else float(epsilon)
            dlt = row[2] if delta is None else float(delta)
            if _exceeds(eps, row[1]):
                raise InternalError(f"ledger entry {entry_id}: ε spent {eps} exceeds the ε reserved {row[1]}")
            con.execute("UPDATE entries SET status = ?, epsilon = ?, delta = ?, note = ?, updated_utc = ? "
                        "WHERE id = ?", (status, eps, dlt, note, _now(), entry_id))
        return self.entry(entry_id)

    def spend(self, reservation: Reservation, epsilon: float, delta: float, note: str = "") -> LedgerEntry:
        """Turn a reservation into spent budget (the ε/δ the accountant reported, ≤ reserved ε)."""
        return self._close(reservation.entry_id, "spent", note, epsilon, delta)

    def cancel(self, reservation: Reservation, note: str = "") -> LedgerEntry:
        """Release a reservation whose release never trained (no private row was used)."""
        return self._close(reservation.entry_id, "cancelled", note)

    def recover(self, entry_id: int, *, spent: bool, note: str) -> LedgerEntry:
        """Resolve a reservation left by a killed release: count it as spent, or cancel it.

        Cancel only if the steward knows the release never started training (e.g. its
        internal report shows no training); when in doubt, count it as spent.
        """
        return self._close(entry_id, "spent" if spent else "cancelled", note)

    def stale_reservations(self, dataset: str | None = None) -> list[LedgerEntry]:
        """Reservations (of ``dataset``) whose process on this host is gone: they still count
        against the cap until a steward resolves them with :meth:`recover`."""
        return [e for e in self.entries(dataset) if e.stale]

    def entry(self, entry_id: int) -> LedgerEntry:
        """One entry by id."""
        with self._connect() as con:
            row = con.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise InputFileError(f"{self.path}: no ledger entry {entry_id}")
        return LedgerEntry(*row)

    def entries(self, dataset: str | None = None) -> list[LedgerEntry]:
        """All entries (of ``dataset``), oldest first."""
        with self._connect() as con:
            if dataset is None:
                rows = con.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY id").fetchall()
            else:
                rows = con.execute(f"SELECT {_COLUMNS} FROM entries WHERE dataset = ? ORDER BY id",
                                   (dataset,)).fetchall()
        return [LedgerEntry(*r) for r in rows]

    def datasets(self) -> list[str]:
        """Every dataset with at least one entry, sorted."""
        with self._connect() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT dataset FROM entries ORDER BY dataset")]


_COLUMNS = "id, dataset, data_sha256, epsilon, delta, status, created_utc, updated_utc, host, pid, note"
