"""Shared fixtures: tiny, seeded tables and their public metadata."""

from __future__ import annotations

import os

# Under pytest-xdist each worker gets one OpenMP/BLAS thread (set before numpy and torch load),
# so N workers on N cores do not oversubscribe; subprocesses the tests start inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthrelease.metadata.schema import Metadata

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)  # in case a plugin loaded torch before the variables above were set

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_METADATA = {
    "version": 1,
    "name": "tiny-clinic",
    "reviewed": True,
    "target": "outcome",
    "columns": {
        "patient_id": {"type": "identifier"},
        "age": {"type": "integer", "min": 18, "max": 90},
        "bmi": {"type": "float", "min": 15.0, "max": 45.0, "nullable": True},
        "dose": {"type": "float", "min": 0.0, "max": 100.0, "zero_inflated": True, "transform": "log1p"},
        "sex": {"type": "categorical", "categories": ["F", "M"]},
        "smoker": {"type": "boolean"},
        "stage": {"type": "categorical", "categories": [1, 2, 3, 4]},
        "outcome": {"type": "categorical", "categories": ["healthy", "sick"]},
    },
}


@pytest.fixture(autouse=True)
def _private_ledger(tmp_path_factory, monkeypatch):
    """Every test gets its own privacy ledger (never the user's ~/.synthrelease one)."""
    monkeypatch.setenv("SYNTHRELEASE_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"))


def make_tiny_table(n: int, seed: int) -> pd.DataFrame:
    """A small clinical-looking table whose outcome depends on the features."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    bmi = np.clip(rng.normal(27, 4, n), 15, 45).round(1)
    bmi[rng.random(n) < 0.05] = np.nan
    dose = np.where(rng.random(n) < 0.6, 0.0, np.clip(rng.lognormal(2, 1, n), 0, 100)).round(2)
    sex = rng.choice(["F", "M"], n)
    smoker = rng.random(n) < 0.3
    stage = rng.integers(1, 5, n)
    logit = -4 + 0.05 * age + 0.8 * smoker + 0.4 * stage - 0.01 * dose
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "sick", "healthy")
    return pd.DataFrame({
        "patient_id": [f"id{i}" for i in range(n)], "age": age, "bmi": bmi, "dose": dose, "sex": sex,
        "smoker": smoker, "stage": stage, "outcome": outcome,
    })


@pytest.fixture
def tiny_metadata() -> Metadata:
    return Metadata.model_validate(TINY_METADATA)


@pytest.fixture
def tiny_table() -> pd.DataFrame:
    return make_tiny_table(400, seed=7)


def lenient_policy_doc() -> dict:
    """policies/default.yaml with limits far from the DP figures' noise on a few hundred rows."""
    import yaml

    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc["fidelity"]["min_quality_score"] = 0.2
    doc["utility"]["min_tstr_accuracy"] = 0.0  # the figure is still released; its floor never flakes on few steps
    doc["membership"].update(max_dcr_mia_auc=0.95, max_exact_copy_share=0.5)
    return doc


def release_workspace(path: Path, *, rows: int = 600, seed: int = 5, policy: dict | None = None,
                      public_key: str = "k.pub") -> Path:
    """``private.csv`` (a tiny table), ``meta.yaml``, ``k.pem`` + ``public_key`` and ``policy.yaml`` in ``path``."""
    import yaml

    from synthrelease.bundle.signing import generate_keypair

    make_tiny_table(rows, seed=seed).to_csv(path / "private.csv", index=False)
    (path / "meta.yaml").write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    generate_keypair(path / "k.pem", path / public_key)
    (path / "policy.yaml").write_text(yaml.safe_dump(policy if policy is not None else lenient_policy_doc()))
    return path


def run_cli(*args: str):
    """``synthrelease -q ARGS`` through click's CliRunner (no subprocess)."""
    from click.testing import CliRunner

    from synthrelease.cli import cli

    return CliRunner().invoke(cli, ["-q", *args])


def one_line_error(res, code: int = 2) -> str:
    """Assert a CLI result failed with ``code`` and exactly one line of output, no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    return res.output


def verdict_box(html: str) -> str:
    """The verdict box (``<section id="verdict">``) of an internal report page."""
    import re

    found = re.search(r'<section id="verdict".*?</section>', html, re.S)
    assert found is not None, "no verdict box"
    return found.group(0)


def absolute_paths(text: str) -> list[str]:
    """Absolute or home paths in ``text`` outside HTML tags: ``/a/b``, ``~/a``, ``C:\\a``."""
    import re

    plain = re.sub(r"<[^>]+>", " ", text)
    return re.findall(r"(?<![\w.:/\\-])(?:~|[A-Za-z]:)?[/\\][\w.-]+[/\\]?[^\s<>\"']*", plain)


def same_values(got, want) -> bool:
    """Values read back (e.g. by mlcroissant: text as bytes, dates as Timestamps) equal a column's,
    missing values matching missing values, numbers compared as numbers."""
    want = list(want)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        a = a.decode() if isinstance(a, bytes) else a
        if pd.isna(a) or pd.isna(b):
            if not (pd.isna(a) and pd.isna(b)):
                return False
        elif isinstance(a, pd.Timestamp):
            if a != pd.Timestamp(b):
                return False
        elif isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
            if str(a) != str(b):
                return False
        elif isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
            if float(a) != float(b):
                return False
        elif str(a) != str(b):
            return False
    return True


def check_croissant_bundle(bundle: Path, public_key: Path) -> dict:
    """A release bundle's croissant.json: listed and hashed in the signed manifest; mlcroissant loads it
    without error and yields exactly synthetic.csv's rows; every other bundle file is described with its
    manifest SHA-256; no exact private count of the internal report appears in it unless the manifest
    shows that number too; and a copy of the bundle whose croissant.json changed fails verification.
    Returns the document."""
    import json
    import re
    import shutil

    import mlcroissant as mlc

    from synthrelease.io.files import sha256_file

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"]["croissant.json"]["sha256"] == sha256_file(bundle / "croissant.json")
    text = (bundle / "croissant.json").read_text()
    doc = json.loads(text)
    files = {d["contentUrl"]: d["sha256"] for d in doc["distribution"]}
    assert files == {k: v["sha256"] for k, v in manifest["files"].items() if k != "croissant.json"}
    dataset = mlc.Dataset(jsonld=str(bundle / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors
    rows = list(dataset.records(record_set="synthetic"))
    csv = pd.read_csv(bundle / "synthetic.csv")
    assert len(rows) == len(csv) == manifest["release"]["dataset"]["synthetic_rows"]
    fields = {f["name"]: f["@id"] for f in doc["recordSet"][0]["field"]}
    assert list(fields) == list(csv.columns)
    for column, field_id in fields.items():
        assert same_values([r[field_id] for r in rows], csv[column]), column
    report = bundle.with_name(bundle.name + ".internal-report") / "internal_report.json"
    if report.exists():
        def integers(s: str) -> set[str]:
            return set(re.findall(r"(?<![\w.])\d+(?![\w.])", s))

        exact = json.loads(report.read_text())["rows"]
        private = {str(exact["train"]), str(exact["holdout"])} - integers((bundle / "manifest.json").read_text())
        assert not private & integers(text), private & integers(text)
    assert run_cli("verify", str(bundle), "--public-key", str(public_key)).exit_code == 0
    changed = bundle.with_name(bundle.name + "-croissant-changed")
    shutil.copytree(bundle, changed)
    (changed / "croissant.json").write_text(text.replace("synthetic", "Synthetic", 1))
    res = run_cli("verify", str(changed), "--public-key", str(public_key))
    assert res.exit_code == 1 and "croissant.json" in res.output, res.output
    return doc


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per core, at most 4 (each worker holds its own torch, ~1 GB)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
