"""FASTA labels from a side CSV joined by record id (issue 29.4): one reader, one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from synthrelease.cli import cli
from synthrelease.errors import InputFileError
from synthrelease.io.fasta import read_fasta

RECORDS = [("SECRET1", "MKTAYIAKQR", "amp"), ("SECRET2", "GLFDIVKKVV", "other"), ("SECRET3", "KKLLKKLLAA", "amp")]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "x.fasta").write_text("".join(f">{i} source=lab\n{s}\n" for i, s, _ in RECORDS))
    pd.DataFrame({"id": [i for i, _, _ in reversed(RECORDS)] + ["ELSEWHERE"],  # any order; extra ids ignored
                  "activity": [a for _, _, a in reversed(RECORDS)] + ["amp"]}).to_csv(tmp_path / "l.csv", index=False)
    return tmp_path


def test_labels_are_joined_to_the_records_by_id(files):
    df = read_fasta(files / "x.fasta", labels=files / "l.csv")
    assert list(df.columns) == ["id", "sequence", "source", "activity"]
    assert df["id"].tolist() == [i for i, _, _ in RECORDS] and df["activity"].tolist() == [a for _, _, a in RECORDS]
    (files / "l.tsv").write_text("id\tactivity\tdose\n" + "".join(f"{i}\t{a}\t\n" for i, _, a in RECORDS))
    df = read_fasta(files / "x.fasta", labels=files / "l.tsv")  # TSV; an empty cell is a missing value
    assert df["dose"].isna().all() and df["activity"].tolist()[0] == "amp"


@pytest.mark.parametrize(("labels", "expected"), [
    ("id,activity\nSECRET1,amp\nSECRET3,amp\n", "no row for record 2 of"),
    ("id,activity\nSECRET1,amp\nSECRET2,amp\nSECRET3,x\nSECRET2,other\n", "lines 3 and 5 have the same id"),
    ("id,activity\nSECRET1,amp\n,amp\n", "line 3: no id"),
    ("name,activity\nSECRET1,amp\n", "no column 'id'"),
    ("id\nSECRET1\n", "no label column"),
    ("id,sequence\nSECRET1,AAA\n", "column 'sequence' cannot be a label"),
    ("id,source\nSECRET1,x\nSECRET2,x\nSECRET3,x\n", "column 'source' also comes from the headers"),
    ("", "labels file is empty"),
])
def test_bad_labels_files_are_one_line_naming_the_file_never_an_id_or_label(files, labels, expected):
    (files / "bad.csv").write_text(labels)
    with pytest.raises(InputFileError) as excinfo:
        read_fasta(files / "x.fasta", labels=files / "bad.csv")
    msg = str(excinfo.value)
    assert expected in msg and str(files / "bad.csv") in msg and "\n" not in msg
    assert "SECRET" not in msg and "amp" not in msg


def test_a_label_column_must_be_declared_when_the_metadata_is_known(files):
    with pytest.raises(InputFileError, match="column 'activity' is not declared"):
        read_fasta(files / "x.fasta", labels=files / "l.csv", label_columns={"id", "sequence", "source"})
    with pytest.raises(InputFileError, match="labels file not found"):
        read_fasta(files / "x.fasta", labels=files / "missing.csv")
    (files / "l.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputFileError, match="CSV or TSV"):
        read_fasta(files / "x.fasta", labels=files / "l.parquet")


def test_the_cli_refuses_bad_labels_in_one_line_with_exit_2(files):
    (files / "bad.csv").write_text("id,activity\nSECRET1,amp\n")
    res = CliRunner().invoke(cli, ["metadata", "infer", str(files / "x.fasta"), "--labels", str(files / "bad.csv"),
                                   "-o", str(files / "m.yaml")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "bad.csv" in res.output
    assert "Traceback" not in res.output and not (files / "m.yaml").exists()
    res = CliRunner().invoke(cli, ["metadata", "infer", str(files / "x.fasta"), "--labels", str(files / "l.csv"),
                                   "-o", str(files / "m.yaml"), "--target", "activity"])
    assert res.exit_code == 0, res.output
    draft = yaml.safe_load((files / "m.yaml").read_text())
    assert draft["target"] == "activity" and draft["columns"]["activity"]["categories"] == ["amp", "other"]
    assert draft["columns"]["source"]["type"] == "identifier"  # a sequence table holds one label
    res = CliRunner().invoke(cli, ["metadata", "check", str(files / "m.yaml"), "--data", str(files / "x.fasta"),
                                   "--labels", str(files / "l.csv")])
    assert res.exit_code == 0 and "3 sequence rows pass" in res.output, res.output
    res = CliRunner().invoke(cli, ["metadata", "check", str(files / "m.yaml"), "--labels", str(files / "l.csv")])
    assert res.exit_code == 2 and "--data" in res.output
    (files / "t.csv").write_text("a,b\n1,2\n")
    res = CliRunner().invoke(cli, ["metadata", "infer", str(files / "t.csv"), "--labels", str(files / "l.csv"),
                                   "-o", str(files / "t.yaml")])
    assert res.exit_code == 2 and "not a FASTA file" in res.output
