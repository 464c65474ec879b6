"""Policy schema v3: shipped policies, old versions refused, impossible values, file:line:key errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synthrelease.audits.plausibility import check_rules
from synthrelease.cli import cli
from synthrelease.errors import PolicyError
from synthrelease.metadata.load import load_metadata
from synthrelease.policy.schema import load_policy

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("default.yaml", "consortium-strict.yaml", "exploratory.yaml")

V1_POLICY = """\
version: 1
name: old
privacy:
  max_epsilon: 5.0
  max_delta: 1.0e-5
  require_delta_below_one_over_n: true
  accountants: [rdp, prv]
data:
  min_rows: 100
fidelity:
  min_quality_score: 0.7
utility:
  min_tstr_trtr_ratio: 0.85
membership:
  max_dcr_mia_auc: 0.6
  max_exact_copy_share: 0.0
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", SHIPPED)
def test_policy_check_accepts_every_shipped_policy(name):
    res = CliRunner().invoke(cli, ["policy", "check", str(REPO / "policies" / name)])
    assert res.exit_code == 0, res.output
    assert "valid policy" in res.output


def test_shipped_policies_say_what_they_are():
    strict = load_policy(REPO / "policies" / "consortium-strict.yaml")[0]
    assert strict.privacy.max_epsilon <= 1 and strict.privacy.max_delta <= 1e-6
    assert strict.privacy.require_delta_below_one_over_n
    assert strict.shadow_attack_required and strict.empirical_audit_required
    assert strict.membership.max_tpr_at_fpr_1pct is not None and strict.privacy.audit_budget_share > 0
    assert strict.lifetime_epsilon_cap is not None and strict.rules
    assert {r.kind for r in strict.rules} == {"range", "in_set", "less_than", "non_negative", "conditional"}
    exploratory_text = (REPO / "policies" / "exploratory.yaml").read_text()
    assert "NOT FOR EXTERNAL SHARING" in exploratory_text.upper()
    assert load_policy(REPO / "policies" / "exploratory.yaml")[0].privacy.max_epsilon > 5


def test_strict_rules_fit_the_bundled_demo_metadata():
    policy_path = REPO / "policies" / "consortium-strict.yaml"
    meta = load_metadata(REPO / "synthrelease" / "data" / "breast_cancer.metadata.yaml")
    check_rules(load_policy(policy_path)[0].rules, meta, policy_path=policy_path)


def test_version_1_and_2_are_refused_with_their_line_and_a_hint(tmp_path):
    """Old files gated on exact (non-DP) figures: refused, never silently reinterpreted."""
    for version in (1, 2):
        p = _write(tmp_path, V1_POLICY.replace("version: 1", f"version: {version}"))
        with pytest.raises(PolicyError) as err:
            load_policy(p)
        assert str(err.value).startswith(f"{p}:1: policy key 'version': version {version} gates on exact")
        assert "version: 3" in str(err.value)


def test_a_minimal_version_3_policy_loads(tmp_path):
    text = V1_POLICY.replace("version: 1", "version: 3").replace("min_tstr_trtr_ratio: 0.85", "min_tstr_accuracy: 0.8")
    policy, sha = load_policy(_write(tmp_path, text))
    assert policy.version == 3 and len(sha) == 64 and policy.privacy.audit_budget_share == 0.1
    assert policy.rules == [] and policy.signing is None and policy.lifetime_epsilon_cap is None


def _strict_doc() -> dict:
    return yaml.safe_load((REPO / "policies" / "consortium-strict.yaml").read_text())


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("privacy", "max_epsilon"), 0, "privacy.max_epsilon"),
        (("privacy", "max_epsilon"), float("inf"), "privacy.max_epsilon"),
        (("privacy", "max_delta"), 1.0, "privacy.max_delta"),
        (("privacy", "max_delta"), 0.0, "privacy.max_delta"),
        (("privacy", "lifetime_epsilon_cap"), 0.5, "privacy.lifetime_epsilon_cap"),
        (("privacy", "empirical_audit", "required"), "maybe", "privacy.empirical_audit.required"),
        (("data", "min_rows"), 0, "data.min_rows"),
        (("fidelity", "min_prdc_coverage"), 1.5, "fidelity.min_prdc_coverage"),
        (("fidelity", "max_missing_category_share"), -0.1, "fidelity.max_missing_category_share"),
        (("utility", "min_tstr_auc"), 2.0, "utility.min_tstr_auc"),
        (("membership", "max_mia_auc"), 0.4, "membership.max_mia_auc"),
        (("membership", "max_tpr_at_fpr_1pct"), 0.005, "membership.max_tpr_at_fpr_1pct"),
        (("membership", "max_tpr_at_fpr_0_1pct"), 0.0001, "membership.max_tpr_at_fpr_0_1pct"),
        (("membership", "shadow_attack", "max_auc"), 0.6, "membership.shadow_attack.max_auc"),
        (("utility", "min_tstr_trtr_ratio"), 0.8, "utility.min_tstr_trtr_ratio"),
        (("privacy", "audit_budget_share"), 0.0, "privacy.audit_budget_share"),
        (("membership", "shadow_attack", "colour"), "red", "membership.shadow_attack.colour"),
        (("plausibility", "rules", 0, "max_violation_share"), 1.5, "plausibility.rules.0.max_violation_share"),
        (("plausibility", "rules", 0, "min"), 100, "plausibility.rules.0"),
        (("plausibility", "rules", 1, "kind"), "between", "plausibility.rules.1"),
        (("plausibility", "rules", 2, "column_b"), "mean_radius", "plausibility.rules.2"),
        (("plausibility", "rules", 4, "columns"), 7, "plausibility.rules.4.columns"),
        (("plausibility", "rules", 5, "then", "colour"), 1, "plausibility.rules.5.then.colour"),
        (("plausibility", "rules", 5, "if", "in_set"), ["benign"], "plausibility.rules.5.if"),
        (("plausibility", "rules", 1, "id"), "radius_physiological", "plausibility"),
        (("plausibility", "rules", 1, "id"), "has space", "plausibility.rules.1.id"),
        (("signing", "allowed_key_fingerprints"), ["abc"], "signing.allowed_key_fingerprints"),
        (("signing", "signer"), "", "signing.signer"),
    ],
)
def test_impossible_values_are_refused_with_file_line_and_key(tmp_path, path, value, key):
    doc = _strict_doc()
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    p = _write(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:") and f"policy key '{key}" in msg, msg
    line = int(msg.split(":")[1])
    text_lines = p.read_text().splitlines()
    assert 1 <= line <= len(text_lines)
    assert "\n" not in msg


def test_rule_error_points_at_the_rules_line(tmp_path):
    doc = _strict_doc()
    doc["plausibility"]["rules"][3]["or_equal"] = "sometimes"
    p = _write(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    line = int(str(err.value).split(":")[1])
    assert "or_equal" in p.read_text().splitlines()[line - 1]


def test_fingerprints_are_normalised_to_lower_case(tmp_path):
    doc = _strict_doc()
    doc["signing"]["allowed_key_fingerprints"] = ["AB" * 32]
    policy = load_policy(_write(tmp_path, yaml.safe_dump(doc)))[0]
    assert policy.signing.allowed_key_fingerprints == ["ab" * 32]


def test_dump_keeps_the_if_key():
    policy = load_policy(REPO / "policies" / "consortium-strict.yaml")[0]
    dumped = policy.model_dump(mode="json")
    conditional = next(r for r in dumped["plausibility"]["rules"] if r["kind"] == "conditional")
    assert "if" in conditional and "if_" not in conditional
