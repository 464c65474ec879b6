"""Plausibility rules on a hand-made synthetic table with known violation shares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synthrelease.audits.plausibility import MAX_LISTED_VALUES, check_rules, run_plausibility
from synthrelease.errors import PolicyError
from synthrelease.gate.verdict import evaluate_gate
from synthrelease.metadata.schema import Metadata
from synthrelease.policy.schema import PlausibilityClauses, Policy, load_policy
from synthrelease.validation.expectations import WIDE_NUMERIC_COLUMNS
from tests.conftest import TINY_METADATA

N = 100
RULES = [
    {"id": "adult", "kind": "range", "column": "age", "min": 20, "max": 90},
    {"id": "only_f", "kind": "in_set", "column": "sex", "values": ["F"]},
    {"id": "bmi_below_age", "kind": "less_than", "column_a": "bmi", "column_b": "age"},
    {"id": "dose_bmi_non_negative", "kind": "non_negative", "columns": ["dose", "bmi"]},
    {"id": "smokers_late_stage", "kind": "conditional", "if": {"column": "smoker", "equals": True},
     "then": {"kind": "in_set", "column": "stage", "values": [3, 4]}},
    {"id": "early_stage_low_dose", "kind": "conditional", "if": {"column": "stage", "in_set": [1, 2]},
     "then": {"kind": "range", "column": "dose", "max": 0.5}},
]
# Shares built into synthetic_table(): violating rows / rows with a value in the rule's domain.
EXPECTED = {"adult": 7 / 100, "only_f": 12 / 100, "bmi_below_age": 12 / 99, "dose_bmi_non_negative": 3 / 100,
            "smokers_late_stage": 4 / 20, "early_stage_low_dose": 1 / 4}


def synthetic_table() -> pd.DataFrame:
    """A table shaped like the tiny clinic's synthetic output, with planted violations."""
    age = np.full(N, 50)
    age[:7] = 19                                  # adult: 7 of 100 below 20
    sex = np.array(["F"] * N, dtype=object)
    sex[:12] = "M"                                # only_f: 12 of 100
    bmi = np.full(N, 25.0)
    bmi[90:95] = 60.0                             # bmi_below_age: these 5 and the 7 aged 19, of the
    #                                               99 rows with a bmi
    bmi[95] = np.nan
    dose = np.full(N, 0.2)
    dose[:3] = -1.0                               # non_negative: 3 of 100 (bmi: 0), worst = 0.03
    dose[3] = 1.0
    smoker = np.zeros(N, dtype=bool)
    smoker[:20] = True
    stage = np.full(N, 3)
    stage[:4] = 1                                 # smokers_late_stage: 4 of the 20 smokers
    # early_stage_low_dose: the 4 stage-1 rows have doses -1, -1, -1, 1.0 -> 1 of 4 above 0.5
    return pd.DataFrame({"age": age, "bmi": bmi, "dose": dose, "sex": sex, "smoker": smoker, "stage": stage,
                         "outcome": ["healthy"] * N})


@pytest.fixture(scope="module")
def metadata() -> Metadata:
    return Metadata.model_validate(TINY_METADATA)


@pytest.fixture(scope="module")
def rules():
    return PlausibilityClauses.model_validate({"rules": RULES}).rules


@pytest.fixture(scope="module")
def result(metadata, rules):
    return run_plausibility(synthetic_table(), metadata, rules)


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_each_rule_measures_its_known_violation_share(result, rule_id):
    assert result.metrics[f"violation_share:{rule_id}"] == pytest.approx(EXPECTED[rule_id])


def test_max_violation_share(result):
    assert result.name == "plausibility" and not result.internal_only
    assert result.metrics["max_violation_share"] == pytest.approx(max(EXPECTED.values()))


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_each_rule_fails_the_gate_above_its_tolerance(rule_id, result):
    policy_doc = {"version": 3, "name": "p", "privacy": {"max_epsilon": 5, "max_delta": 1e-5},
                  "membership": {"max_dcr_mia_auc": 0.6}}
    priv = dict(epsilon=1.0, delta=1e-6, accountant="rdp", n_train_rows=1000)
    figures = {"dcr_mia_auc": 0.5, "exact_copy_share": 0.0}
    audits = {"plausibility": result}
    tolerances = {r["id"]: 1.0 for r in RULES}
    for tolerance, passes in ((EXPECTED[rule_id], True), (EXPECTED[rule_id] - 0.005, False)):
        tolerances[rule_id] = tolerance
        rules = [{**r, "max_violation_share": tolerances[r["id"]]} for r in RULES]
        policy = Policy.model_validate({**policy_doc, "plausibility": {"rules": rules}})
        decision = evaluate_gate(policy, dp_figures=figures, audits=audits, **priv)
        assert decision.passed is passes
        if not passes:
            assert [c.clause for c in decision.failed] == [f"plausibility.{rule_id}"]


def test_gx_success_agrees_with_the_tolerance(metadata):
    tolerant = [{**r, "max_violation_share": EXPECTED[r["id"]]} for r in RULES]
    rules = PlausibilityClauses.model_validate({"rules": tolerant}).rules
    res = run_plausibility(synthetic_table(), metadata, rules)
    assert all(r["success"] for r in res.details["gx_result"]["results"])
    assert all(r["passed"] for r in res.details["rules"])


def test_gx_result_is_kept_json_able_and_capped(result):
    gx_result = result.details["gx_result"]
    assert gx_result["meta"]["great_expectations_version"].startswith("1.")
    assert "batch_markers" not in gx_result["meta"]
    text = json.dumps(result.details)
    assert "index_list" not in text
    results = gx_result["results"]
    assert {r["expectation_config"]["meta"]["rule_id"] for r in results} == set(EXPECTED)
    assert any(r["expectation_config"]["kwargs"].get("row_condition") for r in results)
    assert all(len(r["result"].get("partial_unexpected_list", [])) <= MAX_LISTED_VALUES for r in results)


def test_more_than_ten_violations_are_listed_only_ten(metadata):
    rules = PlausibilityClauses.model_validate({"rules": [RULES[1]]}).rules
    res = run_plausibility(synthetic_table(), metadata, rules)
    (r,) = res.details["gx_result"]["results"]
    assert r["result"]["unexpected_count"] == 12 and len(r["result"]["partial_unexpected_list"]) == MAX_LISTED_VALUES


def test_all_numerical_non_negative_and_wide_tables():
    n_cols = WIDE_NUMERIC_COLUMNS + 5
    meta = Metadata.model_validate({"version": 1, "name": "wide", "columns": {
        f"g{j}": {"type": "float", "min": -1, "max": 10} for j in range(n_cols)}})
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, size=(40, n_cols))
    x[:6, 17] = -0.5          # worst column: 6 of 40 negative
    x[:2, 3] = -0.1
    x[7, 3] = np.nan          # missing values are not violations
    rules = PlausibilityClauses.model_validate(
        {"rules": [{"id": "nn", "kind": "non_negative", "columns": "all numerical"}]}).rules
    res = run_plausibility(pd.DataFrame(x, columns=list(meta.columns)), meta, rules)
    assert res.metrics["violation_share:nn"] == pytest.approx(6 / 40)
    wide = res.details["wide_rules"]["nn"]
    assert wide["columns_violating"] == 2 and wide["worst_columns"][0]["column"] == "g17"


def _policy_file(tmp_path: Path, rules: list[dict]) -> Path:
    doc = {"version": 3, "name": "p", "privacy": {"max_epsilon": 5, "max_delta": 1e-5},
           "membership": {"max_dcr_mia_auc": 0.6}, "plausibility": {"rules": rules}}
    p = tmp_path / "rules.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


@pytest.mark.parametrize(
    ("bad_rule", "problem"),
    [
        ({"id": "typo", "kind": "range", "column": "agee", "min": 0}, "column 'agee' is not declared"),
        ({"id": "typo", "kind": "conditional", "if": {"column": "sexx", "equals": "F"},
          "then": {"kind": "range", "column": "age", "min": 0}}, "column 'sexx' is not declared"),
        ({"id": "typo", "kind": "non_negative", "columns": ["dose", "weight"]}, "column 'weight' is not declared"),
        ({"id": "typo", "kind": "range", "column": "patient_id", "min": 0}, "identifier"),
        ({"id": "typo", "kind": "range", "column": "sex", "min": 0}, "needs a numerical column"),
        ({"id": "typo", "kind": "in_set", "column": "age", "values": ["old"]}, "values must be numbers"),
    ],
)
def test_unknown_or_wrong_column_names_policy_file_and_rule_id(tmp_path, metadata, bad_rule, problem):
    p = _policy_file(tmp_path, [RULES[0], bad_rule])
    policy = load_policy(p)[0]
    with pytest.raises(PolicyError) as err:
        check_rules(policy.rules, metadata, policy_path=p)
    msg = str(err.value)
    line = next(i for i, ln in enumerate(p.read_text().splitlines(), 1) if "id: typo" in ln)
    assert msg.startswith(f"{p}:{line}: plausibility rule 'typo': ") and problem in msg, msg
