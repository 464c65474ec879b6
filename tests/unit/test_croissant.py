"""croissant.json: Croissant 1.1 + RAI, built and validated by mlcroissant, public facts only, signed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthrelease.bundle import writer as writer_module
from synthrelease.bundle.croissant import CROISSANT, check_croissant, croissant_json
from synthrelease.bundle.signing import generate_keypair, load_private_key
from synthrelease.bundle.verify import verify_bundle
from synthrelease.errors import BundleError, VerificationError
from synthrelease.io.files import sha256_file
from synthrelease.metadata.schema import Metadata
from tests.conftest import same_values

mlc = pytest.importorskip("mlcroissant")

RAI_TERMS = {  # the Croissant RAI vocabulary (mlcommons/croissant docs/croissant_rai.ttl)
    "annotationsPerItem", "annotatorDemographics", "dataAnnotationAnalysis", "dataAnnotationPlatform",
    "dataAnnotationProtocol", "dataBiases", "dataCollection", "dataCollectionMissingData", "dataCollectionRawData",
    "dataCollectionTimeframe", "dataCollectionType", "dataImputationProtocol", "dataLimitations",
    "dataManipulationProtocol", "dataPreprocessingProtocol", "dataReleaseMaintenancePlan", "dataSocialImpact",
    "dataUseCases", "machineAnnotationTools", "personalSensitiveInformation"}

META = {"version": 1, "name": "tiny clinic", "reviewed": True, "target": "outcome",
        "columns": {"age": {"type": "integer", "min": 18, "max": 90},
                    "bmi value": {"type": "float", "min": 15, "max": 45, "nullable": True},
                    "stage#/?": {"type": "categorical", "categories": [1, 2, 3]},
                    "smoker": {"type": "boolean"},
                    "admitted": {"type": "date", "min": "2001-01-01", "max": "2024-12-31"},
                    "outcome": {"type": "categorical", "categories": ["healthy", "sick"]}}}

RELEASE = {
    "tool": {"name": "synthrelease", "version": "0.1.0"},
    "dataset": {"name": "tiny clinic", "modality": "table", "synthetic_rows": 3},
    "privacy": {"epsilon": 2.4996, "delta": 1e-6, "accountant": "rdp",
                "privacy_unit": "one row = one person", "covers": "the synthetic rows and every figure",
                "mechanisms": [{"label": "discriminator DP-SGD", "noise_multiplier": 1.1, "sample_rate": 0.1,
                                "steps": 100}]},
    "dp_sizes": {"train": 480.3, "holdout": 120.1},
    "training": {},
    "policy": {"name": "default", "sha256": "ab" * 32, "document": {"signing": {"signer": "Steward Org"}}},
    # "exact" is INTERNAL: were it ever passed by mistake, croissant.json must not show it
    "dp_figures": {"quality_score": {"value": 0.91, "noise_std": 0.02, "l2_sensitivity": 0.002, "exact": 0.123456},
                   "tstr_accuracy": {"value": None, "noise_std": 0.05, "l2_sensitivity": 0.01}},
    "signer": {"algorithm": "Ed25519", "public_key_sha256": "cd" * 32},
}

TABLE = pd.DataFrame({"age": [30, 41, 77], "bmi value": [22.5, np.nan, 31.25], "stage#/?": [1, 3, 2],
                      "smoker": [True, False, True], "admitted": ["2003-04-05", "2010-01-31", "2024-12-31"],
                      "outcome": ["sick", "healthy", "sick"]})


def _staged(folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    folder.mkdir()
    TABLE.to_csv(folder / "synthetic.csv", index=False)
    TABLE.to_parquet(folder / "synthetic.parquet")
    (folder / "RELEASE_CARD.md").write_text("# card\n")
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return folder


def _written(tmp_path: Path, meta: dict | None = None, release: dict | None = None,
             extra: dict[str, bytes] | None = None) -> tuple[Path, dict]:
    folder = _staged(tmp_path / "b", extra)
    data = croissant_json(folder, metadata=Metadata.model_validate(meta or META), release=release or RELEASE,
                          table=TABLE)
    (folder / CROISSANT).write_bytes(data)
    return folder, json.loads(data)


def test_mlcroissant_reads_the_synthetic_rows_through_it(tmp_path):
    folder, doc = _written(tmp_path)
    dataset = mlc.Dataset(jsonld=str(folder / CROISSANT))
    assert not dataset.metadata.ctx.issues.errors
    fields = {f["name"]: f for f in doc["recordSet"][0]["field"]}
    assert list(fields) == list(TABLE.columns)
    assert fields["stage#/?"]["@id"] == "synthetic/stage%23%2F%3F"  # JSON-LD ids: no '#', '/', '?' or space
    assert fields["bmi value"]["@id"] == "synthetic/bmi%20value"
    assert fields["outcome"]["dataType"] == ["sc:Text", "cr:Label"]
    assert {c: fields[c]["dataType"] for c in ("age", "bmi value", "smoker", "admitted")} == {
        "age": "sc:Integer", "bmi value": "sc:Float", "smoker": "sc:Boolean", "admitted": "sc:Date"}
    assert "[18, 90]" in fields["age"]["description"] and "1, 2, 3" in fields["stage#/?"]["description"]
    rows = list(dataset.records(record_set="synthetic"))
    assert len(rows) == len(TABLE)
    for name, field in fields.items():
        assert same_values([r[field["@id"]] for r in rows], TABLE[name]), name
    csv = folder / "synthetic.csv"  # mlcroissant checks the file's SHA-256 before it reads a record
    csv.write_text(csv.read_text().replace("30,", "31,", 1))
    with pytest.raises(mlc.GenerationError, match=r"Download\(synthetic\.csv\)"):
        list(mlc.Dataset(jsonld=str(folder / CROISSANT)).records(record_set="synthetic"))


def test_every_file_is_described_with_its_hash_format_and_relative_url(tmp_path):
    extra = {"synthetic.fasta": b">syn-0 outcome=sick\nACDE\n", "synthetic.npz": b"PK\x03\x04npz",
             "synthetic.h5ad": b"\x89HDF\r\n", "notes.bin": b"\x00"}
    folder, doc = _written(tmp_path, extra=extra)
    files = {d["@id"]: d for d in doc["distribution"]}
    assert set(files) == {"RELEASE_CARD.md", "synthetic.csv", "synthetic.parquet", *extra}
    for name, d in files.items():
        assert d["@type"] == "cr:FileObject" and d["contentUrl"] == name
        assert d["sha256"] == sha256_file(folder / name) and d["contentSize"] == f"{(folder / name).stat().st_size} B"
    assert {n: files[n]["encodingFormat"] for n in files} == {
        "RELEASE_CARD.md": "text/markdown", "synthetic.csv": "text/csv", "synthetic.parquet": "application/x-parquet",
        "synthetic.fasta": "text/x-fasta", "synthetic.npz": "application/zip", "synthetic.h5ad": "application/x-hdf5",
        "notes.bin": "application/octet-stream"}
    assert {n for n, d in files.items() if d.get("sameAs") == "synthetic.csv"} == {
        "synthetic.parquet", "synthetic.fasta", "synthetic.h5ad"}
    assert "numpy.load" in files["synthetic.npz"]["description"]  # no mlcroissant reader: said so
    # mlcroissant still reads the record set (it never opens the files it cannot read)
    assert len(list(mlc.Dataset(jsonld=str(folder / CROISSANT)).records(record_set="synthetic"))) == 3


def test_rai_properties_are_the_vocabulary_terms_with_the_dp_facts_and_noisy_figures_only(tmp_path):
    _, doc = _written(tmp_path)
    rai = {k.removeprefix("rai:"): v for k, v in doc.items() if k.startswith("rai:")}
    assert set(rai) <= RAI_TERMS, set(rai) - RAI_TERMS  # mlcroissant 1.1.1's dataDataManipulationProtocol is not
    assert {"dataCollection", "dataCollectionType", "dataCollectionRawData", "dataPreprocessingProtocol",
            "dataManipulationProtocol", "personalSensitiveInformation", "dataLimitations",
            "dataReleaseMaintenancePlan", "dataAnnotationProtocol", "dataCollectionMissingData"} <= set(rai)
    text = json.dumps(doc, ensure_ascii=False)
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1" and doc["isLiveDataset"] is False
    for fact in ("ε = 2.500", "δ = 1e-06", "rdp accountant", "one row = one person", "policy 'default'", "ab" * 32,
                 "discriminator DP-SGD: noise multiplier 1.1, sampling rate 0.1, 100 step(s)",
                 "quality_score = 0.9100 (Gaussian noise std 0.02)", "tstr_accuracy = not computable",
                 "training 480.3, holdout 120.1", "cd" * 32, "bmi value"):
        assert fact in text, fact
    assert "0.123456" not in text and "0.1235" not in text  # an exact figure never leaks in
    assert "3 synthetic records" in doc["description"]


@pytest.mark.parametrize(("licence", "creator", "signing", "want_licence", "want_creator", "want_publisher"), [
    ("CC-BY-4.0", "Cell Atlas Lab", {"signer": "Steward Org"}, "https://spdx.org/licenses/CC-BY-4.0.html",
     "Cell Atlas Lab", "Steward Org"),
    ("https://example.org/dua", None, {"signer": "Steward Org"}, "https://example.org/dua", "Steward Org",
     "Steward Org"),
    ("Consortium data use agreement v2", None, None, "Consortium data use agreement v2", None, None),
    ("proprietary", None, None, "proprietary", None, None),  # a bare word is no SPDX id: no guessed URL
    (None, None, None, None, None, None),
])
def test_licence_creator_and_publisher(tmp_path, licence, creator, signing, want_licence, want_creator,
                                       want_publisher):
    meta = {**META, **({"license": licence} if licence else {}), **({"creator": creator} if creator else {})}
    release = {**RELEASE, "policy": {**RELEASE["policy"], "document": {"signing": signing}}}
    _, doc = _written(tmp_path, meta=meta, release=release)
    assert doc.get("license") == want_licence
    assert (doc.get("creator") or {}).get("name") == want_creator
    assert (doc.get("publisher") or {}).get("name") == want_publisher
    if licence is None:
        assert "Licence: none declared by the data steward." in doc["description"]


def test_mlcroissant_models_every_property_written_but_two(tmp_path):
    """mlcroissant parses every key into its own model except two kept as extra properties:
    isLiveDataset false (it writes that property only when true) and rai:dataManipulationProtocol
    (mlcroissant 1.1.1 models it under the misspelt rai:dataDataManipulationProtocol). Written again,
    the document is unchanged."""
    _, doc = _written(tmp_path)
    parsed = check_croissant(json.dumps(doc).encode())
    assert set(parsed.extra_properties) == {"isLiveDataset", "rai:dataManipulationProtocol"}
    assert not [n for n in parsed.nodes() if n is not parsed and n.extra_properties]
    assert parsed.ctx.is_live_dataset is False
    assert parsed.to_json() == doc


def test_bad_documents_are_one_line_bundle_errors(tmp_path):
    with pytest.raises(BundleError, match=r"croissant\.json: mlcroissant refused"):
        check_croissant(b"{not json")
    _, doc = _written(tmp_path)
    del doc["distribution"][0]["sha256"]  # a fixed dataset's file needs its checksum
    with pytest.raises(BundleError, match=r"croissant\.json: mlcroissant refused") as e:
        check_croissant(json.dumps(doc).encode())
    assert "\n" not in str(e.value)
    folder = tmp_path / "nocsv"
    folder.mkdir()
    with pytest.raises(BundleError, match=r"synthetic\.csv is missing"):
        croissant_json(folder, metadata=Metadata.model_validate(META), release=RELEASE, table=TABLE)


def test_the_manifest_lists_it_the_signature_covers_it(tmp_path):
    priv, pub = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    meta = Metadata.model_validate(META)
    bundle = writer_module.write_bundle(
        tmp_path / "bundle", tables={"synthetic": TABLE}, text_files={"RELEASE_CARD.md": "# card\n"},
        release={k: v for k, v in RELEASE.items() if k != "signer"}, private_key=load_private_key(priv),
        describe=lambda folder, release, digests: croissant_json(folder, metadata=meta, release=release, table=TABLE,
                                                                 digests=digests))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"][CROISSANT]["sha256"] == sha256_file(bundle / CROISSANT)
    doc = json.loads((bundle / CROISSANT).read_text())
    assert manifest["release"]["signer"]["public_key_sha256"] in doc["rai:dataReleaseMaintenancePlan"]
    assert verify_bundle(bundle, pub).n_files == 4
    (bundle / CROISSANT).write_text((bundle / CROISSANT).read_text().replace("2.500", "0.500"))
    with pytest.raises(VerificationError, match=r"croissant\.json"):
        verify_bundle(bundle, pub)


@pytest.mark.parametrize("key", ["license", "creator"])
def test_licence_and_creator_are_checked_like_names(key):
    from pydantic import ValidationError

    assert key not in Metadata.model_validate(META).to_yaml_dict()  # unset: not written back
    with pytest.raises(ValidationError, match=f"{key}: holds the control or formatting character U\\+202E"):
        Metadata.model_validate({**META, key: "CC-BY\u202e-4.0"})
    assert Metadata.model_validate({**META, key: "CC-BY-4.0"}).to_yaml_dict()[key] == "CC-BY-4.0"
