from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthrelease.errors import InputFileError, PolicyError
from synthrelease.gate.verdict import evaluate_gate
from synthrelease.policy.schema import load_policy

REPO = Path(__file__).resolve().parents[2]
GOOD = {"quality_score": 0.9, "tstr_accuracy": 0.95, "dcr_mia_auc": 0.5, "exact_copy_share": 0.0}
"""Noisy DP figures that pass the default policy."""
PRIV = dict(epsilon=1.0, delta=1e-6, accountant="rdp", n_train_rows=1000)


@pytest.fixture
def default_policy():
    return load_policy(REPO / "policies" / "default.yaml")[0]


def test_shipped_policies_are_valid_and_packaged_copy_matches():
    for p in (REPO / "policies").glob("*.yaml"):
        load_policy(p)
    shipped = REPO / "synthrelease" / "data" / "policies" / "default.yaml"
    assert shipped.read_bytes() == (REPO / "policies" / "default.yaml").read_bytes()


def test_all_good_passes(default_policy):
    decision = evaluate_gate(default_policy, dp_figures=GOOD, audits={}, **PRIV)
    assert decision.passed and not decision.failed


@pytest.mark.parametrize(
    ("override", "figure_patch", "clause"),
    [
        ({"epsilon": 50.0}, {}, "privacy.max_epsilon"),
        ({"delta": 1e-4}, {}, "privacy.max_delta"),
        ({"n_train_rows": 50}, {}, "data.min_rows"),
        ({"accountant": "gdp"}, {}, "privacy.accountants"),
        ({}, {"quality_score": 0.1}, "fidelity.min_quality_score"),
        ({}, {"tstr_accuracy": 0.2}, "utility.min_tstr_accuracy"),
        ({}, {"dcr_mia_auc": 0.9}, "membership.max_dcr_mia_auc"),
        ({}, {"exact_copy_share": 0.3}, "membership.max_exact_copy_share"),
        ({}, {"tstr_accuracy": None}, "utility.min_tstr_accuracy"),
    ],
)
def test_every_clause_can_fail_the_gate(default_policy, override, figure_patch, clause):
    decision = evaluate_gate(default_policy, dp_figures={**GOOD, **figure_patch}, audits={}, **{**PRIV, **override})
    assert not decision.passed
    assert [c.clause for c in decision.failed] == [clause]


def test_delta_above_one_over_n_fails(default_policy):
    decision = evaluate_gate(default_policy, dp_figures=GOOD, audits={},
                             **{**PRIV, "delta": 5e-6, "n_train_rows": 300000})
    assert [c.clause for c in decision.failed] == ["privacy.require_delta_below_one_over_n"]


def test_old_policy_versions_and_non_dp_clauses_are_refused_with_a_hint(tmp_path):
    text = (REPO / "policies" / "default.yaml").read_text()
    p = tmp_path / "p.yaml"
    for version in (1, 2):
        p.write_text(text.replace("version: 3 ", f"version: {version} "))
        with pytest.raises(PolicyError, match=rf"{p}:\d+: policy key 'version': version {version} gates on exact"):
            load_policy(p)
    p.write_text(text.replace("  min_tstr_accuracy: 0.7", "  min_tstr_accuracy: 0.7\n  min_tstr_trtr_ratio: 0.8"))
    with pytest.raises(PolicyError, match=r"utility\.min_tstr_trtr_ratio.*not releasable with DP"):
        load_policy(p)
    p.write_text(text.replace("  max_exact_copy_share: 0.05",
                              "  max_exact_copy_share: 0.05\n  shadow_attack: {required: true, max_auc: 0.6}"))
    with pytest.raises(PolicyError, match=r"shadow_attack\.max_auc.*cannot gate a release"):
        load_policy(p)
    p.write_text(text.replace("audit_budget_share: 0.2", "audit_budget_share: 0.9"))
    with pytest.raises(PolicyError, match=r"privacy\.audit_budget_share"):
        load_policy(p)


def test_errors_name_file_line_and_key(tmp_path):
    text = (REPO / "policies" / "default.yaml").read_text().replace("  min_quality_score: 0.6",
                                                                   "  min_quality_score: 0.6\n  colour: red")
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "colour" in ln)
    assert f"{p}:{line}: policy key 'fidelity.colour': unknown key" in str(err.value)
    p.write_text(text.replace("colour: red", "").replace("max_epsilon: 5.0", "max_epsilon: -1"))
    with pytest.raises(PolicyError, match=r"privacy\.max_epsilon"):
        load_policy(p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
                        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                            st.sampled_from(["version", "name", "privacy", "fidelity", "max_epsilon", "x"]),
                            kids, max_size=4), max_leaves=12))
def test_random_yaml_gets_only_clear_errors(tmp_path, doc):
    p = tmp_path / "random.yaml"
    p.write_text(yaml.safe_dump(doc))
    try:
        load_policy(p)
    except (PolicyError, InputFileError) as e:
        assert str(p) in str(e) and "\n" not in str(e)
