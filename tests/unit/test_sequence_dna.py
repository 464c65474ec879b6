"""The sequence modality on nucleotides (issue 29, point 5): the splice-junction benchmark set's public
metadata validates, its rows validate against it, and a tiny DP fit and sample stay within the DNA
alphabet, the declared lengths and labels; the benchmark's DP baselines take the alphabet from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from synthrelease.errors import DataValidationError
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.sequence import modality as sm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sequences", ROOT / "benchmarks" / "sequences.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(bench) -> pd.DataFrame:
    df = pd.read_csv(bench.DNA_DATA)
    # a few of each label, in file order (the file is ordered by label blocks)
    return pd.concat([g.head(20) for _, g in df.groupby("label")], ignore_index=True)


def test_the_dna_metadata_validates_and_holds_the_benchmark_rows(bench, rows):
    meta = Metadata.model_validate(bench.DNA_METADATA)
    assert meta.modality == "sequence" and meta.sequence_column == "sequence"
    assert meta.columns["sequence"].alphabet == "dna"
    full = pd.read_csv(bench.DNA_DATA)
    assert len(full) == 3186 and list(full.columns) == ["id", "sequence", "label"]
    clean = sm.validate(full, meta, "splice_dna.csv")
    assert clean["sequence"].str.len().eq(60).all() and set(clean["label"]) == {"ei", "ie", "n"}
    bad = rows.copy()
    bad.loc[3, "sequence"] = "ACGU" * 15  # RNA letter in a DNA column: refused, row named, no value shown
    with pytest.raises(DataValidationError, match="row 4: letter outside the alphabet") as err:
        sm.validate(bad, meta, "x.csv")
    assert "ACGU" not in str(err.value)


def test_a_tiny_dp_fit_and_sample_stays_in_the_dna_alphabet(bench, rows):
    meta = Metadata.model_validate(bench.DNA_METADATA)
    train = sm.validate(rows, meta, "rows")
    cfg = sm.default_config(len(train), epsilon=3.0, delta=1e-5, seed=0, metadata=meta, condition_column="label",
                            n_steps=3)
    model = sm.fit(train, meta, cfg, condition_column="label")
    out = sm.sample(model, 30, seed=1)
    assert len(out) == 30 and out["sequence"].str.len().eq(60).all()
    assert set("".join(out["sequence"])) <= set("ACGT") and set(out["label"]) <= {"ei", "ie", "n"}
    sm.validate(out.assign(id=[f"syn-{i}" for i in range(len(out))]), meta, "synthetic")


@pytest.mark.parametrize("system", ["baseline", "markov"])
def test_the_benchmark_baselines_use_the_declared_alphabet_and_lengths(bench, rows, system):
    out = getattr(bench, system)(rows, 40, epsilon=3.0, delta=1e-5, seed=0, meta=bench.DNA_METADATA)
    assert len(out) == 40 and out["sequence"].str.len().eq(60).all()
    assert set("".join(out["sequence"])) <= set("ACGT") and set(out["label"]) <= {"ei", "ie", "n"}
    figures = bench.nucleotide_figures(rows, out, ["ei", "ie", "n"])
    assert 0 <= figures["gc_content_ks"] <= 1 and 0 <= figures["position_tv_by_label"] <= 1
