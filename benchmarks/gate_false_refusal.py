"""How often the DP gate refuses a good release by noise alone (issue 30), and what the policy's
noise allocation and decision rule change (run by hand; no training, seconds).

For a table of n rows (holdout fraction 0.2 — the default — 0.35 or 0.5) the gate scores the public
slot counts the release would derive from its DP part sizes; every figure the policy compares
gets Gaussian noise from the policy's ``audit_budget_share`` of ε. A "good release" is one
whose EXACT figures all clear their limits by ``--margin`` (0.05); a "bad release" one whose
figures all miss them by that margin. For each n, ε, allocation (``proportional``,
``equalised``) and decision rule (``audit_clear_by_stds`` k) this prints and writes:

* the analytic refusal probability of a good release, Φ(k − margin/σ) per clause, combined
  over the clauses (independent noise);
* the same by Monte Carlo through the gate's own code (``dp_gate.release_figures`` on scalar
  figures at the limits ± margin, then ``verdict.evaluate_gate``), ``--draws`` releases;
* the pass probability of a bad release (what a rule gives away).

    python benchmarks/gate_false_refusal.py [--policy policies/default.yaml] [--epsilons 1,3]
        [--sizes 150,500,1000,5000] [--margin 0.05] [--draws 4000]

Writes benchmarks/results/gate_false_refusal[-POLICY].{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from synthrelease.audits import dp_figures
from synthrelease.gate import dp_gate
from synthrelease.gate.verdict import evaluate_gate
from synthrelease.policy.schema import load_policy
from synthrelease.privacy import dp_counts
from synthrelease.privacy.dp_counts import NoisySizes
from synthrelease.privacy.randomness import PrivateRandomness

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DELTA = 1e-5
VARIANTS = (  # (holdout fraction, allocation, clear_by_stds)
    (0.2, "proportional", 0.0), (0.2, "equalised", 0.0), (0.2, "least_refusal", 0.0),
    (0.2, "least_refusal", 1.0), (0.2, "least_refusal", -1.0),
    (0.35, "least_refusal", 0.0), (0.5, "least_refusal", 0.0))


def _slots(n: int, policy, epsilon: float, holdout: float) -> tuple[int, int]:
    counts = dp_counts.count_entry(policy.privacy.count_budget_share, epsilon=epsilon, delta=DELTA,
                                   accountant="rdp")
    n_train = int(np.ceil(n * (1 - holdout)))
    return NoisySizes(n_train, 0.0, n - n_train, counts.noise_multiplier).gate_slots()


def _limits(policy) -> dict[str, tuple[str, float]]:
    """figure → (comparator, limit) of every DP-figure clause of the policy."""
    from synthrelease.gate.verdict import _figure_clauses

    return {dp_gate.CLAUSE_FIGURES[c]: (cmp, limit) for c, cmp, limit in _figure_clauses(policy)}


def _figures(limits: dict[str, tuple[str, float]], sens: dict[str, float], margin: float) -> dict:
    """Scalar figures whose exact values clear (margin > 0) or miss (< 0) their limits by |margin|."""
    out = {}
    for name, (cmp, limit) in limits.items():
        value = limit + margin if cmp == ">=" else limit - margin
        out[name] = dp_figures._scalar(name, value, sens[name], "benchmark", "benchmark")
    return out


def _monte_carlo(policy, figures, sens, entry, draws: int) -> float:
    """Share of ``draws`` gate releases of ``figures`` that refuse on a DP-figure clause."""
    randomness = PrivateRandomness()
    names = dp_gate.figures_needed(policy)
    refused = 0
    for _ in range(draws):
        pc = policy.privacy
        released = dp_gate.release_figures(figures, names, entry, randomness, sensitivities=sens,
                                           allocation=pc.audit_noise_allocation, margin=pc.audit_design_margin,
                                           clear_by_stds=pc.audit_clear_by_stds)
        decision = evaluate_gate(policy, epsilon=0.0, delta=0.0, accountant="rdp", n_train_rows=None,
                                 dp_figures=dp_gate.noisy_values(released), audits={},
                                 figure_stds={k: f.noise_std for k, f in released.items()})
        refused += any(not c.passed for c in decision.clauses if c.clause.split(".")[0] in
                       ("fidelity", "utility", "membership"))
    return refused / draws


def measure(policy, n: int, epsilon: float, margin: float, draws: int) -> list[dict]:
    names = dp_gate.figures_needed(policy)
    entry = dp_gate.gate_entry(policy, epsilon=epsilon, delta=DELTA, accountant="rdp")
    limits = _limits(policy)
    rows = []
    for holdout, allocation, k in VARIANTS:
        k_train, k_holdout = _slots(n, policy, epsilon, holdout)
        sens = dp_gate.public_sensitivities(names, n_train_slots=k_train, n_holdout_slots=k_holdout)
        pol = policy.model_copy(update={"privacy": policy.privacy.model_copy(
            update={"audit_noise_allocation": allocation, "audit_clear_by_stds": k,
                    "audit_design_margin": margin})})
        stds = dp_gate.noise_stds(sens, entry, allocation, margin=margin, clear_by_stds=k)
        good = dp_gate.refusal_probability(stds, margin, k)
        bad = dp_gate.refusal_probability(stds, -margin, k)
        rows.append({
            "n": n, "epsilon": epsilon, "holdout": holdout, "slots": [k_train, k_holdout],
            "allocation": allocation,
            "clear_by_stds": k, "noise_std": {f: round(s, 4) for f, s in stds.items()},
            "refusal_good": 1 - float(np.prod([1 - p for p in good.values()])),
            "refusal_good_per_clause": {f: round(p, 4) for f, p in good.items()},
            "refusal_good_mc": _monte_carlo(pol, _figures(limits, sens, margin), sens, entry, draws),
            "pass_bad": float(np.prod([1 - p for p in bad.values()])),
        })
    return rows


def _markdown(rows: list[dict], policy_name: str, margin: float, draws: int, command: str) -> str:
    lines = [f"# DP gate: false refusals by noise ({policy_name} policy)", "",
             f"`{command}`", "",
             f"A good release's exact figures all clear their limits by {margin:g}; a bad one's all miss them "
             f"by {margin:g}. δ = {DELTA:g}, RDP accountant; slots = the gate's public "
             f"training / holdout record counts. Refused (good): analytic, Φ(k − margin/σ) combined over the "
             f"clauses, and Monte Carlo through dp_gate.release_figures + evaluate_gate ({draws} releases). "
             "Passed (bad): analytic.", "",
             "| n | ε | holdout | slots | allocation | k | noise std per figure | refused (good) | MC | passed (bad) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        stds = ", ".join(f"{f} {s:.3g}" for f, s in r["noise_std"].items())
        lines.append(f"| {r['n']} | {r['epsilon']:g} | {r['holdout']:g} | {r['slots'][0]} / {r['slots'][1]} | "
                     f"{r['allocation']} | "
                     f"{r['clear_by_stds']:g} | {stds} | {r['refusal_good']:.3f} | {r['refusal_good_mc']:.3f} | "
                     f"{r['pass_bad']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", type=Path, default=ROOT / "policies" / "default.yaml")
    ap.add_argument("--epsilons", default="1,3")
    ap.add_argument("--sizes", default="150,500,1000,5000")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--draws", type=int, default=4000)
    a = ap.parse_args()
    policy, _ = load_policy(a.policy)
    rows = [r for n in map(int, a.sizes.split(",")) for e in map(float, a.epsilons.split(","))
            for r in measure(policy, n, e, a.margin, a.draws)]
    stem = "gate_false_refusal" + ("" if policy.name == "default" else f"-{policy.name}")
    out = HERE / "results"
    command = " ".join(["python benchmarks/gate_false_refusal.py", *sys.argv[1:]])
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / f"{stem}.md").write_text(_markdown(rows, policy.name, a.margin, a.draws, command))
    print(_markdown(rows, policy.name, a.margin, a.draws, command))


if __name__ == "__main__":
    main()
