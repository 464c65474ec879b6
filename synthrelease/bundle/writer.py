"""Writing a signed bundle: staged in a temporary sibling, renamed into place at the end.

A crash or kill at any point leaves either no bundle at the target or a complete one.
No private key is ever written into a bundle; the manifest names the signer by the
SHA-256 fingerprint of its public key.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from synthrelease.bundle import attestation
from synthrelease.bundle.croissant import CROISSANT
from synthrelease.bundle.manifest import (
    ATTESTATION,
    MANIFEST,
    RESERVED,
    SIGNATURE,
    build_manifest,
    canonical_json,
    file_digests,
)
from synthrelease.bundle.signing import key_fingerprint, sign
from synthrelease.errors import BundleError
from synthrelease.io.files import atomic_output, staged_directory, write_bytes_atomic, write_text_atomic
from synthrelease.io.formats import write_table_atomic


def write_bundle(out_dir: str | os.PathLike[str], *, tables: dict[str, pd.DataFrame], text_files: dict[str, str],
                 release: dict[str, Any], private_key: Ed25519PrivateKey, archive: bool = False,
                 writers: dict[str, Callable[[Path], Any]] | None = None,
                 describe: Callable[[Path, dict[str, Any], dict[str, str]], bytes] | None = None) -> Path:
    """Write tables (CSV + Parquet), text files, ``croissant.json``, ``manifest.json``, ``manifest.sig``
    and the attestation.

    ``writers``: further files, by name, each written by its function given the file's path
    (e.g. the synthetic rows as AnnData); hashed and signed like every other file.

    ``describe``: given the staged folder (every file written), the release facts (with the
    signer) and every file's SHA-256 (hashed once; the manifest reuses them), returns the bytes
    of ``croissant.json`` (:func:`synthrelease.bundle.croissant.croissant_json`); written
    atomically before the manifest, so the manifest lists it and the signature covers it.

    ``manifest.sig`` holds the raw 64-byte Ed25519 signature of ``manifest.json``'s bytes.
    ``attestation.intoto.jsonl``, written last, holds the same key's DSSE envelope of an
    in-toto Statement naming every other file by its SHA-256, with the release facts as
    predicate (:mod:`synthrelease.bundle.attestation`).
    With ``archive``, also ``<out_dir>.tar.gz`` beside the folder (:func:`write_archive`),
    written after the folder is complete.

    Raises:
        InputFileError: ``out_dir`` exists and is not empty.
        BundleError: a table, text file or writer used a reserved name (manifest.json, ...).
    """
    target = Path(out_dir)
    with staged_directory(target) as tmp:
        for name, df in tables.items():
            write_table_atomic(tmp / f"{name}.csv", df)
            write_table_atomic(tmp / f"{name}.parquet", df)
        for name, text in text_files.items():
            write_text_atomic(tmp / name, text)
        for name, write in (writers or {}).items():
            write(tmp / name)
        reserved = (*RESERVED, CROISSANT) if describe is not None else RESERVED
        taken = [name for name in reserved if (tmp / name).exists() or (tmp / name).is_symlink()]
        if taken:
            raise BundleError(f"{taken[0]}: a reserved bundle file name; a table, text file or writer used it")
        release = {**release, "signer": {"algorithm": "Ed25519",
                                         "public_key_sha256": key_fingerprint(private_key.public_key())}}
        digests = file_digests(tmp)  # each file hashed once: croissant.json and the manifest share them
        if describe is not None:
            write_bytes_atomic(tmp / CROISSANT, describe(tmp, release, digests))
        manifest_bytes = canonical_json(build_manifest(tmp, release=release, known=digests))
        signature = sign(private_key, manifest_bytes)
        write_bytes_atomic(tmp / MANIFEST, manifest_bytes)
        write_bytes_atomic(tmp / SIGNATURE, signature)
        write_bytes_atomic(tmp / ATTESTATION, _attestation(private_key, manifest_bytes, signature))
    if archive:
        write_archive(target)
    return target


def _attestation(private_key: Ed25519PrivateKey, manifest_bytes: bytes, signature: bytes) -> bytes:
    """The signed envelope, built from the manifest's bytes exactly as a verifier parses them."""
    manifest = json.loads(manifest_bytes)
    digests = {rel: entry["sha256"] for rel, entry in manifest["files"].items()}
    statement = attestation.build_statement(attestation.subjects(digests, manifest_bytes, signature),
                                            attestation.release_predicate(manifest))
    return attestation.sign_statement(private_key, statement)


def archive_path(bundle_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`write_archive` puts a bundle's archive: ``<bundle>.tar.gz`` beside it."""
    p = Path(bundle_dir)
    return p.with_name(p.name + ".tar.gz")


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
"""The exact gzip header of every archive: no name, mtime 0, maximum compression, OS unknown."""


def canonical_tar(bundle_dir: str | os.PathLike[str]) -> bytes:
    """The uncompressed tar stream of a bundle folder, byte-for-byte deterministic.

    Members: the folder and its regular files under ``<bundle name>/``, sorted, mode
    0644/0755, owner 0:0 without names, mtime 0, PAX format.
    """
    root = Path(bundle_dir)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        top = tarfile.TarInfo(root.name)
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        add(top)
        for p in sorted(root.rglob("*")):
            info = tarfile.TarInfo(f"{root.name}/{p.relative_to(root).as_posix()}")
            if p.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                add(info)
            elif p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                info.size, info.mode = len(data), 0o644
                add(info, data)
    return buf.getvalue()


def write_archive(bundle_dir: str | os.PathLike[str]) -> Path:
    """Pack a finished bundle folder into one ``.tar.gz`` beside it (atomic).

    The tar stream is :func:`canonical_tar`; the gzip header is :data:`GZIP_HEADER`.
    ``synthrelease verify`` accepts the archive and checks that its tar stream is exactly
    the canonical packing of the verified files, so no byte of it is unauthenticated.
    """
    root = Path(bundle_dir)
    out = archive_path(root)
    with atomic_output(out) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(canonical_tar(root))
    return out
