"""A tiny release measures the GDPR risks (anonymeter) for the internal report only.

The internal report (JSON, Markdown, HTML) holds the section with its "internal only, never a
gate clause" heading; no gate clause reads it; no file of the signed bundle mentions it or
carries its figures.
"""

from __future__ import annotations

import json
import re

import pytest

from synthrelease import api as pipeline
from tests.conftest import release_workspace

pytest.importorskip("anonymeter", reason="anonymeter is not installed (pip install --no-deps -c constraints.txt "
                                         "anonymeter)")

MARKERS = (b"anonymeter", b"singling", b"linkab", b"gdpr", b"inference_risk")
EMBEDDED_IMAGE = re.compile(rb"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")
"""An inlined image's base64 text. Read case-insensitively, it spells a marker by chance (for
"gdpr": (2/64)⁴ ≈ 1e-6 per position, so about 2 % of the ~20 KB images of a card), which says
nothing about what the card reports; a failed run saw exactly that."""


pytestmark = pytest.mark.slow  # one tiny release (~15 s)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    ws = release_workspace(tmp_path_factory.mktemp("gdpr-release"), seed=13)
    outcome = pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / "policy.yaml",
                               epsilon=3.0, out_dir=ws / "bundle", signing_key=ws / "k.pem", n_steps=40, seed=0,
                               ledger_path=ws / "ledger.sqlite3")
    assert outcome.passed
    return outcome


def test_the_internal_report_holds_the_three_risks(released):
    report = json.loads(released.report_path.read_text())
    audit = report["audits"]["anonymeter"]
    risks = audit["details"]["risks"]
    assert set(risks) == {"singling_out", "linkability", "inference"}
    for name, r in risks.items():
        assert 0.0 <= r["ci"][0] <= r["risk"] <= r["ci"][1] <= 1.0, name
        assert audit["metrics"][f"{name}_risk"] == r["risk"]
    assert risks["inference"]["settings"]["secret"] == "outcome"
    folder = released.report_path.parent
    html = (folder / "internal_report.html").read_text()
    assert 'id="gdpr-risks"' in html and html.count('class="gdpr-risk"') == 3
    assert "internal only, never a gate clause" in html and "NOT differentially private" in html
    md = (folder / "internal_report.md").read_text()
    assert "## GDPR anonymisation risks (anonymeter) — internal only, never a gate clause" in md
    assert md.count("95 % CI") >= 3
    assert not [c for c in report["gate"] if "anonymeter" in c["clause"] or "risk" in c["clause"]]


def test_the_bundle_holds_nothing_of_it(released):
    report = json.loads(released.report_path.read_text())
    figures = [repr(v) for v in report["audits"]["anonymeter"]["metrics"].values() if v not in (0.0, 1.0)]
    files = [p for p in released.bundle_dir.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files)
    assert not any("anonymeter" in p.name.lower() or "internal" in p.name.lower() for p in files)
    for path in files:
        data = EMBEDDED_IMAGE.sub(b"", path.read_bytes())
        for marker in MARKERS:
            assert marker not in data.lower(), (path.name, marker)
        if path.suffix in (".json", ".md", ".html"):
            text = data.decode()
            assert not [f for f in figures if f in text], path.name
