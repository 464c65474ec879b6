"""`train` and `sample` for sequences (issue 29.4): the autoregressive DP model charged to the ledger like a
table's, a pickle-free versioned model file, sequences streamed to FASTA or CSV atomically."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from synthrelease.budget.ledger import Ledger
from synthrelease.bundle.signing import generate_keypair
from synthrelease.io.fasta import read_fasta
from tests.conftest import REPO, one_line_error, run_cli

DATA = Path(str(resources.files("synthrelease") / "data"))
META = DATA / "peptides.metadata.yaml"
FAST = ["--epsilon", "2", "--steps", "4"]
PROTEIN = "[ACDEFGHIKLMNPQRSTVWY]+"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """160 demo peptides, 4 DP-SGD steps (once for the module)."""
    ws = tmp_path_factory.mktemp("sequences")
    pd.read_csv(DATA / "peptides.csv").head(160).to_csv(ws / "peptides.csv", index=False)
    res = run_cli("train", str(ws / "peptides.csv"), "--metadata", str(META), *FAST, "--ledger",
                  str(ws / "l.sqlite3"), "-o", str(ws / "model.pt"))
    assert res.exit_code == 0, res.output
    assert "epsilon spent" in res.output
    return ws


def test_train_writes_a_sequence_model_file_charged_to_the_ledger(trained):
    payload = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    assert payload["format"] == "synthrelease-sequence-model/6"
    info = json.loads(payload["info_json"])
    assert info["metadata"]["columns"]["sequence"]["alphabet"] == "protein" and info["config"]["n_steps"] == 4
    assert payload["label_length"].shape == (2, 40 - 8 + 1)
    assert payload["generator"]["transition"].shape == (2, 21 * 21, 20)  # the DP order-2 prior (log-probabilities)
    from synthrelease.modalities.model_files import load_model

    model = load_model(trained / "model.pt")
    assert model.metadata.sequence_column == "sequence" and model.inner.vocabulary.classes == ("amp_like",
                                                                                              "background")
    assert 0 < model.privacy.epsilon <= 2.0
    labels = [e.label for e in model.privacy.entries]
    assert "autoregressive DP-SGD" in labels and any(label.startswith("label × length") for label in labels)
    entries = Ledger(trained / "l.sqlite3").entries("demo-peptides")
    assert len(entries) == 1 and entries[0].status == "spent"
    assert entries[0].epsilon == pytest.approx(model.privacy.epsilon)


def test_sample_writes_fasta_reproducibly_whatever_the_chunk_size(trained, tmp_path):
    model = str(trained / "model.pt")
    assert run_cli("sample", model, "-n", "60", "--chunk-rows", "7", "-o", str(tmp_path / "a.fasta")).exit_code == 0
    df = read_fasta(tmp_path / "a.fasta")
    assert list(df.columns) == ["id", "sequence", "activity"] and len(df) == 60
    assert df["id"].tolist() == [f"syn-{i}" for i in range(60)]
    assert df["sequence"].str.len().between(8, 40).all() and df["sequence"].str.fullmatch(PROTEIN).all()
    assert set(df["activity"]) <= {"amp_like", "background"}
    assert run_cli("sample", model, "-n", "60", "-o", str(tmp_path / "b.fasta")).exit_code == 0
    assert (tmp_path / "b.fasta").read_text() == (tmp_path / "a.fasta").read_text()  # public seed, any chunking
    assert run_cli("sample", model, "-n", "60", "--seed", "1", "-o", str(tmp_path / "c.fasta")).exit_code == 0
    assert (tmp_path / "c.fasta").read_text() != (tmp_path / "a.fasta").read_text()
    assert run_cli("sample", model, "-n", "5", "-o", str(tmp_path / "d.fa.gz")).exit_code == 0
    assert len(read_fasta(tmp_path / "d.fa.gz")) == 5
    # the table path's overwrite rule: refused without --force, replaced with it
    assert "--force" in one_line_error(run_cli("sample", model, "-n", "5", "-o", str(tmp_path / "a.fasta")))
    assert run_cli("sample", model, "-n", "5", "-o", str(tmp_path / "a.fasta"), "--force").exit_code == 0
    assert len(read_fasta(tmp_path / "a.fasta")) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fasta", "b.fasta", "c.fasta", "d.fa.gz"]


def test_sample_writes_csv_and_a_condition_picks_one_label(trained, tmp_path):
    model = str(trained / "model.pt")
    res = run_cli("sample", model, "-n", "40", "-o", str(tmp_path / "x.csv"), "--condition", "activity=amp_like")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "x.csv")
    assert list(df.columns) == ["sequence", "activity"] and len(df) == 40 and (df["activity"] == "amp_like").all()
    for cond, words in (("activity=toxic", "not a declared category"), ("colour=red", "conditioned on 'activity'")):
        res = run_cli("sample", model, "-n", "5", "-o", str(tmp_path / "bad.csv"), "--condition", cond)
        assert words in one_line_error(res) and not (tmp_path / "bad.csv").exists()
    res = run_cli("sample", model, "-n", "5", "-o", str(tmp_path / "x.parquet"))
    assert "FASTA" in one_line_error(res) and not (tmp_path / "x.parquet").exists()


def test_a_failure_mid_stream_leaves_no_output(trained, tmp_path, monkeypatch):
    from synthrelease.modalities.sequence import streaming

    real = streaming.sequence_chunks

    def failing(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise OSError("disk full")

    monkeypatch.setattr(streaming, "sequence_chunks", failing)
    for name in ("x.fasta", "x.csv"):
        res = run_cli("sample", str(trained / "model.pt"), "-n", "30", "--chunk-rows", "10", "-o",
                      str(tmp_path / name))
        assert res.exit_code != 0
    assert list(tmp_path.iterdir()) == []


def _edited(info_json: str, section: str, key: str, value: object) -> str:
    info = json.loads(info_json)
    info[section][key] = value
    return json.dumps(info)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p.update(format="synthrelease-sequence-model/0"), "train the model again"),
    (lambda p: p["generator"].update({k: v * float("nan") for k, v in list(p["generator"].items())[:1]}),
     "NaN or infinite"),
    (lambda p: p.update(label_length=p["label_length"][:1]), "frequencies do not match"),
    (lambda p: p.update(info_json=_edited(p["info_json"], "vocabulary", "letters", "ACGT")),
     "vocabulary does not match"),
    (lambda p: p.update(info_json=_edited(p["info_json"], "config", "ar_hidden", 32)), "size mismatch"),
])
def test_a_wrong_or_old_model_file_is_refused_in_one_line(trained, tmp_path, change, expected):
    payload = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, tmp_path / "bad.pt")
    res = run_cli("sample", str(tmp_path / "bad.pt"), "-n", "3", "-o", str(tmp_path / "x.fasta"))
    assert expected in one_line_error(res) and "bad.pt" in res.output and not (tmp_path / "x.fasta").exists()


def test_fasta_with_side_labels_trains_and_the_cap_and_bad_input_refuse_before_spending(tmp_path):
    rows = pd.read_csv(DATA / "peptides.csv").head(120)
    (tmp_path / "p.fasta").write_text("".join(f">{r.peptide_id}\n{r.sequence}\n" for r in rows.itertuples()))
    rows.rename(columns={"peptide_id": "id"})[["id", "activity"]].to_csv(tmp_path / "labels.csv", index=False)
    rows.rename(columns={"peptide_id": "id"})[["id", "activity"]].head(100).to_csv(tmp_path / "short.csv",
                                                                                    index=False)
    ledger = str(tmp_path / "l.sqlite3")
    common = ["--metadata", str(META), *FAST, "--ledger", ledger]
    res = run_cli("train", str(tmp_path / "p.fasta"), "--labels", str(tmp_path / "short.csv"), *common, "-o",
                  str(tmp_path / "bad.pt"))
    assert "short.csv" in one_line_error(res) and "record 101" in res.output and not (tmp_path / "bad.pt").exists()
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    for dry in ([], ["--dry-run"]):  # release reads FASTA and labels through the same reader
        res = run_cli("release", str(tmp_path / "p.fasta"), "--labels", str(tmp_path / "short.csv"), "--metadata",
                      str(META), "--policy", str(DATA / "policies" / "peptides.yaml"), "--epsilon", "2", "--out",
                      str(tmp_path / "bundle"), "--signing-key", str(tmp_path / "k.pem"), "--ledger", ledger, *dry)
        assert "short.csv" in one_line_error(res) and not (tmp_path / "bundle").exists()
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc["privacy"].update(max_epsilon=1.0, lifetime_epsilon_cap=1.5)
    (tmp_path / "capped.yaml").write_text(yaml.safe_dump(doc))
    res = run_cli("train", str(tmp_path / "p.fasta"), "--labels", str(tmp_path / "labels.csv"), *common, "-o",
                  str(tmp_path / "capped.pt"), "--policy", str(tmp_path / "capped.yaml"))
    assert "lifetime_epsilon_cap" in one_line_error(res, code=1) and not (tmp_path / "capped.pt").exists()
    res = run_cli("train", str(tmp_path / "p.fasta"), "--labels", str(tmp_path / "labels.csv"), *common, "-o",
                  str(tmp_path / "d.pt"), "--delta", "1.5")
    assert "--delta" in one_line_error(res) and not (tmp_path / "d.pt").exists()
    assert Ledger(tmp_path / "l.sqlite3").entries("demo-peptides") == []  # nothing reserved or spent so far
    res = run_cli("train", str(tmp_path / "p.fasta"), "--labels", str(tmp_path / "labels.csv"), *common, "-o",
                  str(tmp_path / "m.pt"))
    assert res.exit_code == 0, res.output
    assert run_cli("sample", str(tmp_path / "m.pt"), "-n", "4", "-o", str(tmp_path / "s.fasta")).exit_code == 0
    assert len(read_fasta(tmp_path / "s.fasta")) == 4
    (entry,) = Ledger(tmp_path / "l.sqlite3").entries("demo-peptides")
    assert entry.status == "spent" and 0 < entry.epsilon <= 2.0


def test_a_model_file_from_before_the_lags_were_a_setting_samples_with_lags_3_and_4(trained, tmp_path):
    payload = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    info = json.loads(payload["info_json"])
    assert info["config"]["ar_prior_lags"] == [2, 3, 4] and payload["generator"]["lag_bias"].shape[1] == 3
    del info["config"]["ar_prior_lags"]  # as written before: lags 3 and 4, no key
    payload["info_json"] = json.dumps(info)
    payload["generator"]["lag_bias"] = payload["generator"]["lag_bias"][:, 1:].clone()
    torch.save(payload, tmp_path / "old.pt")
    from synthrelease.modalities.model_files import load_model

    assert load_model(tmp_path / "old.pt").inner.network.prior_lags == (3, 4)
    res = run_cli("sample", str(tmp_path / "old.pt"), "-n", "20", "-o", str(tmp_path / "x.fasta"))
    assert res.exit_code == 0, res.output
    assert len(read_fasta(tmp_path / "x.fasta")) == 20
