"""Jinja2 rendering of the reports: every page is one self-contained HTML file.

Templates live in ``synthrelease/report/templates`` (package data). Pages carry their
CSS inline and their images as ``data:`` URIs: no external URL, no script, nothing
fetched when the page is opened. ``*.html.j2`` templates are autoescaped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jinja2

from synthrelease.report.internal import audit_context, release_context, report_kind

INTERNAL_BANNER = (
    "INTERNAL — CONTAINS EXACT (NOT DIFFERENTIALLY PRIVATE) RESULTS COMPUTED ON PRIVATE DATA. "
    "Do not share outside the data steward's organisation."
)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The reports' Jinja2 environment (strict: an undefined name is an error)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synthrelease.report", "templates"),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters.update(num=format_number, pct=format_share)
    return env


def format_number(value: Any, digits: int = 4) -> str:
    """A number for a table cell: ``—`` for none, integers as such, floats to ``digits`` significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def format_share(value: Any) -> str:
    """A share as a percentage (``—`` for none)."""
    return "—" if not isinstance(value, int | float) else f"{100 * value:.1f} %"


def render(template: str, **context: Any) -> str:
    """Render one template of ``synthrelease/report/templates``."""
    return environment().get_template(template).render(**context)


def render_internal_html(doc: Mapping[str, Any], *, source: str = "internal report") -> str:
    """The INTERNAL HTML page of an internal release report or of an ``audit-privacy`` result.

    ``doc`` is the parsed JSON (the page is drawn from it alone). The page shows exact
    figures and plots of private rows: keep it with the steward.

    Raises:
        NotAReportError: ``doc`` is neither kind of report.
    """

    if report_kind(doc, source=source) == "release":
        return render("internal_report.html.j2", banner=INTERNAL_BANNER, **release_context(doc))
    return render("audit_run.html.j2", banner=INTERNAL_BANNER, **audit_context(doc))
