"""Sequence-aware audits: fidelity, diversity, memorisation, membership and TSTR utility."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthrelease.errors import DataValidationError
from synthrelease.metadata.alphabets import ALPHABETS
from synthrelease.modalities.sequence.audits import run_sequence_audits

AMINO = list(ALPHABETS["protein"])


def peptides_table(n: int, seed: int, *, rich: float = 4.0, lengths: tuple[int, int] = (10, 30)) -> pd.DataFrame:
    """Two classes: AMP rich in K, non-AMP rich in D (``rich`` = extra weight of that letter)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    seqs = []
    for y in labels:
        p = np.ones(len(AMINO))
        p[AMINO.index("K" if y else "D")] += rich
        seqs.append("".join(rng.choice(AMINO, rng.integers(*lengths), p=p / p.sum())))
    return pd.DataFrame({"seq": seqs, "label": np.where(labels == 1, "AMP", "nonAMP")})


def audit(train, holdout, synthetic, **kwargs):
    kwargs = {"sequence_column": "seq", "label_column": "label", "alphabet": "protein", "seed": 0, **kwargs}
    return run_sequence_audits(train, holdout, synthetic, **kwargs)


TRAIN, HOLDOUT = peptides_table(300, seed=1), peptides_table(300, seed=2)


def test_a_copying_generator_is_caught():
    r = audit(TRAIN, HOLDOUT, TRAIN.sample(frac=1.0, random_state=0))
    m = r.metrics
    assert r.name == "sequence" and r.internal_only
    assert m["exact_copy_share_train"] == 1.0 and m["near_copy_share_train"] == 1.0 and m["novel_share"] == 0.0
    assert m["exact_copy_share_holdout"] == 0.0 and m["near_copy_share_holdout"] < 0.05
    assert m["nn_identity_synthetic_to_train_mean"] == 1.0
    assert m["nn_identity_mia_auc"] > 0.95 and m["nn_identity_tpr_at_fpr_1pct"] > 0.9
    assert m["length_tv"] == 0.0 and m["kmer3_js"] == pytest.approx(0.0, abs=1e-12)


def test_near_copies_count_as_near_not_exact():
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"seq": ["".join(rng.choice(AMINO, 20)) for _ in range(100)]})
    holdout = pd.DataFrame({"seq": ["".join(rng.choice(AMINO, 20)) for _ in range(100)]})
    mutated = [s[:7] + ("W" if s[7] != "W" else "Y") + s[8:] for s in train["seq"]]  # one substitution: 0.95
    r = audit(train, holdout, pd.DataFrame({"seq": mutated}), label_column=None)
    assert r.metrics["exact_copy_share_train"] == 0.0 and r.metrics["near_copy_share_train"] == 1.0
    assert r.metrics["nn_identity_synthetic_to_train_mean"] == pytest.approx(0.95)


def test_an_unrelated_generator_copies_nothing_and_differs_more_than_a_fresh_sample():
    rng = np.random.default_rng(4)
    unrelated = pd.DataFrame({"seq": ["".join(rng.choice(list("AGILMFWV"), rng.integers(30, 50))) for _ in range(300)],
                              "label": rng.choice(["AMP", "nonAMP"], 300)})
    far = audit(TRAIN, HOLDOUT, unrelated).metrics
    near = audit(TRAIN, HOLDOUT, peptides_table(300, seed=5)).metrics
    for m in (far, near):
        assert m["exact_copy_share_train"] == 0.0 and m["exact_copy_share_holdout"] == 0.0
        assert m["near_copy_share_train"] <= 0.01 and m["near_copy_share_holdout"] <= 0.01
        assert m["novel_share"] == 1.0 and m["unique_share"] == 1.0
    assert abs(near["nn_identity_mia_auc"] - 0.5) < 0.1
    for name in ("kmer2_js", "kmer3_js", "composition_tv", "length_tv", "descriptor_ks_hydrophobicity",
                 "descriptor_ks_net_charge"):
        assert far[name] > near[name] + 0.1, name
    assert far["kmer2_js"] > 5 * near["kmer2_js"]
    assert far["real_vs_synthetic_accuracy"] > 0.95 and near["real_vs_synthetic_accuracy"] < 0.65


def test_a_collapsed_generator_shows_in_the_diversity_figures():
    collapsed = pd.DataFrame({"seq": ["GLFDIVKKVVGALGSL"] * 200, "label": ["AMP"] * 200})
    m = audit(TRAIN, HOLDOUT, collapsed).metrics
    assert m["unique_share"] == 1 / 200 and m["mean_pairwise_identity_synthetic"] == 1.0
    assert m["tstr_auc"] is None and m["trtr_auc"] > 0.5  # one synthetic class: no TSTR model
    normal = audit(TRAIN, HOLDOUT, peptides_table(200, seed=6)).metrics
    assert normal["mean_pairwise_identity_synthetic"] < 0.5 and normal["unique_share"] == 1.0


def test_tstr_on_a_separable_problem():
    r = audit(TRAIN, HOLDOUT, peptides_table(300, seed=7, rich=8.0))
    assert r.metrics["tstr_auc"] > 0.9 and r.metrics["trtr_auc"] > 0.9
    assert r.details["utility"]["converged"] == {"tstr_auc": True, "trtr_auc": True}
    shuffled = peptides_table(300, seed=7, rich=8.0)
    shuffled["label"] = np.random.default_rng(0).permutation(shuffled["label"].to_numpy())
    assert abs(audit(TRAIN, HOLDOUT, shuffled).metrics["tstr_auc"] - 0.5) < 0.15  # labels unrelated to sequences


def test_three_classes_give_a_macro_auc():
    def three(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        rich = np.array(["K", "D", "W"])[y]
        seqs = ["".join(rng.choice([r] * 6 + AMINO, 25)) for r in rich]
        return pd.DataFrame({"seq": seqs, "label": y})
    m = audit(three(240, 1), three(120, 2), three(240, 3)).metrics
    assert m["tstr_auc"] > 0.9 and m["trtr_auc"] > 0.9


def test_results_are_reproducible_json_able_explained_and_independent_of_blocking():
    synthetic = peptides_table(120, seed=8)
    a = audit(TRAIN, HOLDOUT, synthetic, seed=3)
    b = audit(TRAIN, HOLDOUT, synthetic, seed=3, max_pairs=7)  # blocks of 7 pairs: same nearest neighbours
    assert a.metrics == b.metrics
    json.dumps(a.details)
    assert set(a.details["meanings"]) == set(a.metrics)
    assert all(isinstance(v, float) for v in a.metrics.values())
    assert a.details["holdout_vs_train"]["kmer2_js"] < 0.05


def test_dna_audit_has_no_protein_descriptors():
    rng = np.random.default_rng(9)
    tables = [pd.DataFrame({"seq": ["".join(rng.choice(list("ACGT"), 40)) for _ in range(80)]}) for _ in range(3)]
    m = run_sequence_audits(*tables, sequence_column="seq", label_column=None, alphabet="dna", seed=0).metrics
    assert not any(k.startswith("descriptor_ks_") for k in m) and "tstr_auc" not in m
    assert m["kmer3_js"] is not None and m["exact_copy_share_train"] == 0.0


def test_bad_input_is_refused_without_values():
    bad = pd.DataFrame({"seq": ["KKKK", "SECRETXQ"], "label": ["AMP", "AMP"]})
    with pytest.raises(DataValidationError, match=r"synthetic table\): column 'seq', row 2") as excinfo:
        audit(TRAIN, HOLDOUT, bad)
    assert "SECRETXQ" not in str(excinfo.value)
    with pytest.raises(DataValidationError, match="lacks the sequence column"):
        audit(TRAIN, HOLDOUT.rename(columns={"seq": "s"}), TRAIN)
    with pytest.raises(DataValidationError, match="lacks the label column"):
        audit(TRAIN, HOLDOUT, TRAIN.drop(columns="label"))
    with pytest.raises(DataValidationError, match="no rows"):
        audit(TRAIN, HOLDOUT.iloc[:0], TRAIN)
