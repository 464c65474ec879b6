"""The privacy-budget ledger: arithmetic, caps, concurrency across processes, kill recovery, the release."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from synthrelease.budget.ledger import Ledger
from synthrelease.cli import cli
from synthrelease.errors import BudgetExceededError, GateRefused, InputFileError
from tests.conftest import TINY_METADATA, make_tiny_table

REPO = Path(__file__).resolve().parents[2]


def test_reserve_spend_cancel_compose_by_summing(tmp_path):
    book = Ledger(tmp_path / "l.sqlite3")
    a = book.reserve("cohort", 1.0, 1e-6, cap=None)
    b = book.reserve("cohort", 2.0, 1e-6, cap=None)
    c = book.reserve("cohort", 0.5, 1e-6, cap=None)
    assert (a.used_before, b.used_before, c.used_before) == (0.0, 1.0, 3.0)
    book.spend(a, 0.9, 1e-6)
    book.cancel(b)
    t = book.totals("cohort")
    assert t.spent_epsilon == pytest.approx(0.9) and t.spent_delta == pytest.approx(1e-6)
    assert t.reserved_epsilon == pytest.approx(0.5) and t.open_reservations == 1 and t.releases == 1
    assert book.totals("other").committed_epsilon == 0.0
    assert [e.status for e in book.entries("cohort")] == ["spent", "cancelled", "reserved"]
    with pytest.raises(InputFileError, match="already spent"):
        book.spend(a, 0.9, 1e-6)


def test_cap_counts_spent_and_reserved_and_names_the_dataset(tmp_path):
    book = Ledger(tmp_path / "l.sqlite3")
    book.spend(book.reserve("cohort", 2.0, 1e-6, cap=5.0), 2.0, 1e-6)
    book.reserve("cohort", 2.0, 1e-6, cap=5.0)
    with pytest.raises(BudgetExceededError, match=r"'cohort'.*cap 5.*asks for ε 1.5"):
        book.reserve("cohort", 1.5, 1e-6, cap=5.0)
    book.reserve("cohort", 1.0, 1e-6, cap=5.0)  # exactly at the cap is allowed
    assert book.totals("cohort").committed_epsilon == pytest.approx(5.0)


def test_the_same_file_under_another_name_counts_against_the_cap(tmp_path):
    book = Ledger(tmp_path / "l.sqlite3")
    book.spend(book.reserve("cohort", 3.0, 1e-6, cap=5.0, data_sha256="ab" * 32), 3.0, 1e-6)
    assert book.used("renamed", "ab" * 32) == pytest.approx(3.0) and book.used("renamed") == 0.0
    with pytest.raises(BudgetExceededError, match=r"'renamed'.*ε 3 under other names for the same file"):
        book.reserve("renamed", 2.5, 1e-6, cap=5.0, data_sha256="ab" * 32)
    hold = book.reserve("renamed", 2.0, 1e-6, cap=5.0, data_sha256="ab" * 32)
    assert hold.used_before == pytest.approx(3.0)
    book.reserve("renamed", 2.5, 1e-6, cap=5.0, data_sha256="cd" * 32)  # other bytes: the name's own 2.0 only


def test_spending_the_reserved_eps_up_to_rounding_is_accepted(tmp_path):
    book = Ledger(tmp_path / "l.sqlite3")
    hold = book.reserve("cohort", 10.0, 1e-6, cap=10.0)
    assert book.spend(hold, 10.0 * (1 + 5e-10), 1e-6).status == "spent"  # the trainer's own tolerance
    from synthrelease.errors import InternalError

    with pytest.raises(InternalError, match="exceeds the ε reserved"):
        book.spend(book.reserve("other", 1.0, 1e-6, cap=None), 1.01, 1e-6)


def test_ledger_uses_wal_and_refuses_a_foreign_file(tmp_path):
    book = Ledger(tmp_path / "l.sqlite3")
    book.reserve("x", 0.0, 0.0, cap=None)
    con = sqlite3.connect(tmp_path / "l.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputFileError, match=r"junk\.sqlite3"):
        Ledger(junk).totals("x")


_RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from synthrelease.budget.ledger import Ledger
    from synthrelease.errors import BudgetExceededError
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    try:
        Ledger(sys.argv[1]).reserve("cohort", 1.0, 1e-7, cap=5.0)
        print("reserved")
    except BudgetExceededError:
        print("refused")
""")


def test_concurrent_processes_never_overspend(tmp_path):
    """12 processes released at the same instant each ask for ε = 1 under a cap of 5."""
    path, go = tmp_path / "l.sqlite3", tmp_path / "go"
    Ledger(path).totals("cohort")  # create the file first, as a steward's first release would
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(go)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO) for _ in range(12)]
    time.sleep(1.0)  # let every process import and wait at the barrier
    go.touch()
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(outs) == ["refused"] * 7 + ["reserved"] * 5
    t = Ledger(path).totals("cohort")
    assert t.committed_epsilon == pytest.approx(5.0) and t.open_reservations == 5


_KILLED = textwrap.dedent("""
    import sys, time
    from synthrelease.budget.ledger import Ledger
    Ledger(sys.argv[1]).reserve("cohort", 2.0, 1e-7, cap=None)
    print("reserved", flush=True)
    time.sleep(600)
""")


def test_a_killed_release_leaves_a_visible_reservation_that_can_be_recovered(tmp_path):
    path = tmp_path / "l.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "reserved"
    (entry,) = Ledger(path).entries("cohort")
    assert entry.running and not entry.stale
    res = CliRunner().invoke(cli, ["ledger", "recover", str(entry.id), "--cancel", "--ledger", str(path)])
    assert res.exit_code == 2 and "running process" in res.output
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    (entry,) = Ledger(path).entries("cohort")
    assert entry.status == "reserved" and entry.stale
    assert [e.id for e in Ledger(path).stale_reservations()] == [entry.id]
    assert Ledger(path).totals("cohort").committed_epsilon == pytest.approx(2.0)  # still counted
    shown = CliRunner().invoke(cli, ["ledger", "show", "--ledger", str(path)])
    assert shown.exit_code == 0 and "STALE" in shown.output and "reserved epsilon 2.0000" in shown.output
    res = CliRunner().invoke(cli, ["ledger", "recover", str(entry.id), "--cancel", "--ledger", str(path)])
    assert res.exit_code == 0, res.output
    assert Ledger(path).totals("cohort").committed_epsilon == 0.0 and not Ledger(path).stale_reservations()
    res = CliRunner().invoke(cli, ["ledger", "recover", str(entry.id), "--commit", "--ledger", str(path)])
    assert res.exit_code == 2 and "already cancelled" in res.output and len(res.output.strip().splitlines()) == 1


def test_ledger_show_without_a_ledger_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["ledger", "show", "--ledger", str(tmp_path / "none.sqlite3")])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 1 and "none.sqlite3" in res.output


@pytest.fixture
def capped(tmp_path):
    data, meta, key = tmp_path / "private.csv", tmp_path / "meta.yaml", tmp_path / "k.pem"
    make_tiny_table(600, seed=5).to_csv(data, index=False)
    meta.write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    assert CliRunner().invoke(cli, ["keys", "generate", "--private", str(key), "--public",
                                    str(tmp_path / "k.pub")]).exit_code == 0
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc["privacy"]["lifetime_epsilon_cap"] = 5.0
    doc["fidelity"]["min_quality_score"] = 0.3
    del doc["utility"]  # the slowest audit; the ledger does not depend on which audits run
    doc["membership"]["max_dcr_mia_auc"] = 0.75
    doc["membership"]["max_exact_copy_share"] = 0.5  # a DP figure: keep the noise far from the limit
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def _release(ws: Path, out: str, eps: float, policy: str = "policy.yaml"):
    from synthrelease import api as pipeline

    return pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / policy,
                            epsilon=eps, out_dir=ws / out, signing_key=ws / "k.pem", n_steps=30, seed=1,
                            ledger_path=ws / "ledger.sqlite3")


def test_release_spends_from_the_ledger_and_the_lifetime_cap_refuses_before_training(capped):
    first = _release(capped, "b1", 3.0)
    assert first.passed
    (lifetime,) = [c for c in first.decision.clauses if c.clause == "privacy.lifetime_epsilon_cap"]
    assert lifetime.passed and lifetime.measured == pytest.approx(first.epsilon)
    book = Ledger(capped / "ledger.sqlite3")
    (entry,) = book.entries("tiny-clinic")
    assert entry.status == "spent" and entry.epsilon == pytest.approx(first.epsilon) and entry.epsilon <= 3.0
    assert "released" in entry.note
    with pytest.raises(GateRefused, match=r"privacy\.lifetime_epsilon_cap.*privacy ledger: .*ledger\.sqlite3"):
        _release(capped, "b2", 3.0)
    assert not (capped / "b2").exists()
    assert [e.status for e in book.entries("tiny-clinic")] == ["spent"]  # the refusal reserved nothing
    report = json.loads((capped / "b2.internal-report" / "internal_report.json").read_text())
    (clause,) = [c for c in report["gate"] if c["clause"] == "privacy.lifetime_epsilon_cap"]
    assert not clause["passed"] and clause["measured"] == pytest.approx(first.epsilon + 3.0)
    res = CliRunner().invoke(cli, [
        "release", str(capped / "private.csv"), "--metadata", str(capped / "meta.yaml"), "--policy",
        str(capped / "policy.yaml"), "--epsilon", "3", "--out", str(capped / "b3"), "--signing-key",
        str(capped / "k.pem"), "--ledger", str(capped / "ledger.sqlite3")])
    assert res.exit_code == 1 and "privacy.lifetime_epsilon_cap" in res.output and "ledger.sqlite3" in res.output
    assert "Traceback" not in res.output and not (capped / "b3").exists()
    assert len(book.entries("tiny-clinic")) == 1


def test_a_gate_rejection_still_spends_and_a_stop_before_training_cancels(capped, monkeypatch):
    doc = yaml.safe_load((capped / "policy.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.999
    (capped / "strict.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(GateRefused, match=r"fidelity\.min_quality_score"):
        _release(capped, "b1", 1.0, policy="strict.yaml")
    book = Ledger(capped / "ledger.sqlite3")
    (entry,) = book.entries("tiny-clinic")
    assert entry.status == "spent" and "rejected by the gate" in entry.note and 0 < entry.epsilon <= 1.0

    from synthrelease.pipeline import stages

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    from synthrelease.pipeline import release as pipeline

    with monkeypatch.context() as m:  # stopped after the reservation, before any private row is read
        m.setattr(pipeline, "release_part_sizes", boom)
        with pytest.raises(KeyboardInterrupt):
            _release(capped, "b3", 1.0)
    assert [e.status for e in book.entries("tiny-clinic")] == ["spent", "cancelled"]
    # stopped after the DP count release, before training: only the count release's ε is spent (the
    # release builds its settings once before reserving anything and again from the DP count)
    real, calls = stages.training_config, []

    def boom_after_the_count(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "training_config", boom_after_the_count)
    with pytest.raises(KeyboardInterrupt):
        _release(capped, "b4", 1.0)
    last = book.entries("tiny-clinic")[-1]
    assert last.status == "spent" and 0 < last.epsilon < 0.3


def test_train_is_charged_to_the_ledger_and_respects_the_cap(capped):
    """A trained model is shareable: repeated `train` calls must not escape the lifetime cap."""
    args = ["train", str(capped / "private.csv"), "--metadata", str(capped / "meta.yaml"), "--epsilon", "2",
            "--steps", "20", "--ledger", str(capped / "ledger.sqlite3"), "--policy", str(capped / "policy.yaml")]
    assert CliRunner().invoke(cli, ["-q", *args, "-o", str(capped / "m1.pt")]).exit_code == 0
    assert CliRunner().invoke(cli, ["-q", *args, "-o", str(capped / "m2.pt")]).exit_code == 0
    book = Ledger(capped / "ledger.sqlite3")
    entries = book.entries("tiny-clinic")
    assert [e.status for e in entries] == ["spent", "spent"] and all(0 < e.epsilon <= 2.0 for e in entries)
    res = CliRunner().invoke(cli, ["-q", *args, "-o", str(capped / "m3.pt")])
    assert res.exit_code == 1 and "privacy.lifetime_epsilon_cap" in res.output and "nothing spent" in res.output
    assert not (capped / "m3.pt").exists() and len(book.entries("tiny-clinic")) == 2
    # and a release sees what training spent
    with pytest.raises(GateRefused, match=r"privacy\.lifetime_epsilon_cap"):
        _release(capped, "b1", 3.0)


def test_reformatting_and_renaming_the_dataset_does_not_escape_the_cap(capped):
    """Same rows, other bytes (shuffled, CRLF, trailing newline) and another dataset name: still capped."""
    assert _release(capped, "b1", 3.0).passed
    df = pd.read_csv(capped / "private.csv").sample(frac=1.0, random_state=3)
    (capped / "private.csv").write_bytes(df.to_csv(index=False, lineterminator="\r\n").encode() + b"\r\n")
    meta = yaml.safe_load((capped / "meta.yaml").read_text())
    meta["name"] = "renamed-cohort"
    (capped / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    with pytest.raises(GateRefused, match=r"privacy\.lifetime_epsilon_cap"):
        _release(capped, "b2", 3.0)
    assert not (capped / "b2").exists()
