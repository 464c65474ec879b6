"""Utility audit: train on synthetic, test on real (TSTR) against train-real-test-real (TRTR).

Reads private rows (the training rows for TRTR, the holdout rows for testing). NOT
differentially private: the result is internal-only (it goes to the steward's internal
report); only coarse, rounded figures may be released. The holdout never touched the
synthesizer's training.

Classification (categorical/boolean target) is scored as the peers' evaluator
(``shared/peers/evaluate.py``, ``utility``, model ``hgb``): ROC AUC for a binary target,
the macro one-vs-rest mean over the classes present in the holdout otherwise, and accuracy
of the most probable class. Differences: classes and category codes come from the public
metadata (declared categories), not from the data, and the model's ``random_state`` is the
audit's ``seed``. A second, linear model (logistic regression) and, for a numerical target,
regression (gradient boosting and ridge; R², MAE) are added, and the permutation
importances of the TSTR and TRTR boosting models are compared by rank.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from synthrelease.audits.base import AuditResult
from synthrelease.errors import DataValidationError, MetadataError
from synthrelease.io.spill import release_mapped_pages
from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import ColumnSpec, Metadata, canonical_category_series

MAX_NATIVE_CATEGORIES = 255
"""HistGradientBoosting's categorical support takes at most ``max_bins`` (255) categories;
wider categorical columns are passed as ordinal codes instead."""

LINEAR_MAX_ITER = 2000
"""Iterations allowed to the logistic regression's lbfgs solver (standardised inputs converge far sooner)."""

IMPORTANCE_ROWS = 2000
"""Holdout rows (at most) the permutation importances are computed on."""

IMPORTANCE_REPEATS = 3
"""Shuffles per feature in the permutation importances."""

MAX_MODEL_FEATURES = 1000
"""Tables with more features than this (pbmc68k's 764 genes stay whole) are screened: the utility
models (and the DP gate's TSTR model) use :data:`SCREENED_FEATURES` features chosen on the
synthetic rows (:func:`model_features`)."""

SCREENED_FEATURES = 256
"""Features the models of a screened (wide) table use: gradient boosting's cost grows with the
features (10 classes × 80,000 rows × 1,000 features took minutes per fit on 2 cores)."""

FEATURE_BLOCK_CELLS = 1 << 22
"""Cells (rows × features, float64: 32 MiB) per block when screening the features of a wide table
(its copies and sklearn's F test take a few times the block)."""

IMPORTANCE_MAX_FEATURES = 50
"""Wider tables: permutation importances only for this many features, those with the highest
univariate F statistic against the target in the real training rows (on pbmc68k, 765 genes,
all features took ~150 s; each costs ``IMPORTANCE_REPEATS`` predictions per model)."""


def _codes(series: pd.Series, categories: list[str]) -> np.ndarray:
    """Codes of canonical category values in the declared list; missing/undeclared → NaN (reads private rows)."""
    index = {k: float(i) for i, k in enumerate(categories)}
    return canonical_category_series(series).map(index).to_numpy(dtype=np.float64, na_value=np.nan)


def _numbers(series: pd.Series, spec: ColumnSpec | None = None) -> np.ndarray:
    """float64 values of a numerical column; unparseable → NaN (reads private rows). With its
    ``spec``, a date/datetime column becomes days/seconds since 1970-01-01."""
    if spec is not None and spec.is_temporal:
        return column_numbers(series, spec).to_numpy(dtype=np.float64)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _features(df: pd.DataFrame, metadata: Metadata, feats: list[str]) -> np.ndarray:
    """float64 feature matrix: numericals as numbers, categoricals as declared-category codes (reads
    private rows). Filled column by column: the only large allocation is the result."""
    out = np.empty((len(df), len(feats)))
    for i, c in enumerate(feats):
        spec = metadata.columns[c]
        out[:, i] = _numbers(df[c], spec) if spec.is_numerical else _codes(df[c], spec.canonical_categories())
    return out


def _f_order(x: np.ndarray, y: np.ndarray, regression: bool) -> np.ndarray:
    """Univariate F statistics of the columns of ``x`` against ``y`` (missing → 0; undefined → −inf)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant features: F undefined
        f = (f_regression if regression else f_classif)(np.nan_to_num(x, nan=0.0), y)[0]
    return np.where(np.isfinite(f), f, -np.inf)


def model_features(synthetic: pd.DataFrame, metadata: Metadata, feats: list[str], target: str) -> list[str]:
    """The features the utility models use: ``feats``, or above :data:`MAX_MODEL_FEATURES` the
    :data:`SCREENED_FEATURES` with the highest univariate F statistic against ``target`` in the
    SYNTHETIC rows (missing → 0; ties and undefined F keep table order), in table order.

    Reads only the synthetic rows (DP output): the choice is public, so the DP gate's TSTR figures
    keep their per-row sensitivity, and TRTR uses the same features. Computed on column blocks of
    at most ``FEATURE_BLOCK_CELLS`` cells (no float64 copy of a wide table).
    """
    if len(feats) <= MAX_MODEL_FEATURES:
        return list(feats)
    spec = metadata.columns[target]
    regression = spec.is_numerical
    y = _numbers(synthetic[target], spec) if regression else _codes(synthetic[target], spec.canonical_categories())
    ok = ~np.isnan(y)
    if ok.sum() < 3 or len(np.unique(y[ok])) < 2:  # F undefined: the first ones in table order
        return list(feats[:SCREENED_FEATURES])
    width = max(1, FEATURE_BLOCK_CELLS // len(synthetic))  # rows selected per block: no copy of the table
    scores = []
    for lo in range(0, len(feats), width):
        scores.append(_f_order(_features(synthetic, metadata, feats[lo:lo + width])[ok], y[ok], regression))
        release_mapped_pages()  # a spilled synthetic table: only this block's pages were resident
    f = np.concatenate(scores)
    keep = np.sort(np.argsort(-f, kind="stable")[:SCREENED_FEATURES])
    return [feats[i] for i in keep]


def _linear_inputs(metadata: Metadata, feats: list[str]) -> ColumnTransformer:
    """Standardised numericals (median-imputed, with missing indicators) and one-hot declared
    categories (missing is its own category; undeclared codes cannot occur), from the code matrix."""
    num = [i for i, c in enumerate(feats) if metadata.columns[c].is_numerical]
    cat = [i for i, c in enumerate(feats) if not metadata.columns[c].is_numerical]
    levels = [[-1.0, *map(float, range(len(metadata.columns[feats[i]].canonical_categories())))] for i in cat]
    parts: list[tuple[str, Any, list[int]]] = []
    if num:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                         keep_empty_features=True), StandardScaler()), num))
    if cat:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0),
                                           OneHotEncoder(categories=levels, handle_unknown="ignore")), cat))
    return ColumnTransformer(parts)


def _fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> bool:
    """Fit ``model``; True unless the solver warned that it did not converge (nothing is printed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _auc(proba: np.ndarray, y: np.ndarray, n_classes: int) -> float | None:
    """Binary ROC AUC, or macro one-vs-rest over the classes present in ``y``; None for one class."""
    present = np.unique(y)
    if len(present) < 2:
        return None
    if n_classes == 2:
        return float(roc_auc_score(y == 1, proba[:, 1]))
    return float(np.mean([roc_auc_score(y == k, proba[:, k]) for k in present]))


def _proba(model: Any, n_classes: int, x: np.ndarray) -> np.ndarray:
    """Class probabilities over every declared class (classes absent from training get 0)."""
    proba = np.zeros((len(x), n_classes))
    proba[:, np.asarray(model.classes_).astype(int)] = model.predict_proba(x)
    return proba


def _score(model: Any, n_classes: int, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """AUC and accuracy of a fitted classifier on holdout rows (reads private rows; NOT DP; internal-only)."""
    proba = _proba(model, n_classes, x)
    out: dict[str, Any] = {"auc": _auc(proba, y, n_classes), "accuracy": float(np.mean(proba.argmax(axis=1) == y))}
    if out["auc"] is None:
        out["note"] = "the holdout has a single class; AUC undefined"
    return out


def _importance_columns(x: np.ndarray, y: np.ndarray, regression: bool) -> np.ndarray:
    """Indices (ascending) of the features whose importances are computed: all of them, or on wide
    tables the ``IMPORTANCE_MAX_FEATURES`` with the highest univariate F statistic (missing → 0;
    ties and undefined F keep table order). Reads private rows (the real training rows)."""
    if x.shape[1] <= IMPORTANCE_MAX_FEATURES:
        return np.arange(x.shape[1])
    return np.sort(np.argsort(-_f_order(x, y, regression), kind="stable")[:IMPORTANCE_MAX_FEATURES])


def _importances(model: Any, x: np.ndarray, y: np.ndarray, cols: np.ndarray,
                 scorer: Callable[[Any, np.ndarray, np.ndarray], float], seed: int) -> list[float]:
    """Mean permutation importance of the features ``cols`` (drop in ``scorer`` when one is shuffled;
    the other features keep their values)."""

    def score(est: Any, x_cols: np.ndarray, y_: np.ndarray) -> float:
        full = x.copy()
        full[:, cols] = x_cols
        return scorer(est, full, y_)

    result = permutation_importance(model, x[:, cols], y, scoring=score, n_repeats=IMPORTANCE_REPEATS,
                                    random_state=seed)
    return [float(v) for v in result.importances_mean]


def _rank_agreement(a: list[float] | None, b: list[float] | None) -> tuple[float | None, str | None]:
    """Spearman rank correlation of two importance vectors, or None with the reason."""
    if a is None or b is None:
        return None, "no model was fitted on one of the training sets"
    if len(a) < 2:
        return None, "fewer than two features"
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, "the importances of one model are all equal; rank correlation undefined"
    return float(spearmanr(a, b).statistic), None


def _classification(frames: dict[str, pd.DataFrame], x_hold: np.ndarray, hold_y: pd.Series, metadata: Metadata,
                    feats: list[str], target: str, seed: int, rng: np.random.Generator,
                    details: dict[str, Any]) -> dict[str, float | None]:
    """TSTR/TRTR for a categorical/boolean target (see :func:`run_utility`); fills ``details``."""
    classes = metadata.columns[target].canonical_categories()
    n_classes = len(classes)
    native = [not metadata.columns[c].is_numerical
              and len(metadata.columns[c].canonical_categories()) <= MAX_NATIVE_CATEGORIES for c in feats]
    y_hold = _codes(hold_y, classes)
    keep = ~np.isnan(y_hold)
    if not keep.any():
        raise DataValidationError(f"utility audit: no holdout row has a declared value of target {target!r}")
    x_hold, y_hold = x_hold[keep], y_hold[keep].astype(int)
    imp_rows = np.sort(rng.choice(len(y_hold), IMPORTANCE_ROWS, replace=False)) if len(y_hold) > IMPORTANCE_ROWS \
        else np.arange(len(y_hold))

    def scorer(model: Any, x: np.ndarray, y: np.ndarray) -> float:
        proba = _proba(model, n_classes, x)
        auc = _auc(proba, y, n_classes)
        return auc if auc is not None else float(np.mean(proba.argmax(axis=1) == y))

    results: dict[str, dict[str, Any]] = {}
    linear: dict[str, dict[str, Any]] = {}
    importances: dict[str, list[float] | None] = {}
    dropped: dict[str, int] = {"holdout": int((~keep).sum())}
    rows: dict[str, int] = {"holdout": int(keep.sum())}
    for name, frame in frames.items():
        y = _codes(frame[target], classes)
        ok = ~np.isnan(y)
        dropped[name], rows[f"{name}_train"] = int((~ok).sum()), int(ok.sum())
        x, y = _features(frame, metadata, feats)[ok], y[ok].astype(int)
        if name == "trtr":  # first: the screened features come from the real training rows
            cols = _importance_columns(x, y, regression=False)
        labels = np.unique(y)
        if len(labels) < 2:
            only = classes[int(labels[0])] if len(labels) else None
            results[name] = {
                "auc": 0.5,
                "accuracy": float(np.mean(y_hold == labels[0])) if len(labels) else None,
                "note": ("training labels have a single class" if len(labels) else "no training rows with a "
                         "declared label") + "; AUC set to 0.5 (no model fitted)",
                "single_class": only,
            }
            linear[name] = {"auc": 0.5, "accuracy": results[name]["accuracy"], "note": results[name]["note"]}
            importances[name] = None
            continue
        model = HistGradientBoostingClassifier(random_state=seed, categorical_features=native if any(native) else None)
        model.fit(x, y)
        results[name] = _score(model, n_classes, x_hold, y_hold)
        importances[name] = _importances(model, x_hold[imp_rows], y_hold[imp_rows], cols, scorer, seed)
        lin = Pipeline([("inputs", _linear_inputs(metadata, feats)),
                        ("model", LogisticRegression(max_iter=LINEAR_MAX_ITER, random_state=seed))])
        converged = _fit_quietly(lin, x, y)
        linear[name] = {**_score(lin, n_classes, x_hold, y_hold), "converged": converged}
    tstr, trtr = results["tstr"]["auc"], results["trtr"]["auc"]
    agreement, why = _rank_agreement(importances["tstr"], importances["trtr"])
    metrics: dict[str, float | None] = {
        "tstr_auc": tstr, "trtr_auc": trtr, "tstr_trtr_ratio": tstr / trtr if tstr is not None and trtr else None,
        "tstr_accuracy": results["tstr"]["accuracy"], "trtr_accuracy": results["trtr"]["accuracy"],
        "tstr_auc_linear": linear["tstr"]["auc"], "trtr_auc_linear": linear["trtr"]["auc"],
        "importance_rank_agreement": agreement,
    }
    details.update({
        "task": "classification", "classes": classes,
        "model": f"HistGradientBoostingClassifier(random_state={seed})",
        "linear_model": (f"LogisticRegression(max_iter={LINEAR_MAX_ITER}, random_state={seed}) on one-hot declared "
                         "categories and standardised numericals"),
        "auc": "binary ROC AUC" if n_classes == 2 else "macro one-vs-rest ROC AUC over classes in the holdout",
        "rows": rows, "rows_dropped_missing_or_undeclared_label": dropped,
        "holdout_class_counts": {classes[k]: int(v) for k, v in zip(*np.unique(y_hold, return_counts=True),
                                                                     strict=True)},
        "tstr": results["tstr"], "trtr": results["trtr"], "linear": linear,
    })
    _importance_details(details, [feats[i] for i in cols], len(feats), importances, agreement, why,
                        len(imp_rows), "AUC", seed)
    return metrics


def _regression(frames: dict[str, pd.DataFrame], x_hold: np.ndarray, hold_y: pd.Series, metadata: Metadata,
                feats: list[str], target: str, seed: int, rng: np.random.Generator,
                details: dict[str, Any]) -> dict[str, float | None]:
    """TSTR/TRTR for a numerical target (see :func:`run_utility`); fills ``details``."""
    native = [not metadata.columns[c].is_numerical
              and len(metadata.columns[c].canonical_categories()) <= MAX_NATIVE_CATEGORIES for c in feats]
    y_hold = _numbers(hold_y, metadata.columns[target])
    keep = ~np.isnan(y_hold)
    if keep.sum() < 2:
        raise DataValidationError(f"utility audit: fewer than 2 holdout rows have a value of target {target!r}")
    x_hold, y_hold = x_hold[keep], y_hold[keep]
    imp_rows = np.sort(rng.choice(len(y_hold), IMPORTANCE_ROWS, replace=False)) if len(y_hold) > IMPORTANCE_ROWS \
        else np.arange(len(y_hold))

    def scorer(model: Any, x: np.ndarray, y: np.ndarray) -> float:
        return float(r2_score(y, model.predict(x)))

    results: dict[str, dict[str, Any]] = {}
    linear: dict[str, dict[str, Any]] = {}
    importances: dict[str, list[float] | None] = {}
    dropped: dict[str, int] = {"holdout": int((~keep).sum())}
    rows: dict[str, int] = {"holdout": int(keep.sum())}
    for name, frame in frames.items():
        y = _numbers(frame[target], metadata.columns[target])
        ok = ~np.isnan(y)
        dropped[name], rows[f"{name}_train"] = int((~ok).sum()), int(ok.sum())
        x, y = _features(frame, metadata, feats)[ok], y[ok]
        if name == "trtr":  # first: the screened features come from the real training rows
            cols = _importance_columns(x, y, regression=True)
        if len(y) < 2:
            results[name] = {"r2": None, "mae": None, "note": "fewer than 2 training rows with a target value"}
            linear[name], importances[name] = dict(results[name]), None
            continue
        model = HistGradientBoostingRegressor(random_state=seed, categorical_features=native if any(native) else None)
        model.fit(x, y)
        pred = model.predict(x_hold)
        results[name] = {"r2": float(r2_score(y_hold, pred)), "mae": float(mean_absolute_error(y_hold, pred))}
        importances[name] = _importances(model, x_hold[imp_rows], y_hold[imp_rows], cols, scorer, seed)
        lin = Pipeline([("inputs", _linear_inputs(metadata, feats)), ("model", Ridge(random_state=seed))])
        lin.fit(x, y)
        pred = lin.predict(x_hold)
        linear[name] = {"r2": float(r2_score(y_hold, pred)), "mae": float(mean_absolute_error(y_hold, pred))}
    tstr, trtr = results["tstr"]["r2"], results["trtr"]["r2"]
    ratio = tstr / trtr if tstr is not None and trtr is not None and trtr > 0 else None
    agreement, why = _rank_agreement(importances["tstr"], importances["trtr"])
    metrics: dict[str, float | None] = {
        "tstr_r2": tstr, "trtr_r2": trtr, "tstr_trtr_ratio": ratio,
        "tstr_mae": results["tstr"]["mae"], "trtr_mae": results["trtr"]["mae"],
        "tstr_r2_linear": linear["tstr"]["r2"], "trtr_r2_linear": linear["trtr"]["r2"],
        "importance_rank_agreement": agreement,
    }
    details.update({
        "task": "regression",
        "model": f"HistGradientBoostingRegressor(random_state={seed})",
        "linear_model": "Ridge(alpha=1) on one-hot declared categories and standardised numericals",
        "ratio": "tstr_trtr_ratio = TSTR R² / TRTR R² (gradient boosting); None when TRTR R² <= 0",
        "rows": rows, "rows_dropped_missing_target": dropped,
        "tstr": results["tstr"], "trtr": results["trtr"], "linear": linear,
    })
    if ratio is None and trtr is not None and trtr <= 0:
        details["ratio_note"] = (f"TRTR R² is {trtr:.4g} <= 0: the real data does not predict the target better "
                                 "than its mean, so the ratio is undefined (None)")
    _importance_details(details, [feats[i] for i in cols], len(feats), importances, agreement, why,
                        len(imp_rows), "R²", seed)
    return metrics


def _importance_details(details: dict[str, Any], feats: list[str], n_features: int,
                        importances: dict[str, list[float] | None], agreement: float | None, why: str | None,
                        n_rows: int, score: str, seed: int) -> None:
    """Per-feature permutation importances of both boosting models, rounded to 4 decimals."""
    screened = "" if len(feats) == n_features else (
        f", on the {len(feats)} of {n_features} features with the highest univariate F statistic in the real "
        "training rows")
    details["importance"] = {
        "method": (f"sklearn permutation_importance of the gradient-boosting model, drop in holdout {score}, "
                   f"n_repeats={IMPORTANCE_REPEATS}, random_state={seed}, on {n_rows} holdout rows{screened}"),
        "agreement": ("Spearman rank correlation between the TSTR and TRTR importances; it ignores magnitude "
                      "(compare 'total': a model that learnt nothing has a total near 0)"),
        "total": {name: (None if imp is None else round(float(np.sum(imp)), 4)) for name, imp in importances.items()},
        "per_feature": {f: {name: (None if imp is None else round(imp[i], 4)) for name, imp in importances.items()}
                        for i, f in enumerate(feats)},
    }
    if why is not None:
        details["importance"]["note"] = why


def run_utility(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                *, target: str, seed: int) -> AuditResult:
    """TSTR vs TRTR with scikit-learn models, tested on the holdout.

    Reads private rows (``real_train``, ``holdout``); NOT differentially private; the result
    is internal-only (it goes to the steward's internal report; only coarse figures may be
    released).

    Features: ``metadata.model_columns`` minus ``target`` (above 1,000, the 256 that
    :func:`model_features` picks on the synthetic rows); numericals as floats (NaN kept),
    categoricals/booleans as codes of their declared canonical categories; undeclared
    values are missing. Gradient boosting takes the codes as ``categorical_features``
    (ordinal codes above 255 categories); the linear models take standardised numericals
    (median-imputed, missing indicators) and one-hot declared categories (missing is its
    own level).

    Categorical/boolean ``target`` (classification): labels are canonical target values
    among the declared categories; rows with a missing or undeclared label are dropped and
    counted. Models: ``HistGradientBoostingClassifier(random_state=seed)`` and
    ``LogisticRegression(max_iter=2000, random_state=seed)``. AUC: binary ROC AUC when the
    target declares two classes, else the macro one-vs-rest mean over the classes present
    in the holdout; None if the holdout has one class. If a training set (synthetic or
    real) has a single class, its AUC is 0.5 and its accuracy that of always predicting
    the class (a note says so). Metrics: ``tstr_auc``, ``trtr_auc``, ``tstr_trtr_ratio``
    (TSTR AUC / TRTR AUC), ``tstr_accuracy``, ``trtr_accuracy``, ``tstr_auc_linear``,
    ``trtr_auc_linear``.

    Numerical ``target`` (regression): rows with a missing target are dropped. Models:
    ``HistGradientBoostingRegressor(random_state=seed)`` and ``Ridge(alpha=1)``. Metrics:
    ``tstr_r2``, ``trtr_r2``, ``tstr_mae``, ``trtr_mae`` (boosting; MAE in the target's
    units), ``tstr_r2_linear``, ``trtr_r2_linear`` (ridge) and ``tstr_trtr_ratio`` =
    TSTR R² / TRTR R², None when TRTR R² <= 0 (a note in the details says why).

    Both tasks: ``importance_rank_agreement`` = Spearman rank correlation between the
    permutation importances (``n_repeats=3``, ``random_state=seed``; holdout subsampled to
    at most 2,000 rows with ``np.random.default_rng(seed)``) of the TSTR and the TRTR
    boosting models; None when either model was not fitted or its importances are all
    equal. Above 50 features only the 50 with the highest univariate F statistic against
    the target in the real training rows are permuted. Per-feature importances are in the
    details.

    Args:
        real_train: the real training rows (private; TRTR).
        holdout: real rows never used for training the synthesizer (private; the test set).
        synthetic: the synthetic rows (TSTR).
        metadata: public metadata (feature kinds, declared categories).
        target: the label column: categorical/boolean (classification) or numerical (regression).
        seed: ``random_state`` of every model, the importance shuffles and the holdout subsample.

    Returns:
        AuditResult named ``utility`` (``internal_only``; ``runtime_s`` from ``time.perf_counter``).

    Raises:
        MetadataError: ``target`` is not a declared categorical, boolean or numerical column.
        DataValidationError: no holdout row (regression: fewer than 2) has a declared target value.
    """
    started = time.perf_counter()
    spec = metadata.columns.get(target)
    if spec is None or spec.type == "identifier":
        raise MetadataError(f"utility audit: target {target!r} must be a declared categorical, boolean or "
                            "numerical column")
    every = [c for c in metadata.model_columns if c != target]
    feats = model_features(synthetic, metadata, every, target)
    rng = np.random.default_rng(seed)
    x_hold = _features(holdout, metadata, feats)
    frames = {"trtr": real_train, "tstr": synthetic}
    details: dict[str, Any] = {"target": target, "features": feats}
    if len(feats) < len(every):
        details["feature_selection"] = (
            f"{len(every)} features > {MAX_MODEL_FEATURES}: all models use the {len(feats)} with the highest "
            "univariate F statistic against the target in the synthetic rows (public), in table order")
    task = _regression if spec.is_numerical else _classification
    metrics = task(frames, x_hold, holdout[target], metadata, feats, target, seed, rng, details)
    return AuditResult("utility", metrics, details, time.perf_counter() - started)
