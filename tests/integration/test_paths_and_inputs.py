"""Never destroy a steward's file, check outputs before ε, and answer bad input with one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from synthrelease.budget.ledger import Ledger
from synthrelease.cli import cli
from tests.conftest import TINY_METADATA, absolute_paths, make_tiny_table, one_line_error, run_cli, verdict_box

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ws(tmp_path):
    make_tiny_table(300, seed=5).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    assert CliRunner().invoke(cli, ["keys", "generate", "--private", str(tmp_path / "k.pem"), "--public",
                                    str(tmp_path / "k.pub")]).exit_code == 0
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.2
    doc.pop("utility")  # 20 training steps on 300 rows: TSTR accuracy sits within the DP figure's noise of any floor
    doc["membership"]["max_dcr_mia_auc"] = 0.95
    doc["membership"]["max_exact_copy_share"] = 0.5  # 300 rows: the DP figure's noise std is about 0.03
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


run = run_cli


def _release_args(ws: Path, *extra: str) -> list[str]:
    return ["release", str(ws / "t.csv"), "--metadata", str(ws / "m.yaml"), "--policy", str(ws / "p.yaml"),
            "--epsilon", "3", "--signing-key", str(ws / "k.pem"), "--ledger", str(ws / "l.sqlite3"),
            "--steps", "20", *extra]


@pytest.mark.parametrize("report", ["b", "b/inner", "."])
def test_the_internal_report_can_never_land_in_the_bundle(ws, report):
    res = run(*_release_args(ws, "--out", str(ws / "b"), "--report", str(ws / report)))
    assert "--report" in one_line_error(res)
    assert not (ws / "b").exists() and not (ws / "l.sqlite3").exists()  # nothing reserved


def test_an_earlier_internal_report_is_never_replaced(ws):
    (ws / "r").mkdir()
    (ws / "r" / "internal_report.json").write_text("{}")
    res = run(*_release_args(ws, "--out", str(ws / "b"), "--report", str(ws / "r")))
    assert "earlier release's internal report" in one_line_error(res)
    assert (ws / "r" / "internal_report.json").read_text() == "{}"


@pytest.mark.parametrize("name", ["internal_report.md", "internal_report.html", "rejected_synthetic_sample.csv",
                                  "rejected_synthetic.fasta", "rejected_synthetic.npz"])
@pytest.mark.parametrize("which", ["data", "metadata", "policy"])
def test_an_input_in_the_report_folder_under_a_report_name_is_never_written_over(ws, name, which):
    """Issue 26.1: an input (table, metadata, policy) inside --report under a name the report writes."""
    (ws / "r").mkdir()
    source = {"data": ws / "t.csv", "metadata": ws / "m.yaml", "policy": ws / "p.yaml"}[which]
    moved = ws / "r" / name
    source.rename(moved)
    before = moved.read_bytes()
    option = {"data": 1, "metadata": 3, "policy": 5}[which]
    args = _release_args(ws, "--out", str(ws / "b"), "--report", str(ws / "r"))
    args[option] = str(moved)
    res = run(*args)
    assert name in one_line_error(res) and "never writes over" in res.output
    assert moved.read_bytes() == before and not (ws / "b").exists() and not (ws / "l.sqlite3").exists()


@pytest.mark.parametrize("out", ["/proc/synthrelease-out", "/proc/self/status/x"])
def test_an_unwritable_output_is_refused_before_any_epsilon_is_reserved(ws, out):
    assert "--out" in one_line_error(run(*_release_args(ws, "--out", out)))
    assert not (ws / "l.sqlite3").exists() or not Ledger(ws / "l.sqlite3").entries()


def test_metadata_infer_never_overwrites_its_input_and_asks_for_force(ws):
    before = (ws / "t.csv").read_bytes()
    assert "input of this command" in one_line_error(run("metadata", "infer", str(ws / "t.csv"), "-o",
                                                         str(ws / "t.csv")))
    assert "input of this command" in one_line_error(run("metadata", "infer", str(ws / "t.csv"), "-o",
                                                         str(ws / "t.csv"), "--force"))
    assert (ws / "t.csv").read_bytes() == before
    reviewed = (ws / "m.yaml").read_bytes()
    assert "--force" in one_line_error(run("metadata", "infer", str(ws / "t.csv"), "-o", str(ws / "m.yaml")))
    assert (ws / "m.yaml").read_bytes() == reviewed
    assert run("metadata", "infer", str(ws / "t.csv"), "-o", str(ws / "m.yaml"), "--force").exit_code == 0
    assert "/proc" in one_line_error(run("metadata", "infer", str(ws / "t.csv"), "-o", "/proc/draft.yaml"))


def test_sample_and_train_refuse_to_overwrite(ws):
    model = ws / "m.pt"
    args = ["train", str(ws / "t.csv"), "--metadata", str(ws / "m.yaml"), "--epsilon", "2", "--steps", "5",
            "--ledger", str(ws / "l.sqlite3")]
    assert "input of this command" in one_line_error(run(*args, "-o", str(ws / "t.csv")))
    trained = run(*args, "-o", str(model))
    assert trained.exit_code == 0, trained.output
    spent = len(Ledger(ws / "l.sqlite3").entries())
    assert "--force" in one_line_error(run(*args, "-o", str(model)))
    assert len(Ledger(ws / "l.sqlite3").entries()) == spent  # refused before reserving ε
    before = (ws / "t.csv").read_bytes()
    assert "input of this command" in one_line_error(run("sample", str(model), "-n", "5", "-o", str(model)))
    assert "--force" in one_line_error(run("sample", str(model), "-n", "5", "-o", str(ws / "t.csv")))
    assert (ws / "t.csv").read_bytes() == before
    assert "/proc" in one_line_error(run("sample", str(model), "-n", "5", "-o", "/proc/rows.csv"))
    assert run("sample", str(model), "-n", "5", "-o", str(ws / "rows.csv")).exit_code == 0
    assert run("sample", str(model), "-n", "7", "-o", str(ws / "rows.csv"), "--force").exit_code == 0
    assert len(pd.read_csv(ws / "rows.csv")) == 7


def test_keys_never_share_a_path_or_overwrite(ws):
    assert "public key path" in one_line_error(run("keys", "generate", "--private", str(ws / "x.pem"),
                                                   "--public", str(ws / "x.pem")))
    assert not (ws / "x.pem").exists()
    assert "already exists" in one_line_error(run("keys", "generate", "--private", str(ws / "k.pem"),
                                                  "--public", str(ws / "new.pub")))
    assert "/proc" in one_line_error(run("keys", "generate", "--private", "/proc/k.pem", "--public",
                                         str(ws / "y.pub")))


def test_archive_failure_after_a_complete_bundle_is_reported_as_such(ws, monkeypatch):
    from synthrelease import api as pipeline
    from synthrelease.bundle import writer

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_archive", no_space)
    outcome = pipeline.release(ws / "t.csv", metadata=ws / "m.yaml", policy=ws / "p.yaml", epsilon=3.0,
                               out_dir=ws / "b", signing_key=ws / "k.pem", n_steps=20, archive=True,
                               ledger_path=ws / "l.sqlite3")
    assert outcome.passed and (ws / "b" / "manifest.sig").exists()
    assert any("bundle complete" in w and "No space left" in w for w in outcome.warnings)
    report = json.loads(outcome.report_path.read_text())
    assert any("archive" in w for w in report["warnings"])
    (entry,) = Ledger(ws / "l.sqlite3").entries()
    assert entry.status == "spent" and "released" in entry.note


@pytest.mark.parametrize("which", ["policy", "metadata"])
def test_duplicate_yaml_keys_are_refused_with_line_and_key(ws, which):
    if which == "policy":
        text = (ws / "p.yaml").read_text().replace("max_epsilon: 5.0", "max_epsilon: 1.0\n  max_epsilon: 1000.0")
        (ws / "p.yaml").write_text(text)
        res = run("policy", "check", str(ws / "p.yaml"))
    else:
        text = (ws / "m.yaml").read_text().replace("reviewed: true", "reviewed: true\nreviewed: false")
        (ws / "m.yaml").write_text(text)
        res = run("metadata", "check", str(ws / "m.yaml"))
    out = one_line_error(res)
    assert "appears twice" in out and (("max_epsilon" in out) if which == "policy" else ("reviewed" in out))
    line = int(out.split(".yaml:")[1].split(":")[0])
    assert line >= 2


def test_deep_yaml_and_one_row_tables_are_bad_input(ws):
    (ws / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    for command in (["policy", "check"], ["metadata", "check"]):
        assert "nested too deeply" in one_line_error(run(*command, str(ws / "deep.yaml")))
    make_tiny_table(1, seed=1).to_csv(ws / "one.csv", index=False)
    res = run("release", str(ws / "one.csv"), "--metadata", str(ws / "m.yaml"), "--policy", str(ws / "p.yaml"),
              "--epsilon", "3", "--out", str(ws / "b"), "--signing-key", str(ws / "k.pem"), "--ledger",
              str(ws / "l.sqlite3"))
    assert "too few" in one_line_error(res)


def test_delta_zero_and_impossible_metadata_values_are_refused(ws):
    assert "--delta must be in (0, 1)" in one_line_error(run(*_release_args(ws, "--out", str(ws / "b"),
                                                                            "--delta", "0")))
    for change, word in ((("age", "max", 1e308), "within"), (("age", "min", -1e308), "within")):
        meta = yaml.safe_load(yaml.safe_dump(TINY_METADATA))
        meta["columns"][change[0]][change[1]] = change[2]
        (ws / "bad.yaml").write_text(yaml.safe_dump(meta))
        assert word in one_line_error(run("metadata", "check", str(ws / "bad.yaml")))
    for value in ('"true"', "1", "yes_please"):
        text = (ws / "m.yaml").read_text().replace("reviewed: true", f"reviewed: {value}")
        (ws / "r.yaml").write_text(text)
        assert "reviewed" in one_line_error(run("metadata", "check", str(ws / "r.yaml")))


def test_nan_model_weights_are_refused(ws):
    args = ["train", str(ws / "t.csv"), "--metadata", str(ws / "m.yaml"), "--epsilon", "2", "--steps", "5",
            "--ledger", str(ws / "l.sqlite3"), "-o", str(ws / "m.pt")]
    assert run(*args).exit_code == 0
    payload = torch.load(ws / "m.pt", weights_only=True)
    first = next(iter(payload["generator"]))
    payload["generator"][first] = torch.full_like(payload["generator"][first], float("nan"))
    torch.save(payload, ws / "nan.pt")
    out = one_line_error(run("sample", str(ws / "nan.pt"), "-n", "5", "-o", str(ws / "rows.csv")))
    assert "NaN" in out and not (ws / "rows.csv").exists()


def test_usage_errors_are_one_line():
    res = CliRunner().invoke(cli, ["release"])
    assert "Missing argument 'DATA'" in one_line_error(res) and "--help" in res.output
    assert "No such command" in one_line_error(CliRunner().invoke(cli, ["relase"]))


def test_a_huge_epsilon_card_does_not_overflow():
    from synthrelease.api import release_card
    from synthrelease.metadata.schema import Metadata
    from synthrelease.policy.schema import load_policy

    policy = load_policy(REPO / "policies" / "default.yaml")[0]
    card = release_card(Metadata.model_validate(TINY_METADATA), 996.0, 1e-5, "rdp", policy, "0" * 64, {}, {}, 10)
    assert "e^ε ≈ inf" in card


def test_dry_run_judges_what_it_can_and_spends_nothing(ws):
    args = _release_args(ws, "--out", str(ws / "b"), "--dry-run")
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "ready to release" in res.output and "noise std" in res.output and "about 240 for training" in res.output
    refused = re.findall(r"clear their limits by 0.05 is refused with probability (\d\.\d+)", res.output)
    larger = re.findall(r"0.5 → refused with probability (\d\.\d+)", res.output)
    assert len(refused) == 1 and len(larger) == 1 and float(larger[0]) <= float(refused[0])
    doc = yaml.safe_load((ws / "p.yaml").read_text())
    doc["data"]["holdout_fraction"] = 0.5  # the policy's holdout: the dry run's split follows it
    (ws / "half.yaml").write_text(yaml.safe_dump(doc))
    half = CliRunner().invoke(cli, [a if a != str(ws / "p.yaml") else str(ws / "half.yaml") for a in args])
    assert half.exit_code == 0 and "holdout probability 0.5" in half.output, half.output
    doc = yaml.safe_load((ws / "p.yaml").read_text())
    doc["data"]["min_rows"] = 500
    doc["membership"]["max_dcr_mia_auc"] = 0.55
    (ws / "big.yaml").write_text(yaml.safe_dump(doc))
    strict = CliRunner().invoke(cli, [a if a != str(ws / "p.yaml") else str(ws / "big.yaml") for a in args])
    assert "fix   membership.max_dcr_mia_auc: its DP figure's noise std" in strict.output
    assert strict.exit_code == 1 and "fix   data.min_rows" in strict.output and "to change:" in strict.output
    assert not (ws / "b").exists() and not (ws / "l.sqlite3").exists()  # nothing written, nothing reserved


def test_a_rejection_says_what_to_change_and_keeps_the_rejected_sample_internal(ws):
    doc = yaml.safe_load((ws / "p.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.999
    (ws / "strict.yaml").write_text(yaml.safe_dump(doc))
    args = [a if a != str(ws / "p.yaml") else str(ws / "strict.yaml")
            for a in _release_args(ws, "--out", str(ws / "b"))]
    res = run(*args)
    assert res.exit_code == 1 and "fidelity.min_quality_score" in res.output and "to change: more ε" in res.output
    assert not (ws / "b").exists()
    report_dir = ws / "b.internal-report"
    report = json.loads((report_dir / "internal_report.json").read_text())
    assert "fidelity.min_quality_score" in report["advice"]
    sample = pd.read_csv(report_dir / "rejected_synthetic_sample.csv")
    assert len(sample) > 0 and set(TINY_METADATA["columns"]) - {"patient_id"} <= set(sample.columns)
    box = verdict_box((report_dir / "internal_report.html").read_text())  # by name: no machine's folders
    assert "rejected_synthetic_sample.csv" in box and not absolute_paths(box), box


@pytest.mark.parametrize("option", ["generator_lr=-1", "gumbel_tau=0", "max_grad_norm=inf", "discriminator_lr=1e308",
                                    "marginal_weight=inf", "discriminator_hidden=1000000000"])
def test_a_bad_training_option_is_refused_before_any_epsilon_is_reserved(ws, option):
    """Issue 26.4: each of these passed validation, crashed after training started and was charged."""
    res = run(*_release_args(ws, "--out", str(ws / "b"), "--train-option", option))
    assert option.split("=")[0] in one_line_error(res)
    assert not (ws / "b").exists() and not (ws / "l.sqlite3").exists()  # no ledger, nothing reserved


@pytest.mark.parametrize("command", ["release", "train"])
def test_more_processes_than_cores_are_refused_before_any_epsilon(ws, command):
    """Issue 26.4: `--nproc 200` was refused only after ε was spent (shards of too few rows)."""
    if command == "release":
        res = run(*_release_args(ws, "--out", str(ws / "b"), "--nproc", "200"))
    else:
        res = run("train", str(ws / "t.csv"), "--metadata", str(ws / "m.yaml"), "--epsilon", "1", "--nproc", "200",
                  "--ledger", str(ws / "l.sqlite3"), "-o", str(ws / "m.pt"))
    assert "--nproc 200" in one_line_error(res) and "core" in res.output
    assert not (ws / "l.sqlite3").exists() and not (ws / "m.pt").exists()


def test_an_existing_file_as_out_is_named_as_a_file(ws):
    """Issue 26.9: `--out t.csv` (a file) said "output directory exists"."""
    (ws / "t2.csv").write_text("x\n")
    res = run(*_release_args(ws, "--out", str(ws / "t2.csv")))
    assert "existing file" in one_line_error(res) and (ws / "t2.csv").read_text() == "x\n"


def test_sample_checks_its_size_and_room_before_sampling(ws, monkeypatch):
    """Issue 26.5: `sample -n 10**12` ran until killed; a sample the disk cannot hold is refused up front."""
    import shutil
    from collections import namedtuple

    res = run("train", str(ws / "t.csv"), "--metadata", str(ws / "m.yaml"), "--epsilon", "3", "--steps", "5",
              "--ledger", str(ws / "l.sqlite3"), "-o", str(ws / "m.pt"))
    assert res.exit_code == 0, res.output
    res = run("sample", str(ws / "m.pt"), "-n", str(10**12), "-o", str(ws / "s.csv"))
    assert res.exit_code == 2 and "-n" in res.output and not (ws / "s.csv").exists()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))  # 1 MB free
    res = run("sample", str(ws / "m.pt"), "-n", "1000000", "-o", str(ws / "s.csv"))
    assert "MiB free" in one_line_error(res) and not (ws / "s.csv").exists()


@pytest.mark.parametrize("extra", [
    ["--synthetic-rows", str(10**12)], ["--train-option", "gumbel_tau=0"], ["--train-option", "no_such=1"],
    ["--delta", "0"], ["--epsilon", "-1"], ["--nproc", "200"], ["--target", "no_such_column"]])
def test_dry_run_refuses_what_release_refuses_with_the_same_line(ws, extra):
    """Issue 26.7: `release --dry-run` and `release` share one validation path (check_release_request)."""
    real = run(*_release_args(ws, "--out", str(ws / "b"), *extra))
    dry = run(*_release_args(ws, "--out", str(ws / "b"), "--dry-run", *extra))
    assert real.exit_code == dry.exit_code == 2, (real.output, dry.output)
    assert one_line_error(real) == one_line_error(dry)
    assert "Warning" not in dry.output and "preprocessing" not in dry.output
    assert not (ws / "b").exists() and not (ws / "l.sqlite3").exists()
