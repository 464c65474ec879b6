"""Audits: fidelity (sdmetrics QualityReport), utility (TSTR/TRTR), membership (DCR).

Small seeded tables built here from their own public metadata; the whole file runs in a
few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits.fidelity import run_fidelity
from synthrelease.audits.membership import run_membership
from synthrelease.audits.utility import run_utility
from synthrelease.errors import DataValidationError
from synthrelease.metadata.schema import Metadata

META = {
    "version": 1,
    "name": "audit-test",
    "reviewed": True,
    "target": "label",
    "columns": {
        "row_id": {"type": "identifier"},
        "x1": {"type": "float", "min": 0.0, "max": 10.0},
        "x2": {"type": "integer", "min": 0, "max": 100, "nullable": True},
        "color": {"type": "categorical", "categories": ["red", "green", "blue"]},
        "grade": {"type": "categorical", "categories": [1, 2, 3]},
        "label": {"type": "categorical", "categories": [0, 1]},
    },
}


@pytest.fixture
def meta() -> Metadata:
    return Metadata.model_validate(META)


def make_table(n: int, seed: int) -> pd.DataFrame:
    """Rows whose columns are correlated (x2 ~ x1, grade ~ x1) and whose label depends on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 10, n)
    x2 = np.clip(np.round(8 * x1 + 10 + rng.normal(0, 8, n)), 0, 100)
    x2[rng.random(n) < 0.05] = np.nan
    color = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    grade = np.clip((x1 // 3.4).astype(int) + 1 + rng.integers(-1, 2, n) * (rng.random(n) < 0.2), 1, 3)
    logit = 0.9 * (x1 - 5) + 1.2 * (color == "red") - 0.8 * (grade == 3)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"row_id": [f"r{seed}-{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color,
                         "grade": grade, "label": label})


def noise_table(n: int, seed: int) -> pd.DataFrame:
    """Independent columns, uniform over the declared domains: the worst plausible synthesizer."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"row_id": [f"n{i}" for i in range(n)], "x1": rng.uniform(0, 10, n),
                         "x2": rng.integers(0, 101, n).astype(float), "color": rng.choice(["red", "green", "blue"], n),
                         "grade": rng.integers(1, 4, n), "label": rng.integers(0, 2, n)})


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, holdout, fresh): three independent samples of the same distribution."""
    return make_table(400, seed=11), make_table(400, seed=12), make_table(400, seed=13)


# ---------------------------------------------------------------- fidelity
def test_quality_score_equals_sdmetrics_quality_report(meta, tables):
    from sdmetrics.reports.single_table import QualityReport  # FutureWarning at import: ignored in pyproject

    train, _, fresh = tables
    ours = run_fidelity(train, fresh, meta)
    cols = meta.model_columns
    report = QualityReport()
    report.generate(train[cols], fresh[cols], meta.to_sdmetrics(), verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    assert round(ours.metrics["quality_score"], 3) == round(report.get_score(), 3)
    assert round(ours.metrics["column_shapes"], 3) == round(props["Column Shapes"], 3)
    assert round(ours.metrics["column_pair_trends"], 3) == round(props["Column Pair Trends"], 3)
    assert ours.details["n_pairs"] == 10 and ours.details["n_pairs_meeting_threshold"] >= 1
    assert ours.name == "fidelity" and ours.internal_only and ours.runtime_s > 0


def test_fidelity_ranks_identical_above_fresh_above_noise(meta, tables):
    train, _, fresh = tables
    same = run_fidelity(train, train, meta).metrics["quality_score"]
    good = run_fidelity(train, fresh, meta).metrics["quality_score"]
    bad = run_fidelity(train, noise_table(400, seed=5), meta).metrics["quality_score"]
    assert 0.0 <= bad < good < same == pytest.approx(1.0)


def test_fidelity_treats_1_and_1_0_and_str_1_as_one_category(meta, tables):
    train, _, fresh = tables
    recoded = fresh.assign(grade=fresh["grade"].astype(str), label=fresh["label"].astype(float),
                           color=" " + fresh["color"])
    assert run_fidelity(train, recoded, meta).metrics == run_fidelity(train, fresh, meta).metrics


def test_fidelity_details_are_json_rounded_and_nothing_is_printed(meta, tables, capfd):
    train, _, fresh = tables
    events = []
    result = run_fidelity(train, fresh, meta, progress=events.append)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    json.dumps(result.details, allow_nan=False)
    shapes = result.details["column_shapes"]
    assert [r["column"] for r in shapes] == meta.model_columns
    assert all(r["score"] == round(r["score"], 4) for r in shapes)
    assert [e.stage for e in events] == ["audit:fidelity"] * 2 and events[-1].message == "done"


def wide_metadata(n_num: int) -> Metadata:
    """n_num numericals all with data in [0, 1] but declared bounds [0, j + 1]: scaled by the
    declared bounds, their variance falls with j; scaled by the data range it would not."""
    cols = {f"n{j:02d}": {"type": "float", "min": 0.0, "max": float(j + 1)} for j in range(n_num)}
    cols["color"] = {"type": "categorical", "categories": ["red", "green", "blue"]}
    cols["label"] = {"type": "categorical", "categories": [0, 1]}
    return Metadata.model_validate({"target": "label", "columns": cols})


def wide_table(n: int, n_num: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, n)
    data = {f"n{j:02d}": np.clip(u + rng.normal(0, 0.05, n), 0, 1) for j in range(n_num)}
    data["color"] = rng.choice(["red", "green", "blue"], n)
    data["label"] = (u > 0.5).astype(int)
    return pd.DataFrame(data)


def test_wide_fidelity_uses_declared_bound_variance_subset_for_pairs():
    md = wide_metadata(62)  # 64 synthesised columns > 60
    real, syn = wide_table(200, 62, seed=1), wide_table(200, 62, seed=2)
    result = run_fidelity(real, syn, md, max_pair_columns=6)
    d, m = result.details, result.metrics
    assert d["pair_subsampled"] is True
    # target and categoricals first, then the top-variance numericals (declared bounds), in table order
    assert d["pair_columns"] == ["n00", "n01", "n02", "n03", "color", "label"]
    assert d["n_pairs"] == 15 and len(d["column_pair_trends"]) == 15
    assert d["n_columns"] == 64 and len(d["column_shapes"]) == 64
    assert m["quality_score"] == pytest.approx((m["column_shapes"] + m["column_pair_trends"]) / 2)
    json.dumps(d, allow_nan=False)


def test_wide_column_shapes_in_column_blocks_equal_one_sdmetrics_call(monkeypatch):
    """The wide path types a block of columns at a time (bounded memory); score and details
    equal sdmetrics' Column Shapes on the whole table, a column without values included."""
    import warnings

    from sdmetrics.reports.single_table._properties import ColumnShapes

    import synthrelease.audits.fidelity as fidelity

    md = wide_metadata(62)
    real, syn = wide_table(200, 62, seed=1), wide_table(150, 62, seed=2)
    syn["n05"] = np.nan  # no synthetic value: score NaN, skipped by the mean
    cols = md.model_columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ColumnShapes()
        score = whole.get_score(fidelity._prepare(real, md, cols, "real"), fidelity._prepare(syn, md, cols, "s"),
                                md.to_sdmetrics())
    monkeypatch.setattr(fidelity, "SHAPE_BLOCK_CELLS", 200 * 7)  # 7 columns per block, 10 blocks
    result = run_fidelity(real, syn, md, max_pair_columns=6, coverage=False)
    assert result.metrics["column_shapes"] == pytest.approx(score, abs=1e-12)
    shapes = result.details["column_shapes"]
    assert [r["column"] for r in shapes] == list(whole.details["Column"])
    assert [r["score"] for r in shapes] == [fidelity._plain(v) for v in whole.details["Score"]]
    assert shapes[5]["score"] is None and set(shapes[0]) == {c.lower() for c in whole.details.columns}


# ---------------------------------------------------------------- utility
def test_utility_copy_of_train_gives_ratio_one_and_random_labels_give_chance(meta, tables):
    train, hold, _ = tables
    copy = run_utility(train, hold, train.copy(), meta, target="label", seed=0).metrics
    assert copy["trtr_auc"] > 0.75  # the label is learnable, so the comparison means something
    assert copy["tstr_trtr_ratio"] > 0.95
    assert copy["tstr_accuracy"] == copy["trtr_accuracy"]
    shuffled = train.assign(label=np.random.default_rng(1).permutation(train["label"].to_numpy()))
    rand = run_utility(train, hold, shuffled, meta, target="label", seed=0).metrics
    assert rand["tstr_auc"] < 0.65


def test_utility_single_class_synthetic_scores_half_with_a_note(meta, tables):
    train, hold, fresh = tables
    result = run_utility(train, hold, fresh.assign(label=1), meta, target="label", seed=0)
    assert result.metrics["tstr_auc"] == 0.5
    assert "single class" in result.details["tstr"]["note"]
    assert result.metrics["tstr_accuracy"] == pytest.approx(float((hold["label"] == 1).mean()))
    assert result.metrics["tstr_trtr_ratio"] == pytest.approx(0.5 / result.metrics["trtr_auc"])


def test_utility_canonicalises_category_values(meta, tables):
    train, hold, fresh = tables
    recoded = fresh.assign(grade=fresh["grade"].astype(str), label=fresh["label"].astype(float).astype(str))
    a = run_utility(train, hold, fresh, meta, target="label", seed=0).metrics
    b = run_utility(train, hold, recoded, meta, target="label", seed=0).metrics
    assert a == b


def test_utility_multiclass_target_uses_macro_ovr(meta, tables):
    train, hold, _ = tables
    result = run_utility(train, hold, train, meta, target="grade", seed=0)
    assert "one-vs-rest" in result.details["auc"]
    assert result.metrics["trtr_auc"] > 0.7 and result.metrics["tstr_trtr_ratio"] == pytest.approx(1.0)


# ---------------------------------------------------------------- membership
def test_membership_copied_rows_are_caught_fresh_rows_are_not(meta, tables):
    """Seed 0, 400 members vs 400 non-members. With independent synthetic rows, members and
    non-members are exchangeable, so the AUC follows the Mann–Whitney null: sd =
    sqrt((2n + 1) / (12 n²)) ≈ 0.020 and |AUC − 0.5| ≥ 0.1 is a 4.9-sd event (p ≈ 1e-6)."""
    train, hold, fresh = tables
    copied = run_membership(train, hold, train.copy(), meta, seed=0)
    assert copied.metrics["dcr_mia_auc"] > 0.95
    assert copied.metrics["exact_copy_share"] == 1.0
    assert copied.metrics["dcr_share"] > 0.95 and copied.metrics["median_dcr_train"] == 0.0
    independent = run_membership(train, hold, fresh, meta, seed=0).metrics
    assert abs(independent["dcr_mia_auc"] - 0.5) < 0.1
    assert abs(independent["dcr_share"] - 0.5) < 0.1
    assert independent["exact_copy_share"] == 0.0
    assert "2312.05114" in copied.details["caveat"]
    assert copied.details["encoded_width"] == 2 + 1 + 3 + 3 + 2  # x1, x2 + missing flag, one-hots
    json.dumps(copied.details, allow_nan=False)


def test_membership_canonical_values_still_count_as_copies(meta, tables):
    train, hold, _ = tables
    recoded = train.assign(grade=train["grade"].astype(str), label=train["label"].astype(float))
    assert run_membership(train, hold, recoded, meta, seed=0).metrics["exact_copy_share"] == 1.0


def test_membership_subsamples_the_larger_set_with_the_seed(meta):
    train, hold, fresh = make_table(500, seed=21), make_table(300, seed=22), make_table(400, seed=23)
    a = run_membership(train, hold, fresh, meta, seed=3)
    b = run_membership(train, hold, fresh, meta, seed=3)
    c = run_membership(train, hold, fresh, meta, seed=4)
    assert a.details["members"] == a.details["non_members"] == 300 and a.details["subsampled"] == "train"
    assert a.metrics == b.metrics
    assert a.metrics["dcr_mia_auc"] != c.metrics["dcr_mia_auc"]
    assert a.metrics["median_dcr_train"] == c.metrics["median_dcr_train"]  # over every training row


def test_membership_refuses_an_empty_holdout(meta, tables):
    train, hold, fresh = tables
    with pytest.raises(DataValidationError, match="holdout 0"):
        run_membership(train, hold.iloc[:0], fresh, meta, seed=0)


@pytest.mark.parametrize("audit", [run_fidelity, run_utility, run_membership])
def test_audit_docstrings_state_the_privacy_status(audit):
    doc = " ".join((audit.__doc__ or "").split())
    assert "Reads private rows" in doc and "NOT differentially private" in doc and "internal-only" in doc
