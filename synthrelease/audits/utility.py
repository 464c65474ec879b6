"""Utility audit: train on synthetic, test on real (TSTR) against train-real-test-real (TRTR).

Reads private rows (training rows for TRTR, holdout rows for testing). NOT
differentially private: the result is internal-only; only coarse figures may be
released. The holdout never touched training of the synthesizer.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, roc_auc_score

from synthrelease.audits.base import AuditResult
from synthrelease.metadata.schema import Metadata, canonical_category


def _features(df: pd.DataFrame, metadata: Metadata, feats: list[str]) -> np.ndarray:
    cols = []
    for c in feats:
        spec = metadata.columns[c]
        if spec.is_numerical:
            cols.append(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64))
        else:
            index = {k: float(i) for i, k in enumerate(spec.canonical_categories())}
            cols.append(df[c].map(canonical_category).map(index).to_numpy(dtype=np.float64))
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def _labels(df: pd.DataFrame, target: str, classes: list[str]) -> np.ndarray:
    index = {k: i for i, k in enumerate(classes)}
    return df[target].map(canonical_category).map(index).to_numpy(dtype=np.float64)


def _score(model: HistGradientBoostingClassifier, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    proba = model.predict_proba(x)
    known = list(model.classes_.astype(int))
    present = sorted(set(y.astype(int)))
    full = np.zeros((len(y), max(present + known) + 1))
    full[:, known] = proba
    if len(present) < 2:
        auc = float("nan")
    elif len(present) == 2:
        auc = float(roc_auc_score(y == present[1], full[:, present[1]]))
    else:
        aucs = [roc_auc_score(y == k, full[:, k]) for k in present]
        auc = float(np.mean(aucs))
    pred = np.asarray(known)[proba.argmax(axis=1)]
    return {"auc": auc, "accuracy": float(accuracy_score(y.astype(int), pred))}


def run_utility(real_train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata,
                *, target: str, seed: int) -> AuditResult:
    """TSTR vs TRTR with scikit-learn's HistGradientBoostingClassifier, tested on the holdout.

    Reads private rows; NOT DP; internal-only. AUC is binary ROC AUC, or the macro
    one-vs-rest mean over the classes present in the holdout.

    Metrics: ``tstr_auc``, ``trtr_auc``, ``tstr_trtr_ratio`` (AUC ratio), ``tstr_accuracy``,
    ``trtr_accuracy``.
    """
    started = time.perf_counter()
    classes = metadata.columns[target].canonical_categories()
    feats = [c for c in metadata.model_columns if c != target]
    cat_mask = [not metadata.columns[c].is_numerical for c in feats]
    x_hold, y_hold = _features(holdout, metadata, feats), _labels(holdout, target, classes)
    keep = ~np.isnan(y_hold)
    x_hold, y_hold = x_hold[keep], y_hold[keep]
    results: dict[str, dict[str, Any]] = {}
    for name, frame in (("trtr", real_train), ("tstr", synthetic)):
        x, y = _features(frame, metadata, feats), _labels(frame, target, classes)
        ok = ~np.isnan(y)
        x, y = x[ok], y[ok]
        if len(np.unique(y)) < 2:
            majority = int(y[0]) if len(y) else 0
            results[name] = {"auc": 0.5, "accuracy": float(np.mean(y_hold == majority)),
                             "note": "training labels have a single class; AUC set to 0.5"}
            continue
        model = HistGradientBoostingClassifier(random_state=seed, categorical_features=cat_mask or None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn convergence / category-count notes
            model.fit(x, y.astype(int))
        results[name] = _score(model, x_hold, y_hold)
    tstr, trtr = results["tstr"]["auc"], results["trtr"]["auc"]
    ratio = tstr / trtr if trtr and not np.isnan(trtr) and not np.isnan(tstr) else None
    metrics: dict[str, float | None] = {
        "tstr_auc": tstr, "trtr_auc": trtr, "tstr_trtr_ratio": ratio,
        "tstr_accuracy": results["tstr"]["accuracy"], "trtr_accuracy": results["trtr"]["accuracy"],
    }
    details = {"target": target, "classes": classes, "model": "HistGradientBoostingClassifier",
               "holdout_rows": len(y_hold), "tstr": results["tstr"], "trtr": results["trtr"]}
    return AuditResult("utility", metrics, details, time.perf_counter() - started)
