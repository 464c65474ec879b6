"""Sequences in the retraining audits: canaries, distance space, the audit run's score, the shadow
attack and the empirical ε audit through the tables' code path (tiny data, few DP-SGD steps)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits.empirical_privacy import run_many_run_audit, run_one_run_audit
from synthrelease.audits.shadow import run_shadow_attack
from synthrelease.errors import PrivacyParameterError
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import modality_for, modality_named
from synthrelease.modalities.sequence.audit_runs import (
    calibrated_log_likelihood,
    encode_sequences,
    letter_log_likelihood,
    make_sequence_canaries,
)

META = {"version": 1, "name": "peps", "reviewed": True, "target": "label",
        "columns": {"pid": {"type": "identifier"},
                    "seq": {"type": "sequence", "alphabet": "protein", "min_length": 8, "max_length": 12},
                    "label": {"type": "categorical", "categories": ["a", "b"]}}}
PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture
def meta() -> Metadata:
    return Metadata.model_validate(META)


def peptides(n: int, seed: int = 0) -> pd.DataFrame:
    """Two label-specific letter pools: far from uniform random canaries."""
    rng = np.random.default_rng(seed)
    pools = {"a": list("KKLLAG"), "b": list("DDEEGS")}
    labels = ["a" if i % 2 else "b" for i in range(n)]
    return pd.DataFrame({"pid": [f"p{i}" for i in range(n)],
                         "seq": ["".join(rng.choice(pools[lab], rng.integers(8, 13))) for lab in labels],
                         "label": labels})


def config(meta: Metadata, n: int, *, epsilon: float, steps: int):
    kind = modality_for(meta)
    return kind.default_config(n, epsilon=epsilon, delta=1e-5, seed=1, accountant="rdp", n_steps=steps,
                               metadata=meta, condition_column="label")


# ------------------------------------------------------------------ canaries and distance space


def test_canaries_are_seeded_public_and_inside_the_declared_domain(meta):
    a, b = make_sequence_canaries(meta, 50, seed=7), make_sequence_canaries(meta, 50, seed=7)
    assert a.equals(b) and not a.equals(make_sequence_canaries(meta, 50, seed=8))
    assert list(a.columns) == ["pid", "seq", "label"] and a["pid"][3] == "canary-00003"
    assert a["seq"].str.len().between(8, 12).all() and a["seq"].str.fullmatch(f"[{PROTEIN}]+").all()
    assert set(a["label"]) <= {"a", "b"}
    letters = "".join(a["seq"])  # uniform over 20 letters: far from the data's two pools of six
    assert len(set(letters)) == 20


def test_squared_distance_counts_differing_positions_and_label(meta):
    df = pd.DataFrame({"seq": ["ACDEFGHI", "ACDEFGHK", "ACDEFGHIKL", "ACDEFGHI"], "label": ["a", "a", "a", "b"]})
    x = encode_sequences(df, meta).astype(np.float64)
    assert x.shape == (4, 12 * 21 + 2)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert d2[0, 1] == pytest.approx(1.0)  # one substitution
    assert d2[0, 2] == pytest.approx(2.0)  # two letters where the other had ended
    assert d2[0, 3] == pytest.approx(1.0)  # the label only
    assert d2[0, 0] == 0.0


# ------------------------------------------------------------------ the audit run and its score


@pytest.fixture(scope="module")
def trained():
    meta = Metadata.model_validate(META)
    kind = modality_for(meta)
    df = peptides(40)
    run = kind.audit_trainer(df, meta, config(meta, 40, epsilon=1e5, steps=60), condition_column="label",
                             canaries=None)
    return meta, df, run


@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha:UserWarning")
def test_log_likelihood_known_answers(trained):
    meta, df, run = trained
    seqs, labels = list(df["seq"]), list(df["label"])
    ll = letter_log_likelihood(run.model.inner, seqs, labels)
    assert ll.shape == (40,) and (ll < 0).all()
    # a homopolymer's shuffles are itself: its calibrated score is exactly 0
    assert calibrated_log_likelihood(run.model.inner, ["KKKKKKKK"], ["a"], seed=0) == pytest.approx([0.0])
    assert np.allclose(calibrated_log_likelihood(run.model.inner, seqs, labels, seed=0, n_references=0), ll)
    # ordering: sequences like the training ones are likelier than uniform random canaries
    canaries = make_sequence_canaries(meta, 40, seed=1)
    assert ll.mean() > letter_log_likelihood(run.model.inner, list(canaries["seq"]), list(canaries["label"])).mean()


def test_the_audit_run_refuses_what_it_cannot_audit(meta):
    kind = modality_for(meta)
    cfg = config(meta, 40, epsilon=3, steps=2)
    with pytest.raises(PrivacyParameterError, match="noise-scale"):
        kind.audit_trainer(peptides(40), meta, cfg, condition_column="label", noise_scale=0.0)
    gan = dataclasses.replace(cfg, generator="positional_gan")
    assert kind.retraining_refusal(cfg) is None and "autoregressive" in kind.retraining_refusal(gan)
    with pytest.raises(PrivacyParameterError, match="autoregressive"):
        kind.audit_trainer(peptides(40), meta, gan, condition_column="label")
    assert "image" in modality_named("image").retraining_refusal(None)
    assert modality_named("table").retraining_refusal(None) is None


@pytest.mark.filterwarnings("ignore:Optimal order is the smallest alpha:UserWarning")
@pytest.mark.parametrize(("epsilon", "caught"), [(1e5, True), (1.0, False)])
def test_one_run_audit_has_power_without_privacy_and_passes_a_private_run(meta, epsilon, caught):
    kind = modality_for(meta)
    df = peptides(40)
    res = run_one_run_audit(df, meta, config(meta, 40, epsilon=epsilon, steps=60), seed=3, n_canaries=40,
                            trainer=kind.audit_trainer, canary_maker=kind.canaries, encode=kind.distance_encoding)
    lb, claimed = res.metrics["epsilon_lower_bound"], res.metrics["epsilon_claimed"]
    assert claimed == pytest.approx(epsilon, rel=0.01)
    assert (lb > 0.5) is caught and lb <= claimed
    assert "log-likelihood" in res.details["score_method"]


def test_black_box_score_and_many_run_go_through_the_same_path(meta):
    kind = modality_for(meta)
    df = peptides(30)
    cfg = config(meta, 30, epsilon=3, steps=3)
    res = run_one_run_audit(df, meta, cfg, seed=3, n_canaries=8, score="black_box", trainer=kind.audit_trainer,
                            canary_maker=kind.canaries, encode=kind.distance_encoding)
    assert res.metrics["audit_guesses"] > 0 and "nearest synthetic sequence" in res.details["score_method"]
    many = run_many_run_audit(df, meta, cfg, seed=1, n_runs=8, trainer=kind.audit_trainer,
                              canary_maker=kind.canaries)
    assert many.metrics["audit_runs"] == 8 and len(many.details["scores_in"]) == 4


# ------------------------------------------------------------------ the shadow attack


def _copying(train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """A 'synthesizer' that publishes its training sequences."""
    del n_rows, seed
    return train


def test_shadow_attack_on_sequences_orders_copying_above_fresh_data(meta):
    df = peptides(120, seed=2)
    kw = {"seed": 0, "n_targets": 2, "shadow_rows": 30, "encode": modality_for(meta).distance_encoding}
    copy = run_shadow_attack(df.iloc[:60], df.iloc[60:], meta, None, synthesizer=_copying, n_shadow_pairs=6,
                             released=df.iloc[:60], **kw)
    assert copy.metrics["shadow_mia_auc"] >= 0.9 and copy.metrics["shadow_mia_auc_mean"] >= 0.9
    assert all(t["released_p_member"] > 0.5 for t in copy.details["targets"])
    pool = peptides(400, seed=9)

    def fresh(train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        del train
        return pool.sample(n=n_rows, random_state=seed).reset_index(drop=True)

    chance = run_shadow_attack(df.iloc[:60], df.iloc[60:], meta, None, synthesizer=fresh, n_shadow_pairs=30,
                               synthetic_rows=30, **kw)
    assert all(0.25 <= t["auc"] <= 0.75 for t in chance.details["targets"]), chance.details["targets"]


def test_the_release_stages_run_both_audits_on_the_sequences_not_the_view(meta, monkeypatch):
    from synthrelease.pipeline import stages
    from synthrelease.policy.schema import Policy

    kind = modality_for(meta)
    df = peptides(60, seed=4)
    parts = stages.TrainHoldout(df.iloc[:40].reset_index(drop=True), df.iloc[40:].reset_index(drop=True))
    synthetic = peptides(30, seed=5)[["seq", "label"]]
    policy = Policy.model_validate({"version": 3, "name": "p", "privacy": {"max_epsilon": 10, "max_delta": 1e-4,
                                    "empirical_audit": {"required": True}},
                                    "membership": {"max_dcr_mia_auc": 0.9, "max_exact_copy_share": 1.0,
                                                   "shadow_attack": {"required": True}}})
    real = stages.optional_audit
    seen = {}

    def small(name):
        run = real(name)
        if name == "shadow":
            def shadow(train, holdout, metadata, *args, **kwargs):
                seen["columns"] = list(train.columns)
                return run(train, holdout, metadata, *args, n_targets=1, n_shadow_pairs=2, synthetic_rows=20,
                           **kwargs)
            return shadow
        return functools.partial(run, n_canaries=8)

    monkeypatch.setattr(stages, "optional_audit", small)
    results = stages.audit(parts, synthetic, meta, policy, target="label", seed=0,
                           config=config(meta, 40, epsilon=3, steps=3), modality=kind)
    assert seen["columns"] == ["pid", "seq", "label"]  # the sequences, not the feature view
    assert results["shadow"].details["n_fits"] == 4 and "error" not in results["shadow"].details
    assert results["empirical_privacy"].details["n_canaries"] == 8
    gan = dataclasses.replace(config(meta, 40, epsilon=3, steps=3), generator="positional_gan")
    with pytest.raises(Exception, match="autoregressive sequence model only"):
        stages.audit(parts, synthetic, meta, policy, target="label", seed=0, config=gan, modality=kind)
