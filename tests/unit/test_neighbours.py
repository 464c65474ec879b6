"""Audit nearest-neighbour search: exact, or HNSW (FAISS) with a measured recall."""

from __future__ import annotations

import numpy as np
import pytest

from synthrelease.audits import neighbours
from synthrelease.audits.neighbours import nearest


def _data(n: int = 3000, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), rng.random((n, d))


def test_hnsw_finds_nearly_every_exact_neighbour_and_reports_its_recall():
    ref, query = _data()
    d_exact, _, info_exact = nearest(ref, query, 1, method="exact")
    d_hnsw, _, info = nearest(ref, query, 1, method="hnsw", seed=1)
    assert info_exact.method == "exact" and info.method == "hnsw" and info.recall_sample == 2000
    assert info.recall >= 0.95
    assert np.all(d_hnsw[:, 0] >= d_exact[:, 0] - 1e-12)  # never closer than the true neighbour
    measured = float(np.mean(np.abs(d_hnsw[:, 0] - d_exact[:, 0]) <= 1e-9))
    assert abs(measured - info.recall) < 0.02  # the sampled recall matches the whole set's


def test_exact_search_matches_float64_brute_force_even_where_float32_rounds():
    rng = np.random.default_rng(3)
    query = 3 + rng.random((300, 6))  # away from the reference rows' mean
    # around each query, 6 reference rows within 1e-5 of it: float32 cannot rank them
    ref = np.vstack([query + 1e-5 * rng.random((300, 6)) for _ in range(6)] + [rng.random((3000, 6))])
    dist, idx, info = nearest(ref, query, 3, method="exact")
    truth = np.sqrt(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    assert info.method == "exact" and idx.shape == (300, 3)
    assert np.allclose(dist, np.sort(truth, axis=1)[:, :3], rtol=0, atol=1e-12)
    assert np.array_equal(idx, np.argsort(truth, axis=1, kind="stable")[:, :3])


def test_identical_rows_are_at_distance_zero_and_k_is_sorted():
    ref, _ = _data(500)
    d, idx, _ = nearest(ref, ref[:50], 2, method="hnsw")
    assert np.all(d[:, 0] == 0.0) and np.all(d[:, 0] <= d[:, 1])
    assert np.array_equal(idx[:, 0], np.arange(50))


def test_auto_switches_to_hnsw_above_the_pair_limit(monkeypatch):
    ref, query = _data(300)
    assert nearest(ref, query, method="auto")[2].method == "exact"
    monkeypatch.setattr(neighbours, "EXACT_MAX_PAIRS", 1000)
    assert nearest(ref, query, method="auto")[2].method == "hnsw"
    with pytest.raises(ValueError):
        nearest(ref, query, method="kd-tree")


def test_membership_audit_records_how_it_searched():
    import pandas as pd

    from synthrelease.audits.membership import run_membership
    from synthrelease.metadata.schema import Metadata

    rng = np.random.default_rng(0)
    meta = Metadata.model_validate({"version": 1, "columns": {"x": {"type": "float", "min": 0, "max": 1},
                                                              "y": {"type": "float", "min": 0, "max": 1}}})
    frames = [pd.DataFrame(rng.random((n, 2)), columns=["x", "y"]) for n in (400, 100, 400)]
    exact = run_membership(*frames, meta, seed=0, search_method="exact")
    approx = run_membership(*frames, meta, seed=0, search_method="hnsw")
    assert exact.details["neighbour_search"]["min_recall_at_1"] == 1.0
    assert {s["method"] for s in approx.details["neighbour_search"]["searches"]} == {"hnsw"}
    assert approx.details["neighbour_search"]["min_recall_at_1"] >= 0.9
    assert abs(approx.metrics["dcr_mia_auc"] - exact.metrics["dcr_mia_auc"]) < 0.05
