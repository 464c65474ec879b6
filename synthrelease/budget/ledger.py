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
:meth:`LedgerEntry.stale` flags reservations whose process is gone. A reservation records
its process's PID, host and start time (Linux: boot id and ``starttime`` of
``/proc/PID/stat``; psutil elsewhere when installed), so a PID reused by another process
does not make a stale reservation look running.

Datasets are identified by the metadata's declared ``name`` (public, chosen by the
steward), not by the bytes of the file, so an updated or re-exported file cannot escape
a cap. Each entry also records the SHA-256 of the file used and, when the caller gives it,
the content fingerprint of its rows (:func:`synthrelease.budget.fingerprint.table_fingerprint`:
independent of file format, quoting, line endings, row and column order). The cap check
counts every entry with the same name, the same file bytes or the same rows, so renaming a
dataset and re-exporting its file does not escape its cap either.

The file is SQLite's, marked as ours: ``PRAGMA application_id`` = :data:`APPLICATION_ID`
and ``PRAGMA user_version`` = :data:`SCHEMA_VERSION` (schema 2). Guarantees:

* reads (:meth:`Ledger.used`, :meth:`~Ledger.totals`, :meth:`~Ledger.entries`, ...) open the
  file read-only (``mode=ro``) and never create or change it; a ledger that does not exist
  reads as empty;
* only a write that needs a ledger (:meth:`Ledger.reserve`) creates one, and only where no
  file exists at all; it is built in a temporary file and linked into place, so no other
  process ever sees a half-made ledger;
* a 0-byte file, a database that is not a ledger (another application's, or an empty one)
  and a ledger of a newer schema are refused, for reads and writes alike, without
  modifying them (:class:`~synthrelease.errors.InputFileError`, exit 2, naming the file);
* a ledger of schema 1 (before the application id existed: exactly the tables
  ``ledger_info`` and ``entries``, schema_version 1) is read as is and migrated to schema 2
  by its first write, inside that write's transaction.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sqlite3
import stat
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from synthrelease.errors import BudgetExceededError, InputFileError, InternalError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x53524C47  # "SRLG" in SQLite's file header (PRAGMA application_id)
LEDGER_ENV = "SYNTHRELEASE_LEDGER"
VOLUME_ENV = "SYNTHRELEASE_VOLUME"
"""Set by the Docker image to its data folder: a ledger inside it must live on a mounted volume."""
STATUSES = ("reserved", "spent", "cancelled")
MAX_ENTRY_ID = 2**63 - 1  # SQLite's largest integer
_TOLERANCE = 1e-9  # relative, as the trainer's own check of spent ε against its target
_LEDGER_TABLES = frozenset({"ledger_info", "entries"})
_V1_COLUMNS = ("id", "dataset", "data_sha256", "epsilon", "delta", "status", "created_utc", "updated_utc", "host",
               "pid", "note")
_V2_COLUMNS = (*_V1_COLUMNS, "content_sha256", "process_start")


def _exceeds(value: float, limit: float) -> bool:
    return value > limit * (1 + _TOLERANCE) + _TOLERANCE


_SCHEMA = (  # schema 2; schema 1 was the same without the last two columns of ``entries`` and their index
    "CREATE TABLE ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE entries (
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
    note TEXT NOT NULL DEFAULT '',
    content_sha256 TEXT,
    process_start TEXT
)""",
    "CREATE INDEX entries_dataset ON entries (dataset, status)",
    "CREATE INDEX entries_content ON entries (content_sha256)",
)
_MIGRATE_1_TO_2 = (
    "ALTER TABLE entries ADD COLUMN content_sha256 TEXT",
    "ALTER TABLE entries ADD COLUMN process_start TEXT",
    "CREATE INDEX IF NOT EXISTS entries_content ON entries (content_sha256)",
)


def default_ledger_path() -> Path:
    """``$SYNTHRELEASE_LEDGER`` if set, else ``~/.synthrelease/ledger.sqlite3``."""
    env = os.environ.get(LEDGER_ENV)
    return Path(env) if env else Path.home() / ".synthrelease" / "ledger.sqlite3"


def require_persistent(path: Path) -> None:
    """Refuse a ledger that would vanish with its container.

    When ``$SYNTHRELEASE_VOLUME`` names a folder (the Docker image sets ``/data``) and the
    ledger lies inside it, that folder must be a mount point: otherwise every ε spent
    would be forgotten when the container is removed, and the lifetime cap with it.

    Raises:
        InputFileError: one line saying what to mount.
    """
    volume = os.environ.get(VOLUME_ENV)
    if not volume:
        return
    vol = Path(volume).resolve()
    target = Path(os.path.abspath(path))
    if (target == vol or vol in target.parents) and not os.path.ismount(vol):
        raise InputFileError(f"{path}: the privacy ledger would live in this container's throw-away layer "
                             f"({vol} is not a mounted volume); run with -v <host folder>:{vol}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):  # a PID no process can have
        return False
    return True


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "?"
    except OSError:
        return "?"


def _linux_start_ticks(pid: int) -> int | None:
    """Field 22 (``starttime``) of ``/proc/PID/stat``, or None where there is no such file (not
    Linux, or the process is gone) or it cannot be parsed; the caller then tries psutil."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # the fields after "(comm)" start at field 3
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _process_start(pid: int) -> str | None:
    """An opaque token of when process ``pid`` started, or None where it cannot be read.

    Two processes with the same PID on one host never share a token: on Linux it is the
    boot id and field 22 (``starttime``, clock ticks since boot) of ``/proc/PID/stat``;
    elsewhere psutil's creation time when psutil happens to be installed (no dependency).
    """
    start = _linux_start_ticks(pid)
    if start is not None:
        return f"linux:{_boot_id()}:{start}"
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return f"psutil:{psutil.Process(pid).create_time():.6f}"
    except Exception:  # psutil.Error and its platform quirks: unknown, not fatal
        return None


def _process_running(pid: int, process_start: str | None) -> bool:
    """Process ``pid`` (on this host) exists and, when its start token was recorded, is the
    same process. A live PID whose start cannot be read now counts as running (the safe side:
    its reservation is not offered for recovery)."""
    if not _pid_alive(pid):
        return False
    if process_start is None:  # an entry written before start tokens existed: PID only
        return True
    now = _process_start(pid)
    return now is None or now == process_start


@dataclass(frozen=True)
class LedgerEntry:
    """One release of one dataset (ε, δ in the release's own accounting).

    ``content_sha256``: the rows' content fingerprint when the caller gave one;
    ``process_start``: the reserving process's start token (None in schema-1 entries).
    """

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
    content_sha256: str | None = None
    process_start: str | None = None

    @property
    def running(self) -> bool:
        """A reservation whose process is still alive on this host (same PID and, when
        recorded, same start time): its release is under way."""
        return (self.status == "reserved" and self.host == socket.gethostname()
                and _process_running(self.pid, self.process_start))

    @property
    def stale(self) -> bool:
        """A reservation whose process (on this host) is gone, or whose PID now belongs to
        another process: needs ``ledger recover``."""
        return (self.status == "reserved" and self.host == socket.gethostname()
                and not _process_running(self.pid, self.process_start))


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


@dataclass(frozen=True)
class _Opened:
    """An open connection to a file identified as a ledger of schema ``version``."""

    con: sqlite3.Connection
    version: int

    @property
    def select(self) -> str:
        """The entry columns in :class:`LedgerEntry` order (NULL for those schema 1 lacks)."""
        return ", ".join(c if self.version >= 2 or c in _V1_COLUMNS else f"NULL AS {c}" for c in _V2_COLUMNS)


class Ledger:
    """The ledger file at ``path``: read read-only, created (with its folder) by the first
    :meth:`reserve` where no file exists.

    Every method opens its own connection, so one :class:`Ledger` may be used from
    several threads and many processes may share the file (local filesystems only:
    SQLite's WAL needs shared memory, so not NFS).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """Something (a file, or even a dangling link) is at :attr:`path`: it is not created anew."""
        return os.path.lexists(self.path)

    # -- opening ------------------------------------------------------------------------

    def _check_file(self) -> bool:
        """True if a ledger file may be opened at :attr:`path`, False if nothing is there.

        Raises:
            InputFileError: a folder, an unreadable path or a 0-byte file.
        """
        if not self.exists():
            return False
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise InputFileError(f"{self.path}: cannot open the privacy ledger: {e.strerror or e}") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputFileError(f"{self.path}: is a folder, not a privacy ledger file")
        if st.st_size == 0:
            raise InputFileError(f"{self.path}: empty file: a truncated ledger loses its history; restore it "
                                 "from a backup or remove it deliberately")
        return True

    def _uri(self, mode: str) -> str:
        quoted = urllib.parse.quote_from_bytes(os.fsencode(os.path.abspath(self.path)))  # '?', '#', '%', ...
        return f"file:{quoted}?mode={mode}"

    def _sqlite(self, mode: str) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self._uri(mode), uri=True, timeout=60.0, isolation_level=None)
            con.execute("PRAGMA busy_timeout = 60000")
        except sqlite3.Error as e:
            raise InputFileError(f"{self.path}: cannot open the privacy ledger: {e}") from None
        return con

    def _identify(self, con: sqlite3.Connection) -> int:
        """The schema version of the ledger on ``con``; reads only.

        Raises:
            InputFileError: not a ledger (foreign or no tables), or a newer schema.
        """
        app_id = int(con.execute("PRAGMA application_id").fetchone()[0])
        user_version = int(con.execute("PRAGMA user_version").fetchone()[0])
        tables = sorted(r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"))
        foreign = InputFileError(f"{self.path}: not a synthrelease privacy ledger (tables: "
                                 f"{', '.join(tables) if tables else 'none'})")
        if app_id == APPLICATION_ID:
            if user_version > SCHEMA_VERSION:
                raise InputFileError(f"{self.path}: privacy ledger schema version {user_version} is newer than "
                                     f"this synthrelease reads ({SCHEMA_VERSION}); upgrade synthrelease")
            if not _LEDGER_TABLES <= set(tables) or user_version < 2:
                raise foreign
            return user_version
        if app_id != 0 or set(tables) != _LEDGER_TABLES:
            raise foreign
        # schema 1: written before the application id existed; exactly our two tables
        row = con.execute("SELECT value FROM ledger_info WHERE key = 'schema_version'").fetchone()
        columns = {r[1] for r in con.execute("PRAGMA table_info(entries)")}
        if row is None or row[0] != "1" or not set(_V1_COLUMNS) <= columns:
            raise foreign
        return 1

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Opened | None]:
        """A read-only connection (None when no ledger exists); never writes to the file."""
        if not self._check_file():
            yield None
            return
        con = self._sqlite("ro")
        try:
            con.execute("PRAGMA query_only = 1")
            opened = _Opened(con, self._identify(con))
            yield opened
        except sqlite3.DatabaseError as e:
            raise InputFileError(f"{self.path}: privacy ledger is unreadable or not a ledger: {e}") from None
        finally:
            con.close()

    def _create(self) -> None:
        """Create an empty schema-2 ledger at :attr:`path` unless a file appeared there meanwhile.

        Built in a temporary file beside it and hard-linked into place (``link`` fails if the
        name exists), so concurrent creators and readers only ever see a complete ledger.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".creating")
            os.close(fd)
        except OSError as e:
            raise InputFileError(f"{self.path}: cannot create the privacy ledger: {e.strerror or e}") from None
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as sqlite3 would create it (mkstemp makes 0600)
            con = sqlite3.connect(tmp, isolation_level=None)
            try:
                mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise InputFileError(f"{self.path}: the privacy ledger needs SQLite WAL mode (got {mode})")
                con.execute("PRAGMA synchronous = FULL")
                con.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    con.execute(statement)
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                con.executemany("INSERT INTO ledger_info VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("application", "synthrelease privacy ledger"),
                    ("created_utc", _now())])
                con.execute("COMMIT")
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: use that one
            except OSError:  # a filesystem without hard links: rename, unless it appeared meanwhile
                if not self.exists():
                    os.replace(tmp, self.path)
        except (OSError, sqlite3.Error) as e:
            raise InputFileError(f"{self.path}: cannot create the privacy ledger: {e}") from None
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(tmp + suffix)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @contextlib.contextmanager
    def _write(self, *, create: bool = False) -> Iterator[_Opened]:
        """One write transaction holding SQLite's write lock from its first statement.

        The file is identified as a ledger before anything is written to it (not even the
        WAL switch); a schema-1 ledger is migrated inside the transaction. ``create``: make
        the ledger if no file exists (else that is an error).
        """
        if not self._check_file():
            if not create:
                raise InputFileError(f"{self.path}: no privacy ledger here (it is created by the first release "
                                     "or train)")
            self._create()
            self._check_file()
        con = self._sqlite("rw")  # never creates a file: it exists, checked above
        try:
            self._identify(con)
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise InputFileError(f"{self.path}: the privacy ledger needs SQLite WAL mode (got {mode})")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("BEGIN IMMEDIATE")
            try:
                version = self._identify(con)  # again, under the lock: another process may have migrated
                if version < SCHEMA_VERSION:
                    for statement in _MIGRATE_1_TO_2:
                        con.execute(statement)
                    con.execute("UPDATE ledger_info SET value = ? WHERE key = 'schema_version'",
                                (str(SCHEMA_VERSION),))
                    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                yield _Opened(con, SCHEMA_VERSION)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise InputFileError(f"{self.path}: privacy ledger is unreadable or not a ledger: {e}") from None
        finally:
            con.close()

    def _check_id(self, entry_id: int) -> None:
        if isinstance(entry_id, bool) or not isinstance(entry_id, int) or not 1 <= entry_id <= MAX_ENTRY_ID:
            raise InputFileError(f"{self.path}: invalid ledger entry id {entry_id}: ids are whole numbers from 1 "
                                 f"to {MAX_ENTRY_ID}")

    # -- queries ------------------------------------------------------------------------

    @staticmethod
    def _totals(con: sqlite3.Connection, dataset: str) -> BudgetTotals:
        rows = con.execute("SELECT status, COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0), COUNT(*) "
                           "FROM entries WHERE dataset = ? GROUP BY status", (dataset,)).fetchall()
        by = {status: (eps, delta, count) for status, eps, delta, count in rows}
        spent, reserved = by.get("spent", (0.0, 0.0, 0)), by.get("reserved", (0.0, 0.0, 0))
        return BudgetTotals(dataset, float(spent[0]), float(spent[1]), float(reserved[0]), float(reserved[1]),
                            int(spent[2]), int(reserved[2]))

    @staticmethod
    def _used(db: _Opened, dataset: str, data_sha256: str | None,
              content_sha256: str | None) -> tuple[float, float]:
        """(ε spent or reserved on ``dataset``, the same file bytes or the same rows; of it, from
        entries under other names). Each entry counts once, however many of the three match."""
        match, params = ["dataset = ?"], [dataset]
        if data_sha256 is not None:
            match.append("data_sha256 = ?")
            params.append(data_sha256)
        if content_sha256 is not None and db.version >= 2:
            match.append("content_sha256 = ?")
            params.append(content_sha256)
        where = f"status IN ('spent', 'reserved') AND ({' OR '.join(match)})"
        total = db.con.execute(f"SELECT COALESCE(SUM(epsilon), 0) FROM entries WHERE {where}", params).fetchone()[0]
        other = db.con.execute(f"SELECT COALESCE(SUM(epsilon), 0) FROM entries WHERE {where} AND dataset != ?",
                               [*params, dataset]).fetchone()[0]
        return float(total), float(other)

    def used(self, dataset: str, data_sha256: str | None = None, content_sha256: str | None = None) -> float:
        """ε that counts against ``dataset``'s lifetime cap: spent plus reserved, on its name or
        (when given) on the same file bytes (``data_sha256``) or the same rows
        (``content_sha256``, see :func:`~synthrelease.budget.fingerprint.table_fingerprint`)
        under another name. 0 when no ledger exists (nothing is created)."""
        with self._read() as db:
            return 0.0 if db is None else self._used(db, dataset, data_sha256, content_sha256)[0]

    def totals(self, dataset: str) -> BudgetTotals:
        """ε and δ spent and reserved on ``dataset`` (basic composition, by name only)."""
        with self._read() as db:
            if db is None:
                return BudgetTotals(dataset, 0.0, 0.0, 0.0, 0.0, 0, 0)
            return self._totals(db.con, dataset)

    def reserve(self, dataset: str, epsilon: float, delta: float, *, cap: float | None,
                data_sha256: str | None = None, note: str = "",
                content_sha256: str | None = None) -> Reservation:
        """Hold ``epsilon``/``delta`` for one release of ``dataset``, atomically against ``cap``.

        The cap counts every spent or reserved entry with the same name, the same file
        SHA-256 (``data_sha256``) or the same content fingerprint (``content_sha256``). The
        entry records this process's PID, host and start time. Creates the ledger if no file
        exists at :attr:`path`.

        Raises:
            BudgetExceededError: spent + reserved + ``epsilon`` would exceed ``cap`` (the
                message names the dataset, the cap, the ε used and requested, and the ledger).
            InputFileError: the file is not a ledger, is empty, or is unreadable.
        """
        if not (epsilon >= 0 and 0 <= delta < 1):
            raise InternalError(f"ledger reservation needs ε >= 0 and δ in [0, 1), got {epsilon}, {delta}")
        require_persistent(self.path)
        with self._write(create=True) as db:
            t = self._totals(db.con, dataset)
            used, other = self._used(db, dataset, data_sha256, content_sha256)
            if cap is not None and _exceeds(used + epsilon, cap):
                same = f", ε {other:.4g} under other names for the same file or rows" if other else ""
                raise BudgetExceededError(
                    f"{self.path}: dataset '{dataset}' has used ε {used:.4g} of its lifetime cap {cap:g} "
                    f"(spent {t.spent_epsilon:.4g}, reserved {t.reserved_epsilon:.4g}{same}); "
                    f"this release asks for ε {epsilon:g}")
            now = _now()
            pid = os.getpid()
            cur = db.con.execute(
                "INSERT INTO entries (dataset, data_sha256, epsilon, delta, status, created_utc, updated_utc, "
                "host, pid, note, content_sha256, process_start) "
                "VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?, ?, ?)",
                (dataset, data_sha256, float(epsilon), float(delta), now, now, socket.gethostname(), pid, note,
                 content_sha256, _process_start(pid)))
            entry_id = cur.lastrowid
        assert entry_id is not None
        return Reservation(int(entry_id), dataset, float(epsilon), float(delta), used)

    def _close(self, entry_id: int, status: str, note: str, epsilon: float | None = None,
               delta: float | None = None) -> LedgerEntry:
        self._check_id(entry_id)
        with self._write() as db:
            row = db.con.execute("SELECT status, epsilon, delta FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise InputFileError(f"{self.path}: no ledger entry {entry_id}")
            if row[0] != "reserved":
                raise InputFileError(f"{self.path}: ledger entry {entry_id} is already {row[0]}, not reserved")
            eps = row[1] if epsilon is None else float(epsilon)
            dlt = row[2] if delta is None else float(delta)
            if _exceeds(eps, row[1]):
                raise InternalError(f"ledger entry {entry_id}: ε spent {eps} exceeds the ε reserved {row[1]}")
            db.con.execute("UPDATE entries SET status = ?, epsilon = ?, delta = ?, note = ?, updated_utc = ? "
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

        Raises:
            InputFileError: ``entry_id`` outside 1..2**63-1, no such entry, or not reserved.
        """
        return self._close(entry_id, "spent" if spent else "cancelled", note)

    def stale_reservations(self, dataset: str | None = None) -> list[LedgerEntry]:
        """Reservations (of ``dataset``) whose process on this host is gone: they still count
        against the cap until a steward resolves them with :meth:`recover`."""
        return [e for e in self.entries(dataset) if e.stale]

    def entry(self, entry_id: int) -> LedgerEntry:
        """One entry by id.

        Raises:
            InputFileError: ``entry_id`` outside 1..2**63-1, or no such entry.
        """
        self._check_id(entry_id)
        with self._read() as db:
            row = None if db is None else db.con.execute(
                f"SELECT {db.select} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise InputFileError(f"{self.path}: no ledger entry {entry_id}")
        return LedgerEntry(*row)

    def entries(self, dataset: str | None = None) -> list[LedgerEntry]:
        """All entries (of ``dataset``), oldest first; none when no ledger exists."""
        with self._read() as db:
            if db is None:
                return []
            if dataset is None:
                rows = db.con.execute(f"SELECT {db.select} FROM entries ORDER BY id").fetchall()
            else:
                rows = db.con.execute(f"SELECT {db.select} FROM entries WHERE dataset = ? ORDER BY id",
                                      (dataset,)).fetchall()
        return [LedgerEntry(*r) for r in rows]

    def datasets(self) -> list[str]:
        """Every dataset with at least one entry, sorted; none when no ledger exists."""
        with self._read() as db:
            if db is None:
                return []
            return [r[0] for r in db.con.execute("SELECT DISTINCT dataset FROM entries ORDER BY dataset")]
