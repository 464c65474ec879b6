"""The reports' figures: matplotlib on an Agg canvas, each a PNG.

No pyplot and no figure registry: every function builds its own ``Figure``, draws it
and returns PNG bytes (:func:`data_uri` embeds them in a self-contained HTML page); its
style is applied with ``matplotlib.rc_context`` for that one drawing and restored after.
Every function takes plain JSON-able data (as stored in the internal report or a release
card); the same data always gives the same bytes. Which data is internal is decided by
the caller: the functions here only draw what they are given.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

REAL = "#1f77b4"
SYNTHETIC = "#ff7f0e"
HOLDOUT = "#2ca02c"
LIMIT = "#d62728"
DPI = 100
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
_STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
          "legend.fontsize": 7, "axes.spines.top": False, "axes.spines.right": False}


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` (no file, no network)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _styled(draw: Any) -> Any:
    """Run a drawing function under the reports' rc style (restored after) without layout warnings."""
    import matplotlib

    def wrapper(*args: Any, **kwargs: Any) -> bytes:
        with matplotlib.rc_context(_STYLE), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # layout notes on crowded labels: cosmetic
            return draw(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = draw.__name__, draw.__doc__
    return wrapper


def _short(text: str, n: int = 14) -> str:
    """A label from data (column, class, rule): at most ``n`` characters, ``$`` never starting mathtext."""
    text = text if len(text) <= n else text[: n - 1] + "…"
    return text.replace("$", r"\$")


def _values(xs: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if x is None else float(x) for x in xs], dtype=np.float64)


# --------------------------------------------------------------------------- fidelity


@_styled
def column_distributions(columns: Sequence[Mapping[str, Any]], *, per_row: int = 3) -> bytes:
    """Small multiples: real vs synthetic shares per bin or category, one panel per column."""
    rows = max(1, math.ceil(len(columns) / per_row))
    fig = _figure(11, 2.3 * rows)
    axes = fig.subplots(rows, per_row, squeeze=False).ravel()
    for ax, col in zip(axes, columns, strict=False):
        _column_panel(ax, col)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    axes[0].legend(loc="upper right")
    return _png(fig)


def _column_panel(ax: Axes, col: Mapping[str, Any]) -> None:
    score = col.get("score")
    ax.set_title(f"{_short(str(col['column']), 28)}" + ("" if score is None else f"  (score {score:.2f})"))
    if col["kind"] == "numerical":
        edges = np.asarray(col["edges"], dtype=np.float64)
        if col.get("temporal") in DATE_TICK_FORMATS:
            edges = _date_axis(ax, edges, str(col["temporal"]))
        ax.stairs(col["real"], edges, color=REAL, label="real", linewidth=1.4)
        ax.stairs(col["synthetic"], edges, color=SYNTHETIC, label="synthetic", linewidth=1.4)
        missing = (col.get("missing_real") or 0, col.get("missing_synthetic") or 0)
        if any(missing):
            ax.text(0.99, 0.75, f"missing: real {missing[0]:.0%}, synth. {missing[1]:.0%}", ha="right",
                    transform=ax.transAxes, fontsize=6)
    else:
        x = np.arange(len(col["categories"]))
        ax.bar(x - 0.2, col["real"], 0.4, color=REAL, label="real")
        ax.bar(x + 0.2, col["synthetic"], 0.4, color=SYNTHETIC, label="synthetic")
        ax.set_xticks(x, [_short(c, 10) for c in col["categories"]], rotation=90 if len(x) > 5 else 0)
    ax.set_ylabel("share of rows")


DATE_TICK_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M"}
"""Tick labels of a date / datetime column's histogram (ISO 8601, whatever format the column declares)."""


def _date_axis(ax: Axes, edges: np.ndarray, kind: str) -> np.ndarray:
    """Bin edges in days (``date``) or seconds (``datetime``) since 1970-01-01 (the metadata's encoding,
    :mod:`synthrelease.metadata.dates`) as matplotlib date numbers, the x axis labelled with calendar dates."""
    from matplotlib import dates as mdates

    from synthrelease.metadata.dates import UNIT_SECONDS

    seconds = np.round(edges * UNIT_SECONDS[kind]).astype(np.int64)
    numbers = mdates.date2num(np.datetime64("1970-01-01T00:00:00", "s") + seconds.astype("timedelta64[s]"))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=5))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(DATE_TICK_FORMATS[kind]))
    ax.tick_params(axis="x", labelrotation=30)
    return np.asarray(numbers, dtype=np.float64)


@_styled
def column_score_summary(scores: Sequence[Mapping[str, Any]], *, detailed: int) -> bytes:
    """Every column's similarity score, worst first (bars), or for wide tables a sorted curve and a histogram."""
    values = _values([s["score"] for s in scores])
    if len(scores) <= 40:
        fig = _figure(11, 0.6 + 0.18 * len(scores))
        ax = fig.add_subplot()
        y = np.arange(len(scores))[::-1]
        colours = [SYNTHETIC if i < detailed else REAL for i in range(len(scores))]
        ax.barh(y, values, color=colours)
        ax.set_yticks(y, [_short(str(s["column"]), 30) for s in scores])
        ax.set_xlim(0, 1)
        ax.set_xlabel("similarity of real and synthetic distributions (1 = identical)")
        return _png(fig)
    fig = _figure(11, 3)
    left, right = fig.subplots(1, 2)
    left.plot(np.arange(1, len(values) + 1), values, color=REAL)
    left.axvspan(0.5, detailed + 0.5, color=SYNTHETIC, alpha=0.2, label=f"{detailed} worst, shown below")
    left.set_xlabel("column rank (worst first)")
    left.set_ylabel("similarity score")
    left.legend()
    right.hist(values[np.isfinite(values)], bins=30, range=(0, 1), color=REAL)
    right.set_xlabel("similarity score")
    right.set_ylabel("columns")
    fig.suptitle(f"Column similarity over all {len(scores)} columns")
    return _png(fig)


def _heatmap(ax: Axes, fig: Figure, matrix: np.ndarray, labels: Sequence[str], title: str, cmap: str,
             limit: float) -> None:
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_title(title)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, [_short(str(c), 12) for c in labels], rotation=90, fontsize=6)
    ax.set_yticks(ticks, [_short(str(c), 12) for c in labels], fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8)


@_styled
def association_difference(assoc: Mapping[str, Any]) -> bytes:
    """Heatmap of synthetic − real association (the matrix a reader should scan for large cells)."""
    real, syn = np.array(assoc["real"], dtype=np.float64), np.array(assoc["synthetic"], dtype=np.float64)
    diff = syn - real
    fig = _figure(8, 7)
    _heatmap(fig.add_subplot(), fig, diff, assoc["columns"], "synthetic − real association", "PuOr", 1.0)
    return _png(fig)


@_styled
def association_matrices(assoc: Mapping[str, Any]) -> bytes:
    """The real and the synthetic association matrices side by side."""
    fig = _figure(11, 5)
    left, right = fig.subplots(1, 2)
    for ax, key in ((left, "real"), (right, "synthetic")):
        _heatmap(ax, fig, np.array(assoc[key], dtype=np.float64), assoc["columns"], key, "RdBu_r", 1.0)
    return _png(fig)


@_styled
def embedding_scatter(emb: Mapping[str, Any]) -> bytes:
    """Real and synthetic rows in the same 2-D PCA plane, coloured by class."""
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    classes = list(emb.get("classes") or [])
    for ax, key in zip(axes, ("real", "synthetic"), strict=True):
        part = emb[key]
        x, y, c = np.asarray(part["x"]), np.asarray(part["y"]), np.asarray(part["class"], dtype=int)
        for k in sorted(set(c.tolist())):
            name = classes[k] if 0 <= k < len(classes) else "other / missing"
            colour = CLASS_COLOURS[k % len(CLASS_COLOURS)] if k >= 0 else "#999999"
            ax.scatter(x[c == k], y[c == k], s=7, alpha=0.6, color=colour, label=_short(str(name), 20),
                       linewidths=0)
        ax.set_title(f"{key} rows ({len(x)})")
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    axes[1].legend(title=_short(str(emb.get("target") or "class"), 30), markerscale=2)
    return _png(fig)


# --------------------------------------------------------------------------- membership


@_styled
def roc_curves(curves: Mapping[str, Mapping[str, Any]], limits: Sequence[Mapping[str, Any]]) -> bytes:
    """Membership-attack ROC curves on log-log axes; ``limits`` (fpr, tpr, label) marked in red."""
    fig = _figure(7, 5)
    ax = fig.add_subplot()
    floor = 1.0
    for name, curve in curves.items():
        n0, n1 = max(int(curve.get("n_nonmembers", 1)), 1), max(int(curve.get("n_members", 1)), 1)
        fpr = np.maximum(np.asarray(curve["fpr"], dtype=np.float64), 0.5 / n0)
        tpr = np.maximum(np.asarray(curve["tpr"], dtype=np.float64), 0.5 / n1)
        floor = min(floor, 0.5 / n0, 0.5 / n1)
        auc = curve.get("auc")
        ax.plot(fpr, tpr, drawstyle="steps-post", label=name + ("" if auc is None else f" (AUC {auc:.3f})"))
    ax.plot([floor, 1], [floor, 1], color="#888888", linestyle=":", label="no signal (TPR = FPR)")
    for lim in limits:
        ax.hlines(lim["tpr"], floor, lim["fpr"], colors=LIMIT, linestyles="--")
        ax.plot([lim["fpr"]], [lim["tpr"]], marker="v", color=LIMIT, label=lim["label"])
    for fpr in (0.01, 0.001):
        if fpr > floor:
            ax.axvline(fpr, color="#cccccc", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false-positive rate (holdout rows called members)")
    ax.set_ylabel("true-positive rate (training rows found)")
    ax.legend(loc="lower right")
    return _png(fig)


@_styled
def dcr_histograms(hist: Mapping[str, Any]) -> bytes:
    """Distance to the closest synthetic row: training rows vs holdout rows."""
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    edges = np.asarray(hist["edges"], dtype=np.float64)
    ax.stairs(hist["train"], edges, color=REAL, label=f"training rows ({hist.get('n_train', '?')})", linewidth=1.5)
    ax.stairs(hist["holdout"], edges, color=HOLDOUT, label=f"holdout rows ({hist.get('n_holdout', '?')})",
              linewidth=1.5)
    ax.set_xlabel("distance to the closest synthetic row (last bin: this far or farther)")
    ax.set_ylabel("share of rows")
    ax.legend(title=f"at distance 0: train {hist.get('zero_train', 0):.1%}, holdout {hist.get('zero_holdout', 0):.1%}")
    return _png(fig)


# --------------------------------------------------------------------------- utility, rules, gate


def _bar_labels(ax: Axes, xs: np.ndarray, values: np.ndarray) -> None:
    for x, v in zip(xs, values, strict=True):
        ax.text(x, 0.01 if np.isnan(v) else v + 0.01, "n/a" if np.isnan(v) else f"{v:.3f}", ha="center",
                va="bottom", fontsize=7)


@_styled
def utility_bars(groups: Sequence[str], tstr: Sequence[float | None], trtr: Sequence[float | None]) -> bytes:
    """TSTR (trained on synthetic rows) vs TRTR (trained on real rows), both tested on the holdout."""
    fig = _figure(7, 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    t, r = _values(tstr), _values(trtr)
    ax.bar(x - 0.2, np.nan_to_num(t), 0.4, color=SYNTHETIC, label="TSTR: trained on synthetic")
    ax.bar(x + 0.2, np.nan_to_num(r), 0.4, color=REAL, label="TRTR: trained on real")
    _bar_labels(ax, x - 0.2, t)
    _bar_labels(ax, x + 0.2, r)
    ax.set_xticks(x, list(groups))
    top = np.nanmax(np.r_[t, r, 1.0])
    ax.set_ylim(min(0.0, float(np.nanmin(np.r_[t, r, 0.0]))), top * 1.12)
    ax.legend(loc="lower right")
    return _png(fig)


@_styled
def limit_bars(names: Sequence[str], values: Sequence[float | None], limits: Sequence[float | None],
               passed: Sequence[bool], *, xlabel: str, errors: Sequence[float] | None = None) -> bytes:
    """Horizontal bars of values against their limits (red tick), pass in green, fail in red.

    ``errors``: optional ±2 noise std per value (the DP figures' error bars).
    """
    fig = _figure(7, 0.8 + 0.42 * len(names))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    v = _values(values)
    colours = ["#2ca02c" if ok else LIMIT for ok in passed]
    xerr = None if errors is None else 2 * np.asarray(errors, dtype=np.float64)
    ax.barh(y, np.nan_to_num(v), color=colours, alpha=0.75, xerr=xerr, capsize=3)
    for yy, lim in zip(y, limits, strict=True):
        if lim is not None:
            ax.plot([lim, lim], [yy - 0.4, yy + 0.4], color="black", linewidth=2)
    ax.set_yticks(y, [_short(str(n), 32) for n in names])
    ax.set_xlabel(xlabel)
    return _png(fig)


# --------------------------------------------------------------------------- training and audits


@_styled
def training_history(history: Sequence[Mapping[str, float]]) -> bytes:
    """Losses, ε spent and the mode-collapse probe over the DP-SGD steps."""
    fig = _figure(11, 3.2)
    losses, eps, probe = fig.subplots(1, 3)
    step = np.array([h.get("step", i) for i, h in enumerate(history)], dtype=np.float64)

    def series(key: str) -> np.ndarray:
        return _values([h.get(key) for h in history])

    losses.plot(step, series("d_loss_fake"), label="discriminator loss (fake rows)")
    losses.plot(step, series("g_loss"), label="generator loss")
    losses.set_title("losses")
    losses.legend()
    eps.plot(step, series("epsilon"), color=LIMIT)
    eps.set_title("ε spent so far (gate included)")
    probe.plot(step, series("coverage"), label="category coverage")
    if any("min_class_share" in h for h in history):
        probe.plot(step, series("min_class_share"), label="smallest class share")
    probe.set_ylim(0, 1.05)
    probe.set_title("mode-collapse probe")
    collapsed = series("collapsed_columns")
    if np.nanmax(np.r_[collapsed, 0.0]) > 0:
        twin = probe.twinx()
        twin.plot(step, collapsed, color="#7f7f7f", linestyle="--", label="collapsed columns")
        twin.set_ylabel("collapsed columns")
        twin.legend(loc="lower right")
    probe.legend(loc="lower left")
    for ax in (losses, eps, probe):
        ax.set_xlabel("discriminator step")
    return _png(fig)


@_styled
def empirical_sweep(sweep: Sequence[Mapping[str, float]], claimed: float | None) -> bytes:
    """The one-run audit's ε lower bound for each number of guesses, against the claimed ε."""
    fig = _figure(7, 3.4)
    ax = fig.add_subplot()
    ax.plot([s["guesses"] for s in sweep], [s["epsilon_lb"] for s in sweep], marker="o", label="ε lower bound")
    if claimed is not None:
        ax.axhline(claimed, color=LIMIT, linestyle="--", label=f"claimed ε = {claimed:.3g}")
    ax.set_xlabel("canaries guessed (top and bottom scores)")
    ax.set_ylabel("ε proved at 95 %")
    ax.legend()
    return _png(fig)


@_styled
def score_histograms(inside: Sequence[float], outside: Sequence[float]) -> bytes:
    """Audit scores of canaries included vs excluded (many-run audit)."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    both = np.r_[np.asarray(inside, dtype=np.float64), np.asarray(outside, dtype=np.float64)]
    bins = np.linspace(float(np.min(both)), float(np.max(both)) + 1e-12, 31) if len(both) else 10
    ax.hist(inside, bins=bins, histtype="step", color=REAL, label="canary included", linewidth=1.5)
    ax.hist(outside, bins=bins, histtype="step", color=SYNTHETIC, label="canary excluded", linewidth=1.5)
    ax.set_xlabel("membership score")
    ax.set_ylabel("runs")
    ax.legend()
    return _png(fig)


# --------------------------------------------------------------------------- sequences


def _group_title(group: Mapping[str, Any]) -> str:
    label = group.get("label")
    return "all sequences" if label is None else f"label {_short(str(label), 20)}"


@_styled
def position_letter_heatmaps(group: Mapping[str, Any], alphabet: str) -> bytes:
    """Letter share per position, real and synthetic on one colour scale, and their difference."""
    real = np.array(group["positions"]["real"], dtype=np.float64).reshape(-1, len(alphabet))
    syn = np.array(group["positions"]["synthetic"], dtype=np.float64).reshape(-1, len(alphabet))
    fig = _figure(11, 1.2 + 0.09 * len(alphabet) * 3)
    axes = fig.subplots(3, 1, sharex=True)
    top = max(float(np.nanmax(real, initial=0.0)), float(np.nanmax(syn, initial=0.0)), 1e-9)
    positions = np.arange(1, real.shape[0] + 1)
    for ax, matrix, name, cmap, lo, hi in ((axes[0], real, "real", "viridis", 0.0, top),
                                          (axes[1], syn, "synthetic", "viridis", 0.0, top),
                                          (axes[2], syn - real, "synthetic − real", "PuOr", -top, top)):
        image = ax.imshow(matrix.T, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest",
                          extent=(0.5, real.shape[0] + 0.5, len(alphabet) - 0.5, -0.5))
        ax.set_yticks(np.arange(len(alphabet)), [_short(c, 3) for c in alphabet], fontsize=5)
        ax.set_ylabel(name)
        fig.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
    axes[-1].set_xlabel("position")
    if len(positions) <= 60:
        axes[-1].set_xticks(positions[::5] if len(positions) > 20 else positions)
    fig.suptitle(f"Letter share per position — {_group_title(group)}")
    return _png(fig)


@_styled
def kmer_and_length_bars(group: Mapping[str, Any]) -> bytes:
    """The most frequent 2-mers (real vs synthetic share) and the length histograms."""
    fig = _figure(11, 2.8)
    left, right = fig.subplots(1, 2)
    kmers = group["kmers"]
    x = np.arange(len(kmers["kmers"]))
    left.bar(x - 0.2, _values(kmers["real"]), 0.4, color=REAL, label="real")
    left.bar(x + 0.2, _values(kmers["synthetic"]), 0.4, color=SYNTHETIC, label="synthetic")
    left.set_xticks(x, [_short(k, 6) for k in kmers["kmers"]], rotation=90 if len(x) > 12 else 0)
    left.set_ylabel(f"share of {kmers.get('k', 2)}-mers")
    left.set_title(f"most frequent {kmers.get('k', 2)}-mers — {_group_title(group)}")
    left.legend(loc="upper right")
    lengths = group["lengths"]
    edges = np.asarray(lengths["edges"], dtype=np.float64)
    right.stairs(_values(lengths["real"]), edges, color=REAL, label="real", linewidth=1.4)
    right.stairs(_values(lengths["synthetic"]), edges, color=SYNTHETIC, label="synthetic", linewidth=1.4)
    right.set_xlabel("length (letters)")
    right.set_ylabel("share of sequences")
    right.set_title(f"lengths — {_group_title(group)}")
    return _png(fig)
