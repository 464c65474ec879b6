"""Scaling curves of a whole release: wall time and peak RSS against rows (run by hand, after the runs).

Reads the results the two release benchmarks wrote, each run alone on 2 cores:

* adult-like tables: ``benchmarks/results/release_speed-rows-N.json`` from
  ``OMP_NUM_THREADS=2 python benchmarks/release_speed.py --rows N --tag rows-N`` (N = 10,000,
  100,000, 1,000,000: the adult training split's rows drawn with replacement; ε = 1, default policy);
* the 20,000-gene expression matrix: ``benchmarks/results/h5ad_scale-release-Cx20000-TAG.json`` from
  ``OMP_NUM_THREADS=2 python benchmarks/h5ad_scale.py --cells C --genes 20000 --job release --steps 30
  --lenient --tag TAG`` (``--h5ad C:TAG``, repeatable).

Writes ``benchmarks/results/scaling.png`` (log-log, two panels) and ``scaling.md``: the table,
and the exponent b of wall ∝ rows^b between neighbouring sizes and by least squares over all.

    python benchmarks/scaling_plot.py [--adult 10000,100000,1000000] [--h5ad 1000:TAG --h5ad 10000:TAG …]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _seconds(wall: str | float) -> float:
    """Seconds of ``/usr/bin/time``'s ``[h:]m:ss.ss`` (or a number of seconds)."""
    if isinstance(wall, (int, float)):
        return float(wall)
    total = 0.0
    for part in wall.split(":"):
        total = total * 60 + float(part)
    return total


def _adult(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        res = json.loads((RESULTS / f"release_speed-rows-{n}.json").read_text())
        rows.append({"rows": res["rows"], "wall_s": res["wall_seconds"], "peak_mib": res["peak_rss_mib"],
                     "stages": res["stage_seconds"], "exit": res["exit_code"],
                     "source": f"release_speed-rows-{n}.json"})
    return rows


def _h5ad(specs: list[str]) -> list[dict]:
    rows = []
    for spec in specs:
        cells, _, tag = spec.partition(":")
        name = f"h5ad_scale-release-{cells}x20000" + (f"-{tag}" if tag else "") + ".json"
        doc = json.loads((RESULTS / name).read_text())
        row = doc["row"]
        rows.append({"rows": row["cells"], "wall_s": _seconds(row["wall"]), "peak_mib": row["peak_rss_mib"],
                     "stages": row.get("stage_seconds", {}), "exit": row["exit_code"], "source": name})
    return rows


def exponents(rows: list[dict]) -> tuple[list[float], float]:
    """(b between neighbouring sizes, b by least squares over all) of wall ∝ rows^b."""
    x = np.log([r["rows"] for r in rows])
    y = np.log([r["wall_s"] for r in rows])
    steps = [float((y[i + 1] - y[i]) / (x[i + 1] - x[i])) for i in range(len(rows) - 1)]
    return steps, float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else float("nan")


def _table(title: str, rows: list[dict]) -> list[str]:
    steps, overall = exponents(rows)
    stage_names = sorted({k for r in rows for k in r["stages"] if k != "total"})
    out = [f"## {title}", "", "| rows | wall (s) | peak RSS (MiB) | " + " | ".join(stage_names) + " | source |",
           "|---|---|---|" + "---|" * len(stage_names) + "---|"]
    for r in rows:
        out.append(f"| {r['rows']:,} | {r['wall_s']:.0f} | {r['peak_mib']:,} | "
                   + " | ".join(f"{r['stages'].get(k, float('nan')):.0f}" for k in stage_names)
                   + f" | `{r['source']}` (exit {r['exit']}) |")
    out += ["", "Exponent b of wall ∝ rows^b: " + ", ".join(
        f"{a['rows']:,} → {b['rows']:,}: {s:.2f}" for a, b, s in zip(rows, rows[1:], steps, strict=False))
        + f"; least squares over all: {overall:.2f}.", ""]
    return out


def _plot(series: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, rows in series.items():
        n = [r["rows"] for r in rows]
        axes[0].loglog(n, [r["wall_s"] for r in rows], "o-", label=label)
        axes[1].loglog(n, [r["peak_mib"] for r in rows], "o-", label=label)
    axes[0].set(xlabel="rows (cells)", ylabel="release wall time (s)", title="Wall time, 2 cores")
    axes[1].set(xlabel="rows (cells)", ylabel="peak RSS (MiB)", title="Peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adult", default="10000,100000,1000000")
    ap.add_argument("--h5ad", action="append", default=[], metavar="CELLS:TAG")
    a = ap.parse_args()
    series = {"adult-like (15 columns, ε = 1)": _adult([int(s) for s in a.adult.split(",") if s])}
    if a.h5ad:
        series["expression matrix (20,000 genes, ε = 3, 30 steps)"] = _h5ad(a.h5ad)
    _plot(series, RESULTS / "scaling.png")
    md = ["# Scaling curves of a whole release", "",
          "Each point is one whole release (validation, DP training, sampling, audits, DP gate, bundle, "
          "signature), run alone on 2 cores; wall time from process start to exit, peak RSS of the release "
          "process tree. Plot: `scaling.png`. Command: `python benchmarks/scaling_plot.py "
          + " ".join([f"--adult {a.adult}", *[f"--h5ad {s}" for s in a.h5ad]]) + "`.", ""]
    for title, rows in series.items():
        md += _table(title, rows)
    (RESULTS / "scaling.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
