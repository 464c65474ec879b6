"""The bundle manifest: what is in the bundle, its hashes, and the release facts.

``manifest.json`` is written in canonical JSON (sorted keys, no spaces, UTF-8), and the
signature covers exactly those bytes. Three names are reserved: ``manifest.json``,
``manifest.sig`` and ``attestation.intoto.jsonl`` (:mod:`synthrelease.bundle.attestation`,
written after the manifest, so it is not listed in it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthrelease.errors import BundleError
from synthrelease.io.files import sha256_file

BUNDLE_FORMAT = "synthrelease-bundle/2"
"""The format written: a bundle of this format must carry :data:`ATTESTATION`."""
LEGACY_FORMAT = "synthrelease-bundle/1"
"""Bundles written before the attestation existed: still verified, and must not carry one."""
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ATTESTATION = "attestation.intoto.jsonl"
RESERVED = (MANIFEST, SIGNATURE, ATTESTATION)
"""Names no listed file may have (nor a folder holding listed files)."""


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8; NaN/inf refused).

    Raises:
        BundleError: ``obj`` holds NaN, infinity or a non-JSON type.
    """
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (ValueError, TypeError) as e:
        raise BundleError(f"manifest is not valid JSON: {e}") from None


def bundle_files(bundle_dir: Path) -> list[str]:
    """POSIX relative paths of every file in the bundle except the reserved ones (:data:`RESERVED`)."""
    out = []
    for p in sorted(bundle_dir.rglob("*")):
        rel = p.relative_to(bundle_dir).as_posix()
        if p.is_symlink():
            out.append(rel)  # listed so that verification rejects it
        elif p.is_file() and rel not in RESERVED:
            out.append(rel)
    return out


def file_digests(bundle_dir: Path, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """SHA-256 of every file :func:`bundle_files` lists; ``known`` digests (of files written and
    hashed earlier in the same staging, never of files read back from a partner) are reused."""
    known = known or {}
    return {rel: known.get(rel) or sha256_file(bundle_dir / rel) for rel in bundle_files(bundle_dir)}


def build_manifest(bundle_dir: Path, *, release: dict[str, Any],
                   known: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The manifest of ``bundle_dir``: every file's SHA-256 (``known`` ones reused, see
    :func:`file_digests`) and size, plus ``release``."""
    files = {rel: {"sha256": digest, "bytes": (bundle_dir / rel).stat().st_size}
             for rel, digest in file_digests(bundle_dir, known).items()}
    return {
        "format": BUNDLE_FORMAT,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
        "release": release,
    }
