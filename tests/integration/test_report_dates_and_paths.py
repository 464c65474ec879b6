"""The internal report as a steward passes it around (issue 31.4): a date column's histogram is labelled
with calendar dates, not day numbers, and the verdict box names the bundle without the machine's folders."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pytest
import yaml
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from synthrelease.report import plots
from tests.conftest import absolute_paths, release_workspace, run_cli, verdict_box


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A CLI release of the tiny table plus a date column (2001-2003), bundle and report at absolute paths."""
    ws = release_workspace(tmp_path_factory.mktemp("dated"), rows=600, seed=11)
    import pandas as pd

    df = pd.read_csv(ws / "private.csv")
    rng = np.random.default_rng(0)
    df["visit"] = [(date(2001, 1, 1) + timedelta(days=int(d))).isoformat() for d in rng.integers(0, 1095, len(df))]
    df.to_csv(ws / "private.csv", index=False)
    meta = yaml.safe_load((ws / "meta.yaml").read_text())
    meta["columns"]["visit"] = {"type": "date", "min": "2001-01-01", "max": "2003-12-31"}
    (ws / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    assert ws.is_absolute()
    res = run_cli("release", str(ws / "private.csv"), "--metadata", str(ws / "meta.yaml"), "--policy",
                  str(ws / "policy.yaml"), "--signing-key", str(ws / "k.pem"), "--out", str(ws / "bundle"),
                  "--ledger", str(ws / "l.sqlite3"), "--epsilon", "3", "--steps", "40")
    assert res.exit_code in (0, 1), res.output  # a DP verdict: now and then a noisy clause refuses
    report_dir = ws / "bundle.internal-report"
    return {"ws": ws, "released": res.exit_code == 0, "report_dir": report_dir,
            "report": json.loads((report_dir / "internal_report.json").read_text()),
            "html": (report_dir / "internal_report.html").read_text()}


def test_a_date_histogram_is_labelled_with_dates(released):
    (visit,) = [c for c in released["report"]["plots"]["columns"] if c["column"] == "visit"]
    assert visit["kind"] == "numerical" and visit["temporal"] == "date"
    assert 11_000 < visit["edges"][0] < visit["edges"][-1] < 12_500  # the record keeps days since 1970-01-01
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plots._column_panel(ax, visit)  # the panel the report's distribution figure draws for this column
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t, at in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True) if lo <= at <= hi]
    assert len(labels) >= 2, labels
    shown = [datetime.strptime(t, "%Y-%m-%d").date() for t in labels]  # a day number would not parse
    assert all(date(2000, 6, 1) <= d <= date(2004, 6, 1) for d in shown), labels
    assert mdates.num2date(lo).year >= 2000 and mdates.num2date(hi).year <= 2004


def test_a_numeric_histogram_keeps_its_numbers(released):
    (age,) = [c for c in released["report"]["plots"]["columns"] if c["column"] == "age"]
    assert "temporal" not in age
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plots._column_panel(ax, age)
    fig.canvas.draw()
    assert all(t.get_text().replace("−", "-").replace(".", "").isdigit() for t in ax.get_xticklabels()
               if t.get_text())


def test_the_verdict_box_names_no_absolute_path(released, tmp_path):
    ws, box = released["ws"], verdict_box(released["html"])
    assert not absolute_paths(box) and str(ws) not in box, box
    if released["released"]:
        assert "output folder, bundle." in box and released["report"]["bundle"] == str(ws / "bundle")
    # drawn again from the JSON alone (`synthrelease report`): the same box
    res = run_cli("report", str(released["report_dir"] / "internal_report.json"), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert verdict_box((tmp_path / "r.html").read_text()) == box


def test_the_report_states_how_many_synthetic_rows_were_made(released):
    """The synthetic row count (public: the DP output's size) fills the report's 'synthetic rows' card."""
    rows = released["report"]["rows"]
    assert rows["synthetic"] >= 1 and str(rows["synthetic"]) in released["html"].replace(",", "")
