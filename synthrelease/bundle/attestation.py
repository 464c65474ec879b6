"""The release attestation: a DSSE envelope over an in-toto Statement v1, ``attestation.intoto.jsonl``.

Besides ``manifest.sig`` (synthrelease's own signature of ``manifest.json``), every bundle
carries the same facts in the standard supply-chain form, so a partner can check it with any
DSSE / in-toto tool (e.g. ``securesystemslib``) without installing synthrelease:

- the file: one line, the envelope in canonical JSON, then ``\\n`` (an in-toto bundle of one
  attestation);
- the envelope: DSSE v1, ``payloadType`` :data:`PAYLOAD_TYPE`, exactly one Ed25519 signature
  over the DSSE pre-authentication encoding, by the key that signs ``manifest.json``;
  ``keyid`` is securesystemslib's default key id of that public key
  (``SSlibKey.from_crypto(public_key).keyid``);
- the statement (:data:`STATEMENT_TYPE`): ``subject`` = every other file of the bundle (the
  files the manifest lists, ``manifest.json`` and ``manifest.sig``), by relative POSIX path,
  sorted, each with its ``sha256``;
- the predicate (:data:`PREDICATE_TYPE`, :func:`release_predicate`): the release facts, copied
  from the signed manifest — public inputs and DP outputs only: the policy's name and
  SHA-256, ε, δ, accountant, the verdict and clauses, and each DP gate figure's NOISY value,
  noise std and L2 sensitivity (:data:`PUBLIC_FIGURE_KEYS`: an exact figure cannot pass).

Signed offline with the steward's key: no Sigstore, no certificate, no transparency log, no
network. Envelopes are made and checked with ``securesystemslib`` (``dsse.Envelope``,
``CryptoSigner``, ``SSlibKey``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib import exceptions as sslib_errors
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from synthrelease.bundle.manifest import MANIFEST, SIGNATURE, canonical_json
from synthrelease.errors import VerificationError
from synthrelease.io.files import sha256_bytes
from synthrelease.io.strict_json import loads_strict

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://synthrelease.dev/release/v1"
"""synthrelease's release predicate, version 1 (its fields: :func:`release_predicate`)."""
PUBLIC_FIGURE_KEYS = ("value", "noise_std", "l2_sensitivity")
"""What the predicate copies of each DP gate figure: the noisy value and its noise, nothing else."""
CLAUSE_KEYS = ("clause", "comparator", "threshold", "passed")
MAX_ATTESTATION_BYTES = 32 << 20
"""Largest attestation read: base64 makes it 4/3 of a statement no larger than a 16 MiB manifest."""


def release_predicate(manifest: dict[str, Any]) -> dict[str, Any]:
    """The predicate of a bundle's statement, from its (signed) manifest's release facts.

    Every key is always present (``null`` when the manifest lacks it). Only the fields named
    here are copied, so nothing else the manifest might hold reaches the attestation.
    """
    release = _dict(manifest.get("release"))
    tool, dataset, policy = _dict(release.get("tool")), _dict(release.get("dataset")), _dict(release.get("policy"))
    privacy, gate, signer = _dict(release.get("privacy")), _dict(release.get("gate")), _dict(release.get("signer"))
    clauses = gate.get("clauses")
    return {
        "bundle_format": manifest.get("format"),
        "tool": {"name": tool.get("name"), "version": tool.get("version")},
        "dataset": {"name": dataset.get("name"), "modality": dataset.get("modality")},
        "policy": {"name": policy.get("name"), "sha256": policy.get("sha256")},
        "privacy": {k: privacy.get(k) for k in ("epsilon", "delta", "accountant")},
        "gate": {"verdict": gate.get("verdict"),
                 "clauses": [{k: _dict(c).get(k) for k in CLAUSE_KEYS} for c in clauses]
                 if isinstance(clauses, list) else None},
        "dp_figures": {name: {k: _dict(f).get(k) for k in PUBLIC_FIGURE_KEYS}
                       for name, f in sorted(_dict(release.get("dp_figures")).items())},
        "signer": {"algorithm": signer.get("algorithm"), "public_key_sha256": signer.get("public_key_sha256")},
    }


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def subjects(file_digests: dict[str, str], manifest_bytes: bytes, signature: bytes) -> dict[str, str]:
    """``{path: sha256}`` of every file the statement names: the listed files, manifest.json, manifest.sig."""
    return {**file_digests, MANIFEST: sha256_bytes(manifest_bytes), SIGNATURE: sha256_bytes(signature)}


def build_statement(digests: dict[str, str], predicate: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1: one subject per ``digests`` entry (sorted by path) and ``predicate``."""
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": rel, "digest": {"sha256": d}} for rel, d in sorted(digests.items())],
            "predicateType": PREDICATE_TYPE, "predicate": predicate}


def key_id(public_key: Ed25519PublicKey) -> str:
    """The envelope's ``keyid``: securesystemslib's default key id of ``public_key``."""
    return SSlibKey.from_crypto(public_key).keyid


def sign_statement(private_key: Ed25519PrivateKey, statement: dict[str, Any]) -> bytes:
    """The attestation file's bytes: a DSSE envelope of ``statement`` signed by ``private_key``, one line."""
    envelope = Envelope(canonical_json(statement), PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(private_key))
    return canonical_json(envelope.to_dict()) + b"\n"


def check_attestation(public_key: Ed25519PublicKey, data: bytes, *, expected: dict[str, Any], where: str) -> None:
    """Verify an attestation file against the public key and the statement it must hold.

    Order: one line of canonical JSON; the envelope's shape (exactly payload, payloadType and
    one signature, canonical base64); the payload type; the key id; the DSSE signature
    (securesystemslib); then the statement: its types, its subjects against ``expected``'s
    (missing, extra, duplicate or changed digests named), its predicate, and finally its
    exact bytes (canonical JSON of ``expected``). ``where`` starts every message.

    Raises:
        VerificationError: the first check that fails, in one line.
    """
    def fail(what: str) -> VerificationError:
        return VerificationError(f"{where}: {what}")

    if not data.endswith(b"\n") or b"\n" in data[:-1]:
        raise fail("not one line ending in a newline (one DSSE envelope)")
    obj = loads_strict(data[:-1], source=where, error=VerificationError)
    sigs = obj.get("signatures") if isinstance(obj, dict) else None
    if (not isinstance(obj, dict) or set(obj) != {"payload", "payloadType", "signatures"}
            or not isinstance(obj["payload"], str) or not isinstance(obj["payloadType"], str)
            or not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict)
            or set(sigs[0]) != {"keyid", "sig"} or not all(isinstance(v, str) for v in sigs[0].values())):
        raise fail("not a DSSE envelope with payload, payloadType and exactly one signature (keyid, sig)")
    if canonical_json(obj) != data[:-1]:
        raise fail("the envelope is not in canonical JSON (sorted keys, no spaces)")
    if obj["payloadType"] != PAYLOAD_TYPE:
        raise fail(f"payloadType is not {PAYLOAD_TYPE}")
    key = SSlibKey.from_crypto(public_key)
    if sigs[0]["keyid"] != key.keyid:
        raise fail("signed with another key id than the given public key's")
    try:
        envelope = Envelope.from_dict({**obj, "signatures": [dict(sigs[0])]})
    except (ValueError, binascii.Error):
        raise fail("payload or signature is not valid base64") from None
    if (base64.standard_b64encode(envelope.payload).decode() != obj["payload"]
            or base64.standard_b64encode(bytes.fromhex(envelope.signatures[key.keyid].signature)).decode()
            != sigs[0]["sig"]):
        raise fail("payload or signature is not in canonical base64")
    try:
        envelope.verify([key], 1)
    except sslib_errors.VerificationError:
        raise fail("DSSE signature does not match (the attestation was changed, or signed with another key)") from None
    _check_statement(envelope.payload, expected, where)


def _check_statement(payload: bytes, expected: dict[str, Any], where: str) -> None:
    """The signed statement equals ``expected``; the message names the first difference."""
    statement = loads_strict(payload, source=f"{where}: payload", error=VerificationError)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"{where}: payload is not an in-toto Statement ({STATEMENT_TYPE})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(f"{where}: predicateType is not {PREDICATE_TYPE}")
    named = statement.get("subject")
    got: dict[str, Any] = {}
    for s in named if isinstance(named, list) else [None]:
        name = s.get("name") if isinstance(s, dict) else None
        if not isinstance(name, str) or name in got:
            raise VerificationError(f"{where}: a subject has no name, or a name twice")
        got[name] = s.get("digest")
    want = {s["name"]: s["digest"] for s in expected["subject"]}
    for what, names in (("names no", sorted(set(want) - set(got))), ("names an unknown", sorted(set(got) - set(want))),
                        ("has another SHA-256 for", sorted(n for n in want if n in got and got[n] != want[n]))):
        if names:
            raise VerificationError(f"{where}: its statement {what} file {json.dumps(names[0])}")
    if statement.get("predicate") != expected["predicate"]:
        raise VerificationError(f"{where}: its predicate differs from the signed manifest's release facts")
    if payload != canonical_json(expected):
        raise VerificationError(f"{where}: its statement is not exactly the one synthrelease writes")

