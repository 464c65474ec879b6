"""End-to-end tests through the click CLI (CliRunner) and one through the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synthrelease.cli import cli
from tests.conftest import TINY_METADATA, check_croissant_bundle, make_tiny_table

REPO = Path(__file__).resolve().parents[2]
FAST = ["--steps", "150", "--seed", "1"]


@pytest.fixture
def workspace(tmp_path):
    data = tmp_path / "private.csv"
    make_tiny_table(600, seed=5).to_csv(data, index=False)
    meta = tmp_path / "meta.yaml"
    meta.write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    runner = CliRunner()
    res = runner.invoke(cli, ["keys", "generate", "--private", str(tmp_path / "k.pem"),
                              "--public", str(tmp_path / "k.pub.pem")])
    assert res.exit_code == 0, res.output
    lenient = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    lenient["fidelity"]["min_quality_score"] = 0.3
    lenient["utility"]["min_tstr_accuracy"] = 0.0  # released, never flaky on few steps
    lenient["membership"]["max_dcr_mia_auc"] = 0.75
    lenient["membership"]["max_exact_copy_share"] = 0.5  # a DP figure: keep the noise far from the limit
    (tmp_path / "lenient.yaml").write_text(yaml.safe_dump(lenient))
    strict = dict(lenient, fidelity={"min_quality_score": 0.999})
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    return tmp_path


def _release(ws, policy, out="bundle", extra=()):
    args = ["-q", "release", str(ws / "private.csv"), "--metadata", str(ws / "meta.yaml"),
            "--policy", str(ws / policy), "--epsilon", "3", "--out", str(ws / out),
            "--signing-key", str(ws / "k.pem"), *FAST, *extra]
    return CliRunner().invoke(cli, args)


def test_release_passes_and_verifies_then_detects_a_changed_byte(workspace):
    res = _release(workspace, "lenient.yaml")
    assert res.exit_code == 0, res.output
    assert "verdict: RELEASED" in res.output and "epsilon spent:" in res.output
    bundle = workspace / "bundle"
    ok = CliRunner().invoke(cli, ["verify", str(bundle), "--public-key", str(workspace / "k.pub.pem")])
    assert ok.exit_code == 0 and ok.output.startswith("OK") and "OK: attestation.intoto.jsonl" in ok.output
    facts = _attested_facts(bundle, workspace / "k.pub.pem")  # a real release's predicate: DP figures only
    assert facts["gate"]["verdict"] == "released" and facts["policy"]["name"] and facts["privacy"]["epsilon"] <= 3
    assert facts["dp_figures"] and all(set(f) == {"value", "noise_std", "l2_sensitivity"}
                                       for f in facts["dp_figures"].values())
    report = workspace / "bundle.internal-report" / "internal_report.json"
    assert report.exists() and not (bundle / "internal_report.json").exists()
    doc = check_croissant_bundle(bundle, workspace / "k.pub.pem")  # issue 31: Croissant 1.1 + RAI, signed
    assert {f["name"] for f in doc["recordSet"][0]["field"]} == set(TINY_METADATA["columns"]) - {"patient_id"}
    csv = bundle / "synthetic.csv"
    data = bytearray(csv.read_bytes())
    data[len(data) // 2] ^= 1
    csv.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["verify", str(bundle), "--public-key", str(workspace / "k.pub.pem")])
    assert bad.exit_code == 1 and "synthetic.csv" in bad.output


def _attested_facts(bundle: Path, public_pem: Path) -> dict:
    """The attestation's predicate, its envelope checked by securesystemslib alone."""
    import json

    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    envelope = Envelope.from_dict(json.loads((bundle / "attestation.intoto.jsonl").read_text()))
    envelope.verify([SSlibKey.from_crypto(load_pem_public_key(public_pem.read_bytes()))], 1)
    return json.loads(envelope.payload)["predicate"]


def test_strict_policy_rejects_and_writes_no_bundle(workspace):
    res = _release(workspace, "strict.yaml", out="rejected")
    assert res.exit_code == 1
    assert "fidelity.min_quality_score" in res.output and "Traceback" not in res.output
    assert not (workspace / "rejected").exists()
    assert not [p for p in workspace.iterdir() if p.name.startswith(".rejected")]
    assert (workspace / "rejected.internal-report" / "internal_report.md").exists()


def test_epsilon_above_policy_cap_is_refused_before_training(workspace):
    res = _release(workspace, "lenient.yaml", out="over", extra=["--epsilon", "50"])
    assert res.exit_code == 1 and "privacy.max_epsilon" in res.output


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda ws: ["--metadata", str(ws / "nope.yaml")], "not found"),
        (lambda ws: ["--epsilon", "0"], "epsilon must be > 0"),
        (lambda ws: ["--epsilon", "-1"], "epsilon must be > 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(workspace, mutate, needle):
    res = _release(workspace, "lenient.yaml", out="x", extra=mutate(workspace))
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (workspace / "x").exists()


def test_a_delta_above_the_policy_is_refused_before_anything_is_read(workspace):
    """δ is public and judged before the count release: a δ the policy refuses spends nothing."""
    res = _release(workspace, "lenient.yaml", out="x", extra=["--delta", "0.01"])
    assert res.exit_code == 1 and "privacy.max_delta" in res.output and "Traceback" not in res.output
    assert not (workspace / "x").exists()


def test_bad_files_exit_2(workspace):
    (workspace / "garbage.csv").write_bytes(b"\x00\x01\x02 not,a\n\"csv")
    res = CliRunner().invoke(cli, ["-q", "release", str(workspace / "garbage.csv"), "--metadata",
                                   str(workspace / "meta.yaml"), "--policy", str(workspace / "lenient.yaml"),
                                   "--epsilon", "1", "--out", str(workspace / "o"), "--signing-key",
                                   str(workspace / "k.pem")])
    assert res.exit_code == 2 and "garbage.csv" in res.output
    make_tiny_table(600, seed=5).drop(columns=["age"]).to_csv(workspace / "short.csv", index=False)
    res = CliRunner().invoke(cli, ["metadata", "check", str(workspace / "meta.yaml"), "--data",
                                   str(workspace / "short.csv")])
    assert res.exit_code == 2 and "'age'" in res.output
    policy = yaml.safe_load((workspace / "lenient.yaml").read_text())
    policy["privacy"]["max_epsilonn"] = 3
    (workspace / "typo.yaml").write_text(yaml.safe_dump(policy))
    res = CliRunner().invoke(cli, ["policy", "check", str(workspace / "typo.yaml")])
    assert res.exit_code == 2 and "max_epsilonn" in res.output and "unknown key" in res.output


def test_internal_bug_exits_70_without_traceback(workspace, monkeypatch):
    from synthrelease.pipeline import stages

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(stages, "split", broken)
    res = _release(workspace, "lenient.yaml", out="bug")
    assert res.exit_code == 70 and "bug in synthrelease" in res.output and "Traceback" not in res.output


def test_train_and_sample_commands(workspace):
    model = workspace / "model.pt"
    res = CliRunner().invoke(cli, ["-q", "train", str(workspace / "private.csv"), "--metadata",
                                   str(workspace / "meta.yaml"), "--epsilon", "2", "-o", str(model), *FAST])
    assert res.exit_code == 0, res.output
    out = workspace / "s.parquet"
    res = CliRunner().invoke(cli, ["sample", str(model), "-n", "1200", "-o", str(out), "--chunk-rows", "500",
                                   "--condition", "outcome=sick"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_parquet(out)
    assert len(df) == 1200 and (df["outcome"] == "sick").all()
    res = CliRunner().invoke(cli, ["sample", str(model), "-n", "5", "-o", str(workspace / "s.csv"),
                                   "--condition", "outcome=unknown"])
    assert res.exit_code == 2 and "not a declared category" in res.output


def test_metadata_infer_draft_is_refused_for_training(workspace):
    draft = workspace / "draft.yaml"
    res = CliRunner().invoke(cli, ["metadata", "infer", str(workspace / "private.csv"), "-o", str(draft),
                                   "--target", "outcome"])
    assert res.exit_code == 0 and "reviewed: false" in draft.read_text()
    res = CliRunner().invoke(cli, ["-q", "train", str(workspace / "private.csv"), "--metadata", str(draft),
                                   "--epsilon", "2", "-o", str(workspace / "m.pt")])
    assert res.exit_code == 2 and "not reviewed" in res.output


DEMO_DATA = REPO / "synthrelease" / "data"


def _draft_and_check(tmp_path, data, *extra):
    """Issue 26.8: ``metadata infer`` then ``metadata check --data`` on any data a release reads."""
    draft = tmp_path / f"{Path(data).name}.draft.yaml"
    res = CliRunner().invoke(cli, ["metadata", "infer", str(data), "-o", str(draft), *extra])
    assert res.exit_code == 0, res.output
    text = draft.read_text()
    assert "reviewed: false" in text and "transform: none" not in text  # a draft lists what is not default
    check = CliRunner().invoke(cli, ["metadata", "check", str(draft), "--data", str(data)])
    assert check.exit_code == 0, check.output
    return yaml.safe_load(text), check.output


def test_metadata_infer_and_check_an_npz_of_tiles(tmp_path):
    meta, out = _draft_and_check(tmp_path, DEMO_DATA / "tiles.npz")
    assert meta["target"] == "label" and meta["columns"]["label"]["categories"] == ["dense", "sparse"]
    assert meta["columns"]["tile"] == {"type": "image", "nullable": False, "height": 32, "width": 32, "channels": 3}
    assert "400 image rows pass" in out


def test_metadata_infer_and_check_a_fasta_file(tmp_path):
    import pandas as pd

    rows = pd.read_csv(DEMO_DATA / "peptides.csv").head(60)
    fasta = tmp_path / "peptides.fasta"
    fasta.write_text("".join(f">{r.peptide_id} activity={r.activity}\n{r.sequence}\n" for r in rows.itertuples()))
    meta, out = _draft_and_check(tmp_path, fasta, "--target", "activity")
    sequence = meta["columns"]["sequence"]
    assert sequence["type"] == "sequence" and sequence["alphabet"] == "protein"
    assert sequence["max_length"] == int(rows["sequence"].str.len().max())
    assert meta["columns"]["id"]["type"] == "identifier" and meta["target"] == "activity"
    assert "60 sequence rows pass" in out
    res = CliRunner().invoke(cli, ["metadata", "infer", str(fasta), "-o", str(tmp_path / "x.yaml"), "--target", "nope"])
    assert res.exit_code == 2 and "'nope'" in res.output and not (tmp_path / "x.yaml").exists()


def test_metadata_infer_and_check_a_folder_of_tiles_and_a_slide(tmp_path):
    import numpy as np
    import tifffile
    from PIL import Image

    folder = tmp_path / "tiles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"t{i}.png")
    meta, out = _draft_and_check(tmp_path, folder)
    assert meta["columns"]["tile"]["channels"] == 1 and "target" not in meta and "5 image rows pass" in out
    slide = np.full((512, 512, 3), 255, dtype=np.uint8)
    slide[:256, :256] = (120, 60, 140)
    tifffile.imwrite(tmp_path / "s.tif", slide, tile=(128, 128), photometric="rgb")
    meta, out = _draft_and_check(tmp_path, tmp_path / "s.tif")
    assert meta["columns"]["tile"]["tiling"]["tile_size"] == 256 and "1 image rows pass" in out


def test_metadata_check_names_the_data_that_does_not_fit(tmp_path):
    res = CliRunner().invoke(cli, ["metadata", "check", str(DEMO_DATA / "tiles.metadata.yaml"),
                                   "--data", str(DEMO_DATA / "peptides.csv")])
    assert res.exit_code == 2 and "peptides.csv" in res.output and len(res.output.strip().splitlines()) == 2


@pytest.mark.slow
def test_demo_console_script(tmp_path):
    """The README's main job, through the installed entry point."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    exe = Path(sys.executable).with_name("synthrelease")
    proc = subprocess.run([str(exe), "demo", "--out", str(tmp_path / "demo")], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    # The verdict is a DP output: with fresh noise each run, the demo is now and then refused on a
    # clause (exit 1, a reasoned one-line refusal and no bundle). Both outcomes are the job working.
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if proc.returncode == 1:
        assert "release rejected by policy 'demo'" in proc.stderr and not (tmp_path / "demo" / "bundle").exists()
        assert (tmp_path / "demo" / "internal-report" / "internal_report.json").is_file()
        return
    assert "verdict: RELEASED" in proc.stdout and "epsilon spent:" in proc.stdout
    verify = subprocess.run([str(exe), "verify", str(tmp_path / "demo" / "bundle"), "--public-key",
                             str(tmp_path / "demo" / "keys" / "signing_key.pub.pem")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stderr


def test_every_command_that_reads_data_takes_sep(tmp_path):
    """Issue 26.8: metadata infer/check, train (and audit-privacy, release) read delimited text with --sep."""
    make_tiny_table(200, seed=3).to_csv(tmp_path / "t.txt", sep=";", index=False)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    runner = CliRunner()
    res = runner.invoke(cli, ["metadata", "infer", str(tmp_path / "t.txt"), "--sep", ";",
                              "-o", str(tmp_path / "d.yaml")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["metadata", "check", str(tmp_path / "m.yaml"), "--data", str(tmp_path / "t.txt"),
                              "--sep", ";"])
    assert res.exit_code == 0 and "200 rows pass" in res.output, res.output
    res = runner.invoke(cli, ["-q", "train", str(tmp_path / "t.txt"), "--metadata", str(tmp_path / "m.yaml"),
                              "--sep", ";", "--epsilon", "3", "--steps", "5", "--ledger", str(tmp_path / "l.sqlite3"),
                              "-o", str(tmp_path / "m.pt")])
    assert res.exit_code == 0 and (tmp_path / "m.pt").exists(), res.output
    assert "--sep" in runner.invoke(cli, ["audit-privacy", "--help"]).output


@pytest.mark.parametrize("sep", ["abc", "\n", "a", '"'])
def test_a_separator_that_cannot_separate_is_one_line(tmp_path, sep):
    make_tiny_table(20, seed=3).to_csv(tmp_path / "t.txt", sep=";", index=False)
    res = CliRunner().invoke(cli, ["metadata", "infer", str(tmp_path / "t.txt"), "--sep", sep,
                                   "-o", str(tmp_path / "d.yaml")])
    assert res.exit_code == 2 and "--sep" in res.output and "t.txt" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Warning" not in res.output
