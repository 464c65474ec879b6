"""`metadata infer` drafts what the model needs (issue 30.1): log1p transforms, zero inflation,
decimals and a target, each flagged for review in the YAML draft."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from synthrelease.cli import cli
from synthrelease.io.formats import read_table
from synthrelease.metadata.infer import infer_metadata, metadata_to_yaml
from synthrelease.metadata.infer_modelling import TARGET_NOTE, suggest_target
from synthrelease.metadata.load import load_metadata
from synthrelease.metadata.schema import Metadata

ROOT = Path(__file__).resolve().parents[2]
ADULT = ROOT.parent / "shared" / "data" / "adult.csv"
CURATED_ADULT = ROOT / "benchmarks" / "metadata" / "adult.yaml"


def _shapes(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zeros = rng.random(n) < 0.9
    return pd.DataFrame({
        "weight": np.round(rng.lognormal(10, 1.0, n)).astype(int),       # heavy right tail
        "height": np.round(rng.normal(170, 10, n), 1),                   # symmetric float, 1 decimal
        "debt": -np.round(rng.lognormal(5, 1.0, n)).astype(int),         # skewed but negative
        "spend": np.where(zeros, 0, np.round(rng.lognormal(6, 0.3, n))).astype(int),  # 90 % zeros
        "visits": np.where(rng.random(n) < 0.2, 0, rng.integers(1, 9, n)),  # 20 % zeros, not skewed
        "ratio": np.round(rng.random(n), 3),
    })


def test_heavy_tailed_non_negative_columns_get_log1p_and_many_zeros_zero_inflated():
    cols = infer_metadata(_shapes()).columns
    assert cols["weight"].transform == "log1p" and not cols["weight"].zero_inflated
    assert cols["height"].transform == "none" and not cols["height"].zero_inflated
    assert cols["debt"].transform == "none", "log1p needs min >= 0"
    assert cols["spend"].zero_inflated and cols["spend"].transform == "log1p"
    assert cols["visits"].transform == "none" and not cols["visits"].zero_inflated
    assert cols["ratio"].transform == "none"


def test_decimals_for_floats_only_and_every_drafted_key_is_flagged_for_review():
    meta = infer_metadata(_shapes())
    assert meta.columns["height"].decimals == 1 and meta.columns["ratio"].decimals == 3
    assert meta.columns["weight"].decimals is None and meta.columns["weight"].type == "integer"
    text = metadata_to_yaml(meta, draft=True)
    lines = text.split("\n")

    def comment_above(column: str) -> str:
        i = lines.index(f"  {column}:")
        block = []
        while lines[i - 1].startswith("  # "):
            i -= 1
            block.insert(0, lines[i][4:])
        return " ".join(block)

    assert "transform: log1p" in comment_above("weight") and "PRIVATE" in comment_above("weight")
    assert "zero_inflated" in comment_above("spend") and "transform: log1p" in comment_above("spend")
    assert "decimals: 1" in comment_above("height") and "transform" not in comment_above("height")
    assert comment_above("visits") == "" and comment_above("debt") == ""
    assert Metadata.model_validate(yaml.safe_load(text)) == meta


def test_too_few_values_draft_no_shape():
    df = pd.DataFrame({"x": [0, 0, 0, 0, 0, 0, 0, 1, 2, 1000]})
    spec = infer_metadata(df).columns["x"]
    assert spec.transform == "none" and not spec.zero_inflated


def test_a_column_named_like_a_label_becomes_the_target_with_a_review_comment():
    df = _shapes(100).assign(Outcome=["yes", "no"] * 50, group=["a", "b", "c", "d"] * 25)
    meta = infer_metadata(df)
    assert meta.target == "Outcome" and meta.columns["Outcome"].description == TARGET_NOTE
    text = metadata_to_yaml(meta, draft=True)
    before = text.split("\ntarget: Outcome\n")[0]
    assert before.rstrip().split("\n")[-1].startswith("# ") and "REVIEW: target 'Outcome'" in before
    assert Metadata.model_validate(yaml.safe_load(text)) == meta


def test_a_given_target_is_kept_and_not_flagged():
    df = _shapes(100).assign(label=["x", "y"] * 50, grade=["a", "b"] * 50)
    meta = infer_metadata(df, target="grade")
    assert meta.target == "grade" and meta.columns["label"].description == ""
    assert "REVIEW: target" not in metadata_to_yaml(meta, draft=True)


def test_without_a_label_name_the_last_column_is_only_suggested_in_a_comment():
    df = _shapes(100).assign(grade=["a", "b", "c"] * 33 + ["a"])
    meta = infer_metadata(df)
    assert meta.target is None
    text = metadata_to_yaml(meta, draft=True)
    assert "\n# target: grade\n" in text and "Suggested: 'grade'" in text
    assert yaml.safe_load(text).get("target") is None
    no_categorical_last = infer_metadata(_shapes(100).assign(grade=["a", "b"] * 50)[["grade", "weight"]])
    assert "# target:" not in metadata_to_yaml(no_categorical_last, draft=True)


@pytest.mark.parametrize(("name", "found"), [("income", True), ("y", True), ("Class", True), ("disease_outcome", True),
                                             ("target-label", True), ("day_y", False), ("class-of-worker", False),
                                             ("workclass", False), ("marital-status", False), ("cell_type", True),
                                             ("Cell Type", True), ("celltype", True), ("blood_type", False)])
def test_label_names(name, found):
    df = pd.DataFrame({name: ["p", "q"] * 30, "other": range(60)})
    assert (suggest_target(infer_metadata(df, target="other").columns) == (name, True)) is found


def test_a_label_with_too_many_categories_is_not_the_target():
    df = pd.DataFrame({"label": [f"c{i % 30}" for i in range(300)], "x": range(300)})
    assert infer_metadata(df).target is None


def test_the_cli_draft_carries_the_review_comments_and_reads_back(tmp_path):
    _shapes(200).assign(outcome=["a", "b"] * 100).to_csv(tmp_path / "t.csv", index=False)
    res = CliRunner().invoke(cli, ["metadata", "infer", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.yaml")])
    assert res.exit_code == 0, res.output
    assert "transform" in res.output and "target" in res.output
    text = (tmp_path / "m.yaml").read_text()
    assert text.count("# REVIEW:") == 5  # weight, height, spend, ratio, the target
    meta = load_metadata(tmp_path / "m.yaml")
    assert meta.target == "outcome" and meta.reviewed is False


@pytest.mark.skipif(not ADULT.exists(), reason=f"{ADULT} not present (shared benchmark data)")
def test_adult_draft_matches_the_curated_transforms_zero_inflation_and_target():
    df = read_table(ADULT).head(2000)
    meta = infer_metadata(df, name="adult")
    curated = load_metadata(CURATED_ADULT)
    for name, spec in curated.columns.items():
        if spec.is_numerical:
            assert meta.columns[name].type == spec.type, name
            assert meta.columns[name].transform == spec.transform, name
            assert meta.columns[name].zero_inflated == spec.zero_inflated, name
    assert {c for c, s in meta.columns.items() if s.transform == "log1p"} == {"fnlwgt", "capital-gain", "capital-loss"}
    assert meta.target == curated.target == "income"
    text = metadata_to_yaml(meta, draft=True)
    assert text.count("transform: log1p (skewness") == 3 and text.count("zero_inflated (") == 2
