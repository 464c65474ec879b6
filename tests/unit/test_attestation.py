"""The bundle's DSSE / in-toto attestation: checked by securesystemslib alone, and by `synthrelease verify`.

Tiny bundles written by ``write_bundle`` directly (no training). The third-party checks
below use only securesystemslib, cryptography, hashlib and json, never synthrelease.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib import exceptions as sslib_errors
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from synthrelease.bundle import attestation, writer
from synthrelease.bundle.signing import generate_keypair, load_private_key, sign
from synthrelease.bundle.verify import verify_bundle
from synthrelease.cli import cli
from synthrelease.errors import BundleError, VerificationError

README = Path(__file__).resolve().parents[2] / "README.md"
NAME = "attestation.intoto.jsonl"
RELEASE = {
    "tool": {"name": "synthrelease", "version": "0.1.0"},
    "dataset": {"name": "tiny", "modality": "table", "synthetic_rows": 3},
    "policy": {"name": "default", "sha256": "ab" * 32, "document": {"name": "default"}},
    "privacy": {"epsilon": 1.0, "delta": 1e-5, "accountant": "prv", "mechanisms": []},
    "gate": {"verdict": "released", "clauses": [
        {"clause": "dp_figures.tstr_auc", "comparator": ">=", "threshold": 0.5, "passed": True}]},
    # "exact" is never in a real manifest; here it shows the predicate cannot carry it
    "dp_figures": {"tstr_auc": {"value": 0.7123, "noise_std": 0.0213, "l2_sensitivity": 0.01, "exact": 0.6999}},
}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub.pem")


@pytest.fixture
def bundle(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    return writer.write_bundle(
        tmp_path / "bundle", tables={"synthetic": pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})},
        text_files={"RELEASE_CARD.md": "# card\n", "cards/extra.md": "more\n"}, release=RELEASE,
        private_key=load_private_key(keys[0]), archive=True)


# --- a third-party verifier: securesystemslib only -------------------------------------------------------------


def _envelope(bundle: Path) -> Envelope:
    return Envelope.from_dict(json.loads((bundle / NAME).read_text()))


def _library_key(public_pem: Path) -> SSlibKey:
    return SSlibKey.from_crypto(load_pem_public_key(public_pem.read_bytes()))


def _statement(bundle: Path, public_pem: Path) -> dict:
    """The statement, after securesystemslib verified the envelope's signature with the public key."""
    envelope = _envelope(bundle)
    envelope.verify([_library_key(public_pem)], 1)
    return json.loads(envelope.payload)


def _digest_mismatches(bundle: Path, statement: dict) -> list[str]:
    return [s["name"] for s in statement["subject"]
            if hashlib.sha256((bundle / s["name"]).read_bytes()).hexdigest() != s["digest"]["sha256"]]


def _rewrite(bundle: Path, *, payload: bytes | None = None, sig: bytes | None = None) -> None:
    """Replace the envelope's payload and/or signature (base64 re-encoded, so only the bytes change)."""
    env = json.loads((bundle / NAME).read_text())
    if payload is not None:
        env["payload"] = base64.b64encode(payload).decode()
    if sig is not None:
        env["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    (bundle / NAME).write_bytes(json.dumps(env, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def test_library_accepts_the_envelope_and_every_subject_digest_matches(bundle, keys):
    statement = _statement(bundle, keys[1])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://synthrelease.dev/release/v1"
    assert _envelope(bundle).payload_type == "application/vnd.in-toto+json"
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {NAME}
    assert {s["name"] for s in statement["subject"]} == on_disk
    assert {"manifest.json", "manifest.sig", "cards/extra.md", "synthetic.parquet"} <= on_disk
    assert _digest_mismatches(bundle, statement) == []


def test_predicate_holds_the_release_facts_and_only_noisy_figures(bundle, keys):
    facts = _statement(bundle, keys[1])["predicate"]
    assert facts["policy"] == {"name": "default", "sha256": "ab" * 32}
    assert facts["privacy"] == {"epsilon": 1.0, "delta": 1e-5, "accountant": "prv"}
    assert facts["gate"]["verdict"] == "released" and facts["gate"]["clauses"][0]["passed"] is True
    assert facts["dp_figures"] == {"tstr_auc": {"value": 0.7123, "noise_std": 0.0213, "l2_sensitivity": 0.01}}
    assert "0.6999" not in json.dumps(facts)  # the exact figure never reaches the attestation
    assert facts["signer"]["public_key_sha256"] == json.loads((bundle / "manifest.json").read_text())[
        "release"]["signer"]["public_key_sha256"]


def test_flipping_a_data_byte_fails_the_digest_check(bundle, keys):
    data = bundle / "synthetic.csv"
    data.write_bytes(_flip(data.read_bytes(), 3))
    assert _digest_mismatches(bundle, _statement(bundle, keys[1])) == ["synthetic.csv"]


@pytest.mark.parametrize("part", ["payload", "sig"])
def test_flipping_a_payload_or_signature_byte_fails_the_library_signature_check(bundle, keys, part):
    env = _envelope(bundle)
    if part == "payload":
        _rewrite(bundle, payload=_flip(env.payload, len(env.payload) // 2))
    else:
        _rewrite(bundle, sig=_flip(bytes.fromhex(next(iter(env.signatures.values())).signature), 10))
    with pytest.raises(sslib_errors.VerificationError):
        _envelope(bundle).verify([_library_key(keys[1])], 1)
    with pytest.raises(VerificationError, match=r"attestation\.intoto\.jsonl: DSSE signature does not match"):
        verify_bundle(bundle, keys[1])


def test_another_key_fails_the_library_signature_check(bundle, tmp_path):
    _, other = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    other_key = _library_key(other)
    with pytest.raises(sslib_errors.VerificationError):
        _envelope(bundle).verify([other_key], 1)


def test_readme_snippet_verifies_without_synthrelease(bundle, keys, tmp_path):
    block = re.search(r"<!-- attestation-check -->\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README lost its attestation check"
    assert "synthrelease" not in "".join(line for line in block.group(1).splitlines() if "import" in line)
    script = tmp_path / "check_attestation.py"
    script.write_text(block.group(1))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), str(bundle), str(keys[1])], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)

    ok = run()
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 6 files match; policy default"), ok.stdout + ok.stderr
    extra = bundle / "cards" / "extra.md"
    extra.write_bytes(_flip(extra.read_bytes(), 0))
    bad = run()
    assert bad.returncode == 1 and "FAILED: cards/extra.md does not match its attested SHA-256" in bad.stderr


# --- synthrelease verify -----------------------------------------------------------------------------------------


def test_verify_accepts_folder_and_archive_with_the_attestation(bundle, keys):
    for target in (bundle, writer.archive_path(bundle)):
        result = verify_bundle(target, keys[1])
        assert result.attested and result.n_files == 4
        res = CliRunner().invoke(cli, ["verify", str(target), "--public-key", str(keys[1])])
        assert res.exit_code == 0 and "OK: attestation.intoto.jsonl: DSSE signature valid" in res.output


def _resigned_statement(bundle: Path, keys: tuple[Path, Path], change) -> None:
    """A statement changed by ``change`` and signed again with the bundle's own key (only the content is wrong)."""
    statement = json.loads(_envelope(bundle).payload)
    change(statement)
    (bundle / NAME).write_bytes(attestation.sign_statement(load_private_key(keys[0]), statement))


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["subject"][0]["digest"].update(sha256="0" * 64), "has another SHA-256 for file \"RELEASE_CARD.md\""),
    (lambda s: s["subject"].pop(), "names no file \"synthetic.parquet\""),
    (lambda s: s["subject"].append({"name": "x.csv", "digest": {"sha256": "0" * 64}}), "names an unknown file"),
    (lambda s: s["predicate"]["privacy"].update(epsilon=0.1), "predicate differs from the signed manifest"),
    (lambda s: s.update(predicateType="https://slsa.dev/provenance/v1"), "predicateType is not"),
])
def test_verify_rejects_a_signed_but_wrong_statement(bundle, keys, change, message):
    _resigned_statement(bundle, keys, change)
    _statement(bundle, keys[1])  # the library accepts it: the signature is genuine
    with pytest.raises(VerificationError, match=re.escape(message)):
        verify_bundle(bundle, keys[1])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda b: b[:-1] + b" \n", "not in canonical JSON"),
    (lambda b: b + b"{}\n", "not one line"),
    (lambda b: b.replace(b'"keyid":"', b'"keyid":"0'), "another key id"),
    (lambda b: b.replace(b'"payloadType":"application/vnd.in-toto+json"', b'"payloadType":"text/plain"'),
     "payloadType is not"),
])
def test_verify_rejects_a_malformed_envelope(bundle, keys, edit, message):
    (bundle / NAME).write_bytes(edit((bundle / NAME).read_bytes()))
    with pytest.raises(VerificationError, match=message):
        verify_bundle(bundle, keys[1])


def test_verify_rejects_a_tampered_attestation_inside_an_archive(bundle, keys):
    env = _envelope(bundle)
    _rewrite(bundle, payload=_flip(env.payload, 5))
    archive = writer.write_archive(bundle)  # a canonical archive of the tampered folder
    with pytest.raises(VerificationError, match=r"bundle/attestation.intoto.jsonl: DSSE signature does not match"):
        verify_bundle(archive, keys[1])


def test_removing_the_attestation_is_detected_and_a_legacy_bundle_still_verifies(bundle, keys):
    (bundle / NAME).unlink()
    with pytest.raises(VerificationError, match=r"attestation\.intoto\.jsonl is missing"):
        verify_bundle(bundle, keys[1])
    raw = (bundle / "manifest.json").read_bytes()  # a format /1 bundle: signed as such, no attestation
    legacy = raw.replace(b'"format":"synthrelease-bundle/2"', b'"format":"synthrelease-bundle/1"')
    assert legacy != raw
    (bundle / "manifest.json").write_bytes(legacy)
    (bundle / "manifest.sig").write_bytes(sign(load_private_key(keys[0]), legacy))
    result = verify_bundle(bundle, keys[1])
    assert not result.attested
    (bundle / NAME).write_text("{}\n")
    with pytest.raises(VerificationError, match=r"not in the manifest: attestation\.intoto\.jsonl"):
        verify_bundle(bundle, keys[1])


def test_writer_refuses_a_reserved_file_name(tmp_path, keys):
    with pytest.raises(BundleError, match=r"attestation\.intoto\.jsonl: a reserved bundle file name"):
        writer.write_bundle(tmp_path / "b", tables={}, text_files={NAME: "x"}, release={},
                            private_key=load_private_key(keys[0]))
    assert not (tmp_path / "b").exists()
