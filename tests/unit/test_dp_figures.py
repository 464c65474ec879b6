"""Sensitivity probes for the DP gate's figures (synthrelease/audits/dp_figures.py).

Each probe adds one row to (or removes one from) the training or the holdout table and
checks that the exact values move by no more than the stated L2 sensitivity; the worst
observed change is also checked to be a real fraction of the bound where a probe row can
reach it. Equality checks tie the figures to sklearn / sdmetrics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from synthrelease.audits import dp_figures as dpf
from synthrelease.audits.utility import run_utility
from synthrelease.metadata.schema import Metadata
from tests.conftest import TINY_METADATA, make_tiny_table

META = Metadata.model_validate(TINY_METADATA)
N1, N0, NS = 120, 60, 150
SEED = 0
TOL = 1e-12

Neighbour = tuple[str, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, holdout, synthetic); the synthetic table never produces stage 4 (a missing category)."""
    synthetic = make_tiny_table(NS, seed=3)
    synthetic["stage"] = synthetic["stage"].where(synthetic["stage"] != 4, 3)
    return make_tiny_table(N1, seed=1), make_tiny_table(N0, seed=2), synthetic


def _row(**values: object) -> pd.DataFrame:
    base = {"patient_id": "probe", "age": 50, "bmi": 27.0, "dose": 0.0, "sex": "F", "smoker": False, "stage": 2,
            "outcome": "healthy"}
    return pd.DataFrame([{**base, **values}])


def candidates(train: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Probe rows: domain extremes, a missing value, copies, a category the synthetic rows lack, junk."""
    return {
        "extreme_high": _row(age=90, bmi=45.0, dose=100.0, sex="M", smoker=True, stage=4, outcome="sick"),
        "extreme_low": _row(age=18, bmi=15.0, dose=0.0, sex="F", smoker=False, stage=1, outcome="healthy"),
        "missing_bmi": _row(bmi=np.nan, outcome="sick"),
        "synthetic_copy": synthetic.iloc[[0]].assign(patient_id="probe"),
        "train_copy": train.iloc[[0]].assign(patient_id="probe"),
        "rare_category": _row(stage=4),
        "out_of_domain": _row(age=500, bmi=np.nan, dose=-5.0, sex="X", smoker=None, stage=9, outcome=None),
    }


def _removal_indices(df: pd.DataFrame) -> list[int]:
    """First row, second row, first row with a missing bmi, first stage-4 row."""
    picks = [0, 1, int(np.flatnonzero(df["bmi"].isna())[0]), int(np.flatnonzero(df["stage"] == 4)[0])]
    return sorted(set(picks))


def neighbours(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *, sides: str = "both"
               ) -> Iterator[Neighbour]:
    """Tables that differ from (train, holdout) by one row added or removed on the given side(s)."""
    rows = candidates(train, synthetic)
    if sides in ("both", "train"):
        for name, row in rows.items():
            yield f"add {name} to train", pd.concat([train, row], ignore_index=True), holdout
        for i in _removal_indices(train):
            yield f"remove train row {i}", train.drop(index=i).reset_index(drop=True), holdout
    if sides in ("both", "holdout"):
        for name, row in rows.items():
            yield f"add {name} to holdout", train, pd.concat([holdout, row], ignore_index=True)
        for i in _removal_indices(holdout):
            yield f"remove holdout row {i}", train, holdout.drop(index=i).reset_index(drop=True)


def probe(compute: Callable[[pd.DataFrame, pd.DataFrame], dpf.Figure], tables: tuple, *, sides: str = "both"
          ) -> dict[str, float]:
    """Assert ‖Δvalues‖₂ ≤ the stated sensitivity (of both neighbours) for every probe; return
    each probe's change as a fraction of the base table's stated sensitivity."""
    train, holdout, synthetic = tables
    base = compute(train, holdout)
    assert base.values.dtype == np.float64 and np.all(np.isfinite(base.values))
    ratios = {}
    for label, tr, ho in neighbours(train, holdout, synthetic, sides=sides):
        fig = compute(tr, ho)
        assert fig.values.shape == base.values.shape
        delta = float(np.linalg.norm(fig.values - base.values))
        bound = min(base.l2_sensitivity, fig.l2_sensitivity)
        assert delta <= bound + TOL, f"{base.name}: {label} moved the values by {delta:.3g} > {bound:.3g}"
        ratios[label] = delta / base.l2_sensitivity
    return ratios


# --------------------------------------------------------------------------- train-side figures


def test_quality_score_probes(tables):
    def compute(tr, ho):
        return dpf.quality_score(tr, tables[2], META, seed=SEED)

    base = compute(*tables[:2])
    assert base.l2_sensitivity == pytest.approx(1 / (N1 - 1)) and 0.5 < base.finish(base.values) <= 1
    ratios = probe(compute, tables)
    assert all(v == 0 for k, v in ratios.items() if "holdout" in k)
    assert max(ratios.values()) > 0.2  # the extreme rows reach a real share of the bound


def test_column_shapes_match_sdmetrics_quality_report(tables):
    train, _, synthetic = (t.dropna(subset=["bmi"]) for t in tables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the single-table report is deprecated; audits/fidelity.py uses it
        from sdmetrics.reports.single_table import QualityReport

        report = QualityReport()
        report.num_rows_subsample = None
        report.generate(train[META.model_columns], synthetic[META.model_columns], META.to_sdmetrics(),
                        verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    assert np.mean(dpf.column_shape_scores(train, synthetic, META)) == pytest.approx(props["Column Shapes"], abs=1e-9)


def test_missing_numericals_count_in_every_denominator():
    """A missing numerical is a value below the minimum: KS compares over all rows, not the non-missing ones."""
    meta = Metadata.model_validate({"columns": {"x": {"type": "float", "min": 0, "max": 1, "nullable": True},
                                                "y": {"type": "boolean"}}})
    syn = pd.DataFrame({"x": [0.5] * 10, "y": [True] * 10})
    half_missing = pd.DataFrame({"x": [0.5] * 5 + [np.nan] * 5, "y": [True] * 10})
    assert dpf.column_shape_scores(half_missing, syn, meta)[0] == pytest.approx(0.5)


def test_quality_pairs_subsample_comes_from_metadata_and_seed():
    meta = Metadata.model_validate({"columns": {f"c{i}": {"type": "boolean"} for i in range(30)}})
    pairs = dpf.quality_pairs(meta, seed=4, max_pairs=200)
    assert len(pairs) == len(set(pairs)) == 200 and pairs == dpf.quality_pairs(meta, seed=4, max_pairs=200)
    assert pairs != dpf.quality_pairs(meta, seed=5, max_pairs=200)
    assert len(dpf.quality_pairs(META, seed=4)) == 21  # 7 model columns: every pair


def test_coverage_probes(tables):
    def compute(tr, ho):
        return dpf.coverage(tr, tables[2], META)

    ratios = probe(compute, tables)
    assert all(v == 0 for k, v in ratios.items() if "holdout" in k)
    assert max(ratios.values()) > 0.5  # an uncovered extreme row


def test_coverage_of_a_copy_is_one_and_of_a_far_table_zero(tables):
    train = tables[0]
    assert dpf.coverage(train, train, META).values[0] == 1.0
    low = train.assign(age=18, bmi=15.0, dose=0.0, sex="F", smoker=False, stage=1, outcome="healthy")
    high = train.assign(age=90, bmi=45.0, dose=100.0, sex="M", smoker=True, stage=4, outcome="sick")
    assert dpf.coverage(low, high, META).values[0] == 0.0


def test_missing_category_share_probes(tables):
    def compute(tr, ho):
        return dpf.missing_category_share(tr, tables[2], META)

    base = compute(*tables[:2])
    stage4 = float(np.mean(tables[0]["stage"] == 4))
    assert base.values[0] == pytest.approx(stage4 / 4)  # 4 discrete columns; only stage 4 is never produced
    ratios = probe(compute, tables)
    assert ratios["add rare_category to train"] > 0.15  # one column of four: ≈ (1 − 0.3)/4 of the bound
    assert ratios["add out_of_domain to train"] > 0.8  # missing in every column


def test_exact_copy_share_probes(tables):
    def compute(tr, ho):
        return dpf.exact_copy_share(tr, tables[2], META)

    assert compute(*tables[:2]).values[0] == 0.0
    ratios = probe(compute, tables)
    assert ratios["add synthetic_copy to train"] == pytest.approx((N1 - 1) / (N1 + 1))
    assert ratios["add train_copy to train"] == 0.0


def test_exact_copies_count_training_rows_not_synthetic_rows(tables):
    train = tables[0]
    synthetic = pd.concat([train.iloc[[0]]] * 1000 + [train.iloc[1:3]], ignore_index=True)
    assert dpf.exact_copy_share(train, synthetic, META).values[0] == pytest.approx(3 / N1)


# --------------------------------------------------------------------------- membership


def test_membership_figures_probes(tables):
    train, holdout, synthetic = tables
    base = dpf.membership_figures(train, holdout, synthetic, META, seed=SEED)
    assert set(base) == set(dpf.MEMBERSHIP_FIGURES)
    assert base["dcr_mia_auc"].l2_sensitivity == pytest.approx(1 / (N0 - 1))
    assert base["tpr_at_fpr_0.01_max"].l2_sensitivity == pytest.approx(1 / (0.01 * (N0 - 1)))
    worst = dict.fromkeys(base, 0.0)
    for label, tr, ho in neighbours(train, holdout, synthetic):
        figs = dpf.membership_figures(tr, ho, synthetic, META, seed=SEED)
        for name, fig in figs.items():
            delta = float(np.linalg.norm(fig.values - base[name].values))
            bound = min(fig.l2_sensitivity, base[name].l2_sensitivity)
            assert delta <= bound + TOL, f"{name}: {label} moved it by {delta:.3g} > {bound:.3g}"
            worst[name] = max(worst[name], delta / base[name].l2_sensitivity)
    assert worst["dcr_mia_auc"] > 0.3 and worst["mia_auc_max"] > 0.3  # a synthetic copy in the holdout


def test_attack_scores_are_per_row(tables):
    train, holdout, synthetic = tables
    full = dpf.attack_scores(train, holdout, synthetic, META, seed=SEED)
    part = dpf.attack_scores(train.iloc[10:30], holdout.iloc[:5], synthetic, META, seed=SEED)
    for name in dpf.ATTACKS:
        np.testing.assert_allclose(part[name][0], full[name][0][10:30], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(part[name][1], full[name][1][:5], rtol=1e-9, atol=1e-9)
    copy = dpf.attack_scores(synthetic.iloc[:3], holdout, synthetic, META, seed=SEED)
    assert np.all(copy["dcr"][0] == 0) and np.all(copy["nndr"][0] == 0)


def test_attack_auc_equals_sklearn_roc_auc_with_ties():
    rng = np.random.default_rng(0)
    for n1, n0 in ((50, 70), (7, 3), (200, 199)):
        member, nonmember = rng.integers(0, 6, n1).astype(float), rng.integers(0, 5, n0).astype(float)
        expected = roc_auc_score(np.r_[np.ones(n1), np.zeros(n0)], np.r_[member, nonmember])
        assert dpf.attack_auc(member, nonmember) == pytest.approx(expected, abs=1e-12)


def _partial_auc(member: np.ndarray, nonmember: np.ndarray, alpha: float) -> float:
    """∫₀^α TPR(f) df / α from sklearn's ROC curve (a staircase for untied scores)."""
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(member)), np.zeros(len(nonmember))], np.r_[member, nonmember],
                            drop_intermediate=False)
    inside = fpr < alpha
    xs, ys = np.r_[fpr[inside], alpha], np.r_[tpr[inside], tpr[inside][-1]]
    return float(np.trapezoid(ys, xs) / alpha)


def test_partial_tpr_is_the_normalised_partial_auc():
    rng = np.random.default_rng(1)
    member, nonmember = rng.normal(0.7, 1, 401), rng.normal(0, 1, 307)  # 307 · α is never an integer
    for alpha in (0.2, 0.1, 0.05, 0.01):
        assert dpf.partial_tpr(member, nonmember, alpha) == pytest.approx(_partial_auc(member, nonmember, alpha),
                                                                          abs=1e-9)
    null = rng.normal(0, 1, 20_000), rng.normal(0, 1, 20_000)
    assert dpf.partial_tpr(*null, 0.1) == pytest.approx(0.05, abs=0.01)


def test_partial_tpr_sensitivity_is_reached_by_a_top_nonmember():
    """A perfect attack; one more non-member above every member moves each term by 1/(α (n0 + 1))."""
    rng = np.random.default_rng(2)
    member, nonmember, alpha = rng.normal(10, 1, 80), rng.normal(0, 1, 300), 0.05
    bound = max(1 / (len(member) - 1), 1 / (alpha * (len(nonmember) - 1)))
    base = dpf.partial_tpr(member, nonmember, alpha)
    worst = 0.0
    for extra in (100.0, -100.0, 10.0):
        for m, n in ((np.r_[member, extra], nonmember), (member, np.r_[nonmember, extra]),
                     (member[1:], nonmember), (member, nonmember[1:])):
            delta = abs(dpf.partial_tpr(m, n, alpha) - base)
            assert delta <= bound + TOL
            worst = max(worst, delta / bound)
    assert worst > 0.95


def test_attack_auc_sensitivity_is_reached():
    rng = np.random.default_rng(3)
    member, nonmember = rng.normal(10, 1, 80), rng.normal(0, 1, 60)  # AUC 1
    bound = 1 / (min(len(member), len(nonmember)) - 1)
    delta = abs(dpf.attack_auc(member, np.r_[nonmember, 100.0]) - dpf.attack_auc(member, nonmember))
    assert bound * 0.95 < delta <= bound + TOL


# --------------------------------------------------------------------------- TSTR AUC


@pytest.mark.parametrize("target", ["outcome", "stage"])
def test_tstr_auc_probes(tables, target):
    def compute(tr, ho):
        return dpf.tstr_auc(ho, tables[2], META, target=target, seed=SEED)

    base = compute(*tables[:2])
    assert base.l2_sensitivity == pytest.approx(2 / (N0 - 1))
    ratios = probe(compute, tables, sides="holdout")
    assert ratios["add out_of_domain to holdout"] == 0.0  # no declared label: not used
    assert max(ratios.values()) > 0.2


@pytest.mark.parametrize("target", ["outcome", "stage"])
def test_tstr_accuracy_probes(tables, target):
    def compute(tr, ho):
        return dpf.tstr_accuracy(ho, tables[2], META, target=target, seed=SEED)

    base = compute(*tables[:2])
    assert base.l2_sensitivity == pytest.approx(1 / (N0 - 1))
    scores, labels = dpf.tstr_scores(tables[1], tables[2], META, target=target, seed=SEED)
    assert base.finish(base.values) == pytest.approx(np.mean(np.argmax(scores, axis=1) == labels))
    ratios = probe(compute, tables, sides="holdout")
    assert ratios["add out_of_domain to holdout"] > 0  # an unlabelled row counts as wrong: n0 stays public
    assert max(ratios.values()) > 0.5


def test_dcr_alone_skips_the_costly_attacks(tables, monkeypatch):
    monkeypatch.setattr(dpf, "domias_scores", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    figs = dpf.membership_figures(*tables, META, seed=SEED, names=("dcr_mia_auc",))
    assert set(figs) == {"dcr_mia_auc"} and figs["dcr_mia_auc"] is not None


def test_tstr_auc_finish_equals_sklearn(tables):
    _, holdout, synthetic = tables
    scores, labels = dpf.tstr_scores(holdout, synthetic, META, target="outcome", seed=SEED)
    fig = dpf.tstr_auc(holdout, synthetic, META, target="outcome", seed=SEED)
    assert fig.finish(fig.values) == pytest.approx(roc_auc_score(labels == 1, scores[:, 1]), abs=1e-12)
    utility = run_utility(tables[0], holdout, synthetic, META, target="outcome", seed=SEED)
    assert fig.finish(fig.values) == pytest.approx(utility.metrics["tstr_auc"], abs=1e-12)

    scores, labels = dpf.tstr_scores(holdout, synthetic, META, target="stage", seed=SEED)
    fig = dpf.tstr_auc(holdout, synthetic, META, target="stage", seed=SEED)
    shares = np.bincount(labels, minlength=4) / len(labels)
    assert np.all((shares > 0.01) & (shares < 0.99))
    macro = roc_auc_score(labels, scores, multi_class="ovr", average="macro")
    assert fig.finish(fig.values) == pytest.approx(macro, abs=1e-12)


def _vector_probes(scores: np.ndarray, labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> float:
    """Worst ‖Δ‖₂ / (2/(m − 1)) of class_auc_vector over added rows (extreme, tied and random scores of
    every class) and removed rows; asserts the bound on each."""
    m = len(labels)
    base, bound = dpf.class_auc_vector(scores, labels, n_classes), dpf.class_auc_sensitivity(m)
    lo, hi = scores.min() - 1, scores.max() + 1
    worst = 0.0
    for a in range(n_classes):
        own_top = np.full(n_classes, lo)
        own_top[a] = hi
        for row in (own_top, hi + lo - own_top, np.full(n_classes, hi), np.full(n_classes, lo),
                    scores[rng.integers(m)], rng.uniform(lo, hi, n_classes)):
            v = dpf.class_auc_vector(np.vstack([scores, row]), np.r_[labels, a], n_classes)
            delta = float(np.linalg.norm(v - base))
            assert delta <= min(bound, dpf.class_auc_sensitivity(m + 1)) + TOL
            worst = max(worst, delta / bound)
    for i in range(m):
        v = dpf.class_auc_vector(np.delete(scores, i, axis=0), np.delete(labels, i), n_classes)
        assert np.linalg.norm(v - base) <= bound + TOL
        worst = max(worst, float(np.linalg.norm(v - base)) / bound)
    return worst


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_class_auc_vector_probes_on_adversarial_scores(n_classes):
    rng = np.random.default_rng(n_classes)
    for m in (3, 12, 40):
        shares = rng.dirichlet(np.full(n_classes, 0.3))  # imbalanced, some classes empty
        labels = rng.choice(n_classes, m, p=shares)
        tied = rng.integers(0, 3, (m, n_classes)).astype(float)
        for scores in (tied, rng.random((m, n_classes)), np.eye(n_classes)[labels]):
            _vector_probes(scores, labels, n_classes, rng)


def test_class_auc_sensitivity_is_nearly_tight():
    """All rows of one class; add the first row of another, ranked top for it and bottom for the other."""
    m, rng = 60, np.random.default_rng(5)
    for n_classes in (2, 10):
        labels = np.full(m, 1)
        worst = _vector_probes(rng.random((m, n_classes)), labels, n_classes, rng)
        assert worst > 0.9  # ≈ (m − 1)/(m + 1); a 1/(m − 1) bound would have failed


def test_tstr_finish_skips_degenerate_classes_and_clips():
    finish = dpf._class_auc_finish(2)
    assert finish(np.array([0.5, 0.5, 0.0, 1.0])) == 0.5  # no class with a share in (0.01, 0.99)
    assert finish(np.array([0.3, 0.3, 0.5, 0.5])) == 1.0  # noisy U above p(1 − p) is clipped


# --------------------------------------------------------------------------- degenerate tables


def test_too_small_tables_give_none(tables):
    train, holdout, synthetic = tables
    one = train.iloc[:1]
    assert dpf.quality_score(one, synthetic, META, seed=SEED) is None
    assert dpf.coverage(one, synthetic, META) is None
    assert dpf.missing_category_share(one, synthetic, META) is None
    assert dpf.exact_copy_share(one, synthetic, META) is None
    assert all(v is None for v in dpf.membership_figures(train, holdout.iloc[:1], synthetic, META, seed=0).values())
    assert dpf.tstr_auc(holdout.iloc[:1], synthetic, META, target="outcome", seed=SEED) is None
    single = Metadata.model_validate({"columns": {"age": {"type": "integer", "min": 18, "max": 90}}})
    assert dpf.quality_score(train, synthetic, single, seed=SEED) is None  # no column pair
    assert dpf.missing_category_share(train, synthetic, single) is None  # no categorical column
    one_class = Metadata.model_validate({"columns": {"age": {"type": "integer", "min": 18, "max": 90},
                                                     "sex": {"type": "categorical", "categories": ["F"]}}})
    assert dpf.tstr_auc(holdout, synthetic, one_class, target="sex", seed=SEED) is None


def test_copies_from_the_dcr_distances_equal_the_standalone_figure(tables):
    train, holdout, synthetic = tables
    synthetic = pd.concat([synthetic, train.iloc[:7]], ignore_index=True)  # seven exact copies
    alone = dpf.exact_copy_share(train, synthetic, META)
    shared = dpf.membership_figures(train, holdout, synthetic, META, seed=SEED,
                                    names=("dcr_mia_auc", "exact_copy_share"))["exact_copy_share"]
    assert shared.values == pytest.approx(alone.values) and alone.values[0] >= 7 / len(train)
    assert shared.l2_sensitivity == alone.l2_sensitivity


def test_quality_pairs_are_drawn_without_listing_every_pair():
    """The drawn pairs equal the old list-then-choose result (same seed, same indices), and
    20,000 columns (2·10^8 pairs, 14 GiB as a list) take no memory to speak of."""
    import itertools
    import tracemalloc

    from synthrelease.audits.dp_figures import quality_pairs
    from synthrelease.metadata.schema import Metadata

    def meta(n: int) -> Metadata:
        return Metadata.model_validate({"columns": {f"c{i}": {"type": "float", "min": 0.0, "max": 1.0}
                                                    for i in range(n)}})

    for n, seed in ((30, 0), (64, 3), (300, 7)):
        pairs = list(itertools.combinations(meta(n).model_columns, 2))
        chosen = np.sort(np.random.default_rng(seed).choice(len(pairs), 200, replace=False))
        assert quality_pairs(meta(n), seed=seed) == [pairs[i] for i in chosen]
    assert quality_pairs(meta(20), seed=0) == list(itertools.combinations(meta(20).model_columns, 2))
    wide = meta(20_000)
    tracemalloc.start()
    try:
        got = quality_pairs(wide, seed=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got) == 200 and len(set(got)) == 200 and all(a < b for a, b in
                                                          ((int(x[1:]), int(y[1:])) for x, y in got))
    assert peak < 50 * 2**20


def test_nearest_distances_above_the_exact_limit_come_from_the_hnsw_graph(monkeypatch):
    """Above EXACT_MAX_PAIRS the gate's distances come from an HNSW graph on the synthetic rows:
    on well-separated rows it finds the same neighbours, exact copies stay at distance 0, and a
    row's distances do not depend on the other query rows."""
    rng = np.random.default_rng(0)
    synthetic = rng.normal(size=(3000, 8)) * 10
    queries = np.vstack([synthetic[:50], rng.normal(size=(200, 8)) * 10])
    exact = dpf.nearest_distances(queries, synthetic, 2)
    monkeypatch.setattr(dpf, "EXACT_MAX_PAIRS", 0)
    approximate = dpf.nearest_distances(queries, synthetic, 2)
    assert np.all(approximate[:50, 0] == 0)
    assert np.mean(np.isclose(approximate, exact, rtol=0, atol=1e-9).all(axis=1)) >= 0.99
    assert np.all(approximate >= exact - 1e-9)  # a missed neighbour can only be farther
    alone = dpf.nearest_distances(queries[60:61], synthetic, 2)
    assert np.array_equal(alone, approximate[60:61])


def test_coverage_above_the_exact_limit_comes_from_the_hnsw_graph(monkeypatch):
    """Above EXACT_MAX_PAIRS the coverage figure's radii and balls come from HNSW graphs on the
    synthetic rows: on well-separated rows the same rows are covered, and a row's answer does not
    depend on the other training rows."""
    rng = np.random.default_rng(1)
    synthetic = rng.normal(size=(3000, 6)) * 10
    queries = np.vstack([synthetic[:100] + 0.01, rng.normal(size=(400, 6)) * 16])
    radii = dpf._coverage_radii(synthetic, 5)
    exact = dpf._covered(queries, synthetic, radii)
    monkeypatch.setattr(dpf, "EXACT_MAX_PAIRS", 0)
    approximate_radii = dpf._coverage_radii(synthetic, 5)
    assert np.mean(np.isclose(approximate_radii, radii, rtol=0, atol=1e-9)) >= 0.99
    approximate = dpf._covered(queries, synthetic, approximate_radii)
    assert approximate[:100].all()  # a near copy of a synthetic row is always covered
    assert np.mean(approximate == exact) >= 0.99
    assert 0.05 < exact[100:].mean() < 0.95  # the check is not trivially all or nothing
    assert np.array_equal(dpf._covered(queries[150:151], synthetic, approximate_radii), approximate[150:151])
