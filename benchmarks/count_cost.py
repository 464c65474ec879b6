"""What the DP part sizes cost: one table of before/after from two run_synthesis.py result files.

Row counts became private (issue 25): a release spends ``privacy.count_budget_share`` of its
budget on one Gaussian release of the part sizes, trains at the sample rate of the noisy
training count and computes the gate's figures over public slots. This script reads

    benchmarks/results/synthesis-counts-before.json   (run_synthesis.py --gate-policy ... --tag counts-before)
    benchmarks/results/synthesis-counts-after.json    (the same with --count-share 0.05 --tag counts-after)

and writes benchmarks/results/count_cost.md: per data set and ε, the mean (and range over
seeds) of quality and TSTR AUC (the peers' evaluator) and the gate's noise std per figure.

    python benchmarks/count_cost.py
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(tag: str) -> list[dict]:
    return json.loads((RESULTS / f"synthesis-{tag}.json").read_text())["rows"]


def _summary(rows: list[dict]) -> dict[tuple[str, float], dict]:
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["epsilon"])].append(r)
    out = {}
    for key, rs in groups.items():
        q = [r["quality_overall"] for r in rs]
        t = [r["tstr_auc_hgb"] for r in rs]
        noise = defaultdict(list)
        for r in rs:
            for name, fig in ((r.get("dp_gate") or {}).get("figures") or {}).items():
                noise[name].append(fig["noise_std"])
        out[key] = {"n": len(rs), "quality": q, "tstr": t,
                    "noise": {k: sum(v) / len(v) for k, v in noise.items()}}
    return out


def _cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.3f} ({min(values):.3f}–{max(values):.3f})" if len(values) > 1 else f"{mean:.3f}"


def expected_gate_noise(rows: int, epsilon: float, delta: float = 1e-6, count_share: float = 0.05) -> list[str]:
    """Markdown rows: each default-policy figure's noise std on a table of ``rows`` rows, with exact sizes
    (before) and over the slots the DP sizes give when their noise comes out at 0 (after). Public arithmetic."""
    import math

    from synthrelease.audits.dp_figures import sensitivity_for
    from synthrelease.gate import dp_gate
    from synthrelease.policy.schema import load_policy
    from synthrelease.privacy.dp_counts import NoisySizes, count_entry

    policy = load_policy(Path(__file__).resolve().parents[1] / "policies" / "default.yaml")[0]
    names = dp_gate.figures_needed(policy)
    gate = dp_gate.gate_entry(policy, epsilon=epsilon, delta=delta, accountant="rdp")
    scale = gate.noise_multiplier * math.sqrt(len(names))
    n1, n0 = round(0.8 * rows), rows - round(0.8 * rows)
    std = count_entry(count_share, epsilon=epsilon, delta=delta, accountant="rdp").noise_multiplier
    k1, k0 = NoisySizes(n1, 0.0, n0, std).gate_slots()
    out = []
    for name in names:
        old = scale * sensitivity_for(name, n_train=n1, n_holdout=n0)
        new = scale * sensitivity_for(name, n_train=k1, n_holdout=k0, slotted=True)
        out.append(f"| {rows} | {epsilon:g} | {std:.3g} | {n1} / {n0} | {k1} / {k0} | {name} | {old:.3g} | "
                   f"{new:.3g} | {new / old:.2f} |")
    return out


def main() -> None:
    before, after = _summary(_load("counts-before")), _summary(_load("counts-after"))
    md = ["# What private row counts cost (issue 25)", "",
          "Before: exact part sizes, no count release (the old release). After: the part sizes released once as "
          "DP counts (5 % of the Rényi-DP curve, `privacy.count_budget_share`), training sized by the noisy "
          "training count, gate figures over the public slots. Both reserve the default policy's DP gate (20 %). "
          "Scorer: `../shared/peers/evaluate.py` on the peers' split; δ = 1e-5. Commands: "
          "`python benchmarks/run_synthesis.py --datasets adult,pbmc68k --epsilons 1,3 --seeds 0,1 "
          "--gate-policy policies/default.yaml --tag counts-before` and the same with `--count-share 0.05 --tag "
          "counts-after`, then `python benchmarks/count_cost.py`.", "",
          "| dataset | ε | runs | quality before | quality after | TSTR AUC before | TSTR AUC after | "
          "gate noise std before → after |", "|" + "---|" * 8]
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b is None or a is None:
            continue
        noise = ", ".join(f"{k} {b['noise'][k]:.3g} → {a['noise'].get(k, float('nan')):.3g}" for k in b["noise"])
        md.append(f"| {key[0]} | {key[1]:g} | {b['n']} / {a['n']} | {_cell(b['quality'])} | {_cell(a['quality'])} | "
                  f"{_cell(b['tstr'])} | {_cell(a['tstr'])} | {noise} |")
    md += ["", "## The gate's noise on small tables (public arithmetic, δ = 1e-6, default policy)", "",
           "Each figure's noise std with the exact part sizes (before) and over the public slots of the DP sizes "
           "(after; slots = noisy size − one count-noise std, computed here with the count noise at 0). The count "
           "noise std is per part (the holdout's is √2 times it: two cells).", "",
           "| rows | ε | count noise std | train / holdout | slots | figure | noise std before | after | ratio |",
           "|" + "---|" * 9]
    for rows in (150, 569, 1000, 26048):
        for epsilon in (1.0, 3.0):
            md += expected_gate_noise(rows, epsilon)
    (RESULTS / "count_cost.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
