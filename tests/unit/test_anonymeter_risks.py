"""The GDPR risk audit (anonymeter): singling out, linkability, inference on tiny tables.

Independent draws from the tiny clinic distribution (train, holdout and "synthetic" rows with
three seeds) must show no measurable risk; synthetic rows that copy the training rows must
show clearly high risks. Tables that cannot be audited are skipped with a one-line reason.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits import anonymeter_risks as ar
from synthrelease.metadata.schema import Metadata
from synthrelease.report.internal import gdpr_risks_view
from synthrelease.report.internal_report import _gdpr_risk_lines
from tests.conftest import TINY_METADATA, make_tiny_table

pytest.importorskip("anonymeter", reason="anonymeter is not installed (pip install --no-deps -c constraints.txt "
                                         "anonymeter)")

MEASURED = ("singling_out", "linkability", "inference")


@pytest.fixture(scope="module")
def meta() -> Metadata:
    return Metadata.model_validate(TINY_METADATA)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_tiny_table(300, seed=1)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return make_tiny_table(150, seed=2)


@pytest.fixture(scope="module")
def independent(train, holdout, meta):
    """Synthetic rows drawn from the same distribution as the training rows, independently (not copies)."""
    return ar.run_anonymeter(train, holdout, make_tiny_table(300, seed=3), meta, target="outcome", seed=0)


@pytest.fixture(scope="module")
def copies(train, holdout, meta):
    return ar.run_anonymeter(train, holdout, train.copy(), meta, target="outcome", seed=0)


def test_independent_draws_show_no_measurable_risk(independent):
    risks = independent.details["risks"]
    assert set(risks) == set(MEASURED)
    for name in MEASURED:
        r = risks[name]
        assert r["ci"][0] == 0.0, (name, r)  # no excess over the holdout measurable
        assert r["risk"] < 0.15, (name, r)
        assert r["ci"][0] <= r["risk"] <= r["ci"][1]
        assert independent.metrics[f"{name}_risk"] == r["risk"]
        assert "no excess over the holdout is measurable" in r["sentence"]


def test_copies_of_the_training_rows_show_high_risks(copies, independent):
    for name in MEASURED:
        r = copies.details["risks"][name]
        assert r["risk"] >= 0.3 and r["ci"][0] > 0.2, (name, r)
        assert r["ci"][0] > independent.details["risks"][name]["ci"][1], name  # intervals apart
        assert r["attack_rate"] > r["control_rate"]
        assert "measurably more against the people they were trained on" in r["sentence"]
    assert copies.metrics["inference_risk"] > 0.9  # the nearest synthetic row is the person's own copy


def test_settings_are_the_documented_ones(independent, holdout):
    d = independent.details
    assert d["columns"] == ["age", "bmi", "dose", "sex", "smoker", "stage", "outcome"]  # no identifier
    link = d["risks"]["linkability"]["settings"]
    assert link["aux_columns"] == [["age", "dose", "smoker", "outcome"], ["bmi", "sex", "stage"]]
    assert link["n_neighbors"] == 2  # 1 % of the ~285 complete synthetic rows
    inference = d["risks"]["inference"]["settings"]
    assert inference["secret"] == "outcome" and "outcome" not in inference["aux_columns"]
    assert not inference["regression"]
    assert d["n_attacks"] == d["rows"]["holdout_rows"] < len(holdout)  # bmi is missing in ~5 % of rows
    assert d["rows"]["holdout_incomplete_rows_left_out"] == len(holdout) - d["rows"]["holdout_rows"]
    assert 0.3 < d["risks"]["inference"]["baseline_rate"] < 0.8  # a random synthetic row's label: not ~0
    assert "NOT differentially private" in d["note"] and "never a gate clause" in d["note"]


def test_the_same_seed_gives_the_same_attacks(train, holdout, meta, independent):
    """Linkability and inference attack the same rows again. Singling out draws its predicates from a list
    whose order polars' grouping does not fix, so it may differ within its interval."""
    again = ar.run_anonymeter(train, holdout, make_tiny_table(300, seed=3), meta, target="outcome", seed=0)
    for name in ("linkability", "inference"):
        assert again.details["risks"][name]["risk"] == independent.details["risks"][name]["risk"]
        assert again.details["risks"][name]["ci"] == independent.details["risks"][name]["ci"]
    assert again.details["risks"]["singling_out"]["ci"][0] == 0.0


def test_global_numpy_state_is_restored(train, holdout, meta):
    np.random.seed(123)  # noqa: NPY002
    expected = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    ar.run_anonymeter(train, holdout, make_tiny_table(300, seed=3), meta, target="outcome", seed=5)
    assert np.random.random() == expected  # noqa: NPY002


def test_missing_categories_are_a_value_and_no_target_picks_a_categorical(meta):
    rng = np.random.default_rng(0)
    tables = []
    for seed, n in ((4, 200), (5, 100), (6, 200)):
        t = make_tiny_table(n, seed=seed)
        t.loc[rng.random(n) < 0.2, "sex"] = np.nan
        tables.append(t)
    no_target = Metadata.model_validate({**TINY_METADATA, "target": None})
    result = ar.run_anonymeter(*tables, no_target, target=None, seed=0)
    risks = result.details["risks"]
    assert all("risk" in risks[n] for n in MEASURED), risks
    assert risks["inference"]["settings"]["secret"] == "sex"  # the first categorical column


def test_too_few_rows_are_skipped_with_one_line(train, meta):
    result = ar.run_anonymeter(train, make_tiny_table(40, seed=9), train, meta, target="outcome")
    assert result.metrics == {}
    reason = result.details["skipped"]
    assert "complete holdout rows: fewer than 50" in reason and "\n" not in reason


def test_a_single_column_measures_singling_out_only():
    meta = Metadata.model_validate({"version": 1, "name": "one", "reviewed": True,
                                    "columns": {"x": {"type": "float", "min": 0, "max": 1}}})
    rng = np.random.default_rng(0)
    frames = [pd.DataFrame({"x": rng.random(n).round(3)}) for n in (200, 100, 200)]
    result = ar.run_anonymeter(*frames, meta, seed=0)
    risks = result.details["risks"]
    assert "risk" in risks["singling_out"]
    for name in ("linkability", "inference"):
        assert risks[name] == {"skipped": "one column: the attacker needs at least two (known columns and a secret, "
                                          "or two halves)"}
    assert set(result.metrics) == {"singling_out_risk", "singling_out_risk_ci_low", "singling_out_risk_ci_high"}


def test_wide_tables_and_identifier_only_tables_are_skipped():
    wide = Metadata.model_validate({"version": 1, "name": "wide", "reviewed": True, "columns": {
        f"g{i}": {"type": "float", "min": 0, "max": 1} for i in range(ar.MAX_COLUMNS + 1)}})
    frame = pd.DataFrame(np.zeros((60, ar.MAX_COLUMNS + 1)), columns=list(wide.columns))
    assert "above 64" in ar.run_anonymeter(frame, frame, frame, wide).details["skipped"]
    seq = Metadata.model_validate({"version": 1, "name": "s", "reviewed": True, "columns": {
        "id": {"type": "identifier"}, "seq": {"type": "sequence", "alphabet": "dna", "min_length": 1,
                                              "max_length": 9}}})
    frame = pd.DataFrame({"id": ["a"] * 60, "seq": ["ACGT"] * 60})
    assert ar.run_anonymeter(frame, frame, frame, seq).details["skipped"].startswith("no numerical")


def test_without_anonymeter_the_audit_is_skipped(monkeypatch, train, holdout, meta):
    monkeypatch.setitem(sys.modules, "anonymeter.evaluators", None)  # import raises ImportError
    result = ar.run_anonymeter(train, holdout, train, meta)
    assert result.metrics == {}
    assert "anonymeter is not installed" in result.details["skipped"]
    assert "pip install --no-deps" in result.details["skipped"]


def test_an_attack_that_fails_leaves_the_others(monkeypatch, train, holdout, meta):
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr("anonymeter.evaluators.LinkabilityEvaluator", broken)
    result = ar.run_anonymeter(train, holdout, train, meta, target="outcome")
    assert result.details["risks"]["linkability"]["error"] == "ValueError: boom"
    assert "risk" in result.details["risks"]["singling_out"] and "risk" in result.details["risks"]["inference"]
    assert "linkability_risk" not in result.metrics


def test_multivariate_singling_out_is_optional(train, holdout, meta):
    result = ar.run_anonymeter(train, holdout, train.copy(), meta, target="outcome", seed=0, multivariate=True)
    r = result.details["risks"]["singling_out_multivariate"]
    assert r["settings"]["mode"] == "multivariate" and r["risk"] > 0.15 and r["ci"][0] > 0


def test_report_views_show_every_risk_with_its_interval(copies, independent):
    doc = {"audits": {"anonymeter": {"metrics": copies.metrics, "details": copies.details,
                                     "runtime_s": copies.runtime_s}}}
    view = gdpr_risks_view(doc)
    assert view is not None and view["not_run"] is None
    assert [r["title"] for r in view["rows"]] == ["Singling out", "Linkability", "Inference"]
    assert all(r["ci_low"] is not None and r["ci_high"] is not None for r in view["rows"])
    assert "never a gate clause" in view["note"]
    lines = "\n".join(_gdpr_risk_lines(doc["audits"]["anonymeter"]))
    assert "## GDPR anonymisation risks (anonymeter)" in lines and "95 % CI" in lines
    skipped = {"metrics": {}, "details": {"skipped": "12 complete holdout rows: fewer than 50"}, "runtime_s": 0.0}
    assert gdpr_risks_view({"audits": {"anonymeter": skipped}})["not_run"].startswith("12 complete")
    assert "Not measured: 12 complete" in "\n".join(_gdpr_risk_lines(skipped))


@pytest.mark.slow
def test_every_release_runs_it_on_the_modality_feature_view(meta):
    """stages.audit runs the GDPR risks whatever the policy, on a modality's feature view when it has one."""
    import yaml

    from synthrelease.modalities.base import Modality
    from synthrelease.pipeline import stages
    from synthrelease.policy.schema import Policy
    from tests.conftest import REPO

    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc.pop("fidelity"), doc.pop("utility")  # membership stays (a policy needs one audit section)
    view_meta = Metadata.model_validate({**TINY_METADATA, "columns": {
        c: TINY_METADATA["columns"][c] for c in ("age", "stage", "outcome")}})

    def view(df: pd.DataFrame, metadata: Metadata) -> tuple[pd.DataFrame, Metadata]:
        return df[["age", "stage", "outcome"]].reset_index(drop=True), view_meta

    stub = Modality("stub", default_config=None, fit=None, sample=None, shadow_synthesizer=None, audit_trainer=None,
                    view=view)
    parts = stages.TrainHoldout(make_tiny_table(200, seed=1), make_tiny_table(100, seed=2))
    results = stages.audit(parts, make_tiny_table(200, seed=3), meta, Policy.model_validate(doc), target="outcome",
                           seed=0, modality=stub)
    details = results["anonymeter"].details
    assert details["columns"] == ["age", "stage", "outcome"]
    assert details["on"] == "the stub modality's public feature view (one row per record)"
    assert all("risk" in r for r in details["risks"].values())
