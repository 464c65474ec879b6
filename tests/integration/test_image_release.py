"""Image-tile releases end to end: the same stages, gate, ledger and signed bundle as tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from synthrelease.bundle.signing import generate_keypair
from synthrelease.cli import cli
from tests.conftest import check_croissant_bundle, lenient_policy_doc

META = {"version": 1, "name": "tiles", "reviewed": True, "target": "stain",
        "columns": {"tile_id": {"type": "identifier"},
                    "tile": {"type": "image", "height": 16, "width": 16, "channels": 3},
                    "stain": {"type": "categorical", "categories": ["red", "blue"]}}}


@pytest.fixture
def ws(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.choice(["red", "blue"], 300)
    tiles = rng.integers(0, 60, (300, 16, 16, 3)).astype(np.uint8)
    tiles[labels == "red", :, :, 0] += 180
    tiles[labels == "blue", :, :, 2] += 180
    np.savez(tmp_path / "tiles.npz", images=tiles, labels=labels)
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(META, sort_keys=False))
    doc = lenient_policy_doc()
    doc.pop("fidelity"), doc.pop("utility")  # tiny data, few steps: no clause near its noise
    # 300 tiles, about 60 in the holdout and fewer gate slots (the DP count's margin): the DCR figure's
    # noise std reaches 0.1-0.2, so its limit stays out of reach of the noise (the clause still runs)
    doc["membership"]["max_dcr_mia_auc"] = 1.0
    doc["plausibility"] = {"rules": [{"id": "not_blank", "kind": "range", "column": "white_share", "max": 0.5,
                                      "max_violation_share": 1.0}]}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    return tmp_path


def _release(ws, out, *extra):
    return CliRunner().invoke(cli, ["-q", "release", str(ws / "tiles.npz"), "--metadata", str(ws / "meta.yaml"),
                                    "--policy", str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"),
                                    "--out", str(ws / out), "--epsilon", "3", "--steps", "30",
                                    "--synthetic-rows", "240", *extra])  # the default follows the DP count


def test_an_image_release_is_gated_signed_and_holds_tiles(ws):
    res = _release(ws, "b")
    assert res.exit_code == 0, res.output
    with np.load(ws / "b" / "synthetic.npz", allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (240, 16, 16, 3) and images.dtype == np.uint8 and set(labels) <= {"red", "blue"}
    table = pd.read_csv(ws / "b" / "synthetic.csv")
    assert list(table.columns) == ["tile_index", "stain"] and len(table) == 240
    manifest = json.loads((ws / "b" / "manifest.json").read_text())["release"]
    assert manifest["dataset"]["modality"] == "image"
    assert {"dcr_mia_auc", "exact_copy_share"} <= set(manifest["dp_figures"])
    labels_used = [m["label"] for m in manifest["privacy"]["mechanisms"]]
    assert "discriminator DP-SGD" in labels_used and manifest["privacy"]["epsilon"] <= 3.0
    report = json.loads((ws / "b.internal-report" / "internal_report.json").read_text())
    assert "image" in report["audits"] and "kid" in report["audits"]["image"]["metrics"]
    plotted = {c["column"] for c in report["plots"]["columns"]}
    from synthrelease.modalities.image.features import view_columns

    assert plotted and plotted <= set(view_columns(3)) | {"stain"}  # the feature view, never raw pixels
    assert report["plots"]["embedding"].get("available", True)
    html = (ws / "b.internal-report" / "internal_report.html").read_text()
    assert html.count('alt="real training tiles"') == 1 and html.count('alt="synthetic tiles"') == 1
    bundle_files = {p.name for p in (ws / "b").iterdir()}
    assert not any(name.endswith(".html") and "internal" in name for name in bundle_files)  # real tiles stay inside
    assert CliRunner().invoke(cli, ["verify", str(ws / "b"), "--public-key", str(ws / "k.pub")]).exit_code == 0
    doc = check_croissant_bundle(ws / "b", ws / "k.pub")  # the records: tile index and label
    assert [f["name"] for f in doc["recordSet"][0]["field"]] == ["tile_index", "stain"]
    npz = next(d for d in doc["distribution"] if d["name"] == "synthetic.npz")  # described, not readable
    assert npz["encodingFormat"] == "application/zip" and "numpy.load" in npz["description"]


def test_bad_tiles_and_modality_are_refused_in_one_line(ws):
    res = _release(ws, "c", "--modality", "table")
    assert res.exit_code == 2 and "--modality table" in res.output and not (ws / "c").exists()
    np.savez(ws / "tiles.npz", images=np.zeros((50, 8, 8, 3), np.uint8), labels=np.array(["red"] * 50))
    res = _release(ws, "d")
    assert res.exit_code == 2 and "tiles.npz" in res.output and len(res.output.strip().splitlines()) == 1


def test_a_refused_image_release_keeps_the_rejected_tiles_as_npz_in_the_report(ws):
    doc = yaml.safe_load((ws / "policy.yaml").read_text())
    doc["fidelity"] = {"min_quality_score": 0.999}
    (ws / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _release(ws, "r", "--steps", "5")
    assert res.exit_code == 1 and "fidelity.min_quality_score" in res.output, res.output
    assert not (ws / "r").exists()
    report_dir = ws / "r.internal-report"
    report = json.loads((report_dir / "internal_report.json").read_text())
    assert report["rejected_sample"] == str(report_dir / "rejected_synthetic.npz")
    with np.load(report_dir / "rejected_synthetic.npz", allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (240, 16, 16, 3) and images.dtype == np.uint8 and set(labels) <= {"red", "blue"}
    table = pd.read_csv(report_dir / "rejected_synthetic_sample.csv")  # tile index and label, no raw pixel bytes
    assert list(table.columns) == ["tile_index", "stain"] and len(table) == 240
    assert report["rejected_sample_files"] == [str(report_dir / n)
                                               for n in ("rejected_synthetic.npz", "rejected_synthetic_sample.csv")]
    html = (report_dir / "internal_report.html").read_text()
    assert html.count('alt="nearest-neighbour pairs: synthetic and real training tiles"') == 1


def test_persons_with_several_tiles_are_bounded_together(ws):
    """max_rows_per_person m: a person's first m tiles are kept and protected together (user-level DP-SGD)."""
    rng = np.random.default_rng(1)
    n_people = 100
    per_person = rng.integers(1, 6, n_people)  # 1..5 tiles each; the cap keeps at most 3
    patient = np.repeat([f"p{i:03d}" for i in range(n_people)], per_person)
    labels = rng.choice(["red", "blue"], len(patient))
    tiles = rng.integers(0, 60, (len(patient), 16, 16, 3)).astype(np.uint8)
    tiles[labels == "red", :, :, 0] += 180
    tiles[labels == "blue", :, :, 2] += 180
    np.savez(ws / "tiles.npz", images=tiles, labels=labels, patient=patient)
    meta = json.loads(json.dumps(META))
    meta["columns"] = {"patient": {"type": "identifier"}, **meta["columns"]}
    meta["privacy_unit_column"], meta["max_rows_per_person"] = "patient", 3
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    doc = yaml.safe_load((ws / "policy.yaml").read_text())
    doc["data"]["min_rows"] = 20  # persons, judged on their DP count (about 80 train here)
    (ws / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _release(ws, "p", "--synthetic-rows", "200")
    assert res.exit_code == 0, res.output
    manifest = json.loads((ws / "p" / "manifest.json").read_text())["release"]
    assert "at most 3 rows" in manifest["privacy"]["privacy_unit"] and manifest["privacy"]["epsilon"] <= 3.0
    assert manifest["dataset"]["synthetic_rows"] == 200
    assert abs(manifest["dp_sizes"]["train"] + manifest["dp_sizes"]["holdout"] - n_people) < 60  # persons, DP
    card = (ws / "p" / "RELEASE_CARD.md").read_text()
    assert "at most 3 rows" in card and "one person's rows were in the private table" in card
    report = json.loads((ws / "p.internal-report" / "internal_report.json").read_text())
    assert any("each person's first 3 row(s) are kept" in w for w in report["warnings"])
    assert report["rows"]["dropped_beyond_person_cap"] == int((per_person - np.minimum(per_person, 3)).sum())


def test_a_row_cap_above_one_is_refused_for_tables_and_without_a_person_column():
    from synthrelease.metadata.schema import Metadata

    table = {"version": 1, "columns": {"pid": {"type": "identifier"}, "age": {"type": "integer", "min": 0,
                                                                              "max": 120}},
             "privacy_unit_column": "pid", "max_rows_per_person": 2}
    with pytest.raises(ValueError, match="image tables only"):
        Metadata.model_validate(table)
    meta = json.loads(json.dumps(META))
    meta["max_rows_per_person"] = 2
    with pytest.raises(ValueError, match="needs privacy_unit_column"):
        Metadata.model_validate(meta)


def test_unlabelled_tiles_are_released_and_a_utility_clause_is_refused_before_training(ws):
    rng = np.random.default_rng(2)
    np.savez(ws / "tiles.npz", images=rng.integers(0, 255, (200, 16, 16, 3)).astype(np.uint8))
    meta = json.loads(json.dumps(META))
    meta.pop("target"), meta["columns"].pop("stain")
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    res = _release(ws, "u")
    assert res.exit_code == 0, res.output
    with np.load(ws / "u" / "synthetic.npz", allow_pickle=False) as z:
        assert z["images"].shape == (240, 16, 16, 3) and "labels" not in z.files
    doc = yaml.safe_load((ws / "policy.yaml").read_text())
    doc["utility"] = {"min_tstr_auc": 0.5}
    (ws / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _release(ws, "v")
    assert res.exit_code == 2 and "clause utility needs a class column" in res.output
    assert not (ws / "v").exists() and not (ws / "v.internal-report").exists()


def test_a_declared_stain_releases_sim_pe_tiles_through_the_same_gate_and_bundle(ws):
    """Issue 28: with the column's stain declared the default generator is Sim-PE over the public
    simulator; the same split, DP counts, gate, ledger, bundle and signature apply."""
    pytest.importorskip("synthrelease.modalities.image.simulator")
    meta = yaml.safe_load((ws / "meta.yaml").read_text())
    meta["columns"]["tile"]["stain"] = "he"
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    # the fixture's tiles are coloured noise, beyond the simulator: the reach check is switched off here
    res = _release(ws, "pe", "--train-option", "evolution_iterations=2", "--train-option", "evolution_population=64",
                   "--train-option", "reach_epsilon_share=0")
    assert res.exit_code == 0, res.output
    manifest = json.loads((ws / "pe" / "manifest.json").read_text())["release"]
    assert manifest["training"]["generator"] == "sim_pe"
    labels = [m["label"] for m in manifest["privacy"]["mechanisms"]]
    assert "Sim-PE vote histograms (Gaussian, sensitivity 1)" in labels and manifest["privacy"]["epsilon"] <= 3.0
    with np.load(ws / "pe" / "synthetic.npz", allow_pickle=False) as z:
        assert z["images"].shape == (240, 16, 16, 3)
    ok = CliRunner().invoke(cli, ["verify", str(ws / "pe"), "--public-key", str(ws / "k.pub")])
    assert ok.exit_code == 0, ok.output


def test_tiles_beyond_the_simulator_fall_back_to_the_dcgan_in_the_same_release(ws):
    """Issue 28: a declared stain on tiles the simulator does not reach (coloured noise): the DP reach
    check sends the release to the DCGAN; the check is one more entry of the same accountant."""
    meta = yaml.safe_load((ws / "meta.yaml").read_text())
    meta["columns"]["tile"]["stain"] = "he"
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    # 240 training tiles at ε = 3: a fifth of ε makes the check precise enough to decide
    res = _release(ws, "fb", "--train-option", "reach_epsilon_share=0.2")
    assert res.exit_code == 0, res.output
    manifest = json.loads((ws / "fb" / "manifest.json").read_text())["release"]
    labels = [m["label"] for m in manifest["privacy"]["mechanisms"]]
    assert "simulator reach check (Gaussian count, sensitivity 1)" in labels
    assert "discriminator DP-SGD" in labels and not any(label.startswith("Sim-PE") for label in labels)
    assert manifest["privacy"]["epsilon"] <= 3.0
    report = json.loads((ws / "fb.internal-report" / "internal_report.json").read_text())
    assert report["training"]["history"][0]["simulator_in_reach"] == 0.0


def test_the_image_demo_evolves_the_simulator_and_clears_the_dcgan_quality(tmp_path):
    """Issue 28: the bundled demo (stain: he) runs Sim-PE by default; its exact DP-gate quality
    is far above the DCGAN's 0.28 (the release verdict itself is noisy: 0 or 1 are both valid)."""
    res = CliRunner().invoke(cli, ["-q", "demo", "--modality", "image", "--out", str(tmp_path / "d")])
    assert res.exit_code in (0, 1), res.output
    report = json.loads((tmp_path / "d" / "internal-report" / "internal_report.json").read_text())
    assert report["training"]["generator"] == "sim_pe"
    assert report["dp_gate"]["quality_score"]["exact"] > 0.5
