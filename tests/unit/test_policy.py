from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthrelease.audits.base import AuditResult
from synthrelease.errors import InputFileError, PolicyError
from synthrelease.policy.gate import evaluate_gate
from synthrelease.policy.schema import load_policy

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "fidelity": AuditResult("fidelity", {"quality_score": 0.9}),
    "utility": AuditResult("utility", {"tstr_trtr_ratio": 0.95}),
    "membership": AuditResult("membership", {"dcr_mia_auc": 0.5, "exact_copy_share": 0.0}),
}
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
    decision = evaluate_gate(default_policy, audits=GOOD, **PRIV)
    assert decision.passed and not decision.failed


@pytest.mark.parametrize(
    ("override", "audit_patch", "clause"),
    [
        ({"epsilon": 50.0}, {}, "privacy.max_epsilon"),
        ({"delta": 1e-4}, {}, "privacy.max_delta"),
        ({"n_train_rows": 50}, {}, "data.min_rows"),
        ({"accountant": "gdp"}, {}, "privacy.accountants"),
        ({}, {"fidelity": AuditResult("fidelity", {"quality_score": 0.1})}, "fidelity.min_quality_score"),
        ({}, {"utility": AuditResult("utility", {"tstr_trtr_ratio": 0.2})}, "utility.min_tstr_trtr_ratio"),
        ({}, {"membership": AuditResult("membership", {"dcr_mia_auc": 0.9, "exact_copy_share": 0.0})},
         "membership.max_dcr_mia_auc"),
        ({}, {"membership": AuditResult("membership", {"dcr_mia_auc": 0.5, "exact_copy_share": 0.3})},
         "membership.max_exact_copy_share"),
        ({}, {"utility": AuditResult("utility", {"tstr_trtr_ratio": None})}, "utility.min_tstr_trtr_ratio"),
    ],
)
def test_every_clause_can_fail_the_gate(default_policy, override, audit_patch, clause):
    decision = evaluate_gate(default_policy, audits={**GOOD, **audit_patch}, **{**PRIV, **override})
    assert not decision.passed
    assert [c.clause for c in decision.failed] == [clause]


def test_delta_above_one_over_n_fails(default_policy):
    decision = evaluate_gate(default_policy, audits=GOOD, **{**PRIV, "delta": 5e-6, "n_train_rows": 300000})
    assert [c.clause for c in decision.failed] == ["privacy.require_delta_below_one_over_n"]


def test_errors_name_file_line_and_key(tmp_path):
    text = (REPO / "policies" / "default.yaml").read_text().replace("  min_quality_score: 0.7",
                                                                   "  min_quality_score: 0.7\n  colour: red")
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
