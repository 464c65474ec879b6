"""The report package without a release: explanations, plot data bounds, odd reports, the card's Markdown."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from synthrelease.audits.attack_metrics import distance_histogram, roc_points
from synthrelease.gate.dp_gate import CLAUSE_FIGURES
from synthrelease.gate.verdict import ClauseResult, GateDecision
from synthrelease.metadata.schema import Metadata
from synthrelease.report import explain
from synthrelease.report.html import render_internal_html
from synthrelease.report.internal import NotAReportError, budget_split
from synthrelease.report.internal_report import HTML_NAME, write_internal_report
from synthrelease.report.plot_data import collect_plot_data
from tests.conftest import REPO, absolute_paths, verdict_box


def test_every_gate_clause_and_figure_has_a_sentence_and_a_direction():
    for clause, figure in CLAUSE_FIGURES.items():
        assert explain.explain_clause(clause).direction in ("higher", "lower")
        assert explain.explain_figure(figure).sentence.endswith(".")
    assert explain.explain_figure("quality_score", "From the gate.").sentence == "From the gate."
    assert explain.explain_metric("membership", "nndr_tpr_at_fpr_0_1pct").direction == "lower"
    assert "rule 'r1'" in explain.explain_metric("plausibility", "violation_share:r1").sentence


def test_roc_and_distance_histogram_are_bounded():
    rng = np.random.default_rng(0)
    curve = roc_points(rng.normal(0.2, 1, 5000), rng.normal(0, 1, 5000))
    assert len(curve["fpr"]) <= 200 and curve["fpr"][0] == 0 and curve["fpr"][-1] == 1 and curve["tpr"][-1] == 1
    assert np.all(np.diff(curve["fpr"]) >= 0) and np.all(np.diff(curve["tpr"]) >= 0)
    hist = distance_histogram(rng.random(300), np.r_[0.0, rng.random(99) * 3])
    assert len(hist["train"]) == 40 and sum(hist["holdout"]) == pytest.approx(1.0, abs=1e-3)
    assert hist["zero_holdout"] == 0.01


def test_plot_data_of_a_wide_table_is_bounded():
    rng = np.random.default_rng(1)
    cols = {f"g{i}": {"type": "float", "min": 0.0, "max": 10.0} for i in range(45)}
    meta = Metadata.model_validate({"version": 1, "name": "wide", "reviewed": True, "target": "cell",
                                    "columns": {**cols, "cell": {"type": "categorical", "categories": ["a", "b"]}}})

    def table(n: int) -> pd.DataFrame:
        df = pd.DataFrame(rng.gamma(2, 1, (n, 45)).clip(0, 10), columns=list(cols))
        return df.assign(cell=rng.choice(["a", "b"], n))

    plots = collect_plot_data(table(2500), table(300), table(2200), meta, {}, seed=0)
    assert len(plots["column_scores"]) == 46 and len(plots["columns"]) == 30
    assert len(plots["association"]["columns"]) == 30 and len(plots["association"]["real"]) == 30
    assert len(plots["embedding"]["real"]["x"]) == 1000 and set(plots["embedding"]["real"]["class"]) <= {0, 1}
    assert all(len(c["edges"]) == 31 for c in plots["columns"] if c["kind"] == "numerical")
    json.dumps(plots, allow_nan=False)


def test_plot_data_types_only_the_columns_it_shows(monkeypatch):
    """Scores column by column, typed copies of the ≤ 30 + 30 shown columns only: far below one
    float64 copy of a wide table (which a 100,000 × 20,000 release could not hold). The embedding
    is bounded by its 1,000-row sample (its PCA alone takes ~70 MB here) and left out."""
    import tracemalloc

    import synthrelease.report.plot_data as plot_data

    monkeypatch.setattr(plot_data, "embedding_sample", lambda *a, **k: {"available": False})
    rng = np.random.default_rng(2)
    cols = {f"g{i}": {"type": "float", "min": 0.0, "max": 10.0} for i in range(400)}
    meta = Metadata.model_validate({"version": 1, "name": "wide", "reviewed": True, "target": "cell",
                                    "columns": {**cols, "cell": {"type": "categorical", "categories": ["a", "b"]}}})
    real = pd.DataFrame(rng.gamma(2, 1, (3000, 400)).clip(0, 10).astype(np.float16), columns=list(cols))
    syn = pd.DataFrame(rng.gamma(2, 1, (3000, 400)).clip(0, 10).astype(np.float16), columns=list(cols))
    real["cell"], syn["cell"] = rng.choice(["a", "b"], 3000), rng.choice(["a", "b"], 3000)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        plots = plot_data.collect_plot_data(real, real.iloc[:10], syn, meta, {}, seed=0)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert len(plots["column_scores"]) == 401 and len(plots["columns"]) == 30
    assert peak < 3000 * 400 * 8  # one float64 copy of one table: 9.6 MB (typing both tables: 19 MB)


def _stopped_report() -> dict:
    return {"dataset": "tiny", "privacy": {"epsilon": 1.0, "delta": 1e-5, "accountant": "-",
                                           "note": "stopped after training started"},
            "audits": {}, "stopped": "Stopped: SIGTERM", "bundle": None, "warnings": ["a warning"]}


def test_stopped_refused_and_audit_run_reports_render(tmp_path):
    html = render_internal_html(_stopped_report())
    assert "STOPPED" in html and "a warning" in html and "No clause was evaluated" in html
    refused = {**_stopped_report(), "stopped": None, "privacy": {
        "epsilon": 0.0, "delta": 1e-5, "accountant": "rdp", "note": "refused before training: nothing spent"},
        "gate": [ClauseResult("privacy.max_epsilon", "<=", 1.0, 3.0, False, "measured 3 violates <= 1").to_dict()]}
    html = render_internal_html(refused)
    assert "REFUSED" in html and html.count('class="clause-row"') == 1
    rejected = {**refused, "privacy": {"epsilon": 1.0, "delta": 1e-5, "accountant": "rdp"},
                "advice": {"privacy.max_epsilon": "ask for less ε"}, "rejected_sample": "r/rejected.csv"}
    html = render_internal_html(rejected)
    assert "REJECTED" in html and "ask for less ε" in html
    assert "in this report's folder: <code class=\"break\">rejected.csv</code>" in html and "r/rejected" not in html
    audit = {"empirical_privacy": {"metrics": {"epsilon_lower_bound": 0.4, "epsilon_claimed": 1.0}, "details": {
        "sweep": [{"guesses": 2 * k, "epsilon_lb": 0.1 * k} for k in range(1, 5)], "method": "one-run"}}}
    html = render_internal_html(audit)
    assert "NO EVIDENCE AGAINST THE CLAIM" in html and html.count("<img") == 1
    for junk in ([1], {"rows": 1}, {"dataset": "x"}):
        with pytest.raises(NotAReportError):
            render_internal_html(junk, source="j.json")


def test_budget_split_shares_add_up():
    privacy = {"epsilon": 3.0, "delta": 1e-5, "accountant": "rdp", "mechanisms": [
        {"label": "histogram", "noise_multiplier": 3.0, "sample_rate": 1.0, "steps": 1},
        {"label": "discriminator DP-SGD", "noise_multiplier": 1.2, "sample_rate": 0.1, "steps": 500}]}
    from synthrelease.privacy.accounting import MechanismEntry, epsilon_for

    rows = budget_split(privacy)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    total = epsilon_for([MechanismEntry(r["label"], r["noise_multiplier"], r["sample_rate"], r["steps"]) for r in rows],
                        delta=1e-5)
    assert all(0 < r["epsilon_alone"] <= total for r in rows)


def test_a_rendering_fault_never_fails_the_run(tmp_path, monkeypatch):
    import synthrelease.report.html as html_module

    def broken(*args, **kwargs):
        raise ValueError("a figure could not be drawn")

    monkeypatch.setattr(html_module, "render_internal_html", broken)
    path = write_internal_report(tmp_path, {**_stopped_report(), "x": float("nan")}, GateDecision("p", ()))
    body = json.loads(path.read_text())
    assert body["x"] is None and body["policy_name"] == "p"
    page = (tmp_path / HTML_NAME).read_text()
    assert "could not be drawn" in page and "synthrelease report" in page


@pytest.mark.parametrize("checks", [{}, {"plausibility": {"violation_share:r": 0.0, "max_violation_share": 0.01}}])
def test_card_markdown_equals_the_pipelines(checks):
    from synthrelease.api import release_card
    from synthrelease.policy.schema import load_policy
    from synthrelease.report.card import render_card_markdown

    meta = Metadata.model_validate({"version": 1, "name": "t", "reviewed": True, "columns": {
        "a": {"type": "float", "min": 0, "max": 1}, "c": {"type": "categorical", "categories": ["x", "y"]}}})
    policy, sha = load_policy("policies/default.yaml")
    figures = {"quality_score": {"value": 0.71234, "noise_std": 0.0141, "l2_sensitivity": 0.002},
               "dcr_mia_auc": {"value": None, "noise_std": 0.07, "l2_sensitivity": 0.01}}
    args = (meta, 2.9912, 1e-5, "rdp", policy, sha, figures, checks, 123)
    assert render_card_markdown(*args) == release_card(*args)


def test_names_from_the_data_are_escaped_in_html_and_plots():
    rng = np.random.default_rng(2)
    meta = Metadata.model_validate({"version": 1, "name": "odd", "reviewed": True, "target": "<b>y</b>", "columns": {
        "cost $a$": {"type": "float", "min": 0, "max": 5},
        "<script>x</script>": {"type": "categorical", "categories": ["a&b", "$c$"]},
        "<b>y</b>": {"type": "categorical", "categories": ["p", "q"]}}})

    def table(n: int) -> pd.DataFrame:
        return pd.DataFrame({"cost $a$": rng.random(n) * 5, "<script>x</script>": rng.choice(["a&b", "$c$"], n),
                             "<b>y</b>": rng.choice(["p", "q"], n)})

    report = {**_stopped_report(), "stopped": None, "plots": collect_plot_data(table(200), table(50), table(200),
                                                                               meta, {}, seed=0)}
    html = render_internal_html(report)
    assert "<script>x" not in html and "<b>y</b>" not in html and "coloured by &lt;b&gt;y&lt;/b&gt;" in html
    assert html.count("<img") == 5  # summary, distributions, association ×2, embedding


def test_names_cannot_run_html_or_markdown_in_the_public_card():
    """Issue 26.3: a column or dataset name is literal text in RELEASE_CARD.md (no live HTML, no emphasis,
    links or table cells) and in RELEASE_CARD.html."""
    from synthrelease.policy.schema import load_policy
    from synthrelease.report.card import render_card_html, render_card_markdown

    meta = Metadata.model_validate({"version": 1, "name": "*bold* [x](y)", "reviewed": True, "columns": {
        "<img src=x onerror=alert(1)>": {"type": "float", "min": 0, "max": 1},
        "a|b_c": {"type": "categorical", "categories": ["x", "y"]}}})
    policy, sha = load_policy("policies/default.yaml")
    args = (meta, 1.0, 1e-6, "rdp", policy, sha, {}, {}, 10)
    md = render_card_markdown(*args)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "\\*bold\\* \\[x\\](y)" in md and "a\\|b\\_c" in md
    html = render_card_html(*args)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"), ("  ", "empty"), ("a" * 201, "longer than 200"), ("x\n#1 cancelled epsilon 0.0000 forged", "U+000A"),
    ("evil\u202eton", "U+202E"), ("zero\u200bwidth", "U+200B"), ("tab\there", "U+0009")])
def test_names_that_forge_or_reorder_text_are_refused(name, why):
    import pydantic

    for doc in ({"version": 1, "name": name, "columns": {"a": {"type": "float", "min": 0, "max": 1}}},
                {"version": 1, "name": "ok", "columns": {name: {"type": "float", "min": 0, "max": 1}}}):
        with pytest.raises(pydantic.ValidationError, match=re.escape(why)):
            Metadata.model_validate(doc)
    assert Metadata.model_validate({"version": 1, "name": "Größe café 体重 (kg) - v2.1",
                                    "columns": {"capital-gain": {"type": "float", "min": 0, "max": 1}}})


@pytest.mark.parametrize("bundle", ["/tmp/synthrelease-x/bundle", "/home/ann/releases/b1", "C:\\Users\\ann\\b1",
                                    "out/b1"])
def test_the_verdict_box_never_shows_an_absolute_path(bundle):
    """Issue 31.4: the page travels; the box names the bundle by its folder name (the JSON keeps the path)."""
    report = {**_stopped_report(), "stopped": None, "bundle": bundle,
              "privacy": {"epsilon": 1.0, "delta": 1e-5, "accountant": "rdp"}}
    box = verdict_box(render_internal_html(report))
    assert "RELEASED" in box and not absolute_paths(box) and bundle not in box, box
    assert "output folder, b" in box


def test_the_committed_example_report_names_no_machine_folder():
    """reports/examples/ is drawn by scripts/make_example_report.py with paths relative to the repository."""
    files = [p for p in (REPO / "reports").rglob("*") if p.suffix in (".html", ".md", ".json")]
    assert len(files) >= 5
    for path in files:
        text = path.read_text()
        assert not re.search(r"/tmp/|/home/|/root/|/Users/|~/", text), path
    assert not absolute_paths(verdict_box((REPO / "reports" / "examples" / "internal_report.html").read_text()))
