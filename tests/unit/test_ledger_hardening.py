"""The privacy ledger under attack: foreign and truncated files, read-only reads, PID reuse,
bad ids, closed pipes, and the lifetime cap escaped by renaming and re-exporting a dataset."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synthrelease.budget import ledger as ledger_module
from synthrelease.budget.ledger import APPLICATION_ID, SCHEMA_VERSION, Ledger
from synthrelease.cli import cli
from synthrelease.errors import BudgetExceededError, InputFileError
from tests.conftest import TINY_METADATA, make_tiny_table

REPO = Path(__file__).resolve().parents[2]


def _show(path: Path, *args: str):
    return CliRunner().invoke(cli, ["ledger", "show", *args, "--ledger", str(path)])


def _one_line(res) -> bool:
    return len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def _foreign_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('a'), ('b')")
    con.commit()
    con.close()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# 1. reads never write; a database that is not a ledger is refused, unmodified


def test_show_and_writes_refuse_a_foreign_database_without_touching_it(tmp_path):
    other = tmp_path / "other.sqlite"
    _foreign_db(other)
    before = other.read_bytes()
    res = _show(other)
    assert res.exit_code == 2 and _one_line(res), res.output
    assert f"{other}: not a synthrelease privacy ledger (tables: customers)" in res.output
    book = Ledger(other)
    for write in (lambda: book.reserve("x", 1.0, 1e-6, cap=None), lambda: book.recover(1, spent=True, note=""),
                  lambda: book.used("x")):
        with pytest.raises(InputFileError, match=r"other\.sqlite: not a synthrelease privacy ledger"):
            write()
    res = CliRunner().invoke(cli, ["ledger", "recover", "1", "--cancel", "--ledger", str(other)])
    assert res.exit_code == 2 and _one_line(res) and "not a synthrelease privacy ledger" in res.output
    assert other.read_bytes() == before and _files(tmp_path) == ["other.sqlite"]
    con = sqlite3.connect(other)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]
    con.close()


def test_an_empty_database_and_one_polluted_with_ledger_tables_are_not_ledgers(tmp_path):
    empty = tmp_path / "empty.sqlite"
    con = sqlite3.connect(empty)
    con.execute("PRAGMA user_version = 7")  # a valid database file (one page) with no table
    con.close()
    assert empty.stat().st_size > 0
    res = _show(empty)
    assert res.exit_code == 2 and _one_line(res) and "not a synthrelease privacy ledger (tables: none)" in res.output
    polluted = tmp_path / "polluted.sqlite"  # what `ledger show` used to do to another application's file
    _foreign_db(polluted)
    con = sqlite3.connect(polluted)
    con.executescript("CREATE TABLE ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO ledger_info VALUES ('schema_version', '1');"
                      "CREATE TABLE entries (id INTEGER PRIMARY KEY, dataset TEXT);")
    con.close()
    before = polluted.read_bytes()
    with pytest.raises(InputFileError, match=r"tables: customers, entries, ledger_info\)"):
        Ledger(polluted).reserve("x", 1.0, 1e-6, cap=None)
    assert polluted.read_bytes() == before


_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL, data_sha256 TEXT,
    epsilon REAL NOT NULL CHECK (epsilon >= 0), delta REAL NOT NULL CHECK (delta >= 0 AND delta < 1),
    status TEXT NOT NULL CHECK (status IN ('reserved', 'spent', 'cancelled')),
    created_utc TEXT NOT NULL, updated_utc TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS entries_dataset ON entries (dataset, status);
INSERT OR IGNORE INTO ledger_info VALUES ('schema_version', '1');
"""


def test_a_ledger_written_by_the_previous_version_is_read_as_is_and_migrated_by_the_first_write(tmp_path):
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(_V1_SCHEMA)
    con.execute("INSERT INTO entries (dataset, data_sha256, epsilon, delta, status, created_utc, updated_utc, host, "
                "pid, note) VALUES ('cohort', 'ab', 2.0, 1e-6, 'spent', 't', 't', 'h', 1, 'old')")
    con.close()
    before = path.read_bytes()
    book = Ledger(path)
    (old,) = book.entries()
    assert old.epsilon == 2.0 and old.content_sha256 is None and old.process_start is None
    assert book.used("cohort", content_sha256="cd" * 32) == 2.0
    assert _show(path).exit_code == 0
    assert path.read_bytes() == before  # reads left it alone
    book.reserve("renamed", 2.0, 1e-6, cap=5.0, content_sha256="cd" * 32)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert con.execute("SELECT value FROM ledger_info WHERE key = 'schema_version'").fetchone()[0] == "2"
    con.close()
    with pytest.raises(BudgetExceededError):  # the old entry and the new one's rows are both counted
        book.reserve("third-name", 1.5, 1e-6, cap=5.0, data_sha256="ab", content_sha256="cd" * 32)
    assert [e.dataset for e in book.entries()] == ["cohort", "renamed"]


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "l.sqlite3"
    Ledger(path).reserve("x", 1.0, 1e-6, cap=None)
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(InputFileError, match=r"l\.sqlite3: privacy ledger schema version 3 is newer"):
        Ledger(path).entries()


# 2. a truncated ledger is never silently replaced


def test_a_zero_byte_ledger_is_refused_for_reads_and_writes(tmp_path):
    path = tmp_path / "l.sqlite3"
    path.touch()
    message = f"{path}: empty file: a truncated ledger loses its history; restore it from a backup or remove it"
    for op in (lambda b: b.used("x"), lambda b: b.entries(), lambda b: b.reserve("x", 1.0, 1e-6, cap=None)):
        with pytest.raises(InputFileError) as err:
            op(Ledger(path))
        assert message in str(err.value)
    res = _show(path)
    assert res.exit_code == 2 and _one_line(res) and "empty file" in res.output
    assert path.stat().st_size == 0 and _files(tmp_path) == ["l.sqlite3"]


# 3. show without a ledger: an empty ledger, exit 0, nothing created


def test_show_without_a_ledger_says_where_it_will_be_and_creates_nothing(tmp_path):
    path = tmp_path / "not" / "yet" / "l.sqlite3"
    res = _show(path)
    assert res.exit_code == 0 and _one_line(res), res.output
    assert f"no privacy ledger yet at {path}: it is created by the first release or train" in res.output
    book = Ledger(path)
    assert book.used("x", "ab") == 0.0 and book.entries() == [] and book.datasets() == []
    assert book.totals("x").committed_epsilon == 0.0
    with pytest.raises(InputFileError, match="no ledger entry 1"):
        book.entry(1)
    assert not (tmp_path / "not").exists()
    book.reserve("x", 1.0, 1e-6, cap=None)  # the first write creates it, marked as ours
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".creating")] == []


def test_paths_with_uri_characters(tmp_path):
    path = tmp_path / "we?ird #dir %41&mode=rw" / "l.sqlite3"
    book = Ledger(path)
    book.spend(book.reserve("x", 1.0, 1e-6, cap=None), 1.0, 1e-6)
    assert Ledger(path).totals("x").spent_epsilon == 1.0
    assert _show(path).exit_code == 0
    assert _files(tmp_path) == ["we?ird #dir %41&mode=rw"]


# 4. PID reuse: a reservation is running only if its PID has the recorded start time


def test_a_reservation_whose_pid_was_reused_is_stale(tmp_path, monkeypatch):
    path = tmp_path / "l.sqlite3"
    book = Ledger(path)
    mine = book.reserve("cohort", 1.0, 1e-6, cap=None)
    (entry,) = book.entries()
    if sys.platform.startswith("linux"):
        assert entry.process_start is not None and entry.process_start.startswith("linux:")
    assert entry.running and not entry.stale
    with monkeypatch.context() as m:  # the same PID, started at another time: another process
        m.setattr(ledger_module, "_process_start", lambda pid: "linux:another-boot:12345")
        reused = book.reserve("cohort", 2.0, 1e-6, cap=None)
    entry = book.entry(reused.entry_id)
    assert entry.pid == os.getpid() and entry.process_start == "linux:another-boot:12345"
    assert entry.stale and not entry.running
    assert [e.id for e in book.stale_reservations()] == [reused.entry_id]
    shown = _show(path)
    assert shown.exit_code == 0 and f"#{reused.entry_id} reserved" in shown.output
    (line,) = [x for x in shown.output.splitlines() if f"#{reused.entry_id} " in x]
    assert "STALE" in line
    (line,) = [x for x in shown.output.splitlines() if f"#{mine.entry_id} " in x]
    assert "STALE" not in line
    res = CliRunner().invoke(cli, ["ledger", "recover", str(reused.entry_id), "--spent", "--ledger", str(path)])
    assert res.exit_code == 0 and "is now spent" in res.output
    res = CliRunner().invoke(cli, ["ledger", "recover", str(mine.entry_id), "--cancel", "--ledger", str(path)])
    assert res.exit_code == 2 and "running process" in res.output
    # an entry of the previous layout (no start time recorded) keeps the PID-only check
    con = sqlite3.connect(path)
    con.execute("UPDATE entries SET process_start = NULL WHERE id = ?", (mine.entry_id,))
    con.commit()
    con.close()
    assert book.entry(mine.entry_id).running


# 5. bad ids and closed pipes: one line, no traceback


@pytest.mark.parametrize("bad", ["99999999999999999999999", "9223372036854775808", "0"])
def test_recover_with_an_id_out_of_range_is_one_line(tmp_path, bad):
    path = tmp_path / "l.sqlite3"
    Ledger(path).reserve("x", 1.0, 1e-6, cap=None)
    res = CliRunner().invoke(cli, ["ledger", "recover", bad, "--cancel", "--ledger", str(path)])
    assert res.exit_code == 2 and _one_line(res), res.output
    assert str(path) in res.output and "invalid ledger entry id" in res.output
    assert Ledger(path).entries()[0].status == "reserved"


def test_show_into_a_closed_pipe_exits_quietly(tmp_path):
    path = tmp_path / "l.sqlite3"
    book = Ledger(path)
    for i in range(3):  # ~150 kB of output: more than a pipe holds, so the writer meets the closed end
        book.spend(book.reserve(f"d{i}", 1.0, 1e-6, cap=None, note="n" * 50_000), 1.0, 1e-6, note="n" * 50_000)
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "synthrelease.cli", "ledger", "show", "--ledger", str(path)],
                                stdout=subprocess.PIPE, stderr=stderr, cwd=REPO)
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"ledger ")
        proc.stdout.close()  # as `| head -1` does
        assert proc.wait(timeout=60) == 0
    assert err.read_text() == ""


# 6. the lifetime cap follows the rows, not the file's bytes or the dataset's name


def _metadata():
    from synthrelease.metadata.schema import Metadata

    return Metadata.model_validate(TINY_METADATA)


def _variants(folder: Path) -> dict[str, Path]:
    df = make_tiny_table(60, seed=3)
    base = folder / "base.csv"
    df.to_csv(base, index=False)
    raw = base.read_bytes()
    (folder / "newline.csv").write_bytes(raw + b"\n")
    (folder / "crlf.csv").write_bytes(raw.replace(b"\n", b"\r\n"))
    shuffled = df.sample(frac=1.0, random_state=4)[list(reversed(df.columns))]
    shuffled.to_csv(folder / "shuffled.csv", index=False, quoting=csv.QUOTE_ALL)
    df.to_parquet(folder / "table.parquet", index=False)
    return {p.stem: p for p in (base, folder / "newline.csv", folder / "crlf.csv", folder / "shuffled.csv",
                                folder / "table.parquet")}


def test_the_fingerprint_survives_formatting_and_not_a_changed_value(tmp_path):
    from synthrelease.budget.fingerprint import table_fingerprint
    from synthrelease.io.files import sha256_file
    from synthrelease.io.formats import read_table

    meta = _metadata()
    files = _variants(tmp_path)
    assert len({sha256_file(p) for p in files.values()}) == len(files)  # the file hashes all differ
    prints = {name: table_fingerprint(read_table(p), meta) for name, p in files.items()}
    assert len(set(prints.values())) == 1, prints
    (same,) = set(prints.values())
    assert len(same) == 64 and int(same, 16) >= 0
    df = read_table(files["base"])
    renumbered = df.assign(patient_id=[f"x{i}" for i in range(len(df))])  # identifiers are not trained on
    assert table_fingerprint(renumbered, meta) == same
    changed = df.copy()
    changed.loc[7, "age"] = changed.loc[7, "age"] + 1
    assert table_fingerprint(changed, meta) != same
    assert table_fingerprint(df.drop(index=3), meta) != same
    relabelled = df.copy()
    relabelled.loc[0, "sex"] = "M" if relabelled.loc[0, "sex"] == "F" else "F"
    assert table_fingerprint(relabelled, meta) != same


def test_a_renamed_dataset_with_the_same_rows_is_refused_by_the_cap(tmp_path):
    from synthrelease.budget.fingerprint import table_fingerprint
    from synthrelease.io.files import sha256_file
    from synthrelease.io.formats import read_table

    meta = _metadata()
    files = _variants(tmp_path)
    book = Ledger(tmp_path / "l.sqlite3")

    def keys(p: Path) -> dict[str, str]:  # what a release records for its input
        return {"data_sha256": sha256_file(p), "content_sha256": table_fingerprint(read_table(p), meta)}

    first = book.reserve("tiny-clinic", 3.0, 1e-6, cap=5.0, **keys(files["base"]))
    book.spend(first, 3.0, 1e-6)
    for name in ("newline", "shuffled", "table"):
        assert book.used(f"renamed-{name}", **keys(files[name])) == pytest.approx(3.0)
        with pytest.raises(BudgetExceededError, match=r"renamed.*ε 3 under other names for the same file or rows"):
            book.reserve(f"renamed-{name}", 2.5, 1e-6, cap=5.0, **keys(files[name]))
    changed = read_table(files["base"])
    changed.loc[0, "age"] = changed.loc[0, "age"] + 1
    other_rows = table_fingerprint(changed, meta)
    book.reserve("other-cohort", 2.5, 1e-6, cap=5.0, data_sha256="00" * 32, content_sha256=other_rows)
    assert [e.dataset for e in book.entries()] == ["tiny-clinic", "other-cohort"]
    assert book.entries()[1].content_sha256 == other_rows


def test_a_container_ledger_must_live_on_a_mounted_volume(tmp_path, monkeypatch):
    """In the Docker image ($SYNTHRELEASE_VOLUME=/data) a ledger in an unmounted /data is refused."""
    from synthrelease.budget.ledger import VOLUME_ENV, Ledger
    from synthrelease.errors import InputFileError

    volume = tmp_path / "data"
    volume.mkdir()
    monkeypatch.setenv(VOLUME_ENV, str(volume))
    with pytest.raises(InputFileError, match="not a mounted volume") as err:
        Ledger(volume / "ledger.sqlite3").reserve("d", 1.0, 1e-5, cap=None)
    assert "-v <host folder>:" in str(err.value) and not (volume / "ledger.sqlite3").exists()
    outside = Ledger(tmp_path / "elsewhere.sqlite3")  # an explicit ledger outside the volume is the user's choice
    outside.reserve("d", 1.0, 1e-5, cap=None)
    monkeypatch.setenv(VOLUME_ENV, "/")  # a mount point: accepted
    Ledger(tmp_path / "ok.sqlite3").reserve("d", 1.0, 1e-5, cap=None)
