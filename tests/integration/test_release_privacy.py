"""End to end: what a release puts out is DP (secret noise, noisy gate figures, ε rounded up)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from synthrelease import api as pipeline
from tests.conftest import release_workspace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory):
    ws = release_workspace(tmp_path_factory.mktemp("release"))
    outcomes = [pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / "policy.yaml",
                                 epsilon=3.0, out_dir=ws / f"b{i}", signing_key=ws / "k.pem", n_steps=40, seed=0,
                                 ledger_path=ws / "ledger.sqlite3") for i in (1, 2)]
    return ws, outcomes


def _manifest(outcome) -> dict:
    return json.loads((outcome.bundle_dir / "manifest.json").read_text())["release"]


def test_same_seed_twice_gives_different_releases(two_releases):
    _, (a, b) = two_releases
    assert a.passed and b.passed
    rows_a = pd.read_csv(a.bundle_dir / "synthetic.csv")
    rows_b = pd.read_csv(b.bundle_dir / "synthetic.csv")
    for rows in (rows_a, rows_b):  # ⌈noisy table size × 0.8⌉: from the DP count release, never the exact count
        assert abs(len(rows) - pipeline.synthetic_row_count(600, 0.2)) < 60
    assert not rows_a.equals(rows_b)
    fa, fb = _manifest(a)["dp_figures"], _manifest(b)["dp_figures"]
    inside = [k for k in fa if 0 < fa[k]["value"] < 1 and 0 < fb[k]["value"] < 1]  # not clipped at a bound
    # fresh noise: the figures differ (any: two 4-decimal values may still meet by chance, as seen once)
    assert inside and any(fa[k]["value"] != fb[k]["value"] for k in inside)


def test_bundle_carries_only_dp_figures_with_their_noise(two_releases):
    _, (a, _) = two_releases
    release = _manifest(a)
    assert "audit_summary" not in release and "seed" not in release
    figures = release["dp_figures"]
    assert set(figures) == {"quality_score", "tstr_accuracy", "dcr_mia_auc", "exact_copy_share"}
    report = json.loads(a.report_path.read_text())
    for name, fig in figures.items():
        assert set(fig) == {"value", "noise_std", "l2_sensitivity"} and fig["noise_std"] > 0
        if 0 < fig["value"] < 1:  # a noisy figure clipped at a bound may equal an exact 0 or 1
            assert fig["value"] != pytest.approx(report["dp_gate"][name]["exact"], abs=1e-6)  # noisy, not exact
    card = (a.bundle_dir / "RELEASE_CARD.md").read_text()
    assert "noise std" in card and "the verdict itself" in card
    exact_quality = report["audits"]["fidelity"]["metrics"]["quality_score"]
    assert f"{exact_quality:.4f}" not in card and f"{round(exact_quality, 2):.2f} " not in card
    croissant = (a.bundle_dir / "croissant.json").read_text()  # its RAI fields: the noisy figures only
    for name, fig in figures.items():
        exact = report["dp_gate"][name]["exact"]
        assert f"{name} = {fig['value']:.4f} (Gaussian noise std {fig['noise_std']:.3g})" in croissant
        if exact is not None and f"{exact:.4f}" != f"{fig['value']:.4f}":
            assert f"{name} = {exact:.4f}" not in croissant
    # no seed that determines noise anywhere
    assert "seed_salt" not in json.dumps(report) and "commitment" not in json.dumps(release)


def test_epsilon_is_rounded_up_and_covers_the_gate(two_releases):
    _, (a, _) = two_releases
    release = _manifest(a)
    labels = [m["label"] for m in release["privacy"]["mechanisms"]]
    assert any(label.startswith("DP release gate (4 figures") for label in labels)
    assert release["privacy"]["epsilon"] >= a.epsilon and release["privacy"]["epsilon"] - a.epsilon < 1e-6
    assert a.epsilon <= 3.0
    card = (a.bundle_dir / "RELEASE_CARD.md").read_text()
    shown = float(card.split("ε = ")[1].split(",")[0])
    assert shown >= a.epsilon and shown == math.ceil(a.epsilon * 1000 - 1e-9) / 1000


def test_the_ledger_charges_the_whole_release(two_releases):
    from synthrelease.budget.ledger import Ledger

    ws, outcomes = two_releases
    entries = Ledger(ws / "ledger.sqlite3").entries("tiny-clinic")
    assert [e.status for e in entries] == ["spent", "spent"]
    assert [e.epsilon for e in entries] == pytest.approx([o.epsilon for o in outcomes])
