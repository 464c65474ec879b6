"""The public release card, as Markdown and as self-contained HTML, from ONE context.

PUBLIC: the card goes into the signed bundle. It shows only what the release's (ε, δ)
guarantee covers — the verdict, ε and δ, the policy, the DP gate's noisy figures with
their noise std — and figures computed on the synthetic rows alone. Each DP figure is
read through :func:`_public_figure`, which keeps ``value``, ``noise_std`` and
``l2_sensitivity`` only, so an exact (internal) value passed by mistake never reaches
the card. Its one plot is a bar chart of those noisy figures; no plot of real rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from synthrelease.metadata.schema import Metadata
from synthrelease.policy.schema import Policy
from synthrelease.report import plots
from synthrelease.report.explain import explain_figure

PUBLIC_BANNER = ("PUBLIC RELEASE CARD — shows only differentially private figures (with their noise) and "
                 "figures of the synthetic rows; no exact value computed on private rows")


def _public_figure(fig: Mapping[str, Any]) -> dict[str, Any]:
    """The only keys of a DP figure the card may read."""
    return {k: fig.get(k) for k in ("value", "noise_std", "l2_sensitivity")}


def _policy_limits(policy: Policy) -> dict[str, tuple[str, float]]:
    """DP figure → (comparator, limit) of the policy clause that compares it (public: the policy is public)."""
    from synthrelease.gate.dp_gate import CLAUSE_FIGURES

    out: dict[str, tuple[str, float]] = {}
    for clause, figure in CLAUSE_FIGURES.items():
        section, key = clause.split(".", 1)
        limit = getattr(getattr(policy, section, None), key, None)
        if isinstance(limit, int | float):
            out[figure] = (">=" if key.startswith("min_") else "<=", float(limit))
    return out


def _meets(value: float | None, comparator: str, limit: float) -> bool:
    return value is not None and (value >= limit if comparator == ">=" else value <= limit)


MARKDOWN_SPECIAL = "\\`*_[]|"
"""Characters with a meaning inside a Markdown line: emphasis, code, links and table cells (a name
never starts a line, so the line-start markers # - + ! need no escape)."""


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: HTML's ``& < >`` as entities (a renderer would run raw HTML) and
    Markdown's punctuation backslash-escaped (no emphasis, links, code or table cells from a name)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"\\{ch}" if ch in MARKDOWN_SPECIAL else ch for ch in text)


def _contents(metadata: Metadata, n_rows: int, escape: Callable[[str], str] = str) -> str:
    """One sentence: what the bundle's rows are (public: from the metadata and the DP-derived row
    count); names pass through ``escape`` (:func:`markdown_text` for the Markdown card)."""
    column = metadata.sequence_column
    names = [escape(c) for c in metadata.model_columns[:8]]
    if column is None:
        return (f"This bundle holds {n_rows} synthetic rows of {len(metadata.model_columns)} columns "
                f"({', '.join(names)}{', …' if len(metadata.model_columns) > 8 else ''}).")
    spec = metadata.columns[column]
    label = f", each with its {escape(metadata.target)} label" if metadata.target else ""
    return (f"This bundle holds {n_rows} synthetic {spec.alphabet} sequences of {spec.min_length}–{spec.max_length} "
            f"letters{label} (synthetic.csv, synthetic.parquet and synthetic.fasta); the audit figures were "
            "computed on a feature view of each sequence (length, composition, charge, hydrophobicity, …) and "
            "exact copies on the sequences themselves.")


def card_context(metadata: Metadata, epsilon: float, delta: float, accountant: str, policy: Policy,
                 policy_sha: str, dp_figures: Mapping[str, Mapping[str, Any]],
                 synthetic_checks: Mapping[str, Mapping[str, float]], n_rows: int) -> dict[str, Any]:
    """What both card formats show (PUBLIC: DP figures and synthetic-only checks; the arguments of
    :func:`synthrelease.pipeline.release.release_card`)."""
    from synthrelease.privacy.claims import GUARANTEE_COVERS, PUBLIC_SEED_NOTE, ceil_decimals
    from synthrelease.privacy.parameters import privacy_unit_text

    eps_up = ceil_decimals(epsilon, 3)
    factor = math.exp(eps_up) if eps_up < 700 else math.inf
    limits = _policy_limits(policy)
    figures = []
    for name, raw in dp_figures.items():
        fig = _public_figure(raw)
        ex = explain_figure(name)
        comparator, limit = limits.get(name, ("", None))
        figures.append({
            "name": name, "value": fig["value"], "noise_std": fig["noise_std"], "sensitivity": fig["l2_sensitivity"],
            "value_text": "—" if fig["value"] is None else f"{fig['value']:.4f}", "std_text": f"{fig['noise_std']:.3g}",
            "comparator": comparator, "limit": limit, "sentence": ex.sentence, "direction": ex.direction_text,
            "meets": None if limit is None else _meets(fig["value"], comparator, limit)})
    return {
        "dataset": metadata.name, "n_rows": n_rows, "n_columns": len(metadata.model_columns),
        "contents": _contents(metadata, n_rows), "contents_md": _contents(metadata, n_rows, markdown_text),
        "dataset_md": markdown_text(metadata.name),
        "epsilon_text": f"{eps_up:.3f}", "delta_text": f"{delta:g}", "accountant": accountant,
        "factor_text": f"{factor:.3g}", "covers": GUARANTEE_COVERS,
        "unit": privacy_unit_text(metadata.privacy_unit_column, metadata.rows_per_person),
        "person_rows": "rows" if metadata.privacy_unit_column is not None and metadata.rows_per_person > 1 else "row",
        "count_share_text": f"{policy.privacy.count_budget_share:.0%}",
        "randomness": PUBLIC_SEED_NOTE, "policy_name": policy.name, "policy_sha": policy_sha,
        "share_text": f"{policy.privacy.audit_budget_share:.0%}", "figures": figures,
        "checks": [{"name": name, "text": ", ".join(f"{k} = {v:.4f}" for k, v in m.items())}
                   for name, m in synthetic_checks.items()],
    }


def _figures_chart(figures: list[dict[str, Any]]) -> dict[str, str] | None:
    """Bar chart of the noisy figures, ±2 noise std, policy limits (PUBLIC: DP values only)."""
    if not figures:
        return None
    png = plots.limit_bars([f["name"] for f in figures], [f["value"] for f in figures],
                           [f["limit"] for f in figures], [f["meets"] is not False for f in figures],
                           errors=[float(f["noise_std"] or 0.0) for f in figures],
                           xlabel="noisy value (DP); error bar ±2 noise std; black tick = policy limit")
    return {"src": plots.data_uri(png), "alt": "differentially private audit figures",
            "caption": "Each audit figure as released with differential privacy, with ±2 standard deviations of "
                       "its noise; the black tick is the policy's limit."}


def render_card_markdown(metadata: Metadata, epsilon: float, delta: float, accountant: str, policy: Policy,
                         policy_sha: str, dp_figures: Mapping[str, Mapping[str, Any]],
                         synthetic_checks: Mapping[str, Mapping[str, float]], n_rows: int) -> str:
    """``RELEASE_CARD.md`` (PUBLIC); identical to :func:`synthrelease.pipeline.release.release_card`."""
    from synthrelease.report.html import render

    return render("release_card.md.j2", **card_context(metadata, epsilon, delta, accountant, policy, policy_sha,
                                                       dp_figures, synthetic_checks, n_rows))


def render_card_html(metadata: Metadata, epsilon: float, delta: float, accountant: str, policy: Policy,
                     policy_sha: str, dp_figures: Mapping[str, Mapping[str, Any]],
                     synthetic_checks: Mapping[str, Mapping[str, float]], n_rows: int) -> str:
    """``RELEASE_CARD.html`` (PUBLIC): self-contained page from the same context as the Markdown card."""
    from synthrelease.report.html import render

    context = card_context(metadata, epsilon, delta, accountant, policy, policy_sha, dp_figures, synthetic_checks,
                           n_rows)
    return render("release_card.html.j2", banner=PUBLIC_BANNER, chart=_figures_chart(context["figures"]), **context)
