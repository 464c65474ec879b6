"""Public clinical cohorts for the small-table benchmark, read from scikit-survival's wheel.

scikit-survival 0.28.0 (PyPI, GPL-3) ships these public research data sets as ARFF files; the
wheel is downloaded once (``pip download --no-deps``, SHA-256 checked) into
``~/.cache/synthrelease-bench/`` and the files are read with scipy — the package itself is
never installed or imported, and no data file is committed here.

* ``whas500``: Worcester Heart Attack Study, 500 patients, 14 clinical columns + vital status
  ``fstat`` at last follow-up (Hosmer, Lemeshow & May, *Applied Survival Analysis*, 2nd ed.).
* ``gbsg2``: German Breast Cancer Study Group 2, 686 patients, 8 clinical columns +
  recurrence indicator ``cens`` (Schumacher et al. 1994; R package TH.data).
* ``gse7390``: the Desmedt et al. 2007 breast-cancer cohort (GEO GSE7390), 198 patients,
  age / size / grade / ER status, time to distant metastasis and 76 genes' log2 expression
  (Affymetrix probes), target: distant metastasis ``e.tdm``. Its 80 % training split has the
  158 rows × 82 columns of the "hidden" cohort in issue 30.

    python benchmarks/survival_tables.py   # downloads the wheel and prints each table's shape
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

WHEEL = "scikit_survival-0.28.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
SHA256 = "d5816b07570ad8edf849502ea59abdd1391d74aaa6f9215224c38c0887fcb1d5"
CACHE = Path.home() / ".cache" / "synthrelease-bench"
FILES = {"whas500": "whas500.arff", "gbsg2": "GBSG2.arff", "gse7390": "breast_cancer_GSE7390-metastasis.arff"}
INTEGER_COLUMNS = {"whas500": ("age", "hr", "sysbp", "diasbp", "los", "lenfol"),
                   "gbsg2": ("age", "tsize", "pnodes", "progrec", "estrec", "time"),
                   "gse7390": ("age", "t.tdm")}


def _wheel() -> Path:
    """The checked wheel, downloaded on first use."""
    path = CACHE / WHEEL
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "-d", str(CACHE), "scikit-survival==0.28.0"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {SHA256}")
    return path


def load_table(name: str) -> pd.DataFrame:
    """One cohort as a DataFrame: nominal columns as strings, counts and days as integers."""
    from io import StringIO

    from scipy.io import arff

    with zipfile.ZipFile(_wheel()) as z:
        text = z.read(f"sksurv/datasets/data/{FILES[name]}").decode()
    data, _ = arff.loadarff(StringIO(text))
    df = pd.DataFrame(data)
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].str.decode("utf-8")
    for c in INTEGER_COLUMNS[name]:
        df[c] = df[c].round().astype(int)
    return df


if __name__ == "__main__":
    for table in FILES:
        frame = load_table(table)
        print(table, frame.shape, frame.isna().sum().sum(), "missing")
