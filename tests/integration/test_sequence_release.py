"""Sequence releases end to end: same gate, ledger and signed bundle as tables."""

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
from tests.conftest import check_croissant_bundle

DATA = Path(str(resources.files("synthrelease") / "data"))
FAST = ["--epsilon", "3", "--steps", "60"]


@pytest.fixture
def ws(tmp_path):
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    doc = yaml.safe_load((DATA / "policies" / "peptides.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.2  # far from the DP figures' noise on 480 rows and 60 steps
    doc["utility"]["min_tstr_accuracy"] = 0.0
    doc["membership"].update(max_dcr_mia_auc=0.95, max_exact_copy_share=0.5)  # noisy 0.06 for an exact 0 seen
    for rule in doc["plausibility"]["rules"]:
        rule["max_violation_share"] = 1.0
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path


def _release(ws: Path, data: Path, out: str, *extra: str):
    return CliRunner().invoke(cli, ["-q", "release", str(data), "--metadata", str(DATA / "peptides.metadata.yaml"),
                                    "--policy", str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"),
                                    "--out", str(ws / out), "--ledger", str(ws / "ledger.sqlite3"), *FAST, *extra])


def test_a_peptide_release_is_gated_signed_and_holds_fasta(ws):
    res = _release(ws, DATA / "peptides.csv", "b")
    assert res.exit_code == 0, res.output
    bundle = ws / "b"
    syn = pd.read_csv(bundle / "synthetic.csv")
    rows = json.loads((bundle / "manifest.json").read_text())["release"]["dataset"]["synthetic_rows"]
    assert list(syn.columns) == ["sequence", "activity"] and len(syn) == rows
    assert abs(rows - 480) < 60  # ⌈noisy size × 0.8⌉ of 600 peptides: a DP count, never the exact one
    assert syn["sequence"].str.len().between(8, 40).all()
    assert syn["sequence"].str.fullmatch("[ACDEFGHIKLMNPQRSTVWY]+").all()
    fasta = (bundle / "synthetic.fasta").read_text()
    assert fasta.count(">") == rows and "activity=" in fasta
    manifest = json.loads((bundle / "manifest.json").read_text())["release"]
    assert manifest["dataset"]["modality"] == "sequence"
    assert manifest["training"]["discriminator_kind"] == "conv1d"
    assert {"quality_score", "tstr_accuracy", "dcr_mia_auc", "exact_copy_share"} <= set(manifest["dp_figures"])
    assert manifest["training"]["generator"] == "autoregressive"  # issue 29: letters in order
    assert any(m["label"] == "autoregressive DP-SGD" for m in manifest["privacy"]["mechanisms"])
    report = json.loads((ws / "b.internal-report" / "internal_report.json").read_text())
    assert "sequence" in report["audits"] and "kmer2_js" in report["audits"]["sequence"]["metrics"]
    res = CliRunner().invoke(cli, ["verify", str(bundle), "--public-key", str(ws / "k.pub")])
    assert res.exit_code == 0, res.output
    doc = check_croissant_bundle(bundle, ws / "k.pub")
    fasta = next(d for d in doc["distribution"] if d["name"] == "synthetic.fasta")  # described, not read
    assert fasta["encodingFormat"] == "text/x-fasta" and fasta["sameAs"] == "synthetic.csv"
    assert "autoregressive" in doc["description"] and "autoregressive DP-SGD" in doc["rai:dataManipulationProtocol"]


def test_fasta_input_and_modality_checks(ws):
    df = pd.read_csv(DATA / "peptides.csv")
    lines = [f">{r.peptide_id} activity={r.activity}\n{r.sequence}\n" for r in df.itertuples()]
    (ws / "peptides.fasta").write_text("".join(lines))
    res = _release(ws, ws / "peptides.fasta", "b", "--modality", "sequence")
    assert res.exit_code == 0, res.output
    res = _release(ws, ws / "peptides.fasta", "c", "--modality", "table")
    assert res.exit_code == 2 and "--modality table" in res.output and not (ws / "c").exists()


def test_a_bad_sequence_is_refused_by_row_never_shown(ws):
    df = pd.read_csv(DATA / "peptides.csv")
    secret = "KKKKXKKKKK"
    df.loc[17, "sequence"] = secret
    df.to_csv(ws / "bad.csv", index=False)
    res = _release(ws, ws / "bad.csv", "b")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "bad.csv" in lines[0] and "sequence" in lines[0] and secret not in res.output
    assert not (ws / "b").exists()


def test_the_positional_gan_stays_available_as_a_train_option(ws):
    res = _release(ws, DATA / "peptides.csv", "g", "--train-option", "generator=positional_gan")
    assert res.exit_code == 0, res.output
    manifest = json.loads((ws / "g" / "manifest.json").read_text())["release"]
    assert manifest["training"]["generator"] == "positional_gan"
    assert any(m["label"].startswith("discriminator") for m in manifest["privacy"]["mechanisms"])
