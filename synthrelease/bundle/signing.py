"""Ed25519 keys and signatures (``cryptography``).

The signature covers the exact bytes of ``manifest.json``; the manifest in turn lists
the SHA-256 and size of every other file in the bundle, so one signature check plus
the hash checks authenticate the whole bundle.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from synthrelease.errors import InputFileError, VerificationError
from synthrelease.io.files import write_bytes_atomic

log = logging.getLogger(__name__)


def generate_keypair(private_path: str | os.PathLike[str],
                     public_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create an Ed25519 key pair: private key PEM (PKCS8, mode 0600), public key PEM.

    Raises:
        InputFileError: either file already exists (keys are never overwritten), the two paths
            are the same, or a folder cannot take the file (checked before anything is written).
    """
    from synthrelease.io.outputs import check_writable, refuse_nested

    priv_p, pub_p = Path(private_path), Path(public_path)
    refuse_nested(priv_p, pub_p, names=("the private key path", "the public key path"))
    for p in (priv_p, pub_p):
        if p.exists() or p.is_symlink():
            raise InputFileError(f"{p}: key file already exists; refusing to overwrite it")
        check_writable(p, option="key file")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    write_bytes_atomic(priv_p, priv, mode=0o600)
    write_bytes_atomic(pub_p, pub, mode=0o644)
    return priv_p, pub_p


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key (PEM).

    Raises:
        InputFileError: missing file, or not an Ed25519 private key.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: signing key file not found (create one with `synthrelease keys generate`)")
    data = p.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        hint = " (it is a PUBLIC key: pass the private one, e.g. signing_key.pem)" \
            if b"BEGIN PUBLIC KEY" in data else ""
        raise InputFileError(f"{p}: not an unencrypted PEM private key{hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputFileError(f"{p}: not an Ed25519 private key")
    if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):  # only for a real private key
        log.warning("%s: private key is readable by group/others; chmod 600 it", p)
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM).

    Raises:
        InputFileError: missing file, or not an Ed25519 public key.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: public key file not found")
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except (ValueError, TypeError):
        raise InputFileError(f"{p}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputFileError(f"{p}: not an Ed25519 public key")
    return key


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return private_key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature.

    Raises:
        VerificationError: the signature does not match.
    """
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise VerificationError(
            "signature does not match manifest.json (the manifest was changed, or signed with another key)"
        ) from None
