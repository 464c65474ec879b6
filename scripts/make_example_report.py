"""Regenerate ``reports/examples/``: the demo release's internal report and public release card.

Runs the demo release (the bundled Breast Cancer Wisconsin table, public data; the
default policy plus public plausibility rules of ``policies/consortium-strict.yaml`` so
that their section shows, see :func:`example_policy`) from the repository's root in the
git-ignored working folder ``reports/.example-run`` (:data:`WORK`, removed before and after; every
path is given relative to the root, so the committed report names no machine's folders), then copies
``internal_report.html``, ``internal_report.json``, ``RELEASE_CARD.html`` and
``RELEASE_CARD.md`` into ``reports/examples/``, with a screenshot of the report's top
(``internal_report.png``, when Debian's ``chromium`` is installed). The table is public, so its internal
report may be committed as an example; a real table's internal report must stay with
its steward. Fresh DP noise every run: figures change from run to run.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/make_example_report.py   # about 1.5 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "synthrelease" / "data"
OUT = REPO / "reports" / "examples"
WORK = Path("reports") / ".example-run"
"""The run's working folder, relative to the repository's root (the report records the paths as given)."""


@contextlib.contextmanager
def report_wiring() -> Iterator[dict[str, Any]]:
    """Collect ``report["plots"]`` and the card's inputs around ``pipeline.release`` where it does not yet.

    A stop-gap until the pipeline calls :func:`collect_plot_data` and writes
    ``RELEASE_CARD.html`` itself; a no-op for what it already does. Yields a dict that
    receives ``card_args`` (the arguments of ``release_card``).
    """
    from synthrelease.pipeline import release as pipeline
    from synthrelease.report import internal_report
    from synthrelease.report.plot_data import collect_plot_data

    captured: dict[str, Any] = {}
    run_audits, write_report, release_card = (pipeline.run_audits, internal_report.write_internal_report,
                                              pipeline.release_card)

    def audits_and_plots(train: Any, holdout: Any, synthetic: Any, metadata: Any, policy: Any, *, target: str,
                         seed: int, **kwargs: Any) -> Any:
        audits = run_audits(train, holdout, synthetic, metadata, policy, target=target, seed=seed, **kwargs)
        captured["plots"] = collect_plot_data(train, holdout, synthetic, metadata, audits, seed=seed, target=target)
        return audits

    def write_with_plots(report_dir: Any, report: dict[str, Any], decision: Any) -> Path:
        if "plots" in captured and "plots" not in report:
            report = {**report, "plots": captured["plots"]}
        return write_report(report_dir, report, decision)

    def card(*args: Any) -> str:
        captured["card_args"] = args
        return release_card(*args)

    pipeline.run_audits, internal_report.write_internal_report, pipeline.release_card = (
        audits_and_plots, write_with_plots, card)
    try:
        yield captured
    finally:
        pipeline.run_audits, internal_report.write_internal_report, pipeline.release_card = (
            run_audits, write_report, release_card)


def example_policy(path: Path) -> Path:
    """The default policy plus consortium-strict's single-column plausibility rules.

    Its two ``less_than`` rules (a mean never above the "worst" value) are left out: the
    demo's DP-GAN breaks them in about a third of its rows, so with them the example
    would be a rejection with no release card.
    """
    doc = yaml.safe_load((DATA / "policies" / "default.yaml").read_text())
    rules = yaml.safe_load((REPO / "policies" / "consortium-strict.yaml").read_text())["plausibility"]["rules"]
    doc.update(name="default-with-rules", plausibility={"rules": [r for r in rules if r["kind"] != "less_than"]})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_demo(work: Path, *, epsilon: float = 3.0, seed: int = 0, data_dir: Path = DATA) -> tuple[Any, dict[str, Any]]:
    """The demo release in ``work``; returns the outcome (or the refusal) and what the wiring captured."""
    from synthrelease.bundle.signing import generate_keypair
    from synthrelease.errors import GateRefused
    from synthrelease.pipeline import release as pipeline

    key, _ = generate_keypair(work / "keys" / "signing_key.pem", work / "keys" / "signing_key.pub.pem")
    with report_wiring() as captured:
        try:
            outcome: Any = pipeline.release(
                data_dir / "breast_cancer.csv", metadata=data_dir / "breast_cancer.metadata.yaml",
                policy=example_policy(work / "policy.yaml"), epsilon=epsilon, out_dir=work / "bundle",
                signing_key=key, report_dir=work / "internal-report", seed=seed, ledger_path=work / "ledger.sqlite3")
        except GateRefused as e:
            outcome = e
    return outcome, captured


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic")


def screenshot(page: Path, png: Path, *, height: int = 1500) -> bool:
    """The top of ``page`` as seen in headless Chromium (for the README); False when Chromium is absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}",
                              f"--screenshot={png}", page.resolve().as_uri()], capture_output=True, timeout=180)
    return run.returncode == 0 and png.is_file()


@contextlib.contextmanager
def _fresh(folder: Path) -> Iterator[Path]:
    """``folder`` created empty (a crashed run's leftovers removed first) and removed after."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the example files go")
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from synthrelease.report.card import render_card_html

    with contextlib.chdir(REPO), _fresh(WORK) as work:  # relative paths: the report shows no machine's folders
        outcome, captured = run_demo(work, epsilon=args.epsilon, seed=args.seed,
                                     data_dir=DATA.relative_to(REPO))
        args.out.mkdir(parents=True, exist_ok=True)
        report = work / "internal-report"
        for name in ("internal_report.html", "internal_report.json"):
            shutil.copyfile(report / name, args.out / name)
        bundle = work / "bundle"
        if (bundle / "RELEASE_CARD.md").is_file():
            shutil.copyfile(bundle / "RELEASE_CARD.md", args.out / "RELEASE_CARD.md")
            card = bundle / "RELEASE_CARD.html"
            html = card.read_text() if card.is_file() else render_card_html(*captured["card_args"])
            (args.out / "RELEASE_CARD.html").write_text(html)
    shot = screenshot(args.out / "internal_report.html", args.out / "internal_report.png")
    verdict = "released" if not isinstance(outcome, Exception) else f"rejected ({outcome})"
    sys.stdout.write(f"demo {verdict}; example report written to {args.out}"
                     f"{'' if shot else ' (no screenshot: chromium not found)'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
