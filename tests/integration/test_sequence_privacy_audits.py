"""Sequences end to end: `audit-privacy`, a release with the empirical ε audit and the sequence
plots in the INTERNAL report (never in the bundle), and the refusals before any ε is spent."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from synthrelease.bundle.signing import generate_keypair
from synthrelease.cli import cli

DATA = Path(str(resources.files("synthrelease") / "data"))
META = DATA / "peptides.metadata.yaml"


@pytest.fixture
def ws(tmp_path):
    pd.read_csv(DATA / "peptides.csv").iloc[:200].to_csv(tmp_path / "peptides.csv", index=False)
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    doc = yaml.safe_load((DATA / "policies" / "peptides.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.0
    doc["utility"]["min_tstr_accuracy"] = 0.0
    doc["membership"].update(max_dcr_mia_auc=1.0, max_exact_copy_share=1.0)
    del doc["plausibility"]
    doc["privacy"]["empirical_audit"] = {"required": True}
    doc["data"]["min_rows"] = 10
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path


def _release(ws: Path, out: str, *extra: str):
    return CliRunner().invoke(cli, ["-q", "release", str(ws / "peptides.csv"), "--metadata", str(META),
                                    "--policy", str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"),
                                    "--out", str(ws / out), "--ledger", str(ws / "ledger.sqlite3"),
                                    "--epsilon", "3", "--steps", "20", *extra])


def test_audit_privacy_takes_sequences(ws):
    out = ws / "audit.json"
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(ws / "peptides.csv"), "--metadata", str(META),
                                   "--epsilon", "2", "--steps", "5", "--canaries", "8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "no evidence against the claim" in res.output
    one = json.loads(out.read_text())["empirical_privacy"]
    assert one["details"]["n_canaries"] == 8 and "log-likelihood" in one["details"]["score_method"]
    assert one["metrics"]["epsilon_lower_bound"] <= one["metrics"]["epsilon_claimed"] <= 2.0 + 1e-9
    assert one["details"]["audit_training_config"]["generator"] == "autoregressive"
    assert (ws / "audit.html").exists()


def test_audit_privacy_bad_sequence_is_one_line(ws):
    df = pd.read_csv(ws / "peptides.csv")
    df.loc[3, "sequence"] = "KKKKXKKKK"
    df.to_csv(ws / "bad.csv", index=False)
    res = CliRunner().invoke(cli, ["audit-privacy", str(ws / "bad.csv"), "--metadata", str(META), "--epsilon", "2",
                                   "-o", str(ws / "a.json")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "bad.csv" in res.output and "KKKKXKKKK" not in res.output and "Traceback" not in res.output
    assert not (ws / "a.json").exists()


@pytest.mark.slow
def test_a_sequence_release_runs_the_empirical_audit_and_plots_sequences_internally(ws):
    res = _release(ws, "b")
    assert res.exit_code == 0, res.output
    report = json.loads((ws / "b.internal-report" / "internal_report.json").read_text())
    audit = report["audits"]["empirical_privacy"]
    assert audit["metrics"]["epsilon_lower_bound"] <= audit["metrics"]["epsilon_claimed"]
    assert "log-likelihood" in audit["details"]["score_method"]
    assert any(c["clause"].startswith("privacy.empirical_audit") for c in report["gate"])
    seq = report["plots"]["sequence"]
    assert [g["label"] for g in seq["groups"]] == [None, "amp_like", "background"]
    assert len(seq["groups"][0]["positions"]["real"]) == 40 and "INTERNAL" in seq["notice"]
    page = (ws / "b.internal-report" / "internal_report.html").read_text()
    assert "letter share per position" in page and "2-mers and lengths" in page
    for f in (ws / "b").rglob("*"):  # the bundle never holds the real side of the plots
        if f.suffix in (".json", ".md", ".html"):
            text = f.read_text()
            assert "letter share" not in text and "positions_shown" not in text


def test_retraining_audits_of_the_positional_gan_are_refused_before_any_epsilon(ws):
    res = _release(ws, "g", "--train-option", "generator=positional_gan")
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "autoregressive sequence model only" in res.output
    assert not (ws / "g").exists()
    res = CliRunner().invoke(cli, ["ledger", "show", "--ledger", str(ws / "ledger.sqlite3")])
    assert "demo-peptides" not in res.output


def test_audit_privacy_takes_fasta_with_labels(ws, tmp_path):
    """Issue 31.4: FASTA + --labels, read as train and release read them; a labels file that misses a record
    or a --labels beside a table is one line and writes nothing."""
    rows = pd.read_csv(ws / "peptides.csv").head(120)
    (ws / "p.fasta").write_text("".join(f">{r.peptide_id}\n{r.sequence}\n" for r in rows.itertuples()))
    labels = rows.rename(columns={"peptide_id": "id"})[["id", "activity"]]
    labels.to_csv(ws / "labels.csv", index=False)
    labels.head(100).to_csv(ws / "short.csv", index=False)
    common = ["--metadata", str(META), "--epsilon", "2", "--steps", "5", "--canaries", "8"]
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(ws / "p.fasta"), "--labels", str(ws / "short.csv"),
                                   *common, "-o", str(ws / "short.json")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "short.csv" in res.output and "record 101" in res.output and not (ws / "short.json").exists()
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(ws / "peptides.csv"), "--labels",
                                   str(ws / "labels.csv"), *common, "-o", str(ws / "table.json")])
    assert res.exit_code == 2 and "not a FASTA file" in res.output and not (ws / "table.json").exists()
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(ws / "p.fasta"), "--labels", str(ws / "labels.csv"),
                                   *common, "-o", str(ws / "fasta.json")])
    assert res.exit_code == 0, res.output
    one = json.loads((ws / "fasta.json").read_text())["empirical_privacy"]
    assert one["details"]["n_canaries"] == 8 and "log-likelihood" in one["details"]["score_method"]
    assert one["metrics"]["epsilon_lower_bound"] <= one["metrics"]["epsilon_claimed"] <= 2.0 + 1e-9
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(ws / "p.fasta"), "--labels", str(ws / "labels.csv"),
                                   *common, "-o", str(ws / "labels.csv")])  # never overwrites an input
    assert res.exit_code == 2 and "labels.csv" in res.output and (ws / "labels.csv").read_text().startswith("id,")
