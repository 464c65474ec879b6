"""Verifying a bundle: signature, every hash and size, nothing but the listed files, the attestation.

A bundle FOLDER is checked in this order (:func:`_verify_folder`):

1. the public key is read (a bad key is bad input, exit 2);
2. ``manifest.json`` (at most 16 MiB) and ``manifest.sig`` (at most 1 KiB) are read, as
   regular files (no link followed, no FIFO opened);
3. the Ed25519 signature over the exact manifest bytes;
4. the manifest as strict JSON (:func:`synthrelease.io.strict_json.loads_strict`: no duplicate key,
   bounded nesting and numbers), its format, its signer, its file list;
5. the folder holds nothing but the listed regular files, the manifest, the signature, the
   attestation (format /2 only) and the folders holding listed files (``lstat``: no FIFO,
   socket, device, link, empty or unlisted folder, unlisted or hidden file);
6. every listed file: regular, its size, its SHA-256;
7. (format ``synthrelease-bundle/2``) ``attestation.intoto.jsonl`` (at most 32 MiB): its DSSE
   signature by the same key, and its in-toto statement exactly the one the verified
   manifest implies: every other file's SHA-256 and the manifest's release facts
   (:func:`synthrelease.bundle.attestation.check_attestation`). A format /1 bundle (written
   before attestations existed) has none, and its signed format says so, so removing the
   attestation from a /2 bundle is detected.

A ``.tar.gz`` ARCHIVE is never unpacked before its signed manifest is verified
(:func:`_verify_archive`): the signed sizes bound everything written afterwards.

Every name shown in a message passes through :func:`shown`, so a file name holding a
newline or a terminal escape cannot forge output lines.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from synthrelease.bundle import attestation
from synthrelease.bundle.manifest import ATTESTATION, BUNDLE_FORMAT, LEGACY_FORMAT, MANIFEST, RESERVED, SIGNATURE
from synthrelease.bundle.signing import key_fingerprint, load_public_key, verify_signature
from synthrelease.errors import InputFileError, SynthreleaseError, VerificationError
from synthrelease.io.strict_json import loads_strict

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
MAX_ARCHIVE_BYTES = 64 << 30
"""Most decompressed bytes read while looking for the manifest in an archive (a bomb before it)."""
MAX_MANIFEST_BYTES = 16 << 20
MAX_SIGNATURE_BYTES = 1 << 10
MAX_MEMBERS_BEFORE_MANIFEST = 100_000
MAX_EXTENDED_HEADER_BYTES = 1 << 16
"""Largest pax / GNU long-name header read into memory (a real one holds one path)."""
GZIP_PRECHECK_BYTES = 64 << 20
"""Output of the gzip check run before any tar header is read; beyond it, see :func:`_check_gzip_length`."""

_CHUNK = 1 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_EXTENDED_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                   tarfile.GNUTYPE_LONGLINK)
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check."""

    path: Path
    manifest: dict[str, Any]
    n_files: int
    attested: bool = False
    """True when the bundle's DSSE / in-toto attestation was verified too (format /2)."""


def shown(text: str) -> str:
    """``text`` safe to print on one line: non-printable characters and ``\\`` escaped.

    Newlines, terminal escapes (ESC), bidi controls and undecodable bytes (surrogates)
    become ``\\n``, ``\\x1b``, ``\\u202e``, ``\\udcff``, so a name cannot forge output.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


@dataclass(frozen=True)
class _Where:
    """How messages name a bundle: ``bundle`` starts every message, ``files`` prefixes paths in it."""

    bundle: str
    files: str = ""

    def at(self, rel: str) -> str:
        """``"<bundle>: <files><rel>"``, escaped."""
        return f"{self.bundle}: {self.files}{shown(rel)}"


def _safe_relative(rel: str) -> bool:
    """A non-empty, normalised, relative POSIX path in UTF-8: no empty, '.' or '..' part, no '\\' or NUL."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no signed bundle can hold it
        return False
    return bool(rel) and "\\" not in rel and "\0" not in rel and all(
        part not in ("", ".", "..") for part in rel.split("/"))


def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder holding one of ``paths`` (``a/b/c`` -> ``a``, ``a/b``)."""
    return {"/".join(parts[:i]) for parts in (p.split("/") for p in paths) for i in range(1, len(parts))}


def _kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


# --- the signed manifest --------------------------------------------------------------------------------------


def _listed_files(manifest: dict[str, Any], w: _Where) -> dict[str, tuple[int, str]]:
    """The signed file list as ``{path: (bytes, sha256)}``.

    Checks per entry, in sorted order: a safe normalised path (:func:`_safe_relative`) that
    is not (under) a reserved name (manifest.json, manifest.sig, attestation.intoto.jsonl);
    a non-negative integer size; a lower-case
    hex SHA-256. Then: no path is listed both as a file and as a folder.
    """
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise VerificationError(f"{w.bundle}: manifest has no file list")
    out: dict[str, tuple[int, str]] = {}
    for rel, entry in sorted(listed.items()):
        if not _safe_relative(rel) or rel.split("/")[0] in RESERVED:
            raise VerificationError(f"{w.bundle}: manifest lists an unsafe path '{shown(rel)}'")
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(digest, str)
                or not _SHA256_HEX.fullmatch(digest)):
            raise VerificationError(f"{w.at(rel)}: its manifest entry has no valid size and SHA-256")
        out[rel] = (size, digest)
    clash = sorted(set(out) & _folders(out))
    if clash:
        raise VerificationError(f"{w.at(clash[0])} is listed in the manifest both as a file and as a folder")
    return out


def _check_manifest(key: Ed25519PublicKey, manifest_bytes: bytes, signature: bytes,
                    w: _Where) -> tuple[dict[str, Any], dict[str, tuple[int, str]]]:
    """Verify a manifest held in memory; returns it and its file list.

    Order: the signature over the exact bytes; strict JSON; the format (/2, or the legacy /1);
    the signer's public-key fingerprint; the file list (:func:`_listed_files`).

    Raises:
        VerificationError: the first check that fails.
    """
    try:
        verify_signature(key, manifest_bytes, signature)
    except VerificationError as e:
        raise VerificationError(f"{w.bundle}: {e}") from None
    manifest = loads_strict(manifest_bytes, source=f"{w.bundle}: {w.files}{MANIFEST}", error=VerificationError)
    if not isinstance(manifest, dict) or manifest.get("format") not in (BUNDLE_FORMAT, LEGACY_FORMAT):
        raise VerificationError(f"{w.bundle}: manifest format is not {BUNDLE_FORMAT} (nor {LEGACY_FORMAT})")
    release = manifest.get("release")
    signer = release.get("signer") if isinstance(release, dict) else None
    if not isinstance(signer, dict) or signer.get("public_key_sha256") != key_fingerprint(key):
        raise VerificationError(f"{w.bundle}: manifest names another signer than the given public key")
    return manifest, _listed_files(manifest, w)


# --- a bundle folder ------------------------------------------------------------------------------------------


def _open_regular(path: Path, rel: str, w: _Where, missing: str = "is missing") -> BinaryIO:
    """Open a bundle file for reading; it must be a regular file.

    A symbolic link is refused by ``O_NOFOLLOW``, a FIFO cannot block the open
    (``O_NONBLOCK``), and the type is checked on the opened descriptor (``fstat``), so
    the file cannot be swapped between the check and the read.

    Raises:
        VerificationError: missing, a link, or not a regular file.
        InputFileError: it exists but cannot be read (permissions, I/O error).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise VerificationError(f"{w.at(rel)} {missing}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise VerificationError(f"{w.at(rel)} is a symbolic link") from None
        raise InputFileError(f"{w.at(rel)}: cannot read it ({e.strerror or type(e).__name__})") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise VerificationError(f"{w.at(rel)} is a {_kind(mode)}, not a regular file")
    return os.fdopen(fd, "rb")


def _read_small(root: Path, name: str, limit: int, w: _Where) -> bytes:
    """The whole of ``root/name``, a regular file of at most ``limit`` bytes."""
    with _open_regular(root / name, name, w) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise VerificationError(f"{w.at(name)} is larger than {limit} bytes")
    return data


def _walk(root: Path) -> Iterator[tuple[str, int]]:
    """Every entry under ``root``, hidden ones too, with its ``lstat`` mode; links are not followed.

    Raises:
        OSError: a folder cannot be listed.
    """
    def fail(e: OSError) -> None:
        raise e

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            yield Path(path).relative_to(root).as_posix(), os.lstat(path).st_mode


def _attested(manifest: dict[str, Any]) -> bool:
    """Whether a verified manifest's format requires the attestation file."""
    return manifest.get("format") == BUNDLE_FORMAT


def _check_tree(root: Path, listed: dict[str, tuple[int, str]], w: _Where, *, attested: bool) -> None:
    """The folder holds only the listed regular files, manifest.json, manifest.sig, the
    attestation (when ``attested``) and their folders.

    Every entry is looked at with ``lstat`` before any listed file is opened: a symbolic
    link, FIFO, socket or device, a folder holding no listed file (an empty one too) and
    an unlisted regular file (a hidden one too) are refused; unlisted files are named
    together.

    Raises:
        VerificationError: the first such entry (or all unlisted files), its name escaped.
        InputFileError: a folder cannot be listed.
    """
    folders, allowed = _folders(listed), set(listed) | {MANIFEST, SIGNATURE} | ({ATTESTATION} if attested else set())
    extra: list[str] = []
    try:
        for rel, mode in _walk(root):
            if stat.S_ISDIR(mode) and rel in listed:
                raise VerificationError(f"{w.at(rel)} is a folder, not the listed file")
            if stat.S_ISDIR(mode) and rel not in folders:
                raise VerificationError(f"{w.at(rel)} is a folder holding no listed file; a bundle holds "
                                        "nothing but its listed files")
            if stat.S_ISLNK(mode):
                raise VerificationError(f"{w.at(rel)} is a symbolic link")
            if not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
                raise VerificationError(f"{w.at(rel)} is a {_kind(mode)}, not a regular file")
            if stat.S_ISREG(mode) and rel not in allowed:
                extra.append(rel)
    except OSError as e:
        raise InputFileError(f"{w.bundle}: cannot list the bundle folder ({e.strerror or type(e).__name__})") from None
    if extra:
        raise VerificationError(f"{w.bundle}: file(s) not in the manifest: "
                                f"{', '.join(w.files + shown(rel) for rel in extra)}")


def _check_files(root: Path, listed: dict[str, tuple[int, str]], w: _Where) -> None:
    """Each listed file, in sorted order: opened as a regular file, its size, then its SHA-256."""
    for rel, (size, digest) in sorted(listed.items()):
        with _open_regular(root / rel, rel, w, missing="is listed in the manifest but missing") as f:
            if os.fstat(f.fileno()).st_size != size:
                raise VerificationError(f"{w.at(rel)} has the wrong size")
            try:
                actual = hashlib.file_digest(f, "sha256").hexdigest()
            except OSError as e:
                raise InputFileError(f"{w.at(rel)}: cannot read it ({e.strerror or type(e).__name__})") from None
        if actual != digest:
            raise VerificationError(f"{w.at(rel)} does not match its SHA-256 in the manifest")


def _check_attestation_file(root: Path, key: Ed25519PublicKey, manifest: dict[str, Any], manifest_bytes: bytes,
                            signature: bytes, listed: dict[str, tuple[int, str]], w: _Where) -> None:
    """Step 7: the attestation is signed by ``key`` and states exactly what the verified manifest implies."""
    data = _read_small(root, ATTESTATION, attestation.MAX_ATTESTATION_BYTES, w)
    digests = attestation.subjects({rel: digest for rel, (_, digest) in listed.items()}, manifest_bytes, signature)
    expected = attestation.build_statement(digests, attestation.release_predicate(manifest))
    attestation.check_attestation(key, data, expected=expected, where=w.at(ATTESTATION))


def _verify_folder(root: Path, key: Ed25519PublicKey, w: _Where) -> VerifiedBundle:
    """Steps 2 to 7 of the module docstring on one bundle folder."""
    manifest_bytes = _read_small(root, MANIFEST, MAX_MANIFEST_BYTES, w)
    signature = _read_small(root, SIGNATURE, MAX_SIGNATURE_BYTES, w)
    manifest, listed = _check_manifest(key, manifest_bytes, signature, w)
    attested = _attested(manifest)
    _check_tree(root, listed, w, attested=attested)
    _check_files(root, listed, w)
    if attested:
        _check_attestation_file(root, key, manifest, manifest_bytes, signature, listed, w)
    return VerifiedBundle(root, manifest, len(listed), attested)


# --- a bundle archive -----------------------------------------------------------------------------------------


class _OutputLimit(Exception):
    """More decompressed bytes than allowed (raised through tarfile, caught by the caller)."""


class _Inflated:
    """The decompressed bytes of a file's single gzip member, from its start, at most ``limit``.

    zlib checks the CRC-32 and the length at the end of the member. Corrupt data, a
    truncated stream or bytes after the member raise :class:`VerificationError`; output
    beyond ``limit`` raises :class:`_OutputLimit`. Nothing is buffered beyond one chunk.
    """

    def __init__(self, f: BinaryIO, limit: int, w: _Where) -> None:
        f.seek(0)
        self._f, self._limit, self._w = f, limit, w
        self._z = zlib.decompressobj(wbits=31)
        self.produced = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` at the (checked) end of the gzip member."""
        if size == 0:
            return b""
        want = size if size > 0 else _CHUNK
        while not self._z.eof:
            data = self._z.unconsumed_tail or self._f.read(_CHUNK)
            if not data:
                raise VerificationError(f"{self._w.bundle}: gzip data is truncated or followed by extra bytes")
            try:
                out = self._z.decompress(data, want)
            except zlib.error as e:
                raise VerificationError(f"{self._w.bundle}: corrupt gzip data ({e})") from None
            if out:
                self.produced += len(out)
                if self.produced > self._limit:
                    raise _OutputLimit(self.produced)
                return out
        if self._z.unused_data or self._f.read(1):
            raise VerificationError(f"{self._w.bundle}: gzip data is followed by extra bytes")
        return b""


def _drain(stream: _Inflated, sink: Callable[[bytes], Any] | None = None) -> None:
    """Read ``stream`` to its end, chunk by chunk, passing each chunk to ``sink``."""
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        if sink is not None:
            sink(chunk)


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses, before tarfile reads them into memory, the headers that can be bombs.

    tarfile reads a pax or GNU long-name header's data whole before returning the member it
    describes, and a sparse member's map as long as the archive says: an extended header
    larger than :data:`MAX_EXTENDED_HEADER_BYTES` and any sparse member (never in a bundle)
    are refused here. These hooks are tarfile's own (private) dispatch points.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise tarfile.ReadError(f"an extended header of {self.size} bytes")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile.ReadError("a sparse member")
        return super()._proc_member(tarfile_)  # type: ignore[misc]

    def _refuse_sparse(self, *args: Any) -> None:
        raise tarfile.ReadError("a sparse member")

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


@contextlib.contextmanager
def _reading_tar(f: BinaryIO, limit: int, w: _Where, too_big: str) -> Iterator[tarfile.TarFile]:
    """The archive as a forward-only tar stream of at most ``limit`` decompressed bytes.

    Raises:
        VerificationError: ``too_big`` once the output exceeds ``limit``; a corrupt gzip or
            tar stream (tarfile's and zlib's errors, in one line).
    """
    try:
        with tarfile.open(fileobj=_Inflated(f, limit, w), mode="r|",  # type: ignore[call-overload]
                          tarinfo=_BoundedTarInfo) as tar:
            yield tar
    except _OutputLimit:
        raise VerificationError(too_big) from None
    except (tarfile.TarError, EOFError, zlib.error, RecursionError) as e:  # recursion: chained pax headers
        raise VerificationError(f"{w.bundle}: not a readable .tar.gz bundle archive, or corrupt gzip data "
                                f"({type(e).__name__}: {shown(str(e))})") from None


def _precheck_gzip(f: BinaryIO, w: _Where) -> None:
    """Gzip integrity before any tar header is read (CRC, length, no extra bytes), bounded.

    A corrupted compressed byte otherwise reads as a misleading "missing file" or
    "signature" error. Decompresses at most :data:`GZIP_PRECHECK_BYTES`, writing nothing;
    a longer stream is checked whole by :func:`_check_gzip_length` once the signed sizes
    bound it.
    """
    with contextlib.suppress(_OutputLimit):
        _drain(_Inflated(f, GZIP_PRECHECK_BYTES, w))


def _check_member(m: tarfile.TarInfo, top: str | None, w: _Where) -> str:
    """One member header, before any of its data is read; returns the top folder's name.

    Checks, in order: a safe normalised relative path; a plain regular file or a folder
    (no link, device, FIFO or sparse file); under the same top folder as the members
    before it; the top folder itself is a folder.
    """
    name = shown(m.name)
    if not _safe_relative(m.name):
        raise VerificationError(f"{w.bundle}: archive member '{name}' has an unsafe path")
    if not (m.isdir() or (m.type in _FILE_TYPES and m.sparse is None)):
        raise VerificationError(f"{w.bundle}: archive member '{name}' is not a regular file or folder")
    parts = m.name.split("/")
    if top is not None and parts[0] != top:
        raise VerificationError(f"{w.bundle}: archive must hold exactly one bundle folder, found "
                                f"'{shown(parts[0])}' beside '{shown(top)}'")
    if len(parts) == 1 and not m.isdir():
        raise VerificationError(f"{w.bundle}: archive holds a file, not a bundle folder")
    return parts[0]


def _read_member(tar: tarfile.TarFile, m: tarfile.TarInfo, limit: int, w: _Where) -> bytes:
    """The data of a regular-file member of at most ``limit`` bytes (its header size is checked first)."""
    if not m.isfile() or m.size > limit:
        raise VerificationError(f"{w.bundle}: archive member '{shown(m.name)}' is not a file of at most "
                                f"{limit} bytes")
    src = tar.extractfile(m)
    return src.read() if src is not None else b""


def _read_signed_members(f: BinaryIO, w: _Where) -> tuple[str, bytes, bytes]:
    """Pass 1, nothing written: ``(top folder, manifest.json bytes, manifest.sig bytes)``.

    Streams member headers from the start, checking each (:func:`_check_member`), until
    ``<top>/manifest.json`` and ``<top>/manifest.sig`` are both read into memory (at most
    16 MiB and 1 KiB); the data of other members is skipped, not stored. Stops early: what
    follows the two is not decompressed in this pass. Bounded by
    :data:`MAX_MEMBERS_BEFORE_MANIFEST` members and :data:`MAX_ARCHIVE_BYTES` of output.
    """
    limits = {MANIFEST: MAX_MANIFEST_BYTES, SIGNATURE: MAX_SIGNATURE_BYTES}
    found: dict[str, bytes] = {}
    top: str | None = None
    too_big = f"{w.bundle}: archive decompresses to more than {MAX_ARCHIVE_BYTES} bytes before its manifest"
    with _reading_tar(f, MAX_ARCHIVE_BYTES, w, too_big) as tar:
        for count, m in enumerate(tar, 1):
            top = _check_member(m, top, w)
            if count > MAX_MEMBERS_BEFORE_MANIFEST:
                raise VerificationError(f"{w.bundle}: more than {MAX_MEMBERS_BEFORE_MANIFEST} archive members "
                                        "before its manifest")
            name = m.name[len(top) + 1:]
            if name in limits:
                if name in found:
                    raise VerificationError(f"{w.bundle}: archive member '{shown(m.name)}' appears twice")
                found[name] = _read_member(tar, m, limits[name], w)
                if len(found) == len(limits):
                    return top, found[MANIFEST], found[SIGNATURE]
    if top is None:
        raise VerificationError(f"{w.bundle}: archive holds no bundle folder")
    missing = MANIFEST if MANIFEST not in found else SIGNATURE
    raise VerificationError(f"{w.bundle}: {shown(top)}/{missing} is missing")


def _canonical_tar_bound(sizes: dict[str, int], folders: set[str]) -> int:
    """Upper bound of the tar stream :func:`~synthrelease.bundle.writer.canonical_tar` makes of these members.

    Exact headers (``TarInfo.tobuf`` in PAX format, as the writer uses), data padded to
    512-byte blocks, the end-of-archive blocks, plus one tar record of slack.
    """
    def header(name: str, size: int, is_dir: bool) -> int:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode = (tarfile.DIRTYPE, 0, 0o755) if is_dir else (tarfile.REGTYPE, size, 0o644)
        return len(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    block = tarfile.BLOCKSIZE
    files = sum(header(n, s, False) + -(-s // block) * block for n, s in sizes.items())
    return files + sum(header(d, 0, True) for d in folders) + 2 * block + 2 * tarfile.RECORDSIZE


def _check_gzip_length(f: BinaryIO, bound: int, w: _Where) -> None:
    """Before unpacking: the whole gzip member decompresses to at most ``bound`` bytes.

    ``bound`` is the canonical packing of the signed files; more output is a decompression
    bomb, refused having written nothing. zlib checks the CRC and length at the end.
    """
    with contextlib.suppress(_OutputLimit):
        _drain(_Inflated(f, bound, w))
        return
    raise VerificationError(f"{w.bundle}: archive decompresses to more than the {bound} bytes its signed files "
                            "need; refusing to unpack it (a decompression bomb?)")


def _unpack_failed(e: OSError, w: _Where, into: Path) -> SynthreleaseError:
    """The one-line error for an OSError while writing into the temporary folder (exit 2, not tampering)."""
    where = shown(str(into))
    if e.errno in _NO_SPACE:
        return SynthreleaseError(f"{w.bundle}: no space left to unpack into {where} ({os.strerror(e.errno)}): "
                                 "not evidence of tampering; an environment problem - free space there or set "
                                 "TMPDIR to a larger folder")
    return SynthreleaseError(f"{w.bundle}: cannot unpack into {where} ({e.strerror or type(e).__name__}): "
                             "not evidence of tampering; an environment problem")


@contextlib.contextmanager
def _scratch_folder(w: _Where) -> Iterator[Path]:
    """A private temporary folder, removed afterwards; failing to create it is an environment error."""
    try:
        tmp = tempfile.TemporaryDirectory(prefix="synthrelease-verify-", ignore_cleanup_errors=True)
    except OSError as e:
        raise _unpack_failed(e, w, Path(tempfile.gettempdir())) from None
    with tmp as name:
        yield Path(name)


def _check_signed_member(m: tarfile.TarInfo, sizes: dict[str, int], folders: set[str], seen: set[str],
                         w: _Where, capped: dict[str, int] | None = None) -> None:
    """A member header against the signed manifest: listed, at its signed size, not seen before.

    A folder must hold listed files (or be the top folder); a file must be listed (or be
    manifest.json / manifest.sig) and its header size must equal the signed size, or be one
    of ``capped`` (the attestation, whose size no manifest can state) within its cap.
    """
    capped = capped or {}
    name = shown(m.name)
    if m.name in seen:
        raise VerificationError(f"{w.bundle}: archive member '{name}' appears twice")
    if m.isdir():
        if m.name not in folders:
            raise VerificationError(f"{w.bundle}: archive member '{name}' is a folder holding no signed file")
    elif m.name in capped:
        if m.size > capped[m.name]:
            raise VerificationError(f"{w.bundle}: archive member '{name}' claims {m.size} bytes; at most "
                                    f"{capped[m.name]} are allowed")
    elif m.name not in sizes:
        raise VerificationError(f"{w.bundle}: archive member '{name}' is not in the signed manifest")
    elif m.size != sizes[m.name]:
        raise VerificationError(f"{w.bundle}: archive member '{name}' claims {m.size} bytes; the signed "
                                f"manifest says {sizes[m.name]}")


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, into: Path, w: _Where) -> None:
    """Create the member's folder, or a new file holding exactly its (checked) size of data.

    Raises:
        SynthreleaseError: the temporary folder cannot take it (full disk, quota: exit 2).
    """
    dest = into.joinpath(*m.name.split("/"))
    try:
        if m.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(m)
        with open(dest, "xb") as out:
            if src is not None:
                shutil.copyfileobj(src, out)
    except OSError as e:
        raise _unpack_failed(e, w, into) from None


def _extract_signed(f: BinaryIO, into: Path, top: str, sizes: dict[str, int], folders: set[str], bound: int,
                    w: _Where, capped: dict[str, int] | None = None) -> None:
    """Pass 2: unpack only what the signed manifest lists, each member checked before it is written.

    Per member header, in order: :func:`_check_member`, :func:`_check_signed_member`, and
    the bytes written so far plus its size within the signed total (so writing stops
    before it could exceed the signed sizes); then :func:`_write_member`. The tar stream
    itself is cut at ``bound`` decompressed bytes. ``capped``: members allowed up to a size
    (:func:`_check_signed_member`), counted in the total at their cap.
    """
    capped = capped or {}
    budget, seen = sum(sizes.values()) + sum(capped.values()), set[str]()
    too_big = f"{w.bundle}: archive decompresses to more than the {bound} bytes its signed files need"
    with _reading_tar(f, bound, w, too_big) as tar:
        for m in tar:
            _check_member(m, top, w)
            _check_signed_member(m, sizes, folders, seen, w, capped)
            seen.add(m.name)
            budget -= m.size if m.isfile() else 0
            if budget < 0:
                raise VerificationError(f"{w.bundle}: archive holds more bytes than its signed files")
            _write_member(tar, m, into, w)


def _check_canonical_archive(f: BinaryIO, folder: Path, w: _Where) -> None:
    """The archive must be exactly the canonical packing of its (verified) folder.

    The signature covers the files, not the container; requiring the exact gzip header and
    the tar stream :func:`synthrelease.bundle.writer.write_archive` produces (compared by
    length and SHA-256, decompressing at most its length) leaves no byte of the archive
    unauthenticated (gzip's CRC covers the compressed data).
    """
    from synthrelease.bundle.writer import GZIP_HEADER, canonical_tar

    f.seek(0)
    if f.read(len(GZIP_HEADER)) != GZIP_HEADER:
        raise VerificationError(f"{w.bundle}: gzip header is not the one synthrelease writes")
    expected, actual = canonical_tar(folder), hashlib.sha256()
    try:
        _drain(_Inflated(f, len(expected), w), actual.update)
    except _OutputLimit:
        actual = hashlib.sha256(b"longer")
    if actual.digest() != hashlib.sha256(expected).digest():
        raise VerificationError(f"{w.bundle}: tar stream differs from the canonical packing of its files "
                                "(a byte outside the signed files was changed)")


def _verify_archive(archive: Path, key: Ed25519PublicKey) -> VerifiedBundle:
    """Verify a ``.tar.gz`` bundle, unpacking only what its verified, signed manifest lists.

    Order: (1) gzip integrity of up to 64 MiB of output, nothing written
    (:func:`_precheck_gzip`); (2) member headers streamed up to manifest.json and
    manifest.sig, read into memory (:func:`_read_signed_members`); (3) signature, then
    manifest (:func:`_check_manifest`); (4) the whole gzip stream within the canonical size
    of the signed files, plus the attestation at its cap for format /2
    (:func:`_check_gzip_length`); (5) only then unpack, only signed members at their signed
    sizes, and the attestation within :data:`~synthrelease.bundle.attestation.MAX_ATTESTATION_BYTES`
    (:func:`_extract_signed`); (6) the unpacked folder passes every folder check, the
    attestation's included; (7) the archive is byte-for-byte the canonical packing of it.
    """
    w = _Where(shown(str(archive)))
    try:
        f = open(archive, "rb")  # one descriptor for every pass: the file cannot be swapped between them
    except OSError as e:
        raise InputFileError(f"{w.bundle}: cannot read archive ({e.strerror or type(e).__name__})") from None
    with f:
        _precheck_gzip(f, w)
        top, manifest_bytes, signature = _read_signed_members(f, w)
        inner = _Where(w.bundle, f"{shown(top)}/")
        manifest, listed = _check_manifest(key, manifest_bytes, signature, inner)
        sizes = {f"{top}/{rel}": size for rel, (size, _) in listed.items()}
        sizes |= {f"{top}/{MANIFEST}": len(manifest_bytes), f"{top}/{SIGNATURE}": len(signature)}
        capped = {f"{top}/{ATTESTATION}": attestation.MAX_ATTESTATION_BYTES} if _attested(manifest) else {}
        folders = {top} | {f"{top}/{d}" for d in _folders(listed)}
        bound = _canonical_tar_bound(sizes | capped, folders)
        _check_gzip_length(f, bound, w)
        with _scratch_folder(w) as tmp:
            _extract_signed(f, tmp, top, sizes, folders, bound, w, capped)
            result = _verify_folder(tmp / top, key, inner)
            _check_canonical_archive(f, tmp / top, w)
    return VerifiedBundle(archive, result.manifest, result.n_files, result.attested)


def verify_bundle(bundle_dir: str | os.PathLike[str], public_key_path: str | os.PathLike[str]) -> VerifiedBundle:
    """Check a bundle folder, or its ``.tar.gz`` archive, against the signer's public key.

    The public key is read first (a bad key is bad input, before anything else). A folder
    is checked by :func:`_verify_folder`, an archive by :func:`_verify_archive` (see the
    module docstring for the order). A ``.NAME.partial-*`` folder (a release stopped
    before its bundle was renamed into place) is refused.

    Raises:
        InputFileError: the bundle or the key file is missing or unreadable (exit 2).
        SynthreleaseError: no space to unpack an archive: an environment problem (exit 2).
        VerificationError: one line naming exactly what is wrong (exit 1).
    """
    root = Path(bundle_dir)
    name = shown(str(root))
    if root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        return _verify_archive(root, load_public_key(public_key_path))
    if root.is_file():
        raise InputFileError(f"{name}: not a bundle folder or a {' / '.join(ARCHIVE_SUFFIXES)} bundle archive")
    if not root.is_dir():
        raise InputFileError(f"{name}: bundle directory (or .tar.gz archive) not found")
    if root.name.startswith(".") and ".partial-" in root.name:
        raise VerificationError(f"{name}: an unfinished bundle staging folder (the release stopped before "
                                "the bundle was renamed into place); not a release")
    return _verify_folder(root, load_public_key(public_key_path), _Where(name))


def check_against_policy(manifest: dict[str, Any], policy_path: str | os.PathLike[str],
                         bundle: str | os.PathLike[str] | None = None) -> list[str]:
    """Check a verified manifest's ε, δ and accountant against a policy the verifier chooses.

    The signature proves who made the claims; this checks that the claims are acceptable
    to the verifier, whatever policy the signer used. Checks, in order: ε, δ finite numbers
    and an accountant named; ε > 0 and 0 < δ < 1 (otherwise the claim itself is invalid);
    then privacy.max_epsilon, privacy.max_delta, privacy.accountants. Returns one line per
    policy clause; ``bundle`` only names the bundle in error messages.

    Raises:
        PolicyError / InputFileError: the policy file is invalid (bad input).
        VerificationError: an invalid claim, or the first clause the manifest breaks, naming
            it and the policy.
    """
    from synthrelease.policy.schema import load_policy

    policy, _ = load_policy(policy_path)
    where = f"{shown(str(bundle))}: " if bundle is not None else ""
    release = manifest.get("release")
    priv = release.get("privacy") if isinstance(release, dict) else None
    priv = priv if isinstance(priv, dict) else {}
    eps, delta, accountant = priv.get("epsilon"), priv.get("delta"), priv.get("accountant")

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    if not number(eps) or not number(delta) or not isinstance(accountant, str):
        raise VerificationError(f"{where}manifest has no finite epsilon, delta and accountant "
                                f"to check against policy {policy.name} ({policy_path})")
    if eps <= 0:
        raise VerificationError(f"{where}manifest claims epsilon {eps:g}: an invalid privacy claim (epsilon must "
                                "be > 0)")
    if not 0 < delta < 1:
        raise VerificationError(f"{where}manifest claims delta {delta:g}: an invalid privacy claim (delta must be "
                                "> 0 and < 1)")
    name = f"policy {policy.name} ({policy_path})"
    pc = policy.privacy
    if eps > pc.max_epsilon:
        raise VerificationError(f"{where}manifest epsilon {eps:g} exceeds privacy.max_epsilon "
                                f"{pc.max_epsilon:g} of {name}")
    if delta > pc.max_delta:
        raise VerificationError(f"{where}manifest delta {delta:g} exceeds privacy.max_delta "
                                f"{pc.max_delta:g} of {name}")
    if accountant not in pc.accountants:
        raise VerificationError(f"{where}manifest accountant {shown(accountant)} is not in privacy.accountants "
                                f"{list(pc.accountants)} of {name}")
    return [f"privacy.max_epsilon: {eps:g} <= {pc.max_epsilon:g}", f"privacy.max_delta: {delta:g} <= {pc.max_delta:g}",
            f"privacy.accountants: {accountant} in {list(pc.accountants)}"]
