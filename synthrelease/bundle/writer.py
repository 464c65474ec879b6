"""Writing a signed bundle: staged in a temporary sibling, renamed into place at the end.

A crash or kill at any point leaves either no bundle at the target or a complete one.
No private key is ever written into a bundle; the manifest names the signer by the
SHA-256 fingerprint of its public key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from synthrelease._io import staged_directory, write_bytes_atomic, write_table_atomic, write_text_atomic
from synthrelease.bundle.manifest import MANIFEST, SIGNATURE, build_manifest, canonical_json
from synthrelease.bundle.signing import key_fingerprint, sign


def write_bundle(out_dir: str | os.PathLike[str], *, tables: dict[str, pd.DataFrame], text_files: dict[str, str],
                 release: dict[str, Any], private_key: Ed25519PrivateKey) -> Path:
    """Write tables (CSV + Parquet), text files, ``manifest.json`` and ``manifest.sig``.

    ``manifest.sig`` holds the raw 64-byte Ed25519 signature of ``manifest.json``'s bytes.

    Raises:
        InputFileError: ``out_dir`` exists and is not empty.
    """
    target = Path(out_dir)
    with staged_directory(target) as tmp:
        for name, df in tables.items():
            write_table_atomic(tmp / f"{name}.csv", df)
            write_table_atomic(tmp / f"{name}.parquet", df)
        for name, text in text_files.items():
            write_text_atomic(tmp / name, text)
        release = {**release, "signer": {"algorithm": "Ed25519",
                                         "public_key_sha256": key_fingerprint(private_key.public_key())}}
        manifest_bytes = canonical_json(build_manifest(tmp, release=release))
        write_bytes_atomic(tmp / MANIFEST, manifest_bytes)
        write_bytes_atomic(tmp / SIGNATURE, sign(private_key, manifest_bytes))
    return target
