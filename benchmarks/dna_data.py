"""The nucleotide benchmark set: UCI's primate splice-junction sequences, as R's mlbench ships them.

Writes ``benchmarks/data/splice_dna.csv`` (columns ``id``, ``sequence``, ``label``): 3,186 DNA
windows of 60 nt (positions −30 … +30 around the candidate junction), labelled ``ei``
(exon→intron boundary, donor), ``ie`` (intron→exon boundary, acceptor) or ``n`` (neither).
Source and licence: ``benchmarks/data/README.md``.

The sequences come from the ``DNA`` data set of the R package mlbench 2.1-3 (StatLog's version
of the UCI data: each nucleotide as three indicator variables, A = 100, C = 010, G = 001,
T = 000), taken from Debian's ``r-cran-mlbench`` 2.1-3-1 (a package registry, so reachable
here). The script checks the .deb's SHA-256, extracts ``data/DNA.rda`` in Python (ar + tar),
reads it with pyreadr (``pip install pyreadr``: only this script needs it) and decodes the
indicators; ``id`` is ``splice-<R row name>``. The decoding is checked against the biology:
nearly every ``ei`` window has GT at +1/+2 (positions 31–32) and every ``ie`` window AG at
−2/−1 (positions 29–30).

    python benchmarks/dna_data.py [--deb r-cran-mlbench_2.1-3-1_amd64.deb] [--out PATH]

Without ``--deb`` it runs ``apt-get download r-cran-mlbench=2.1-3-1`` in a temporary folder.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "splice_dna.csv"
DEB_VERSION = "2.1-3-1"
DEB_SHA256 = "2f1127f7b5e7d08703b13b52ef1976a0c355a7660d6ac575e29b87b13921bc06"
MEMBER = "./usr/lib/R/site-library/mlbench/data/DNA.rda"
CODES = {(1, 0, 0): "A", (0, 1, 0): "C", (0, 0, 1): "G", (0, 0, 0): "T"}
LENGTH = 60
LABELS = ("ei", "ie", "n")


def _ar_member(deb: bytes, prefix: str) -> tuple[str, bytes]:
    """The first member of a Debian ar archive whose name starts with ``prefix``."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = deb[pos + 60:pos + 60 + size]
        if name.startswith(prefix):
            return name, body
        pos += 60 + size + (size % 2)
    raise ValueError(f"no member {prefix}* in the .deb")


def read_rda(deb_path: Path) -> pd.DataFrame:
    """mlbench's ``DNA`` data frame (180 indicator factors and ``Class``) from the .deb."""
    import pyreadr

    raw = deb_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DEB_SHA256:
        raise SystemExit(f"{deb_path}: SHA-256 {digest}, expected {DEB_SHA256} (r-cran-mlbench {DEB_VERSION})")
    _, data = _ar_member(raw, "data.tar")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None
        rda = member.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "DNA.rda"
        path.write_bytes(rda)
        return pyreadr.read_r(str(path))["DNA"]


def decode(dna: pd.DataFrame) -> pd.DataFrame:
    """The indicator columns V1 … V180 → 60-nt sequences; checks the class and junction consensus."""
    bits = dna[[f"V{i}" for i in range(1, 3 * LENGTH + 1)]].astype(int).to_numpy().reshape(len(dna), LENGTH, 3)
    seqs = ["".join(CODES[tuple(int(b) for b in triple)] for triple in row) for row in bits]
    labels = dna["Class"].astype(str).tolist()
    out = pd.DataFrame({"id": [f"splice-{int(r):04d}" for r in dna.index], "sequence": seqs, "label": labels})
    assert set(labels) == set(LABELS), set(labels)
    donor = out.loc[out["label"] == "ei", "sequence"].str[30:32].eq("GT").mean()
    acceptor = out.loc[out["label"] == "ie", "sequence"].str[28:30].eq("AG").mean()
    assert donor > 0.98 and acceptor > 0.99, (donor, acceptor)  # the decoding is the right one
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deb", type=Path, default=None, help="r-cran-mlbench_2.1-3-1_amd64.deb (else apt-get download)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb = a.deb
        if deb is None:
            subprocess.run(["apt-get", "download", f"r-cran-mlbench={DEB_VERSION}"], cwd=tmp, check=True)
            deb = next(Path(tmp).glob("r-cran-mlbench_*.deb"))
        df = decode(read_rda(deb))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False, lineterminator="\n")
    sha = hashlib.sha256(a.out.read_bytes()).hexdigest()
    counts = df["label"].value_counts().to_dict()
    print(f"{a.out}: {len(df)} sequences of {LENGTH} nt, labels {counts}, "
          f"{df['sequence'].nunique()} distinct, SHA-256 {sha}")
    assert np.all(df["sequence"].str.len() == LENGTH)


if __name__ == "__main__":
    main()
