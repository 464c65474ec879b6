"""The pipeline's use of the policy: refusals before training (exit 2) and the audits it runs."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synthrelease import api as pipeline
from synthrelease.audits.base import AuditResult
from synthrelease.bundle.signing import generate_keypair, key_fingerprint, load_public_key
from synthrelease.cli import cli
from synthrelease.errors import PolicyError, SynthreleaseError
from synthrelease.gan import trainer
from synthrelease.gan.config import TrainingConfig
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import Modality
from synthrelease.policy.schema import Policy
from tests.conftest import TINY_METADATA, make_tiny_table

REPO = Path(__file__).resolve().parents[2]


def _policy_doc(**extra: object) -> dict:
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc.update(extra)
    return doc


@pytest.fixture
def ws(tmp_path, monkeypatch):
    make_tiny_table(300, seed=2).to_csv(tmp_path / "private.csv", index=False)
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(TINY_METADATA, sort_keys=False))
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub.pem")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("training must not start")

    monkeypatch.setattr(trainer, "fit_dp_synthesizer", no_training)  # what the tabular modality hands over
    return tmp_path


def _release(ws: Path, doc: dict) -> None:
    (ws / "policy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / "policy.yaml",
                     epsilon=3.0, out_dir=ws / "bundle", signing_key=ws / "k.pem")


def test_a_key_the_policy_does_not_allow_is_refused_before_training(ws):
    doc = _policy_doc()
    doc["signing"]["allowed_key_fingerprints"] = ["0" * 64]
    with pytest.raises(PolicyError, match=r"k\.pem: signing key \(SHA-256 fingerprint [0-9a-f]{64}\) is not among"):
        _release(ws, doc)
    res = CliRunner().invoke(cli, ["release", str(ws / "private.csv"), "--metadata", str(ws / "meta.yaml"),
                                   "--policy", str(ws / "policy.yaml"), "--epsilon", "3",
                                   "--out", str(ws / "bundle"), "--signing-key", str(ws / "k.pem")])
    assert res.exit_code == 2 and "allowed_key_fingerprints" in res.output
    assert not (ws / "bundle").exists()


def test_an_allowed_key_goes_on_to_training(ws):
    doc = _policy_doc()
    doc["signing"]["allowed_key_fingerprints"] = [key_fingerprint(load_public_key(ws / "k.pub.pem"))]
    with pytest.raises(AssertionError, match="training must not start"):
        _release(ws, doc)


def test_unknown_rule_column_is_refused_before_training(ws):
    doc = _policy_doc(plausibility={"rules": [{"id": "bmi_cap", "kind": "range", "column": "BMI", "max": 60}]})
    with pytest.raises(PolicyError, match=r"policy\.yaml:\d+: plausibility rule 'bmi_cap': column 'BMI' is not"):
        _release(ws, doc)


def test_a_required_audit_missing_from_the_build_is_refused_before_training(ws, monkeypatch):
    monkeypatch.setitem(pipeline.OPTIONAL_AUDITS, "shadow", ("synthrelease.audits.no_such_module", "run"))
    doc = _policy_doc()
    doc["membership"]["shadow_attack"] = {"required": True}
    with pytest.raises(SynthreleaseError, match="audit shadow is not available in this build") as err:
        _release(ws, doc)
    assert err.value.exit_code == 2


def test_run_audits_runs_what_the_policy_asks_for(monkeypatch):
    calls: dict[str, tuple] = {}

    def fake(name: str, metric: str):
        def run(*args: object, **kwargs: object) -> AuditResult:
            calls[name] = (args, kwargs)
            return AuditResult(name, {metric: 0.5})
        return run

    monkeypatch.setitem(pipeline.OPTIONAL_AUDITS, "shadow", ("fake_shadow", "run_shadow_attack"))
    monkeypatch.setitem(pipeline.OPTIONAL_AUDITS, "empirical_privacy", ("fake_emp", "run_one_run_audit"))
    monkeypatch.setitem(sys.modules, "fake_shadow",
                        types.SimpleNamespace(run_shadow_attack=fake("shadow", "shadow_mia_auc")))
    monkeypatch.setitem(sys.modules, "fake_emp",
                        types.SimpleNamespace(run_one_run_audit=fake("empirical_privacy", "epsilon_lower_bound")))
    doc = _policy_doc(plausibility={"rules": [{"id": "adult", "kind": "range", "column": "age", "min": 18}]})
    doc.pop("fidelity"), doc.pop("utility")
    doc["privacy"]["empirical_audit"] = {"required": True}
    doc["membership"]["shadow_attack"] = {"required": True}
    policy = Policy.model_validate(doc)
    meta = Metadata.model_validate(TINY_METADATA)
    train, holdout, synthetic = (make_tiny_table(120, seed=s) for s in (1, 2, 3))
    config = TrainingConfig(target_epsilon=1.0, target_delta=1e-5, batch_size=24)
    shadow_fit, audit_trainer = object(), object()
    modality = Modality("stub", default_config=None, fit=None, sample=None,
                        shadow_synthesizer=lambda *a, **k: shadow_fit, audit_trainer=audit_trainer)
    results = pipeline.run_audits(train, holdout, synthetic, meta, policy, target="outcome", seed=4,
                                  training_config=config, modality=modality)
    # the GDPR risks (anonymeter) run whatever the policy; no clause reads them
    assert set(results) == {"anonymeter", "membership", "plausibility", "shadow", "empirical_privacy"}
    assert results["anonymeter"].details["on"] == "rows"
    assert results["plausibility"].metrics["violation_share:adult"] == 0.0
    def without_progress(call: tuple) -> tuple:
        return call[0], {k: v for k, v in call[1].items() if k != "progress"}

    assert "progress" in calls["shadow"][1] and "progress" in calls["empirical_privacy"][1]  # long stages report
    calls = {k: without_progress(v) for k, v in calls.items()}
    # the audits that retrain get the modality's trainers handed in, never an import of their own
    # (and its canaries and distance space: None = the table's)
    assert calls["shadow"] == ((train, holdout, meta, config), {"seed": 4, "condition_column": "outcome",
                                                                "synthesizer": shadow_fit, "encode": None})
    # the empirical audit's canary run is trained on the SYNTHETIC rows, never the private ones
    assert calls["empirical_privacy"] == ((synthetic, meta, config), {"seed": 4, "condition_column": "outcome",
                                                                      "trainer": audit_trainer,
                                                                      "canary_maker": None, "encode": None})


def test_unreviewed_metadata_is_refused_by_release_and_train(ws):
    meta = dict(TINY_METADATA, reviewed=False)
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (ws / "policy.yaml").write_text(yaml.safe_dump(_policy_doc(), sort_keys=False))
    common = ["--metadata", str(ws / "meta.yaml"), "--epsilon", "3"]
    res = CliRunner().invoke(cli, ["release", str(ws / "private.csv"), *common, "--policy", str(ws / "policy.yaml"),
                                   "--out", str(ws / "bundle"), "--signing-key", str(ws / "k.pem")])
    assert res.exit_code == 2 and "meta.yaml" in res.output and "reviewed" in res.output
    res = CliRunner().invoke(cli, ["train", str(ws / "private.csv"), *common, "-o", str(ws / "m.pt")])
    assert res.exit_code == 2 and "meta.yaml" in res.output and "reviewed" in res.output
    for command in ("release", "train"):  # the escape hatch is gone
        res = CliRunner().invoke(cli, [command, "--help"])
        assert "--allow-unreviewed-metadata" not in res.output
    assert not (ws / "bundle").exists() and not (ws / "m.pt").exists()
