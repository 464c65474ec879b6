from __future__ import annotations

import numpy as np

from synthrelease.audits.coverage import category_coverage, prdc, run_coverage
from synthrelease.audits.fidelity import run_fidelity
from synthrelease.metadata.schema import Metadata
from tests.conftest import TINY_METADATA, make_tiny_table

META = Metadata.model_validate(TINY_METADATA)


def test_a_copy_has_full_precision_recall_and_coverage():
    real = make_tiny_table(500, seed=1)
    metrics, details = run_coverage(real, real.copy(), META, seed=0)
    assert metrics["prdc_precision"] == 1.0 and metrics["prdc_recall"] == 1.0 and metrics["prdc_coverage"] == 1.0
    assert metrics["missing_category_share"] == 0.0 and details["missing_categories"] == {}


def test_mode_collapse_drops_recall_and_coverage_and_names_missing_categories():
    real = make_tiny_table(500, seed=1)
    collapsed = make_tiny_table(500, seed=2)
    collapsed = collapsed[(collapsed["stage"] == 1) & (collapsed["sex"] == "F")]
    collapsed = collapsed.sample(500, replace=True, random_state=0)
    metrics, details = run_coverage(real, collapsed, META, seed=0)
    assert metrics["prdc_coverage"] < 0.4 and metrics["prdc_recall"] < 0.4
    assert details["missing_categories"]["stage"] == ["2", "3", "4"] and details["missing_categories"]["sex"] == ["M"]
    assert metrics["missing_category_share"] > 0.2


def test_prdc_on_separated_clouds():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (400, 3))
    assert prdc(real, rng.normal(0, 1, (400, 3)))["coverage"] > 0.8
    far = prdc(real, rng.normal(10, 1, (400, 3)))
    assert far["precision"] == 0.0 and far["coverage"] == 0.0 and far["density"] == 0.0


def test_fidelity_reports_coverage_metrics():
    real = make_tiny_table(300, seed=1)
    result = run_fidelity(real, make_tiny_table(300, seed=2), META, seed=0)
    assert {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage",
            "missing_category_share"} <= set(result.metrics)
    assert "class_shares" in result.details["coverage"]
    assert category_coverage(real, real, META)["missing_category_share"] == 0.0


def test_wide_tables_are_projected_before_pca(monkeypatch):
    """Encodings wider than the projection limit go through the public random projection (no
    float64 copy of the wide encoding); a copy still scores full coverage."""
    import synthrelease.audits.coverage as coverage

    monkeypatch.setattr(coverage, "PROJECT_ABOVE_WIDTH", 5)
    monkeypatch.setattr("synthrelease.audits._encoding.PROJECT_ABOVE_WIDTH", 5)
    meta = Metadata.model_validate(TINY_METADATA)
    real = make_tiny_table(300, seed=1)
    metrics, details = run_coverage(real, real.copy(), meta, seed=0)
    assert "random projection to 256" in details["prdc"]["projection"]
    assert metrics["prdc_coverage"] == 1.0 and metrics["prdc_precision"] == 1.0
