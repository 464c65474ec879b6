"""Utility audit: train on synthetic, test on real (TSTR) against train-real-test-real (TRTR).

Reads private rows (the training rows for TRTR, the holdout rows for testing). NOT
differentially private: the result is internal-only (it goes to the steward's internal
report); only coarse, rounded figures may be released. The holdout never touched the
synthesizer's training.

Scored as the peers' evaluator (``shared/peers/evaluate.py``, ``utility``, model ``hgb``):
ROC AUC for a binary target, the macro one-vs-rest mean over the classes present in the
holdout otherwise, and accuracy of the most probable class. Differences: classes and
category codes come from the public metadata (declared categories), not from the data,
and the model's ``random_state`` is the audit's ``seed``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from synthrelease.audits.base import AuditResult
from synthrelease.errors import DataValidationError, MetadataError
from synthrelease.metadata.schema import Metadata, canonical_category

MAX_NATIVE_CATEGORIES = 255
"""HistGradientBoosting's categorical support takes at most ``max_bins`` (255) categories;
wider categorical columns are passed as ordinal codes instead."""


def _codes(series: pd.Series, categories: list[str]) -> np.ndarray:
    """Codes of canonical category values in the declared list; missing/undeclared → NaN (reads private rows)."""
    index = {k: float(i) for i, k in enumerate(categories)}
    return series.map(canonical_category).map(index).to_numpy(dtype=np.float64, na_value=np.nan)


def _features(df: pd.DataFrame, metadata: Metadata, feats: list[str]) -> np.ndarray:
    """float64 feature matrix: numericals as numbers, categoricals as declared-category codes (reads private rows)."""
    cols = []
    for c in feats:
        spec = metadata.columns[c]
        if spec.is_numerical:
            cols.append(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            cols.append(_codes(df[c], spec.canonical_categories()))
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def _score(model: HistGradientBoostingClassifier, n_classes: int, x: np.ndarray,
           y: np.ndarray) -> dict[str, Any]:
    """AUC and accuracy of a fitted model on holdout rows (reads private rows; NOT DP; internal-only)."""
    proba = np.zeros((len(y), n_classes))
    proba[:, model.classes_.astype(int)] = model.predict_proba(x)
    accuracy = float(np.mean(proba.argmax(axis=1) == y))
    present = np.unique(y)
    if len(present) < 2:
        return {"auc": None, "accuracy": accuracy, "note": "the holdout has a single class; AUC undefined"}
    if n_classes == 2:
        auc = float(roc_auc_score(y == 1, proba[:, 1]))
    else:
        auc = float(np.mean([roc_auc_score(y == k, proba[:, k]) for k in present]))
    return {"auc": auc, "accuracy": accuracy}


def run_utility(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                *, target: str, seed: int) -> AuditResult:
    """TSTR vs TRTR with scikit-learn's HistGradientBoostingClassifier, tested on the holdout.

    Reads private rows (``real_train``, ``holdout``); NOT differentially private; the result
    is internal-only (it goes to the steward's internal report; only coarse figures may be
    released).

    Features: ``metadata.model_columns`` minus ``target``; numericals as floats (NaN kept),
    categoricals/booleans as codes of their declared canonical categories with
    ``categorical_features`` (ordinal codes above 255 categories); undeclared values are
    missing. Labels: canonical target values among the declared categories; rows with a
    missing or undeclared label are dropped and counted. Model:
    ``HistGradientBoostingClassifier(random_state=seed)``. AUC: binary ROC AUC when the
    target declares two classes, else the macro one-vs-rest mean over the classes present
    in the holdout; None if the holdout has one class. If a training set (synthetic or
    real) has a single class, its AUC is 0.5 and its accuracy that of always predicting
    the class (a note says so).

    Metrics: ``tstr_auc``, ``trtr_auc``, ``tstr_trtr_ratio`` (TSTR AUC / TRTR AUC),
    ``tstr_accuracy``, ``trtr_accuracy``.

    Args:
        real_train: the real training rows (private; TRTR).
        holdout: real rows never used for training the synthesizer (private; the test set).
        synthetic: the synthetic rows (TSTR).
        metadata: public metadata (feature kinds, declared categories).
        target: the categorical/boolean label column.
        seed: ``random_state`` of the classifiers (the only randomness).

    Returns:
        AuditResult named ``utility`` (``internal_only``; ``runtime_s`` from ``time.perf_counter``).

    Raises:
        MetadataError: ``target`` is not a declared categorical/boolean column.
        DataValidationError: no holdout row has a declared target value.
    """
    started = time.perf_counter()
    spec = metadata.columns.get(target)
    if spec is None or spec.type not in ("categorical", "boolean"):
        raise MetadataError(f"utility audit: target {target!r} must be a declared categorical or boolean column")
    classes = spec.canonical_categories()
    feats = [c for c in metadata.model_columns if c != target]
    native = [not metadata.columns[c].is_numerical
              and len(metadata.columns[c].canonical_categories()) <= MAX_NATIVE_CATEGORIES for c in feats]
    y_hold = _codes(holdout[target], classes)
    keep = ~np.isnan(y_hold)
    if not keep.any():
        raise DataValidationError(f"utility audit: no holdout row has a declared value of target {target!r}")
    x_hold, y_hold = _features(holdout, metadata, feats)[keep], y_hold[keep].astype(int)
    results: dict[str, dict[str, Any]] = {}
    dropped: dict[str, int] = {"holdout": int((~keep).sum())}
    for name, frame in (("trtr", real_train), ("tstr", synthetic)):
        y = _codes(frame[target], classes)
        ok = ~np.isnan(y)
        dropped[name] = int((~ok).sum())
        x, y = _features(frame, metadata, feats)[ok], y[ok].astype(int)
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
            continue
        model = HistGradientBoostingClassifier(random_state=seed, categorical_features=native if any(native) else None)
        model.fit(x, y)
        results[name] = _score(model, len(classes), x_hold, y_hold)
    tstr, trtr = results["tstr"]["auc"], results["trtr"]["auc"]
    ratio = tstr / trtr if tstr is not None and trtr else None
    metrics: dict[str, float | None] = {
        "tstr_auc": tstr, "trtr_auc": trtr, "tstr_trtr_ratio": ratio,
        "tstr_accuracy": results["tstr"]["accuracy"], "trtr_accuracy": results["trtr"]["accuracy"],
    }
    details: dict[str, Any] = {
        "target": target, "classes": classes, "features": feats,
        "model": f"HistGradientBoostingClassifier(random_state={seed})",
        "auc": "binary ROC AUC" if len(classes) == 2 else "macro one-vs-rest ROC AUC over classes in the holdout",
        "rows": {"trtr_train": len(real_train) - dropped["trtr"], "tstr_train": len(synthetic) - dropped["tstr"],
                 "holdout": int(keep.sum())},
        "rows_dropped_missing_or_undeclared_label": dropped,
        "holdout_class_counts": {classes[k]: int(v) for k, v in zip(*np.unique(y_hold, return_counts=True),
                                                                     strict=True)},
        "tstr": results["tstr"], "trtr": results["trtr"],
    }
    return AuditResult("utility", metrics, details, time.perf_counter() - started)
