"""The internal report's view model: the report JSON → what the HTML template shows. INTERNAL.

Everything here is drawn from an internal report (``internal_report.json``) or an
``audit-privacy`` result file alone, so ``synthrelease report`` re-renders without
recomputing anything on data. Those files hold exact figures and plot data computed on
private rows: the pages built from them are INTERNAL and never leave the steward.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from synthrelease.errors import InputFileError
from synthrelease.report import plots
from synthrelease.report.explain import explain_clause, explain_figure, explained_metrics

COLUMNS_PER_IMAGE = 12
AUDIT_RUN_KEYS = ("empirical_privacy", "empirical_privacy_many_run")


class NotAReportError(InputFileError):
    """The JSON is neither an internal release report nor an audit-privacy result (exit 2)."""


def report_kind(doc: Any, *, source: str) -> str:
    """``"release"`` or ``"audit"`` for a parsed JSON document, whose fields the page reads are checked
    against :func:`_release_schema_problem` / :func:`_audit_schema_problem`.

    Raises:
        NotAReportError: one line naming ``source`` (and the field of the wrong type).
    """
    if isinstance(doc, dict) and isinstance(doc.get("dataset"), str) and isinstance(doc.get("privacy"), dict) \
            and isinstance(doc.get("audits"), dict):
        problem = _release_schema_problem(doc)
        if problem:
            raise NotAReportError(f"{source}: not a valid internal report: {problem}")
        return "release"
    if isinstance(doc, dict) and doc and all(
            isinstance(v, dict) and isinstance(v.get("metrics"), dict) for v in doc.values()) \
            and any(k in AUDIT_RUN_KEYS for k in doc):
        return "audit"
    raise NotAReportError(f"{source}: not a synthrelease internal report (expected the internal_report.json of a "
                          "release or the JSON written by `synthrelease audit-privacy`)")


_NUMBER = (int, float)


def _kinds(value: Any, kind: type | tuple[type, ...], optional: bool = True) -> bool:
    """``value`` is of ``kind`` (a bool is not a number), or None when ``optional``."""
    if value is None:
        return optional
    if kind is bool:
        return isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


def _list_of_dicts(doc: Mapping[str, Any], field: str, keys: dict[str, type | tuple[type, ...]],
                   required: tuple[str, ...] = ()) -> str | None:
    """Why ``doc[field]`` is not a list of objects whose ``keys`` have those types and which hold every
    ``required`` key (None if it is)."""
    value = doc.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        return f"field '{field}' must be a list, got {type(value).__name__}"
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            return f"field '{field}[{i}]' must be an object, got {type(item).__name__}"
        for key in required:
            if key not in item:
                return f"field '{field}[{i}]' lacks '{key}'"
        for key, kind in keys.items():
            if key in item and not _kinds(item[key], kind):
                return f"field '{field}[{i}].{key}' has the wrong type ({type(item[key]).__name__})"
    return None


def _release_schema_problem(doc: Mapping[str, Any]) -> str | None:
    """The first field of an internal release report with a type the page cannot read, or None.

    A schema of what :func:`release_context` reads: objects where objects are read, lists where
    lists are, numbers and strings where they are shown (extra fields are allowed)."""
    for field in ("training", "dp_gate", "plots", "rows", "ledger", "advice", "inputs", "seconds"):
        if not _kinds(doc.get(field), dict):
            return f"field '{field}' must be an object, got {type(doc.get(field)).__name__}"
    problem = _list_of_dicts(doc, "gate", {"clause": str, "passed": bool, "reason": str, "comparator": str},
                             required=("clause",))
    problem = problem or _list_of_dicts(doc["privacy"], "mechanisms", {"label": str, "noise_multiplier": _NUMBER,
                                                                      "sample_rate": _NUMBER, "steps": _NUMBER},
                                        required=("label", "noise_multiplier", "sample_rate", "steps"))
    if problem:
        return problem.replace("field '", "field 'privacy.", 1) if "mechanisms" in problem else problem
    for key in ("epsilon", "delta"):
        if not _kinds(doc["privacy"].get(key), _NUMBER):
            return f"field 'privacy.{key}' must be a number"
    for name, audit in doc["audits"].items():
        if not isinstance(audit, dict):
            return f"field 'audits.{name}' must be an object, got {type(audit).__name__}"
        for key, kind in (("metrics", dict), ("details", dict), ("runtime_s", _NUMBER)):
            if not _kinds(audit.get(key), kind):
                return f"field 'audits.{name}.{key}' has the wrong type ({type(audit.get(key)).__name__})"
    training = doc.get("training") or {}
    problem = _list_of_dicts(training, "history", {"step": _NUMBER, "epsilon": _NUMBER})
    if problem:
        return problem.replace("field '", "field 'training.", 1)
    for name, fig in (doc.get("dp_gate") or {}).items():
        if not isinstance(fig, dict):
            return f"field 'dp_gate.{name}' must be an object, got {type(fig).__name__}"
    plots = doc.get("plots") or {}
    for key, kind in (("columns", list), ("column_scores", list), ("association", dict), ("embedding", dict),
                      ("image_grids", list), ("n_columns", _NUMBER), ("sequence", dict)):
        if not _kinds(plots.get(key), kind):
            return f"field 'plots.{key}' has the wrong type ({type(plots.get(key)).__name__})"
    return None


def _figure(png: bytes, alt: str, caption: str) -> dict[str, str]:
    return {"src": plots.data_uri(png), "alt": alt, "caption": caption}


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


# --------------------------------------------------------------------------- verdict and clauses


def _name(path: Any) -> str:
    """The last part of a recorded path: what the verdict box shows of a folder or file (never a machine's
    absolute path: no user name or temporary folder on a page that may be passed around)."""
    return re.split(r"[/\\]", str(path).rstrip("/\\"))[-1] or str(path)  # POSIX or Windows separators


def verdict(report: Mapping[str, Any]) -> dict[str, Any]:
    """RELEASED / REJECTED / REFUSED / STOPPED with one sentence, the failed clauses (with the report's
    ``advice`` for each, when present) and the rejected synthetic sample's file name (``rejected_sample``,
    in the report's folder). Paths appear by their last part only (:func:`_name`); the JSON keeps them whole."""
    clauses = report.get("gate") or []
    failed = [c for c in clauses if not c.get("passed")]
    note = str((report.get("privacy") or {}).get("note", ""))
    if report.get("stopped"):
        word, ok = "STOPPED", False
        sentence = f"The run stopped after training started ({report['stopped']}); its reserved ε counts as spent."
    elif report.get("bundle"):
        word, ok = "RELEASED", True
        sentence = f"Every clause passed; the signed bundle is the release's output folder, {_name(report['bundle'])}."
    elif "refused before training" in note:
        word, ok = "REFUSED", False
        sentence = "The policy's privacy clauses failed before training: no private row was read for training, " \
                   "nothing was spent."
    elif "refused on the DP part sizes" in note:
        word, ok = "REFUSED", False
        sentence = "The row-count clauses failed on the DP part sizes before training: only the count release's ε " \
                   "was spent."
    else:
        word, ok = "REJECTED", False
        sentence = f"{len(failed)} clause(s) failed; no shareable data was written."
    advice = report.get("advice") if isinstance(report.get("advice"), dict) else {}
    sample = report.get("rejected_sample")
    return {"word": word, "ok": ok, "sentence": sentence, "rejected_sample": _name(sample) if sample else None,
            "failed": [{"clause": c.get("clause"), "reason": c.get("reason"), "advice": advice.get(c.get("clause"))}
                       for c in failed]}


def _clause_source(clause: str) -> str:
    if clause.split(".")[0] in ("fidelity", "utility", "membership"):
        return "DP figure (noisy)"
    if clause.startswith("plausibility.") or clause == "privacy.empirical_audit":
        return "synthetic rows only"
    return "accountant / public count"


def clause_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per gate clause: threshold, measured (noisy for DP figures), noise std, pass/fail, meaning."""
    from synthrelease.gate.dp_gate import CLAUSE_FIGURES

    gate = report.get("dp_gate") or {}
    rows = []
    for c in report.get("gate") or []:
        name = str(c.get("clause"))
        fig = gate.get(CLAUSE_FIGURES.get(name, ""), {})
        ex = explain_clause(name)
        rows.append({"clause": name, "comparator": c.get("comparator"), "threshold": c.get("threshold"),
                     "measured": c.get("measured"), "noise_std": fig.get("noise_std"), "passed": bool(c.get("passed")),
                     "reason": c.get("reason"), "sentence": ex.sentence, "direction": ex.direction_text,
                     "source": _clause_source(name)})
    return rows


# --------------------------------------------------------------------------- privacy


def budget_split(privacy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each accounted mechanism with its ε if run alone and, for RDP, its share of the Rényi budget.

    The share is the mechanism's Rényi divergence at the order that sets the release's ε,
    over the total at that order (RDP composes by addition). Computed from the JSON's
    mechanism entries with the project's accountant (no data).
    """
    mechs = [m for m in privacy.get("mechanisms") or [] if isinstance(m, dict)]
    delta, accountant = _num(privacy.get("delta")), str(privacy.get("accountant", "rdp"))
    rows = [dict(m) for m in mechs]
    if not rows or not delta or accountant not in ("rdp", "prv"):
        return rows
    from synthrelease.privacy.accounting import MechanismEntry, epsilon_for

    entries = [MechanismEntry(str(m["label"]), float(m["noise_multiplier"]), float(m["sample_rate"]),
                              int(m["steps"])) for m in mechs]
    for row, e in zip(rows, entries, strict=True):
        row["epsilon_alone"] = epsilon_for([e], delta=delta, accountant=accountant)
    if accountant == "rdp":
        for row, share in zip(rows, _rdp_shares(entries, delta), strict=True):
            row["share"] = share
    return rows


def _rdp_shares(entries: list[Any], delta: float) -> list[float | None]:
    import numpy as np
    from opacus.accountants.analysis import rdp as rdp_analysis

    from synthrelease.privacy.accounting import RDP_ORDERS

    curves = [e.steps * np.asarray(rdp_analysis.compute_rdp(q=e.sample_rate, noise_multiplier=e.noise_multiplier,
                                                              steps=1, orders=RDP_ORDERS)) for e in entries]
    total = np.sum(curves, axis=0)
    _, order = rdp_analysis.get_privacy_spent(orders=RDP_ORDERS, rdp=total, delta=delta)
    i = RDP_ORDERS.index(order)
    return [float(c[i] / total[i]) if total[i] > 0 else None for c in curves]


def privacy_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """ε (rounded up), δ, accountant, privacy unit, what is covered, mechanisms with their shares, ledger."""
    from synthrelease.privacy.claims import GUARANTEE_COVERS, ceil_decimals
    from synthrelease.privacy.parameters import PRIVACY_UNIT

    p = report.get("privacy") or {}
    eps = _num(p.get("epsilon"))
    return {"epsilon": None if eps is None else ceil_decimals(eps, 4), "delta": p.get("delta"),
            "accountant": p.get("accountant"), "note": p.get("note"), "unit": PRIVACY_UNIT,
            "covers": GUARANTEE_COVERS, "gate_share": _num(p.get("gate_budget_share")),
            "threshold_delta": p.get("threshold_delta"), "mechanisms": budget_split(p),
            "ledger": report.get("ledger")}


def dp_gate_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The gate's figures: noisy value and noise std beside the EXACT value (internal)."""
    rows = []
    for name, f in (report.get("dp_gate") or {}).items():
        value, exact, std = _num(f.get("value")), _num(f.get("exact")), _num(f.get("noise_std"))
        ex = explain_figure(name, f.get("meaning"))
        rows.append({"name": name, "value": value, "noise_std": std, "sensitivity": f.get("l2_sensitivity"),
                     "exact": exact, "z": None if None in (value, exact) or not std else (value - exact) / std,
                     "computable": f.get("computable", True), "sentence": ex.sentence,
                     "direction": ex.direction_text})
    return rows


def dp_gate_figure(report: Mapping[str, Any]) -> dict[str, str] | None:
    """Bar chart of the noisy figures with ±2 noise std against the policy limits (what the card shows)."""
    from synthrelease.gate.dp_gate import CLAUSE_FIGURES

    gate = report.get("dp_gate") or {}
    if not gate:
        return None
    by_figure = {CLAUSE_FIGURES.get(str(c.get("clause")), ""): c for c in report.get("gate") or []}
    names = list(gate)
    png = plots.limit_bars(names, [gate[n].get("value") for n in names],
                           [_num(by_figure.get(n, {}).get("threshold")) for n in names],
                           [bool(by_figure.get(n, {}).get("passed", True)) for n in names],
                           errors=[float(gate[n].get("noise_std") or 0.0) for n in names],
                           xlabel="noisy value (DP); error bar ±2 noise std; black tick = policy limit")
    return _figure(png, "DP gate figures with error bars",
                   "The noisy figures the gate compared (the only audit figures that may leave the organisation), "
                   "with ±2 noise standard deviations; green passed, red failed.")


# --------------------------------------------------------------------------- audits


def _audit(report: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    a = (report.get("audits") or {}).get(name)
    return a if isinstance(a, dict) else None


def _metrics_table(audit_name: str, audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    return explained_metrics(audit_name, {k: v for k, v in (audit.get("metrics") or {}).items()
                                          if not isinstance(v, dict | list)})


def distributions_view(plot_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-column plots (worst first), the all-columns summary, association matrices, the embedding."""
    if not plot_data:
        return {"available": False}
    cols = list(plot_data.get("columns") or [])
    scores = list(plot_data.get("column_scores") or [])
    figures = []
    if scores:
        figures.append(_figure(plots.column_score_summary(scores, detailed=len(cols)), "column similarity summary",
                               f"Similarity of each column's real and synthetic distribution, worst first "
                               f"({plot_data.get('n_columns', len(scores))} columns; highlighted: the {len(cols)} "
                               "drawn below). 1 = identical."))
    for start in range(0, len(cols), COLUMNS_PER_IMAGE):
        chunk = cols[start:start + COLUMNS_PER_IMAGE]
        figures.append(_figure(plots.column_distributions(chunk), "real vs synthetic column distributions",
                               f"Columns {start + 1}–{start + len(chunk)} by similarity, worst first: share of real "
                               "training rows (blue) and synthetic rows (orange) per bin or category."))
    assoc = plot_data.get("association") or {}
    if assoc.get("columns"):
        figures.append(_figure(plots.association_difference(assoc), "association difference heatmap",
                               "Synthetic minus real association for each column pair (" + assoc["measure"] + "). "
                               "White = kept; dark cells are relationships the generator lost or invented."))
        figures.append(_figure(plots.association_matrices(assoc), "real and synthetic association matrices",
                               "The two matrices behind the difference above."))
    emb = plot_data.get("embedding") or {}
    if emb.get("available"):
        var = emb.get("explained_variance") or []
        figures.append(_figure(plots.embedding_scatter(emb), "PCA embedding of real and synthetic rows",
                               "Real training rows and synthetic rows in the same 2-D PCA plane (fitted on the real "
                               f"rows; {sum(var):.0%} of the variance), coloured by {emb.get('target') or 'class'}. "
                               "The two clouds should look alike."))
    for grid in plot_data.get("image_grids") or []:  # image releases: tiles side by side (INTERNAL)
        figures.append({"src": grid["src"], "alt": grid["alt"], "caption": grid["caption"]})
    figures += sequence_figures(plot_data.get("sequence"))
    return {"available": True, "figures": figures, "notice": plot_data.get("notice")}


def sequence_figures(data: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Sequence releases: per group (all, then each label) the letter shares per position and the
    2-mers and lengths, real vs synthetic. INTERNAL: the real side is the PRIVATE training sequences."""
    if not data:
        return []
    alphabet = str(data.get("alphabet") or "")
    shown = data.get("positions_shown")
    figures = []
    for group in data.get("groups") or []:
        who = "all sequences" if group.get("label") is None else f"sequences labelled {group['label']}"
        figures.append(_figure(plots.position_letter_heatmaps(group, alphabet), f"letter share per position, {who}",
                               f"Share of each letter at each position (first {shown} of "
                               f"{data.get('max_length')}), {who}: real training sequences (top; PRIVATE), "
                               "synthetic (middle) and their difference (bottom; dark cells are letters the "
                               "generator over- or under-uses there)."))
        figures.append(_figure(plots.kmer_and_length_bars(group), f"2-mers and lengths, {who}",
                               f"The most frequent 2-mers and the length distribution, {who}: real training "
                               "sequences (blue; PRIVATE) vs synthetic (orange)."))
    return figures


def fidelity_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fidelity metrics with explanations (sdmetrics QualityReport, PRDC)."""
    audit = _audit(report, "fidelity")
    if audit is None:
        return None
    d = audit.get("details") or {}
    return {"metrics": _metrics_table("fidelity", audit), "runtime": audit.get("runtime_s"),
            "notes": [n for n in (d.get("note"), d.get("pair_note")) if n]}


def membership_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Attack metrics, ROC curves (log-log, the policy's TPR limits marked), DCR histograms."""
    audit = _audit(report, "membership")
    if audit is None:
        return None
    d = audit.get("details") or {}
    p = d.get("plots") or {}
    figures = []
    if p.get("roc"):
        curves = {k: {**v, "auc": (d.get("attacks") or {}).get(k, {}).get("auc")} for k, v in p["roc"].items()}
        limits = _tpr_limits(report)
        figures.append(_figure(plots.roc_curves(curves, limits), "membership attack ROC curves",
                               "How many training rows each attack finds (TPR) for each rate of false accusations of "
                               "holdout rows (FPR), on log-log axes; the dotted diagonal is guessing. "
                               + ("Red: the policy's TPR limits (applied to the noisy mean TPR over FPR 0..α)."
                                  if limits else "The policy sets no TPR limit; grey lines mark FPR 1 % and 0.1 %.")))
    if p.get("dcr_histogram"):
        figures.append(_figure(plots.dcr_histograms(p["dcr_histogram"]), "distance to closest record histograms",
                               "Distance from each training row and each holdout row to its closest synthetic row. "
                               "If training rows sit clearly closer than holdout rows, the generator memorised."))
    return {"metrics": _metrics_table("membership", audit), "figures": figures, "caveat": d.get("caveat"),
            "runtime": audit.get("runtime_s")}


def _tpr_limits(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    fprs = {"membership.max_tpr_at_fpr_1pct": 0.01, "membership.max_tpr_at_fpr_0_1pct": 0.001}
    return [{"fpr": fprs[c["clause"]], "tpr": float(c["threshold"]), "label": f"{c['clause']} ≤ {c['threshold']:g}"}
            for c in report.get("gate") or [] if c.get("clause") in fprs and _num(c.get("threshold"))]


def utility_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """TSTR vs TRTR bars and the utility metrics."""
    audit = _audit(report, "utility")
    if audit is None:
        return None
    m = audit.get("metrics") or {}
    if (audit.get("details") or {}).get("task") == "regression":
        groups, keys = ["R² (boosting)", "R² (ridge)"], [("tstr_r2", "trtr_r2"), ("tstr_r2_linear", "trtr_r2_linear")]
    else:
        groups = ["AUC (boosting)", "AUC (linear)", "accuracy (boosting)"]
        keys = [("tstr_auc", "trtr_auc"), ("tstr_auc_linear", "trtr_auc_linear"), ("tstr_accuracy", "trtr_accuracy")]
    png = plots.utility_bars(groups, [_num(m.get(a)) for a, _ in keys], [_num(m.get(b)) for _, b in keys])
    fig = _figure(png, "TSTR vs TRTR", "Models trained on synthetic rows (TSTR) and on real training rows (TRTR), "
                  "both tested on the real holdout. TSTR close to TRTR = the synthetic data is as useful as the real.")
    return {"metrics": _metrics_table("utility", audit), "figures": [fig], "runtime": audit.get("runtime_s")}


def plausibility_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Each public rule's violation share on the synthetic rows against its limit."""
    audit = _audit(report, "plausibility")
    if audit is None:
        return None
    rules = (audit.get("details") or {}).get("rules") or []
    figures = []
    if rules:
        png = plots.limit_bars([r["id"] for r in rules], [r.get("violation_share") for r in rules],
                               [r.get("max_violation_share") for r in rules], [bool(r.get("passed")) for r in rules],
                               xlabel="share of synthetic rows breaking the rule; black tick = allowed share")
        figures.append(_figure(png, "plausibility rules", "Each public domain rule checked on the synthetic rows "
                               "(no private row read): green within its allowed share, red over it."))
    return {"rules": rules, "figures": figures, "metrics": _metrics_table("plausibility", audit)}


def empirical_view(name: str, audit: Mapping[str, Any]) -> dict[str, Any]:
    """The empirical ε audit: lower bound vs claim, the sweep, the many-run score histograms."""
    m, d = audit.get("metrics") or {}, audit.get("details") or {}
    lb, claimed = _num(m.get("epsilon_lower_bound")), _num(m.get("epsilon_claimed"))
    figures = []
    if d.get("sweep"):
        figures.append(_figure(plots.empirical_sweep(d["sweep"], claimed), "empirical epsilon sweep",
                               "ε lower bound proved by guessing the top and bottom scored canaries, for each number "
                               "of guesses (Bonferroni-corrected); above the red line would contradict the claim."))
    if d.get("scores_in") and d.get("scores_out"):
        figures.append(_figure(plots.score_histograms(d["scores_in"], d["scores_out"]), "many-run audit scores",
                               "Canary scores over the audit's training runs, canary included vs excluded."))
    fault = lb is not None and claimed is not None and lb > claimed
    return {"name": name, "metrics": _metrics_table("empirical_privacy", audit), "figures": figures,
            "fault": fault, "lower_bound": lb, "claimed": claimed, "method": d.get("method"),
            "interpretation": d.get("interpretation"), "runtime": audit.get("runtime_s")}


GDPR_RISK_TITLES = {"singling_out": "Singling out", "singling_out_multivariate": "Singling out (3-column predicates)",
                    "linkability": "Linkability", "inference": "Inference"}
_NO_BETTER = "Attack is as good or worse as baseline"  # anonymeter's warning; the sentence says it already
GDPR_NOTE = ("These figures read private rows (the training rows and the holdout), are NOT differentially private, "
             "stay in this internal report (never in a bundle) and are never a gate clause.")


def gdpr_risks_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The anonymeter audit (Article 29 WP: singling out, linkability, inference): each risk with its
    confidence interval and the attack, control and baseline success rates; or why it did not run.
    INTERNAL (reads train and holdout rows, not DP); no policy clause reads it."""
    audit = _audit(report, "anonymeter")
    if audit is None:
        return None
    d = audit.get("details") or {}
    risks = d.get("risks") if isinstance(d.get("risks"), dict) else {}
    rows = []
    for name in sorted(risks, key=lambda k: list(GDPR_RISK_TITLES).index(k) if k in GDPR_RISK_TITLES else 99):
        r = risks[name]
        if not isinstance(r, dict):
            continue
        ci = r.get("ci") if isinstance(r.get("ci"), list) and len(r["ci"]) == 2 else [None, None]
        settings = r.get("settings") if isinstance(r.get("settings"), dict) else {}
        rows.append({"title": GDPR_RISK_TITLES.get(name, name), "risk": _num(r.get("risk")),
                     "ci_low": _num(ci[0]), "ci_high": _num(ci[1]), "attack_rate": _num(r.get("attack_rate")),
                     "control_rate": _num(r.get("control_rate")), "baseline_rate": _num(r.get("baseline_rate")),
                     "n_attacks": r.get("n_attacks"), "sentence": r.get("sentence"),
                     "not_run": r.get("skipped") or r.get("error"), "settings": _settings_text(settings),
                     "warnings": [str(w) for w in r.get("warnings") or [] if not str(w).startswith(_NO_BETTER)]})
    return {"note": GDPR_NOTE, "method": d.get("method"), "on": d.get("on"), "rows": rows,
            "not_run": d.get("skipped") or d.get("error"), "runtime": audit.get("runtime_s")}


def _settings_text(settings: Mapping[str, Any]) -> str:
    """The settings of one anonymeter attack a reader needs: the secret, the two halves, the mode."""
    if settings.get("secret") is not None:
        return f"secret: {settings['secret']}; known: the other {len(settings.get('aux_columns') or [])} column(s)"
    halves = settings.get("aux_columns")
    if isinstance(halves, list) and len(halves) == 2:
        return (f"halves: {', '.join(map(str, halves[0]))} | {', '.join(map(str, halves[1]))}; "
                f"{settings.get('n_neighbors')} nearest synthetic row(s)")
    if settings.get("mode"):
        return f"{settings['mode']} predicates; {settings.get('rows_each')} training and holdout rows each"
    return ""


def shadow_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The shadow-model attack's metrics (internal only, never gates)."""
    audit = _audit(report, "shadow")
    return None if audit is None else {"metrics": _metrics_table("shadow", audit),
                                       "note": (audit.get("details") or {}).get("note")}


def training_view(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training history plot and the main settings."""
    t = report.get("training")
    if not isinstance(t, dict):
        return None
    history = [h for h in t.get("history") or [] if isinstance(h, dict)]
    figures = []
    if history:
        figures.append(_figure(plots.training_history(history), "training history",
                               "Left: losses (a discriminator loss near log 2 ≈ 0.69 means it cannot tell real from "
                               "fake). Middle: ε spent as DP-SGD proceeds (the gate's share is included from the "
                               "start). Right: share of declared categories generated and of the smallest class; "
                               "a drop signals mode collapse."))
    keys = ("n_steps", "batch_size", "max_grad_norm", "target_epsilon", "target_delta", "accountant",
            "marginal_epsilon_share", "seconds")
    return {"figures": figures, "settings": [(k, t.get(k)) for k in keys if k in t]}


def run_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs, row counts, timings, tool version."""
    return {"inputs": report.get("inputs") or {}, "rows": report.get("rows") or {},
            "seconds": report.get("seconds") or {}, "tool_version": report.get("tool_version"),
            "created": report.get("created_utc"), "target": report.get("target"),
            "public_seed": report.get("public_seed"), "randomness": report.get("randomness")}


def release_context(report: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the internal release report template shows (INTERNAL)."""
    audits = report.get("audits") or {}
    return {
        "kind": "release", "dataset": report.get("dataset"), "policy_name": report.get("policy_name"),
        "verdict": verdict(report), "clauses": clause_rows(report), "privacy": privacy_view(report),
        "dp_gate": dp_gate_rows(report), "dp_gate_figure": dp_gate_figure(report),
        "distributions": distributions_view(report.get("plots")), "fidelity": fidelity_view(report),
        "membership": membership_view(report), "utility": utility_view(report),
        "plausibility": plausibility_view(report),
        "empirical": [empirical_view(k, audits[k]) for k in AUDIT_RUN_KEYS if isinstance(audits.get(k), dict)],
        "shadow": shadow_view(report), "gdpr_risks": gdpr_risks_view(report), "training": training_view(report),
        "warnings": list(report.get("warnings") or []), "stopped": report.get("stopped"), "run": run_view(report),
    }


def audit_context(results: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the audit-run report template shows (``synthrelease audit-privacy`` output; INTERNAL)."""
    views = [empirical_view(k, v) for k, v in results.items() if isinstance(v, dict)]
    fault = any(v["fault"] for v in views)
    return {"kind": "audit", "empirical": views, "verdict": {
        "word": "LIKELY IMPLEMENTATION FAULT" if fault else "NO EVIDENCE AGAINST THE CLAIM", "ok": not fault,
        "sentence": ("An empirical lower bound exceeds the claimed ε: the implementation likely leaks more than "
                     "it claims." if fault else "Every empirical lower bound is at or below the claimed ε (a pass "
                     "is weak evidence; a failure would be strong evidence)."), "failed": [], "rejected_sample": None}}
