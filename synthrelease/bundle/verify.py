"""Verifying a bundle: signature, every hash and size, no extra or missing file."""

from __future__ import annotations

import json
import math
import os
import tarfile
import tempfile
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


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_ARCHIVE_BYTES = 64 << 30
"""Refuse archives whose members claim more than this in total (a decompression bomb)."""


def _extract_archive(archive: Path, into: Path) -> Path:
    """Unpack a bundle archive safely; returns the one bundle folder inside.

    Only regular files and folders under one top-level folder, relative paths without
    '..', no links or devices (checked member by member before anything is written, then
    extracted with tarfile's 'data' filter where Python has it).

    Raises:
        VerificationError: a member breaks those rules, or the archive is corrupt.
    """
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            tops = set()
            total = 0
            for m in members:
                parts = PurePosixPath(m.name).parts
                if not _safe_relative(m.name) or not parts:
                    raise VerificationError(f"{archive}: archive member {m.name!r} has an unsafe path")
                if not (m.isfile() or m.isdir()):
                    raise VerificationError(f"{archive}: archive member {m.name!r} is not a regular file or folder")
                tops.add(parts[0])
                total += m.size
            if len(tops) != 1:
                raise VerificationError(f"{archive}: archive must hold exactly one bundle folder, found {len(tops)}")
            if total > MAX_ARCHIVE_BYTES:
                raise VerificationError(f"{archive}: archive members claim {total} bytes; refusing to unpack")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, members=members, filter="data")
            else:  # Python < 3.11.4: the checks above are the filter
                tar.extractall(into, members=members)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise VerificationError(f"{archive}: not a readable .tar.gz bundle archive ({type(e).__name__})") from None
    folder = into / tops.pop()
    if not folder.is_dir():
        raise VerificationError(f"{archive}: archive holds a file, not a bundle folder")
    return folder


def _check_gzip_integrity(archive: Path) -> None:
    """Before unpacking: exactly one gzip member, its CRC and length intact.

    A corrupted compressed byte can otherwise read as an early end of the tar stream and
    surface as a misleading "missing file" error. (The exact header is checked after
    unpacking, by :func:`_check_canonical_archive`.)

    Raises:
        VerificationError: the gzip data is corrupt, truncated or followed by extra bytes.
    """
    import zlib

    try:
        with open(archive, "rb") as f:
            inflater = zlib.decompressobj(wbits=31)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                if inflater.eof:
                    raise VerificationError(f"{archive}: gzip data is followed by extra bytes")
                while chunk:
                    inflater.decompress(chunk, 1 << 20)
                    chunk = inflater.unconsumed_tail
    except zlib.error as e:
        raise VerificationError(f"{archive}: corrupt gzip data ({e})") from None
    except OSError as e:
        raise InputFileError(f"{archive}: cannot read archive ({type(e).__name__})") from None
    if not inflater.eof or inflater.unused_data:
        raise VerificationError(f"{archive}: gzip data is truncated or followed by extra bytes")


def _check_canonical_archive(archive: Path, folder: Path) -> None:
    """The archive must be exactly the canonical packing of its (verified) folder.

    The signature covers the files, not the container; requiring the exact gzip header
    and tar stream that :func:`synthrelease.bundle.writer.write_archive` produces leaves
    no byte of the archive unauthenticated (gzip's CRC covers the compressed data).
    """
    import zlib

    from synthrelease.bundle.writer import GZIP_HEADER, canonical_tar

    raw = archive.read_bytes()
    if raw[:len(GZIP_HEADER)] != GZIP_HEADER:
        raise VerificationError(f"{archive}: gzip header is not the one synthrelease writes")
    try:
        inflater = zlib.decompressobj(wbits=31)  # exactly one gzip member, CRC and length checked
        stream = inflater.decompress(raw) + inflater.flush()
    except zlib.error as e:
        raise VerificationError(f"{archive}: corrupt gzip data ({e})") from None
    if not inflater.eof or inflater.unused_data:
        raise VerificationError(f"{archive}: gzip data is truncated or followed by extra bytes")
    if stream != canonical_tar(folder):
        raise VerificationError(f"{archive}: tar stream differs from the canonical packing of its files "
                                "(a byte outside the signed files was changed)")


def verify_bundle(bundle_dir: str | os.PathLike[str], public_key_path: str | os.PathLike[str]) -> VerifiedBundle:
    """Check a bundle folder, or its ``.tar.gz`` archive, against the signer's public key.

    Order: files present → signature over manifest.json → signer fingerprint → format →
    every listed file (safe path, regular file, size, SHA-256) → no unlisted file. An
    archive is unpacked into a temporary folder (:func:`_extract_archive`) and removed
    afterwards. A ``.NAME.partial-*`` folder (a release stopped before its bundle was
    renamed into place) is refused.

    Raises:
        InputFileError: the bundle folder or the key file is missing or unreadable.
        VerificationError: one line naming exactly what is wrong.
    """
    root = Path(bundle_dir)
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        key_check = load_public_key(public_key_path)  # bad key: bad input before unpacking
        del key_check
        with tempfile.TemporaryDirectory(prefix="synthrelease-verify-") as tmp:
            _check_gzip_integrity(root)
            folder = _extract_archive(root, Path(tmp))
            try:
                inner = verify_bundle(folder, public_key_path)
            except VerificationError as e:  # name the archive, not the temporary folder
                raise VerificationError(str(e).replace(f"{folder}: ", f"{root}: {folder.name}/")) from None
            _check_canonical_archive(root, folder)
            return VerifiedBundle(root, inner.manifest, inner.n_files)
    if root.is_file():
        raise InputFileError(f"{root}: not a bundle folder or a {' / '.join(ARCHIVE_SUFFIXES)} bundle archive")
    if not root.is_dir():
        raise InputFileError(f"{root}: bundle directory (or .tar.gz archive) not found")
    if root.name.startswith(".") and ".partial-" in root.name:
        raise VerificationError(f"{root}: an unfinished bundle staging folder (the release stopped before "
                                "the bundle was renamed into place); not a release")
    key = load_public_key(public_key_path)
    for name in (MANIFEST, SIGNATURE):
        if not (root / name).is_file():
            raise VerificationError(f"{root}: {name} is missing")
    manifest_bytes = (root / MANIFEST).read_bytes()
    try:
        verify_signature(key, manifest_bytes, (root / SIGNATURE).read_bytes())
    except VerificationError as e:
        raise VerificationError(f"{root}: {e}") from None
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerificationError(f"{root}: manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise VerificationError(f"{root}: manifest format is not {BUNDLE_FORMAT}")
    release = manifest.get("release")
    signer = release.get("signer") if isinstance(release, dict) else None
    if not isinstance(signer, dict) or signer.get("public_key_sha256") != key_fingerprint(key):
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


def check_against_policy(manifest: dict[str, Any], policy_path: str | os.PathLike[str],
                         bundle: str | os.PathLike[str] | None = None) -> list[str]:
    """Check a verified manifest's ε, δ and accountant against a policy the verifier chooses.

    The signature proves who made the claims; this checks that the claims are acceptable
    to the verifier, whatever policy the signer used. Returns one line per clause checked
    (privacy.max_epsilon, privacy.max_delta, privacy.accountants); ``bundle`` only names
    the bundle in error messages.

    Raises:
        PolicyError / InputFileError: the policy file is invalid (bad input).
        VerificationError: the first clause the manifest breaks, naming it and the policy.
    """
    from synthrelease.policy.schema import load_policy

    policy, _ = load_policy(policy_path)
    where = f"{bundle}: " if bundle is not None else ""
    release = manifest.get("release")
    priv = release.get("privacy") if isinstance(release, dict) else None
    priv = priv if isinstance(priv, dict) else {}
    eps, delta, accountant = priv.get("epsilon"), priv.get("delta"), priv.get("accountant")

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    if not number(eps) or not number(delta) or not isinstance(accountant, str):
        raise VerificationError(f"{where}manifest has no finite epsilon, delta and accountant "
                                f"to check against policy {policy.name} ({policy_path})")
    name = f"policy {policy.name} ({policy_path})"
    pc = policy.privacy
    if eps > pc.max_epsilon:
        raise VerificationError(f"{where}manifest epsilon {eps:g} exceeds privacy.max_epsilon "
                                f"{pc.max_epsilon:g} of {name}")
    if delta > pc.max_delta:
        raise VerificationError(f"{where}manifest delta {delta:g} exceeds privacy.max_delta "
                                f"{pc.max_delta:g} of {name}")
    if accountant not in pc.accountants:
        raise VerificationError(f"{where}manifest accountant {accountant} is not in privacy.accountants "
                                f"{list(pc.accountants)} of {name}")
    return [f"privacy.max_epsilon: {eps:g} <= {pc.max_epsilon:g}", f"privacy.max_delta: {delta:g} <= {pc.max_delta:g}",
            f"privacy.accountants: {accountant} in {list(pc.accountants)}"]
