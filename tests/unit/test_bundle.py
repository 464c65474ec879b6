from __future__ import annotations

import json
import os
import stat

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
    assert result.n_files == 3
    assert sorted(p.name for p in bundle.iterdir()) == [
        "RELEASE_CARD.md", "manifest.json", "manifest.sig", "synthetic.csv", "synthetic.parquet"]
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

    def evil(bundle_dir, *, release):
        m = real_build(bundle_dir, release=release)
        m["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 1}
        return m

    monkeypatch.setattr(writer_module, "build_manifest", evil)
    out = writer_module.write_bundle(tmp_path / "b2", tables={}, text_files={"x.md": "x"}, release={},
                                     private_key=load_private_key(keys[0]))
    with pytest.raises(VerificationError, match="unsafe path"):
        verify_bundle(out, keys[1])


def test_crash_mid_write_leaves_nothing(tmp_path, keys, monkeypatch):
    def boom(bundle_dir, *, release):
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
