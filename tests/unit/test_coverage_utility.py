"""Coverage in the fidelity audit (PRDC, missing categories, class shares) and the utility
audit's linear model, regression target and importance agreement.

Tiny seeded tables from tests/conftest.py; the whole file runs in a few seconds. The
fidelity quality_score vs sdmetrics' own QualityReport check lives in test_audits.py
(test_quality_score_equals_sdmetrics_quality_report).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits.coverage import run_coverage
from synthrelease.audits.fidelity import run_fidelity
from synthrelease.audits.utility import run_utility
from synthrelease.errors import MetadataError
from synthrelease.metadata.schema import Metadata
from tests.conftest import TINY_METADATA, make_tiny_table

META = Metadata.model_validate(TINY_METADATA)
FIDELITY_KEYS = {"quality_score", "column_shapes", "column_pair_trends"}
COVERAGE_KEYS = {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage", "missing_category_share"}


def shuffled(df: pd.DataFrame, column: str, seed: int = 0) -> pd.DataFrame:
    """``df`` with one column permuted (its link to the other columns broken)."""
    return df.assign(**{column: np.random.default_rng(seed).permutation(df[column].to_numpy())})


def with_bmi_signal(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """bmi made a strong function of age and stage (missing values kept): a learnable numeric target."""
    rng = np.random.default_rng(seed)
    bmi = np.clip(15 + 0.2 * df["age"] + 2 * df["stage"] + rng.normal(0, 1, len(df)), 15, 45).round(1)
    return df.assign(bmi=bmi.where(df["bmi"].notna()))


# ---------------------------------------------------------------- coverage in fidelity
def test_fidelity_on_a_copy_has_full_coverage_and_no_missing_category():
    real = make_tiny_table(300, seed=1)
    result = run_fidelity(real, real.copy(), META, seed=0)
    m, cov = result.metrics, result.details["coverage"]
    assert set(m) == FIDELITY_KEYS | COVERAGE_KEYS
    assert m["prdc_precision"] == m["prdc_recall"] == m["prdc_coverage"] == 1.0
    assert 0.9 <= m["prdc_density"] <= 1.5
    assert m["missing_category_share"] == 0.0 and cov["missing_categories"] == {}
    assert cov["class_shares"]["real"] == cov["class_shares"]["synthetic"]
    assert cov["prdc"]["subsampled"] == {"real": False, "synthetic": False} and "pca" not in cov["prdc"]
    json.dumps(result.details, allow_nan=False)
    plain = run_fidelity(real, real.copy(), META, coverage=False)
    assert set(plain.metrics) == FIDELITY_KEYS and "coverage" not in plain.details


def test_collapse_onto_one_category_and_one_class_drops_coverage_and_names_the_missing():
    real, fresh = make_tiny_table(400, seed=1), make_tiny_table(400, seed=2)
    collapsed = real[real["stage"] == 1].sample(400, replace=True, random_state=0).assign(outcome="sick")
    good = run_fidelity(real, fresh, META, seed=0).metrics
    bad = run_fidelity(real, collapsed, META, seed=0)
    assert good["prdc_coverage"] > 0.8 and good["prdc_recall"] > 0.8
    assert bad.metrics["prdc_coverage"] < good["prdc_coverage"] - 0.4
    assert bad.metrics["prdc_recall"] < good["prdc_recall"] - 0.4
    cov = bad.details["coverage"]
    assert cov["missing_categories"] == {"stage": ["2", "3", "4"], "outcome": ["healthy"]}
    # (column, category) pairs seen in real: sex 2 + smoker 2 + stage 4 + outcome 2 = 10; 4 absent
    assert bad.metrics["missing_category_share"] == pytest.approx(0.4)
    assert cov["per_column"]["stage"] == {"declared": 4, "in_real": 4, "missing_in_synthetic": 3}
    assert cov["class_shares"]["synthetic"] == {"healthy": 0.0, "sick": 1.0}
    assert cov["class_shares"]["real"]["healthy"] > 0.2


def test_collapse_onto_a_few_real_rows_keeps_precision_but_loses_recall_and_coverage():
    real = make_tiny_table(400, seed=1)
    modes = real.iloc[:10].sample(400, replace=True, random_state=0)  # every synthetic row is one of 10 real rows
    m, _ = run_coverage(real, modes, META, seed=0)
    assert m["prdc_precision"] == 1.0
    assert m["prdc_recall"] < 0.2 and m["prdc_coverage"] < 0.2


def test_prdc_subsample_is_seeded_and_recorded_and_pca_is_optional():
    real, syn = make_tiny_table(300, seed=1), make_tiny_table(300, seed=2)
    a = run_coverage(real, syn, META, seed=0, max_rows=100)
    b = run_coverage(real, syn, META, seed=0, max_rows=100)
    c = run_coverage(real, syn, META, seed=1, max_rows=100)
    assert a == b and a[0] != c[0]
    assert a[1]["prdc"]["subsampled"] == {"real": True, "synthetic": True}
    assert a[1]["prdc"]["rows_real"] == a[1]["prdc"]["rows_synthetic"] == 100
    reduced = run_coverage(real, syn, META, seed=0, pca_dims=4)[1]["prdc"]
    assert reduced["encoded_width"] == 14 and reduced["pca"]["components"] == 4
    assert 0 < reduced["pca"]["explained_variance"] < 1


def test_fidelity_reads_rows_by_position_whatever_the_index():
    real = make_tiny_table(300, seed=1)
    every_other = make_tiny_table(600, seed=2).iloc[::2]  # index 0, 2, 4, ...
    assert run_fidelity(real, every_other, META).metrics == \
        run_fidelity(real, every_other.reset_index(drop=True), META).metrics


# ---------------------------------------------------------------- utility
def test_linear_model_is_reported_converges_and_sees_broken_labels():
    train, hold = make_tiny_table(400, seed=1), make_tiny_table(400, seed=2)
    copy = run_utility(train, hold, train.copy(), META, target="outcome", seed=0)
    m = copy.metrics
    assert m["tstr_auc_linear"] == m["trtr_auc_linear"] > 0.7
    assert copy.details["linear"]["tstr"]["converged"] and copy.details["linear"]["trtr"]["converged"]
    assert m["tstr_auc"] == m["trtr_auc"] and m["tstr_trtr_ratio"] == 1.0  # the boosting keys are kept
    broken = run_utility(train, hold, shuffled(train, "outcome"), META, target="outcome", seed=0).metrics
    assert broken["tstr_auc_linear"] < 0.6
    multi = run_utility(train, hold, train, META, target="stage", seed=0).metrics
    assert multi["tstr_auc_linear"] == multi["trtr_auc_linear"] is not None


def test_regression_target_reports_r2_mae_and_their_ratio():
    train, hold = with_bmi_signal(make_tiny_table(400, seed=1), 1), with_bmi_signal(make_tiny_table(400, seed=2), 2)
    copy = run_utility(train, hold, train.copy(), META, target="bmi", seed=0)
    m = copy.metrics
    assert set(m) == {"tstr_r2", "trtr_r2", "tstr_trtr_ratio", "tstr_mae", "trtr_mae", "tstr_r2_linear",
                      "trtr_r2_linear", "importance_rank_agreement"}
    assert m["trtr_r2"] > 0.8 and m["tstr_trtr_ratio"] == 1.0 and m["tstr_mae"] == m["trtr_mae"] < 2.0
    assert m["trtr_r2_linear"] > 0.8
    assert copy.details["task"] == "regression"
    assert copy.details["rows_dropped_missing_target"]["holdout"] == int(hold["bmi"].isna().sum()) > 0
    broken = run_utility(train, hold, shuffled(train, "bmi"), META, target="bmi", seed=0).metrics
    assert broken["tstr_trtr_ratio"] < 0.2 and broken["tstr_mae"] > 2 * m["tstr_mae"]
    json.dumps(copy.details, allow_nan=False)


def test_regression_ratio_is_none_with_a_note_when_real_data_does_not_predict_the_target():
    train, hold = make_tiny_table(400, seed=1), make_tiny_table(400, seed=2)  # bmi independent of the rest
    result = run_utility(train, hold, make_tiny_table(400, seed=3), META, target="bmi", seed=0)
    assert result.metrics["trtr_r2"] <= 0 and result.metrics["tstr_trtr_ratio"] is None
    assert "<= 0" in result.details["ratio_note"]


def test_importance_agreement_is_high_when_the_signal_is_kept_and_low_when_labels_are_shuffled():
    train, hold = with_bmi_signal(make_tiny_table(400, seed=1), 1), with_bmi_signal(make_tiny_table(400, seed=2), 2)
    fresh = with_bmi_signal(make_tiny_table(400, seed=3), 3)
    copy = run_utility(train, hold, train.copy(), META, target="bmi", seed=0)
    assert copy.metrics["importance_rank_agreement"] == pytest.approx(1.0)
    per_feature = copy.details["importance"]["per_feature"]
    assert set(per_feature) == {"age", "dose", "sex", "smoker", "stage", "outcome"}
    assert max(per_feature, key=lambda f: per_feature[f]["trtr"]) == "age"
    assert run_utility(train, hold, fresh, META, target="bmi", seed=0).metrics["importance_rank_agreement"] > 0.5
    noise = run_utility(train, hold, shuffled(train, "bmi"), META, target="bmi", seed=0)
    assert noise.metrics["importance_rank_agreement"] < 0.5


def test_identifier_target_is_refused():
    table = make_tiny_table(50, seed=1)
    with pytest.raises(MetadataError, match="patient_id"):
        run_utility(table, table, table, META, target="patient_id", seed=0)


def test_wide_tables_permute_only_the_features_with_the_highest_f_statistic(monkeypatch):
    import synthrelease.audits.utility as utility

    monkeypatch.setattr(utility, "IMPORTANCE_MAX_FEATURES", 2)
    train, hold = with_bmi_signal(make_tiny_table(300, seed=1), 1), with_bmi_signal(make_tiny_table(300, seed=2), 2)
    result = run_utility(train, hold, train.copy(), META, target="bmi", seed=0)
    imp = result.details["importance"]
    assert list(imp["per_feature"]) == ["age", "stage"]  # bmi = 15 + 0.2 age + 2 stage + noise
    assert "2 of 6 features" in imp["method"]
    assert result.metrics["importance_rank_agreement"] == pytest.approx(1.0)


def test_wide_utility_models_use_the_features_screened_on_the_synthetic_rows(monkeypatch):
    """Above MAX_MODEL_FEATURES, TSTR, TRTR and the DP gate's TSTR model use the features with the
    highest F statistic in the SYNTHETIC rows (public), whatever the private rows hold."""
    import synthrelease.audits.utility as utility
    from synthrelease.audits.dp_figures import tstr_scores
    from synthrelease.metadata.schema import Metadata

    monkeypatch.setattr(utility, "MAX_MODEL_FEATURES", 5)
    monkeypatch.setattr(utility, "SCREENED_FEATURES", 3)
    monkeypatch.setattr(utility, "FEATURE_BLOCK_CELLS", 2 * 150)  # blocks of 2 features
    cols = {f"x{j}": {"type": "float", "min": -5.0, "max": 5.0} for j in range(8)}
    cols["label"] = {"type": "categorical", "categories": ["0", "1"]}
    meta = Metadata.model_validate({"target": "label", "columns": cols})
    rng = np.random.default_rng(0)

    def table(n: int, signal: list[int]) -> pd.DataFrame:
        y = rng.integers(0, 2, n)
        df = pd.DataFrame({f"x{j}": rng.normal(0, 1, n) + (2.0 * y if j in signal else 0.0) for j in range(8)})
        return df.assign(label=y.astype(str))

    syn, real, hold = table(150, [1, 4, 6]), table(150, [0, 2, 3]), table(100, [1, 4, 6])
    feats = [f"x{j}" for j in range(8)]
    assert utility.model_features(syn, meta, feats, "label") == ["x1", "x4", "x6"]
    assert utility.model_features(real, meta, feats, "label") == ["x0", "x2", "x3"]  # the choice follows its input
    result = utility.run_utility(real, hold, syn, meta, target="label", seed=0)
    assert result.details["features"] == ["x1", "x4", "x6"]
    assert "synthetic rows" in result.details["feature_selection"]
    assert result.metrics["tstr_auc"] > 0.85  # the signal features were kept
    scores, labels = tstr_scores(hold, syn, meta, target="label", seed=0)
    assert len(labels) == 100 and scores.shape == (100, 2)
    monkeypatch.setattr(utility, "MAX_MODEL_FEATURES", 1000)  # narrow again: every feature, unchanged
    assert utility.model_features(syn, meta, feats, "label") == feats
