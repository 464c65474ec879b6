"""Post-processing of the noisy marginals: projection onto the simplex of the class's count."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from synthrelease.transforms.marginal_loss import project_counts


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(2, 30), elements=st.floats(-500, 500)), st.floats(1, 1000))
def test_projection_is_non_negative_and_keeps_the_total(noisy, total):
    out = project_counts(noisy, np.array(total))
    assert (out >= 0).all() and np.isclose(out.sum(), total)
    # it is the closest such histogram: no feasible direction improves it (KKT: one threshold)
    kept = out > 0
    assert np.allclose(noisy[kept] - out[kept], (noisy[kept] - out[kept])[0])
    assert (noisy[~kept] <= (noisy[kept] - out[kept])[0] + 1e-9).all()


def test_projection_removes_the_positive_bias_of_clipping():
    """A concentrated histogram under heavy noise: clipping spreads mass over empty cells."""
    rng = np.random.default_rng(0)
    true = np.zeros(20)
    true[8:12] = [30, 60, 60, 30]
    clipped_outside, projected_outside = [], []
    for _ in range(300):
        noisy = true + rng.normal(0, 30, 20)
        clipped = np.clip(noisy, 0, None)
        projected = project_counts(noisy, np.array(true.sum()))
        outside = np.r_[0:8, 12:20]
        clipped_outside.append(clipped[outside].sum() / clipped.sum())
        projected_outside.append(projected[outside].sum() / projected.sum())
    assert np.mean(clipped_outside) > 0.45  # clipping puts half the mass where there is none (0.49)
    assert np.mean(projected_outside) < np.mean(clipped_outside) - 0.1  # projection: 0.36


def test_structural_cells_get_nothing_and_exact_counts_are_kept():
    counts = np.array([[5.0, 0.0, 3.0, 2.0]])
    allowed = np.array([True, False, True, True])
    assert np.allclose(project_counts(counts, np.array([10.0]), allowed), [[5.0, 0.0, 3.0, 2.0]])
    noisy = np.array([[5.0, 9.0, 3.0, 2.0]])
    assert project_counts(noisy, np.array([10.0]), allowed)[0, 1] == 0.0


def test_small_tables_get_fewer_wider_bins_and_keep_their_marginals():
    """Public rule: bins shrink with n (and ε); a few dozen columns never switch to class profiles."""
    from synthrelease.api import default_training_config
    from synthrelease.gan.config import marginal_bins_for
    from synthrelease.metadata.schema import Metadata

    kw = dict(n_histograms=31, n_classes=2, delta=1e-5)
    bins = [marginal_bins_for(n_rows=n, epsilon=1.0, **kw) for n in (150, 455, 2000, 26_000)]
    assert bins == sorted(bins) and bins[0] == 4 and bins[-1] == 20
    assert marginal_bins_for(n_rows=455, epsilon=3.0, **kw) > marginal_bins_for(n_rows=455, epsilon=1.0, **kw)
    meta = Metadata.model_validate({
        "version": 1, "name": "cohort", "reviewed": True, "target": "label",
        "columns": {**{f"x{i}": {"type": "float", "min": 0.0, "max": 10.0} for i in range(30)},
                    "label": {"type": "categorical", "categories": ["a", "b"]}}})
    cfg = default_training_config(455, epsilon=1.0, delta=1e-5, seed=0, metadata=meta, condition_column="label")
    assert cfg.embedding_epsilon_share == 0.0 and cfg.marginal_epsilon_share > 0 and cfg.marginal_bins < 20


def test_a_noisy_unimodal_histogram_loses_its_tail_spikes():
    """Noise σ = 10 on a peaked histogram: the spikes it leaves in empty tail bins go (the fit
    is unimodal and the projected histogram's spread shrinks back towards the true one)."""
    from synthrelease.transforms.marginal_loss import unimodal_where_consistent

    true = np.array([0, 0, 5, 40, 120, 40, 5, 0, 0, 0], dtype=float)
    rng = np.random.default_rng(0)
    mids = np.arange(10.0)

    def spread(h: np.ndarray) -> float:
        p = project_counts(h[None], np.array([true.sum()]))[0]
        p = p / p.sum()
        return float(np.sqrt(p @ mids ** 2 - (p @ mids) ** 2))

    raw, fitted = [], []
    for _ in range(20):
        noisy = true + rng.normal(0, 10, size=10)
        fit = unimodal_where_consistent(noisy, 10.0)
        peak = int(np.argmax(fit))
        assert (np.diff(fit[:peak + 1]) >= -1e-9).all() and (np.diff(fit[peak:]) <= 1e-9).all()
        raw.append(spread(noisy))
        fitted.append(spread(fit))
    assert abs(np.mean(fitted) - spread(true)) < abs(np.mean(raw) - spread(true))


def test_a_clearly_bimodal_histogram_is_kept_as_measured():
    """Two peaks far above the noise fail the χ² test: the release's own shape stays."""
    from synthrelease.transforms.marginal_loss import unimodal_where_consistent

    bimodal = np.array([0, 200, 10, 0, 0, 10, 200, 0], dtype=float)
    noisy = bimodal + np.random.default_rng(1).normal(0, 2, size=8)
    assert np.array_equal(unimodal_where_consistent(noisy, 2.0), noisy)
    assert np.array_equal(unimodal_where_consistent(noisy, 0.0), noisy)  # no noise known: untouched
