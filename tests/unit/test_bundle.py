from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from synthrelease.bundle import writer as writer_module
from synthrelease.bundle.signing import generate_keypair, load_private_key
from synthrelease.bundle.verify import verify_bundle
from synthrelease.errors import InputFileError, VerificationError


@pytest.fixture
def keys(tmp_path):
    return generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub.pem")


@pytest.fixture
def bundle(tmp_path, keys):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    return writer_module.write_bundle(
        tmp_path / "bundle", tables={"synthetic": df}, text_files={"RELEASE_CARD.md": "# card\n"},
        release={"privacy": {"epsilon": 1.0, "delta": 1e-5}}, private_key=load_private_key(keys[0]))


def test_private_key_mode_and_no_overwrite(keys):
    priv, pub = keys
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    with pytest.raises(InputFileError, match="already exists"):
        generate_keypair(priv, pub.with_name("other.pub"))


def test_round_trip_verifies(bundle, keys):
    result = verify_bundle(bundle, keys[1])
    assert result.n_files == 3 and result.attested
    assert sorted(p.name for p in bundle.iterdir()) == [
        "RELEASE_CARD.md", "attestation.intoto.jsonl", "manifest.json", "manifest.sig", "synthetic.csv",
        "synthetic.parquet"]
    assert "PRIVATE KEY" not in "".join(p.read_text(errors="ignore") for p in bundle.iterdir())


def test_flipping_any_byte_fails_verification(bundle, keys):
    for path in sorted(bundle.iterdir()):
        original = path.read_bytes()
        for pos in sorted({0, len(original) // 2, len(original) - 1}):
            data = bytearray(original)
            data[pos] ^= 0x01
            path.write_bytes(bytes(data))
            with pytest.raises(VerificationError):
                verify_bundle(bundle, keys[1])
        path.write_bytes(original)
    verify_bundle(bundle, keys[1])


def test_extra_missing_and_wrong_key(bundle, keys, tmp_path):
    (bundle / "extra.txt").write_text("x")
    with pytest.raises(VerificationError, match=r"extra\.txt"):
        verify_bundle(bundle, keys[1])
    (bundle / "extra.txt").unlink()
    data = (bundle / "synthetic.csv").read_bytes()
    (bundle / "synthetic.csv").unlink()
    with pytest.raises(VerificationError, match=r"synthetic\.csv"):
        verify_bundle(bundle, keys[1])
    (bundle / "synthetic.csv").write_bytes(data)
    _, other_pub = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    with pytest.raises(VerificationError, match="signature"):
        verify_bundle(bundle, other_pub)


def test_manifest_path_escaping_the_bundle_is_rejected(tmp_path, keys, monkeypatch):
    real_build = writer_module.build_manifest

    def evil(bundle_dir, *, release, **kw):
        m = real_build(bundle_dir, release=release, **kw)
        m["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 1}
        return m

    monkeypatch.setattr(writer_module, "build_manifest", evil)
    out = writer_module.write_bundle(tmp_path / "b2", tables={}, text_files={"x.md": "x"}, release={},
                                     private_key=load_private_key(keys[0]))
    with pytest.raises(VerificationError, match="unsafe path"):
        verify_bundle(out, keys[1])


def test_crash_mid_write_leaves_nothing(tmp_path, keys, monkeypatch):
    def boom(bundle_dir, *, release, **kw):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(writer_module, "build_manifest", boom)
    with pytest.raises(RuntimeError):
        writer_module.write_bundle(tmp_path / "b3", tables={"s": pd.DataFrame({"a": [1]})}, text_files={},
                                   release={}, private_key=load_private_key(keys[0]))
    assert not (tmp_path / "b3").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b3")]


def test_manifest_is_canonical_json(bundle):
    raw = (bundle / "manifest.json").read_bytes()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_every_byte_of_every_file_is_authenticated(bundle, keys):
    """Flip each byte (one bit) of every file in turn: verification must fail every time."""
    flips = 0
    for path in sorted(bundle.iterdir()):
        original = path.read_bytes()
        for pos in range(len(original)):
            data = bytearray(original)
            data[pos] ^= 1 << (pos % 8)
            path.write_bytes(bytes(data))
            with pytest.raises(VerificationError):
                verify_bundle(bundle, keys[1])
            flips += 1
        path.write_bytes(original)
    assert flips > 1000
    verify_bundle(bundle, keys[1])


def test_archive_is_deterministic_verifies_and_every_byte_counts(bundle, keys, tmp_path):
    import gzip

    archive = writer_module.write_archive(bundle)
    assert archive == tmp_path / "bundle.tar.gz"
    first = archive.read_bytes()
    assert writer_module.write_archive(bundle).read_bytes() == first
    assert first[:10] == writer_module.GZIP_HEADER
    assert verify_bundle(archive, keys[1]).n_files == 3
    # Every byte: verification fails, or the flip hit one of deflate's padding bits, which
    # carry no data (the unpacked tar stream is then byte-identical: nothing changed).
    stream = gzip.decompress(first)
    caught = 0
    for pos in range(len(first)):
        data = bytearray(first)
        data[pos] ^= 1 << (pos % 8)
        archive.write_bytes(bytes(data))
        try:
            verify_bundle(archive, keys[1])
        except VerificationError:
            caught += 1
        else:
            assert gzip.decompress(bytes(data)) == stream, pos
    assert caught >= 0.98 * len(first)
    archive.write_bytes(first + b"\0")
    with pytest.raises(VerificationError):
        verify_bundle(archive, keys[1])


def test_archive_with_unsafe_members_is_refused_before_extraction(tmp_path, keys):
    import io
    import tarfile

    for name, kind in [("../evil.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE),
                       ("b/link", tarfile.SYMTYPE)]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(buf.getvalue())
        with pytest.raises(VerificationError, match="archive member"):
            verify_bundle(bad, keys[1])
    assert not (tmp_path.parent / "evil.txt").exists()


def test_unfinished_staging_folder_is_never_a_release(bundle, keys, tmp_path):
    staged = tmp_path / ".bundle.partial-abc123"
    bundle.rename(staged)
    with pytest.raises(VerificationError, match="unfinished bundle"):
        verify_bundle(staged, keys[1])


def test_verify_against_a_policy_names_the_clause(tmp_path, keys):
    import yaml
    from click.testing import CliRunner

    from synthrelease.cli import cli

    df = pd.DataFrame({"a": [1, 2, 3]})
    out = writer_module.write_bundle(
        tmp_path / "b", tables={"synthetic": df}, text_files={},
        release={"privacy": {"epsilon": 3.0, "delta": 1e-6, "accountant": "rdp"}},
        private_key=load_private_key(keys[0]), archive=True)
    repo = Path(__file__).resolve().parents[2] / "policies"
    ok = CliRunner().invoke(cli, ["verify", str(out), "--public-key", str(keys[1]), "--policy",
                                  str(repo / "default.yaml")])
    assert ok.exit_code == 0 and "OK: privacy.max_epsilon: 3 <= 5" in ok.output, ok.output
    strict = CliRunner().invoke(cli, ["verify", f"{out}.tar.gz", "--public-key", str(keys[1]), "--policy",
                                      str(repo / "consortium-strict.yaml")])
    assert strict.exit_code == 1
    assert "manifest epsilon 3 exceeds privacy.max_epsilon 1 of policy consortium-strict" in strict.output
    doc = yaml.safe_load((repo / "default.yaml").read_text())
    doc["privacy"]["accountants"] = ["prv"]
    (tmp_path / "prv-only.yaml").write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(cli, ["verify", str(out), "--public-key", str(keys[1]), "--policy",
                                   str(tmp_path / "prv-only.yaml")])
    assert res.exit_code == 1 and "accountant rdp is not in privacy.accountants" in res.output
    (tmp_path / "broken.yaml").write_text("version: 2\nname: x\n")
    res = CliRunner().invoke(cli, ["verify", str(out), "--public-key", str(keys[1]), "--policy",
                                   str(tmp_path / "broken.yaml")])
    assert res.exit_code == 2 and "broken.yaml" in res.output


def test_errors_inside_an_archive_name_the_archive(bundle, keys, tmp_path):
    import gzip
    import io
    import tarfile

    archive = writer_module.write_archive(bundle)
    # Repack with one changed data byte (a valid archive whose files no longer match).
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            if m.name.endswith("synthetic.csv"):
                data = data.replace(b"x", b"w")
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    archive.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    with pytest.raises(VerificationError) as e:
        verify_bundle(archive, keys[1])
    msg = str(e.value)
    assert msg.startswith(f"{archive}: bundle/synthetic.csv") and "synthrelease-verify-" not in msg, msg
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InputFileError, match="not a bundle folder"):
        verify_bundle(other, keys[1])


def test_archive_with_hardlink_or_device_is_refused(tmp_path, keys):
    import io
    import tarfile

    for kind in (tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            top = tarfile.TarInfo("b")
            top.type = tarfile.DIRTYPE
            tar.addfile(top)
            info = tarfile.TarInfo("b/x")
            info.type, info.linkname = kind, "b/y" if kind == tarfile.LNKTYPE else ""
            tar.addfile(info)
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(buf.getvalue())
        with pytest.raises(VerificationError, match="not a regular file or folder"):
            verify_bundle(bad, keys[1])


def test_wrong_key_error_names_the_bundle(bundle, tmp_path):
    _, other_pub = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    with pytest.raises(VerificationError, match=f"^{bundle}: signature does not match"):
        verify_bundle(bundle, other_pub)


def test_policy_check_refuses_missing_or_non_finite_claims():
    from synthrelease.bundle.verify import check_against_policy

    policy = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
    for release in ([], {"privacy": []}, {"privacy": {"epsilon": float("nan"), "delta": 1e-6, "accountant": "rdp"}},
                    {"privacy": {"epsilon": True, "delta": 1e-6, "accountant": "rdp"}},
                    {"privacy": {"epsilon": 1.0, "delta": float("inf"), "accountant": "rdp"}}):
        with pytest.raises(VerificationError, match="no finite epsilon, delta and accountant"):
            check_against_policy({"release": release}, policy, bundle="b")
    with pytest.raises(VerificationError, match=r"^b: manifest delta 0\.001 exceeds privacy\.max_delta 1e-05"):
        check_against_policy({"release": {"privacy": {"epsilon": 1, "delta": 1e-3, "accountant": "rdp"}}},
                             policy, bundle="b")


def test_corrupt_compressed_bytes_are_reported_as_gzip_corruption(bundle, keys):
    archive = writer_module.write_archive(bundle)
    first = archive.read_bytes()
    for pos in (len(first) // 3, len(first) // 2, len(first) - 12, len(first) - 3):
        data = bytearray(first)
        data[pos] ^= 0xFF
        archive.write_bytes(bytes(data))
        with pytest.raises(VerificationError, match=f"^{archive}: .*gzip"):
            verify_bundle(archive, keys[1])
    archive.write_bytes(first[:-5])
    with pytest.raises(VerificationError, match="truncated"):
        verify_bundle(archive, keys[1])


def test_a_public_key_as_signing_key_is_named_without_a_permission_warning(tmp_path, caplog):
    """Issue 26.9: `--signing-key PUBLIC.pem` printed a bogus group/other permission warning."""
    import os

    from synthrelease.bundle.signing import generate_keypair, load_private_key
    from synthrelease.errors import InputFileError

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    os.chmod(tmp_path / "k.pub", 0o644)
    with pytest.raises(InputFileError, match="PUBLIC key"):
        load_private_key(tmp_path / "k.pub")
    assert "readable by group" not in caplog.text
