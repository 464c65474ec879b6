"""The Python API on in-memory objects: DataFrames, mappings, clause objects, levers, stages alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthrelease import api as pipeline
from synthrelease.bundle.signing import generate_keypair
from synthrelease.cli import cli
from synthrelease.errors import GateRefused, MetadataError, PolicyError, PrivacyParameterError
from synthrelease.modalities.base import tabular
from synthrelease.pipeline import stages
from synthrelease.privacy.randomness import PrivateRandomness
from tests.conftest import TINY_METADATA, lenient_policy_doc, make_tiny_table, release_workspace


@pytest.fixture(scope="module")
def api_release(tmp_path_factory):
    """One release from a DataFrame, a metadata mapping and a policy mapping, with every lever set."""
    work = tmp_path_factory.mktemp("api")
    key, _ = generate_keypair(work / "k.pem", work / "k.pub")
    df = make_tiny_table(500, seed=3)
    outcome = pipeline.release(df, metadata=TINY_METADATA, policy=lenient_policy_doc(), epsilon=3.0,
                               out_dir=work / "bundle", signing_key=key, n_steps=30, batch_size=64,
                               synthetic_rows=123, pair_marginals=0.1, training_options={"marginal_bins": 6})
    return work, df, outcome


def test_a_dataframe_release_returns_the_frame_the_decision_and_the_paths(api_release):
    _, _, outcome = api_release
    assert outcome.passed
    assert isinstance(outcome.synthetic, pd.DataFrame) and len(outcome.synthetic) == 123
    assert "patient_id" not in outcome.synthetic.columns  # identifiers are never synthesised
    for clause in outcome.decision.clauses:
        assert clause.name == clause.clause and isinstance(clause.passed, bool)
        assert clause.threshold is not None and clause.hint
    paths = outcome.paths
    assert paths["bundle"] == outcome.bundle_dir and paths["internal_report"] == outcome.report_path
    on_disk = pd.read_csv(paths["synthetic"])
    assert len(on_disk) == 123 and list(on_disk.columns) == list(outcome.synthetic.columns)
    report = json.loads(outcome.report_path.read_text())
    assert report["inputs"]["data"] == "<DataFrame>" and report["inputs"]["metadata"] == "<mapping>"


def test_the_manifest_records_the_levers_without_the_seed(api_release):
    _, _, outcome = api_release
    release = json.loads((outcome.bundle_dir / "manifest.json").read_text())["release"]
    training = release["training"]
    assert training["n_steps"] == 30 and training["batch_size"] == 64 and training["synthetic_rows"] == 123
    assert training["pair_epsilon_share"] == 0.1 and training["marginal_bins"] == 6
    assert "seed" not in training
    assert set(training["user_options"]) == {"n_steps", "batch_size", "synthetic_rows", "pair_marginals",
                                             "marginal_bins"}
    assert outcome.settings == training


def test_gate_refused_carries_the_decision(tmp_path):
    key, _ = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    doc = lenient_policy_doc()
    doc["fidelity"]["min_quality_score"] = 0.999
    with pytest.raises(GateRefused) as err:
        pipeline.release(make_tiny_table(400, seed=1), metadata=TINY_METADATA, policy=doc, epsilon=2.0,
                         out_dir=tmp_path / "bundle", signing_key=key, n_steps=20)
    decision = err.value.decision
    assert decision is not None and not decision.passed
    failed_names = [c.name for c in decision.clauses if not c.passed]  # another noisy clause may fail too
    assert "fidelity.min_quality_score" in failed_names, failed_names
    (failed,) = [c for c in decision.clauses if c.name == "fidelity.min_quality_score"]
    assert not failed.passed and failed.threshold == 0.999
    assert isinstance(failed.measured, float) and "ε" in failed.hint
    assert err.value.report_path.is_file() and not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"target_epsilon": 9.0}, "set it with its own option"),
    ({"no_such_knob": 1}, "not a training setting"),
    ({"marginal_bins": "many"}, "expected int"),
    ({"marginal_bins": 1}, "marginal_bins must be >= 2"),
])
def test_bad_training_options_are_refused_with_one_line(tmp_path, options, message):
    key, _ = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    with pytest.raises(PrivacyParameterError, match=message) as err:
        pipeline.release(make_tiny_table(300, seed=1), metadata=TINY_METADATA, policy=lenient_policy_doc(),
                         epsilon=2.0, out_dir=tmp_path / "bundle", signing_key=key, n_steps=5,
                         training_options=options)
    assert "\n" not in str(err.value) and not (tmp_path / "bundle").exists()


def test_bad_mappings_name_the_key():
    with pytest.raises(MetadataError, match="columns"):
        stages.resolve_metadata({"name": "x", "reviewed": True})
    with pytest.raises(PolicyError, match=r"<mapping>: policy key 'privacy\.max_epsilonn': unknown key"):
        doc = lenient_policy_doc()
        doc["privacy"]["max_epsilonn"] = 1
        stages.resolve_policy(doc)
    unreviewed = dict(TINY_METADATA, reviewed=False)
    with pytest.raises(MetadataError, match="not reviewed"):
        stages.load(make_tiny_table(50, seed=0), unreviewed)


def test_cli_levers_reach_the_release(tmp_path):
    ws = release_workspace(tmp_path, rows=400)
    base = ["-q", "release", str(ws / "private.csv"), "--metadata", str(ws / "meta.yaml"), "--policy",
            str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"), "--epsilon", "3", "--steps", "20"]
    res = CliRunner().invoke(cli, [*base, "--out", str(ws / "b"), "--synthetic-rows", "77",
                                   "--train-option", "marginal_bins=5", "--pair-marginals", "0.1"])
    assert res.exit_code == 0, res.output
    release = json.loads((ws / "b" / "manifest.json").read_text())["release"]
    assert release["training"]["marginal_bins"] == 5 and release["dataset"]["synthetic_rows"] == 77
    res = CliRunner().invoke(cli, [*base, "--out", str(ws / "c"), "--train-option", "marginal_bins"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, [*base, "--out", str(ws / "d"), "--pair-marginals", "0.7"])
    assert res.exit_code == 2 and "--pair-marginals" in res.output and not (ws / "d").exists()


def test_each_stage_runs_alone(tmp_path):
    """load → validate → split → train → sample → audit → gate, stage by stage, on a DataFrame."""
    from synthrelease.gan.config import TrainingConfig
    from synthrelease.policy.schema import Policy

    loaded = stages.load(make_tiny_table(300, seed=4), TINY_METADATA)
    stages.validate(loaded)
    assert loaded.data_sha256 == loaded.content_sha256 and loaded.fmt.kind == "csv"
    parts = stages.split(loaded.table, holdout_fraction=0.25,
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert len(parts.train) + len(parts.holdout) == 300
    kind = tabular()
    config = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, n_steps=10, batch_size=32, generator_hidden=16,
                            discriminator_hidden=16, latent_dim=8)
    model = stages.train(parts.train, loaded.metadata, config, modality=kind, condition_column="outcome",
                         reserved_entries=(), randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    synthetic = stages.sample(model, 50, modality=kind, seed=0)
    assert len(synthetic) == 50
    policy = Policy.model_validate(lenient_policy_doc())
    audits = stages.audit(parts, synthetic, loaded.metadata, policy, target="outcome", seed=0)
    assert {"fidelity", "utility", "membership"} <= set(audits)
    from synthrelease import api as pipeline
    from synthrelease.privacy.dp_counts import count_entry

    sizes = pipeline.release_part_sizes(parts, loaded.metadata, "outcome",
                                        count_entry(0.05, epsilon=2.0, delta=1e-4, accountant="rdp"),
                                        PrivateRandomness.unsafe_reproducible_for_tests(3))
    verdict = stages.gate(policy, parts, synthetic, loaded.metadata, privacy=model.privacy, audits=audits,
                          target="outcome", gate_entry=None, seed=0, epsilon_spent_before=0.0, sizes=sizes,
                          randomness=PrivateRandomness.unsafe_reproducible_for_tests(2))
    assert verdict.decision.clauses and verdict.figures == {}


NUMBER_COLUMN = next(c for c, spec in TINY_METADATA["columns"].items() if spec["type"] == "float")


def test_a_release_lets_go_of_the_whole_table_after_the_split(tmp_path, monkeypatch):
    """After the split the release holds the private rows once, as the two parts (views of the
    loaded table's memory, reordered in place): the loaded frame is freed (validation's
    reference cycles collected), so a 3.8 GiB atlas is not held twice."""
    import weakref

    key, _ = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    make_tiny_table(300, seed=2).to_csv(tmp_path / "t.csv", index=False)
    seen: dict[str, object] = {}
    real_split = stages.split

    def split(table, **kwargs):
        values = table[NUMBER_COLUMN].to_numpy()
        while values.base is not None:  # the memory itself: a view of it (e.g. a slice) keeps it too
            values = values.base
        seen["table"], seen["memory"] = weakref.ref(table), weakref.ref(values)
        return real_split(table, **kwargs)

    def stop(train, *args, **kwargs):
        memory = seen["memory"]()
        seen["frame_alive"] = seen["table"]() is not None
        # the memory lives on only as the parts (the consuming split reorders it in place)
        seen["held_twice"] = memory is not None and not np.shares_memory(train[NUMBER_COLUMN].to_numpy(), memory)
        raise KeyboardInterrupt  # stop here: nothing trained, nothing spent

    real_validate = stages.validate

    def validate(loaded, kind):  # a reference cycle holding the table, as Great Expectations' parser leaves
        out = real_validate(loaded, kind)
        cycle: dict[str, object] = {"table": out.table}
        cycle["self"] = cycle
        return out

    monkeypatch.setattr(stages, "validate", validate)
    monkeypatch.setattr(stages, "split", split)
    monkeypatch.setattr(stages, "first_row_per_person", stop)
    import gc

    gc.disable()  # only the release's own collection may free the cycle
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.release(tmp_path / "t.csv", metadata=TINY_METADATA, policy=lenient_policy_doc(), epsilon=2.0,
                             out_dir=tmp_path / "bundle", signing_key=key, ledger_path=tmp_path / "l.sqlite3")
    finally:
        gc.enable()
    assert seen["frame_alive"] is False and seen["held_twice"] is False
