"""`synthrelease audit-privacy`: the empirical ε audit as a standalone command."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from synthrelease.cli import cli
from tests.conftest import TINY_METADATA, make_tiny_table


def test_audit_privacy_reports_bounds_and_writes_an_internal_report(tmp_path):
    data, meta = tmp_path / "private.csv", tmp_path / "meta.yaml"
    make_tiny_table(200, seed=3).to_csv(data, index=False)
    meta.write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    out = tmp_path / "audit.json"
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(data), "--metadata", str(meta), "--epsilon", "1",
                                   "--steps", "10", "--batch-size", "40", "--canaries", "40", "--many-run", "8",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "no evidence against the claim" in res.output
    report = json.loads(out.read_text())
    assert set(report) == {"empirical_privacy", "empirical_privacy_many_run"}
    one = report["empirical_privacy"]["metrics"]
    assert one["epsilon_lower_bound"] <= one["epsilon_claimed"] <= 1.0 + 1e-9
    assert report["empirical_privacy"]["details"]["n_canaries"] == 40
    assert report["empirical_privacy_many_run"]["metrics"]["audit_runs"] == 8
    page = (tmp_path / "audit.html").read_text()  # one self-contained HTML page per audit run
    assert "<html" in page.lower() and "empirical_privacy" in page and "https://" not in page


def test_audit_privacy_bad_input_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["audit-privacy", str(tmp_path / "missing.csv"), "--metadata",
                                   str(tmp_path / "m.yaml"), "--epsilon", "1", "-o", str(tmp_path / "a.json")])
    assert res.exit_code == 2
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "a.json").exists()


def test_audit_privacy_and_train_read_delimited_text_with_sep(tmp_path):
    """Issue 31.4: `--sep` means what it means for release and metadata infer (the shared option and the
    one format check): a ';'-separated .txt is read; a separator that cannot separate is one line, exit 2."""
    data, meta = tmp_path / "private.txt", tmp_path / "meta.yaml"
    make_tiny_table(200, seed=3).to_csv(data, sep=";", index=False)
    meta.write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    fast = ["--metadata", str(meta), "--epsilon", "1", "--steps", "5", "--batch-size", "40"]
    for command, out, extra in (("audit-privacy", "a.json", ["--canaries", "8"]),
                                ("train", "m.pt", ["--ledger", str(tmp_path / "l.sqlite3")])):
        res = CliRunner().invoke(cli, [command, str(data), "--sep", "ab", *fast, *extra, "-o", str(tmp_path / out)])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert "--sep 'ab'" in res.output and "private.txt" in res.output and not (tmp_path / out).exists()
        res = CliRunner().invoke(cli, [command, str(data), *fast, *extra, "-o", str(tmp_path / out)])
        assert res.exit_code == 2 and "--sep" in res.output and not (tmp_path / out).exists()  # .txt needs it
    res = CliRunner().invoke(cli, ["-q", "audit-privacy", str(data), "--sep", ";", *fast, "--canaries", "8",
                                   "-o", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    one = json.loads((tmp_path / "a.json").read_text())["empirical_privacy"]
    assert one["details"]["n_canaries"] == 8 and one["metrics"]["epsilon_lower_bound"] <= 1.0 + 1e-9
