"""The HTML reports as a person sees them: a real release's internal page and release card.

One tiny release (600 rows, 40 steps, lenient policy with two plausibility rules) feeds
every test; the browser test opens its page in headless Chromium and skips, with the
reason, where Chromium is not installed.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from scripts.make_example_report import report_wiring
from synthrelease import api as pipeline
from synthrelease.cli import cli
from synthrelease.report.card import render_card_html, render_card_markdown
from tests.conftest import lenient_policy_doc, release_workspace

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("verdict", "clauses", "privacy", "dp-gate", "distributions", "membership", "gdpr-risks", "utility",
            "plausibility", "training", "warnings", "run")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    doc = lenient_policy_doc()
    doc["plausibility"] = {"rules": [
        {"id": "age_adult", "kind": "range", "column": "age", "min": 18, "max": 90, "max_violation_share": 0.5},
        {"id": "sex_codes", "kind": "in_set", "column": "sex", "values": ["F", "M"], "max_violation_share": 0.5}]}
    ws = release_workspace(tmp_path_factory.mktemp("html-release"), seed=11, policy=doc)
    with report_wiring() as captured:
        outcome = pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / "policy.yaml",
                                   epsilon=3.0, out_dir=ws / "bundle", signing_key=ws / "k.pem", n_steps=40, seed=0,
                                   ledger_path=ws / "ledger.sqlite3")
    assert outcome.passed
    html_path = outcome.report_path.parent / "internal_report.html"
    return {"ws": ws, "outcome": outcome, "html_path": html_path, "html": html_path.read_text(),
            "report": json.loads(outcome.report_path.read_text()), "card_args": captured["card_args"]}


def _attribute_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)


def _images(html: str) -> list[bytes]:
    uris = re.findall(r"""<img[^>]*\bsrc="([^"]+)\"""", html)
    assert all(u.startswith("data:image/png;base64,") for u in uris)
    return [base64.b64decode(u.split(",", 1)[1]) for u in uris]


def test_internal_html_is_self_contained_and_complete(released):
    html, report = released["html"], released["report"]
    urls = _attribute_urls(html)
    assert urls and not [u for u in urls if u.lower().startswith(("http:", "https:", "//", "file:"))]
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert html.index('id="verdict"') < html.index('id="clauses"') < html.index('id="privacy"')
    assert "RELEASED" in html and "INTERNAL" in html
    assert html.count('class="clause-row"') == len(report["gate"]) >= 9
    for clause in report["gate"]:
        assert clause["clause"] in html
    for mechanism in report["privacy"]["mechanisms"]:
        assert mechanism["label"] in html
    images = _images(html)
    assert len(images) >= 10  # gate bars, column summary + distributions, association ×2, PCA, ROC, DCR, TSTR, rules,
    for png in images:        # training history
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and im.size[0] >= 300
            im.verify()


def test_plot_data_is_bounded_and_stays_out_of_the_bundle(released):
    report, bundle = released["report"], released["outcome"].bundle_dir
    plots = report["plots"]
    assert "INTERNAL" in plots["notice"]
    assert 0 < len(plots["columns"]) <= 30 and all(len(c["real"]) <= 40 for c in plots["columns"])
    scores = [c["score"] for c in plots["column_scores"]]
    assert scores == sorted(scores)  # worst first
    assert len(plots["embedding"]["real"]["x"]) <= 1000 and len(plots["embedding"]["synthetic"]["x"]) <= 1000
    roc = report["audits"]["membership"]["details"]["plots"]["roc"]
    assert set(roc) == {"dcr", "nndr", "domias"} and all(len(c["fpr"]) <= 200 for c in roc.values())
    for f in bundle.iterdir():
        text = f.read_bytes()
        assert b"column_scores" not in text and b"dcr_histogram" not in text and b"INTERNAL" not in text, f.name


def test_report_command_reproduces_the_release_page(released, tmp_path):
    src = released["outcome"].report_path
    out = tmp_path / "again.html"
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == released["html"]
    again = runner.invoke(cli, ["report", str(src), "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(cli, ["report", str(src), "-o", str(out), "--force"]).exit_code == 0
    over_input = runner.invoke(cli, ["report", str(src), "-o", str(src), "--force"])
    assert over_input.exit_code == 2 and "input" in over_input.output


def test_internal_pages_never_land_in_or_on_a_bundle(released, tmp_path):
    """Issue 26.2: `report` and `audit-privacy` refuse an output inside a signed bundle folder or onto a
    signed bundle archive (even with --force), and an output of the wrong kind."""
    import tarfile

    src, bundle = released["outcome"].report_path, released["outcome"].bundle_dir
    runner = CliRunner()
    for out in (bundle / "x.html", bundle / "sub" / "x.html"):
        res = runner.invoke(cli, ["report", str(src), "-o", str(out)])
        assert res.exit_code == 2 and "signed release bundle" in res.output and not out.exists()
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle, arcname=bundle.name)
    before = archive.read_bytes()
    res = runner.invoke(cli, ["report", str(src), "-o", str(archive), "--force"])
    assert res.exit_code == 2 and archive.read_bytes() == before
    res = runner.invoke(cli, ["report", str(src), "-o", str(tmp_path / "page.txt")])
    assert res.exit_code == 2 and ".html" in res.output and not (tmp_path / "page.txt").exists()
    res = runner.invoke(cli, ["audit-privacy", str(src), "--metadata", str(src), "--epsilon", "1",
                              "-o", str(bundle / "audit.json")])
    assert res.exit_code == 2 and "signed release bundle" in res.output
    assert not (bundle / "audit.json").exists() and not (bundle / "audit.html").exists()


@pytest.mark.parametrize(("field", "mutate"), [
    ("gate", lambda r: r.update(gate="passed")),
    ("gate", lambda r: r.update(gate=[1, 2])),
    ("plots", lambda r: r.update(plots=[1])),
    ("plots", lambda r: r.update(plots={"columns": 3})),
    ("privacy.mechanisms", lambda r: [m.pop("label") for m in r["privacy"]["mechanisms"]]),
    ("training.history", lambda r: r["training"]["history"].__setitem__(0, {"step": "one"})),
    ("details", lambda r: r["audits"]["fidelity"].update(details=[1])),
    ("dp_gate", lambda r: r.update(dp_gate=["x"])),
])
def test_report_command_names_the_field_of_the_wrong_type(released, tmp_path, field, mutate):
    """Issue 26.6: valid JSON with fields of the wrong type is bad input (exit 2 naming the field), not a crash."""
    report = json.loads(released["outcome"].report_path.read_text())
    mutate(report)
    src = tmp_path / "r.json"
    src.write_text(json.dumps(report))
    res = CliRunner().invoke(cli, ["report", str(src), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and field.split(".")[-1] in res.output and "r.json" in res.output, res.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("text", ['{"rows": [1, 2]}', "[1, 2]", '{"dataset": "x", "dataset": "y"}', "not json", "NaN"])
def test_report_command_refuses_what_is_not_an_internal_report(tmp_path, text):
    src = tmp_path / "r.json"
    src.write_text(text)
    result = CliRunner().invoke(cli, ["report", str(src), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert str(src) in result.output and not (tmp_path / "r.html").exists()


def test_release_card_html_shows_only_dp_figures(released):
    report, args = released["report"], released["card_args"]
    card = render_card_html(*args)
    assert render_card_markdown(*args) == (released["outcome"].bundle_dir / "RELEASE_CARD.md").read_text()
    assert "RELEASED" in card and "PUBLIC RELEASE CARD" in card and "What the guarantee covers" in card
    assert not [u for u in _attribute_urls(card) if not u.startswith(("data:", "#"))]
    assert len(_images(card)) == 1  # the noisy figures' bar chart only
    for name, fig in report["dp_gate"].items():
        assert name in card and f"{fig['value']:.4f}" in card
        exact = fig["exact"]  # 0 and 1 (no copies, perfect accuracy) also stand for other figures
        if exact not in (0.0, 1.0) and abs(exact - fig["value"]) > 1e-4:
            for shown in (f"{exact:.4f}", f"{exact:.4g}", repr(exact)):
                assert shown not in card, (name, shown)
    # an internal dict passed by mistake still shows no exact value
    leaky = {k: {**v, "exact": 0.123456789} for k, v in args[6].items()}
    page = render_card_html(*args[:6], leaky, *args[7:])
    assert "0.1235" not in page and "0.123456789" not in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.slow
def test_the_page_opens_in_headless_chromium(released, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get when it can); "
                    "the page itself is checked by the other tests")
    shot = tmp_path / "report.png"
    run = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--enable-logging=stderr", "--v=0", "--window-size=1280,4000", f"--screenshot={shot}",
                          "--dump-dom", released["html_path"].resolve().as_uri()],
                         capture_output=True, text=True, timeout=180,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    dom = run.stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert dom.count("<img") == len(_images(released["html"])) >= 10
    assert shot.is_file()
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, tables, plots: not blank
