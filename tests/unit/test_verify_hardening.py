"""`synthrelease verify` against hostile bundles: bombs, odd files, forged output, strict JSON.

Every bundle here is tiny (text files only, no training). The gzip bombs decompress to
2 GiB of zeros but are ~2 MB on disk: they are built from one full-flush deflate segment
of 1 MiB of zeros, repeated; nothing ever decompresses them whole.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import socket
import struct
import tarfile
import tempfile
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synthrelease.bundle import verify as verify_module
from synthrelease.bundle import writer as writer_module
from synthrelease.bundle.signing import generate_keypair, load_private_key, sign
from synthrelease.bundle.verify import check_against_policy, verify_bundle
from synthrelease.cli import cli
from synthrelease.errors import InputFileError, SynthreleaseError, VerificationError
from synthrelease.io.strict_json import MAX_DEPTH, loads_strict, nesting_depth

BOMB_BYTES = 2 << 30
"""What the bomb member claims and holds (zeros), decompressed."""
WRITE_CAP = 16 << 20
"""Hard stop for bytes written while verifying (so a regression cannot fill the disk)."""
POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub.pem")


def _bundle(tmp_path: Path, keys: tuple[Path, Path], *, privacy: dict | None = None, archive: bool = False) -> Path:
    """A tiny signed bundle: RELEASE_CARD.md and synthetic.csv (plus manifest and signature)."""
    return writer_module.write_bundle(
        tmp_path / "bundle", tables={}, text_files={"RELEASE_CARD.md": "# card\n", "synthetic.csv": "a,b\n1,x\n"},
        release={"privacy": privacy or {"epsilon": 1.0, "delta": 1e-5, "accountant": "rdp"}},
        private_key=load_private_key(keys[0]), archive=archive)


def _signed_bytes(bundle: Path) -> int:
    """Bytes of every file the manifest signs, plus the manifest and its signature."""
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())


def _resign(bundle: Path, keys: tuple[Path, Path], manifest: bytes) -> None:
    """Replace manifest.json by ``manifest`` and sign it with the bundle's own key (a signed but hostile manifest)."""
    (bundle / "manifest.json").write_bytes(manifest)
    (bundle / "manifest.sig").write_bytes(sign(load_private_key(keys[0]), manifest))


def _verify_cli(bundle: Path, public_key: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["verify", str(bundle), "--public-key", str(public_key), *extra])


def _assert_one_line(result: Result, exit_code: int) -> str:
    """The CLI exited with ``exit_code`` after one printable line (no traceback, no control character)."""
    out = result.output
    assert result.exit_code == exit_code, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert out.endswith("\n") and "\n" not in out[:-1], repr(out)
    assert out[:-1].isprintable(), repr(out)
    return out


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _gzip_of(parts: list[tuple[bytes, int]]) -> bytes:
    """A valid single-member gzip (the writer's header, right CRC and length) of ``data * repeat`` per part.

    Each part is one full-flush raw-deflate segment (no back-reference crosses it), so a
    repeated part costs one compression, and the segments concatenate into one stream.
    """
    body, crc, size = [], 0, 0
    for data, repeat in parts:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        body.append((c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)) * repeat)
        for _ in range(repeat):
            crc = zlib.crc32(data, crc)
        size += len(data) * repeat
    body.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush())  # the final (empty) block
    return writer_module.GZIP_HEADER + b"".join(body) + struct.pack("<II", crc, size & 0xFFFFFFFF)


def _bomb_archive(bundle: Path, out: Path, *, member: str, size: int = BOMB_BYTES) -> Path:
    """The bundle's canonical tar with ``member`` (listed or not) last, claiming and holding ``size`` zero bytes."""
    with tarfile.open(fileobj=io.BytesIO(writer_module.canonical_tar(bundle))) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]
    head = b"".join(m.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + _padded(data)
                    for m, data in members if m.name != member)
    huge = tarfile.TarInfo(member)
    huge.size, huge.mode = size, 0o644
    head += huge.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert size % (1 << 20) == 0
    out.write_bytes(_gzip_of([(head, 1), (bytes(1 << 20), size >> 20), (bytes(2 * tarfile.BLOCKSIZE), 1)]))
    return out


def _archive_of(members: list[tuple[tarfile.TarInfo, bytes]], out: Path) -> Path:
    """A gzip'd tar of these members (headers as given), with the writer's gzip header."""
    raw = b"".join(m.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + _padded(d) for m, d in members)
    out.write_bytes(_gzip_of([(raw + bytes(2 * tarfile.BLOCKSIZE), 1)]))
    return out


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes held by each temporary folder verify creates, measured just before it is removed.

    Nothing in it is deleted before then, so this is the most it ever held.
    """
    held: list[int] = []
    real = tempfile.TemporaryDirectory

    class Measured(real):  # type: ignore[misc, valid-type]
        def cleanup(self) -> None:
            held.append(sum(p.stat().st_size for p in Path(self.name).rglob("*") if p.is_file()))
            super().cleanup()

    monkeypatch.setattr(tempfile, "TemporaryDirectory", Measured)
    return held


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes copied into files (not memory) by shutil / tarfile; stops the test beyond WRITE_CAP."""
    total = [0]
    real_shutil, real_tar = shutil.copyfileobj, tarfile.copyfileobj

    class Counting:
        def __init__(self, dst: io.BufferedIOBase) -> None:
            self.dst = dst

        def write(self, data: bytes) -> int:
            total[0] += 0 if isinstance(self.dst, io.BytesIO) else len(data)
            if total[0] > WRITE_CAP:
                raise AssertionError(f"verify wrote more than {WRITE_CAP} bytes")
            return self.dst.write(data)

    monkeypatch.setattr(shutil, "copyfileobj", lambda src, dst, length=0: real_shutil(src, Counting(dst), length))
    monkeypatch.setattr(tarfile, "copyfileobj", lambda src, dst, length=None, exception=OSError, bufsize=None:
                        real_tar(src, Counting(dst), length, exception, bufsize))
    return total


# --- 1. archives: nothing unpacked before the signed manifest is verified --------------------------------------


def test_genuine_archive_unpacks_exactly_the_signed_bytes(tmp_path, keys, scratch, written):
    bundle = _bundle(tmp_path, keys, archive=True)
    written[0] = 0
    res = _verify_cli(writer_module.archive_path(bundle), keys[1])
    assert res.exit_code == 0 and "OK: signature valid, 2 files match" in res.output, res.output
    assert scratch == [_signed_bytes(bundle)] and written[0] == _signed_bytes(bundle)


@pytest.mark.parametrize("member", ["bundle/synthetic.csv", "bundle/zz-unlisted.bin"])
def test_gzip_bomb_is_refused_having_written_at_most_the_signed_bytes(tmp_path, keys, member, scratch, written):
    bundle = _bundle(tmp_path, keys)
    bomb = _bomb_archive(bundle, tmp_path / "bomb.tar.gz", member=member)
    assert bomb.stat().st_size < 4 << 20  # 2 GiB of zeros, compressed
    written[0] = 0
    out = _assert_one_line(_verify_cli(bomb, keys[1]), 1)
    assert str(bomb) in out and "decompression bomb" in out, out
    assert max(scratch, default=0) <= _signed_bytes(bundle) and written[0] <= _signed_bytes(bundle)


@pytest.mark.parametrize(("member", "message"), [
    ("bundle/synthetic.csv", f"archive member 'bundle/synthetic.csv' claims {BOMB_BYTES} bytes; the signed "
                             "manifest says 8"),
    ("bundle/zz-unlisted.bin", "archive member 'bundle/zz-unlisted.bin' is not in the signed manifest")])
def test_unpacking_checks_each_header_against_the_signed_sizes(tmp_path, keys, member, message, scratch, written,
                                                               monkeypatch):
    """Defence in depth: with the whole-stream size check switched off, unpacking still stops at the header."""
    monkeypatch.setattr(verify_module, "_check_gzip_length", lambda *args: None)
    bundle = _bundle(tmp_path, keys)
    bomb = _bomb_archive(bundle, tmp_path / "bomb.tar.gz", member=member)
    written[0] = 0
    with pytest.raises(VerificationError) as e:
        verify_bundle(bomb, keys[1])
    assert str(e.value) == f"{bomb}: {message}"
    assert len(scratch) == 1 and scratch[0] <= _signed_bytes(bundle) and written[0] <= _signed_bytes(bundle)


def test_members_are_not_unpacked_unless_the_manifest_verifies(tmp_path, keys, scratch, written):
    bundle = _bundle(tmp_path, keys, archive=True)
    _, other_pub = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    written[0] = 0
    with pytest.raises(VerificationError, match="signature does not match"):
        verify_bundle(writer_module.archive_path(bundle), other_pub)
    assert scratch == [] and written == [0]  # no temporary folder was even created


def test_huge_pax_header_is_refused_before_it_is_read(tmp_path, keys):
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 256 << 20
    raw = pax.tobuf(tarfile.USTAR_FORMAT)
    bad = tmp_path / "pax.tar.gz"
    bad.write_bytes(_gzip_of([(raw, 1), (bytes(1 << 20), 256), (bytes(1024), 1)]))
    with pytest.raises(VerificationError, match="extended header of 268435456 bytes"):
        verify_bundle(bad, keys[1])


def _top() -> bytes:
    top = tarfile.TarInfo("bundle")
    top.type = tarfile.DIRTYPE
    return top.tobuf(tarfile.PAX_FORMAT)


def _gnu_sparse() -> bytes:
    member = tarfile.TarInfo("bundle/x")
    member.type = tarfile.GNUTYPE_SPARSE
    return _top() + member.tobuf(tarfile.GNU_FORMAT)


def _pax_sparse() -> bytes:
    member = tarfile.TarInfo("bundle/x")
    member.size = tarfile.BLOCKSIZE
    member.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "bundle/x",
                          "GNU.sparse.realsize": "10"}
    return _top() + member.tobuf(tarfile.PAX_FORMAT) + _padded(b"99999999999\n")


def _chained_pax_headers() -> bytes:
    record = b"13 comment=x\n"
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, len(record)
    return (pax.tobuf(tarfile.USTAR_FORMAT) + _padded(record)) * 3000 + _top()


@pytest.mark.parametrize("build", [_gnu_sparse, _pax_sparse, _chained_pax_headers])
def test_sparse_members_and_chained_headers_are_refused_in_one_line(tmp_path, keys, build):
    bad = tmp_path / "odd.tar.gz"
    bad.write_bytes(_gzip_of([(build() + bytes(2 * tarfile.BLOCKSIZE), 1)]))
    out = _assert_one_line(_verify_cli(bad, keys[1]), 1)
    assert f"{bad}: not a readable .tar.gz bundle archive" in out


def test_manifest_must_be_a_member_of_the_bundle_folder(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    top = tarfile.TarInfo("bundle")
    top.type = tarfile.DIRTYPE
    sub = tarfile.TarInfo("bundle/sub")
    sub.type = tarfile.DIRTYPE
    members = [(top, b""), (sub, b"")]
    for name in ("manifest.json", "manifest.sig"):
        data = (bundle / name).read_bytes()
        info = tarfile.TarInfo(f"bundle/sub/{name}")
        info.size = len(data)
        members.append((info, data))
    bad = _archive_of(members, tmp_path / "nested.tar.gz")
    with pytest.raises(VerificationError, match=r": bundle/manifest\.json is missing$"):
        verify_bundle(bad, keys[1])


def test_oversized_signature_member_is_refused_unread(tmp_path, keys):
    top = tarfile.TarInfo("bundle")
    top.type = tarfile.DIRTYPE
    sig = tarfile.TarInfo("bundle/manifest.sig")
    sig.size = 4096
    bad = _archive_of([(top, b""), (sig, bytes(4096))], tmp_path / "sig.tar.gz")
    with pytest.raises(VerificationError, match=r"'bundle/manifest\.sig' is not a file of at most 1024 bytes"):
        verify_bundle(bad, keys[1])


# --- 2. a full disk is an environment problem, not tampering ---------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_while_unpacking_is_an_environment_error(tmp_path, keys, monkeypatch, code):
    archive = writer_module.archive_path(_bundle(tmp_path, keys, archive=True))

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(shutil, "copyfileobj", full)
    monkeypatch.setattr(tarfile, "copyfileobj", full)
    with pytest.raises(SynthreleaseError) as e:
        verify_bundle(archive, keys[1])
    assert not isinstance(e.value, VerificationError) and e.value.exit_code == 2
    msg = str(e.value)
    assert msg.startswith(f"{archive}: no space left to unpack into ") and "synthrelease-verify-" in msg, msg
    assert "not evidence of tampering" in msg
    out = _assert_one_line(_verify_cli(archive, keys[1]), 2)
    assert "no space left to unpack" in out


# --- 3. a bundle folder holds nothing but its listed regular files ---------------------------------------------


def test_fifo_in_bundle_folder_is_refused(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    os.mkfifo(bundle / "pipe")
    with pytest.raises(VerificationError, match=r"bundle: pipe is a FIFO, not a regular file$"):
        verify_bundle(bundle, keys[1])
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert "pipe is a FIFO" in out


def test_listed_file_replaced_by_fifo_is_refused_without_blocking(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    (bundle / "synthetic.csv").unlink()
    os.mkfifo(bundle / "synthetic.csv")
    with pytest.raises(VerificationError, match=r"synthetic\.csv is a FIFO"):
        verify_bundle(bundle, keys[1])


def test_empty_subfolder_is_refused(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    (bundle / "empty").mkdir()
    with pytest.raises(VerificationError, match="empty is a folder holding no listed file"):
        verify_bundle(bundle, keys[1])
    _assert_one_line(_verify_cli(bundle, keys[1]), 1)


def test_hidden_file_socket_and_linked_folder_are_refused(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    (bundle / ".hidden").write_text("x")
    with pytest.raises(VerificationError, match=r"not in the manifest: \.hidden"):
        verify_bundle(bundle, keys[1])
    (bundle / ".hidden").unlink()
    (bundle / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(VerificationError, match="sub is a symbolic link"):
        verify_bundle(bundle, keys[1])
    (bundle / "sub").unlink()
    path = bundle / "s"
    if len(os.fsencode(path)) < 100:  # AF_UNIX path limit
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
            with pytest.raises(VerificationError, match="s is a socket"):
                verify_bundle(bundle, keys[1])
        path.unlink()
    verify_bundle(bundle, keys[1])


# --- 4. names are escaped: no forged output lines --------------------------------------------------------------


def test_control_characters_in_names_cannot_forge_output(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    (bundle / "evil\n\x1b[31mOK: signature valid").write_text("x")
    with pytest.raises(VerificationError) as e:
        verify_bundle(bundle, keys[1])
    assert str(e.value).endswith(r"not in the manifest: evil\n\x1b[31mOK: signature valid"), str(e.value)
    assert str(e.value).isprintable()
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert "\x1b" not in out and r"evil\n\x1b[31m" in out


def test_control_characters_in_archive_member_names_are_escaped(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    with tarfile.open(fileobj=io.BytesIO(writer_module.canonical_tar(bundle))) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]
    evil = tarfile.TarInfo("bundle/zz\r\x1b[2K\u202eOK")
    evil.size = 1
    bad = _archive_of([*members, (evil, b"x")], tmp_path / "evil.tar.gz")
    out = _assert_one_line(_verify_cli(bad, keys[1]), 1)
    assert r"'bundle/zz\r\x1b[2K\u202eOK' is not in the signed manifest" in out, out


# --- 5. strict JSON in the signed manifest ---------------------------------------------------------------------


def test_duplicate_key_in_signed_manifest_is_refused(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    raw = (bundle / "manifest.json").read_bytes()
    assert raw.count(b'"epsilon":1.0') == 1
    _resign(bundle, keys, raw.replace(b'"epsilon":1.0', b'"epsilon":9.0,"epsilon":1.0'))
    expected = 'duplicate key "epsilon" in the object at release.privacy'
    with pytest.raises(VerificationError, match=expected):
        verify_bundle(bundle, keys[1])
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert expected in out and "manifest.json" in out
    archive = writer_module.write_archive(bundle)
    out = _assert_one_line(_verify_cli(archive, keys[1]), 1)
    assert f"{archive}: bundle/manifest.json: {expected}" in out


def test_deeply_nested_signed_manifest_is_one_line_not_a_traceback(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    _resign(bundle, keys, b"[" * 100_000 + b"]" * 100_000)
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert "nested 100000 levels deep" in out


@pytest.mark.parametrize("digits", [4300, 5000])
def test_huge_integer_in_signed_manifest_is_refused(tmp_path, keys, digits):
    bundle = _bundle(tmp_path, keys)
    raw = (bundle / "manifest.json").read_bytes()
    _resign(bundle, keys, raw.replace(b'"epsilon":1.0', b'"epsilon":' + b"9" * digits))
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert f"integer of {digits} digits" in out


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1, "a": 2}', 'duplicate key "a" in the object at the top level'),
    ('{"files": {"x/y.csv": {"b": 1, "b": 1}}}', 'duplicate key "b" in the object at files["x/y.csv"]'),
    ("[NaN]", "NaN is not a JSON number"),
    ('{"e": -Infinity}', "-Infinity is not a JSON number"),
    ("[1e999]", "the number 1e999 overflows to infinity"),
    ("[" + "1" * 51 + "]", "integer of 51 digits"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested {MAX_DEPTH + 1} levels deep"),
    (b"\xff{}", "not UTF-8 text"),
    ('{"a": ', "not valid JSON (Expecting value at line 1 column 7)"),
])
def test_loads_strict_refuses_in_one_line(text, message):
    with pytest.raises(InputFileError) as e:
        loads_strict(text, source="doc.json")
    assert str(e.value).startswith("doc.json: ") and message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VerificationError):
        loads_strict(text, source="doc.json", error=VerificationError)


def test_loads_strict_accepts_ordinary_json_and_ignores_brackets_in_strings():
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert nesting_depth(deep) == MAX_DEPTH and loads_strict(deep, source="d") is not None
    text = '{"a": "[[[{{{\\"]]]", "b": [1, 2.5, -3, "x\\\\"], "c": {"d": null}}'
    assert nesting_depth(text) == 2
    assert loads_strict(text.encode(), source="d") == {"a": '[[[{{{"]]]', "b": [1, 2.5, -3, "x\\"], "c": {"d": None}}
    assert nesting_depth('"' + '\\"[' * 200_000) == 0  # an unterminated string: one linear scan


# --- 6. an unreadable listed file is bad input, in one line ----------------------------------------------------


def test_unreadable_listed_file_is_one_line_exit_2(tmp_path, keys, monkeypatch):
    bundle = _bundle(tmp_path, keys)
    real_os_open, real_open = os.open, builtins.open

    def denied(path, *args, **kwargs):
        if str(path).endswith("synthetic.csv"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return (real_os_open if args and isinstance(args[0], int) else real_open)(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", lambda path, flags, *a, **k: denied(path, flags, *a, **k))
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: denied(path, *a, **k))
    with pytest.raises(InputFileError, match=r"synthetic\.csv: cannot read it \(Permission denied\)"):
        verify_bundle(bundle, keys[1])
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 2)
    assert "Permission denied" in out


def test_listed_path_that_is_a_folder_is_one_line_exit_1(tmp_path, keys):
    bundle = _bundle(tmp_path, keys)
    (bundle / "synthetic.csv").unlink()
    (bundle / "synthetic.csv").mkdir()
    out = _assert_one_line(_verify_cli(bundle, keys[1]), 1)
    assert "synthetic.csv is a folder, not the listed file" in out


# --- 7. impossible privacy claims ------------------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "delta", "message"), [
    (-5, 1e-6, "manifest claims epsilon -5: an invalid privacy claim"),
    (0.0, 1e-6, "manifest claims epsilon 0: an invalid privacy claim"),
    (1.0, 0.0, "manifest claims delta 0: an invalid privacy claim"),
    (1.0, -1e-6, "manifest claims delta -1e-06: an invalid privacy claim"),
    (1.0, 1.0, "manifest claims delta 1: an invalid privacy claim"),
    (1.0, 1.5, "manifest claims delta 1.5: an invalid privacy claim"),
])
def test_policy_check_refuses_invalid_claims(epsilon, delta, message):
    release = {"privacy": {"epsilon": epsilon, "delta": delta, "accountant": "rdp"}}
    with pytest.raises(VerificationError, match=f"^b: {message}"):
        check_against_policy({"release": release}, POLICY, bundle="b")


def test_negative_epsilon_in_signed_bundle_fails_the_policy_check(tmp_path, keys):
    bundle = _bundle(tmp_path, keys, privacy={"epsilon": -5.0, "delta": 1e-6, "accountant": "rdp"})
    res = _verify_cli(bundle, keys[1], "--policy", str(POLICY))
    assert res.exit_code == 1, res.output
    assert f"{bundle}: manifest claims epsilon -5: an invalid privacy claim" in res.output
