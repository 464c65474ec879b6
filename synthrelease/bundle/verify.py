"""Verifying a bundle: signature, every hash and size, no extra or missing file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from synthrelease._io import sha256_file
from synthrelease.bundle.manifest import BUNDLE_FORMAT, MANIFEST, SIGNATURE, bundle_files
from synthrelease.bundle.signing import key_fingerprint, load_public_key, verify_signature
from synthrelease.errors import InputFileError, VerificationError


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check."""

    path: Path
    manifest: dict[str, Any]
    n_files: int


def _safe_relative(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def verify_bundle(bundle_dir: str | os.PathLike[str], public_key_path: str | os.PathLike[str]) -> VerifiedBundle:
    """Check ``bundle_dir`` against the signer's public key.

    Order: files present → signature over manifest.json → signer fingerprint → format →
    every listed file (safe path, regular file, size, SHA-256) → no unlisted file.

    Raises:
        InputFileError: the bundle folder or the key file is missing or unreadable.
        VerificationError: one line naming exactly what is wrong.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise InputFileError(f"{root}: bundle directory not found")
    key = load_public_key(public_key_path)
    for name in (MANIFEST, SIGNATURE):
        if not (root / name).is_file():
            raise VerificationError(f"{root}: {name} is missing")
    manifest_bytes = (root / MANIFEST).read_bytes()
    verify_signature(key, manifest_bytes, (root / SIGNATURE).read_bytes())
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerificationError(f"{root}: manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise VerificationError(f"{root}: manifest format is not {BUNDLE_FORMAT}")
    signer = manifest.get("release", {}).get("signer", {})
    if signer.get("public_key_sha256") != key_fingerprint(key):
        raise VerificationError(f"{root}: manifest names another signer than the given public key")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise VerificationError(f"{root}: manifest has no file list")
    for rel, entry in sorted(listed.items()):
        if not _safe_relative(rel) or rel in (MANIFEST, SIGNATURE):
            raise VerificationError(f"{root}: manifest lists an unsafe path {rel!r}")
        p = root / rel
        if p.is_symlink():
            raise VerificationError(f"{root}: {rel} is a symbolic link")
        if not p.is_file():
            raise VerificationError(f"{root}: {rel} is listed in the manifest but missing")
        if not isinstance(entry, dict) or p.stat().st_size != entry.get("bytes"):
            raise VerificationError(f"{root}: {rel} has the wrong size")
        if sha256_file(p) != entry.get("sha256"):
            raise VerificationError(f"{root}: {rel} does not match its SHA-256 in the manifest")
    extra = [rel for rel in bundle_files(root) if rel not in listed]
    if extra:
        raise VerificationError(f"{root}: file(s) not in the manifest: {', '.join(extra)}")
    return VerifiedBundle(root, manifest, len(listed))
