"""Power and validity of the empirical privacy audit (run by hand).

Data: the bundled breast-cancer table, split as ``release`` splits it (one coin per row,
holdout probability 0.2; reproducible coins here, as this is a public benchmark table).
Model: the shipped defaults (``pipeline.default_training_config``, δ = default_delta(n))
at each claimed ε.

``--base synthetic`` audits as a release does: the canary run's base table is not the
training rows but as many rows sampled from a DP-GAN trained on them with the shipped
defaults at the claimed ε (the release's synthetic rows), so the audit reads no private
row. Results then go to ``empirical_audit-synthetic.{json,md}``.

* ``one-run``: :func:`synthrelease.audits.empirical_privacy.run_one_run_audit` with m
  canaries (white-box transcript score), once with the noise switched off (the
  accountant unaware: the power check, which must give a large ε_lb) and once with the
  correct mechanism at each ε (which must give ε_lb ≤ claimed).
* ``many-run`` (``--many-run``): the Jagielski et al. 2020 audit with T runs of a small
  model (generator 16, discriminator 32, 200 steps) as a cross-check of the one-run
  bound on the same small configuration.

Writes benchmarks/results/empirical_audit.{json,md}.

    python benchmarks/empirical_audit.py [--epsilons 1,4,10] [--canaries 455] [--seeds 0] [--many-run 64]
        [--base private|synthetic]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def load() -> tuple:
    from synthrelease.api import split_train_holdout
    from synthrelease.io.formats import read_table
    from synthrelease.metadata.load import load_metadata
    from synthrelease.privacy.randomness import PrivateRandomness

    data = resources.files("synthrelease") / "data"
    meta = load_metadata(Path(str(data / "breast_cancer.metadata.yaml")))
    df = read_table(Path(str(data / "breast_cancer.csv")))
    coins = PrivateRandomness.unsafe_reproducible_for_tests(0)  # public benchmark table
    train, _ = split_train_holdout(df, holdout_fraction=0.2, randomness=coins)
    return train, meta


def synthetic_base(train, meta, eps: float, seed: int):
    """The release's synthetic rows: the shipped defaults at ε on ``train``, len(train) rows sampled."""
    from synthrelease.api import default_training_config
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.gan.trainer import fit_dp_synthesizer
    from synthrelease.privacy.parameters import default_delta

    cfg = default_training_config(len(train), epsilon=eps, delta=default_delta(len(train)), seed=seed,
                                  metadata=meta, condition_column="diagnosis")
    model = fit_dp_synthesizer(train, meta, cfg, condition_column="diagnosis")
    return sample_frame(model, len(train), seed=seed + 1)


def one_run(train, meta, eps: float, noise: float, m: int, seed: int, small: bool = False) -> dict:
    from synthrelease.api import default_training_config
    from synthrelease.audits.empirical_privacy import run_one_run_audit
    from synthrelease.gan.audit_training import train_for_audit
    from synthrelease.privacy.parameters import default_delta

    cfg = default_training_config(len(train), epsilon=eps, delta=default_delta(len(train)), seed=seed,
                                  metadata=meta, condition_column="diagnosis")
    if small:
        cfg = dataclasses.replace(cfg, **SMALL)
    res = run_one_run_audit(train, meta, cfg, seed=seed, n_canaries=m, _unsafe_noise_scale=noise,
                            trainer=train_for_audit)
    return {"audit": "one-run", "model": "small" if small else "shipped", "epsilon_target": eps, "noise_scale": noise,
            "seed": seed, "canaries": m, "epsilon_claimed": round(res.metrics["epsilon_claimed"], 3),
            "epsilon_lower_bound": round(res.metrics["epsilon_lower_bound"], 3),
            "correct": int(res.metrics["audit_correct_guesses"]), "guesses": int(res.metrics["audit_guesses"]),
            "seconds": round(res.runtime_s, 1)}


SMALL = {"generator_hidden": 16, "discriminator_hidden": 32, "latent_dim": 8, "n_steps": 200}


def many_run(train, meta, eps: float, noise: float, runs: int, seed: int) -> dict:
    from synthrelease.api import default_training_config
    from synthrelease.audits.empirical.many_run import run_many_run_audit
    from synthrelease.gan.audit_training import train_for_audit
    from synthrelease.privacy.parameters import default_delta

    cfg = dataclasses.replace(default_training_config(len(train), epsilon=eps, delta=default_delta(len(train)),
                                                      seed=seed, metadata=meta, condition_column="diagnosis"), **SMALL)
    res = run_many_run_audit(train, meta, cfg, seed=seed, n_runs=runs, _unsafe_noise_scale=noise,
                            trainer=train_for_audit)
    return {"audit": "many-run", "model": "small", "epsilon_target": eps, "noise_scale": noise, "seed": seed,
            "runs": runs, "epsilon_claimed": round(res.metrics["epsilon_claimed"], 3),
            "epsilon_lower_bound": round(res.metrics["epsilon_lower_bound"], 3),
            "fpr_ub": round(res.details["fpr_ub"], 3), "fnr_ub": round(res.details["fnr_ub"], 3),
            "seconds": round(res.runtime_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", default="1,4,10")
    ap.add_argument("--canaries", type=int, default=455)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--many-run", type=int, default=0, help="runs of the many-run cross-check (0: skip)")
    ap.add_argument("--only", default="", help="comma list of row kinds: power,dp,small,many")
    ap.add_argument("--base", choices=["private", "synthetic"], default="private",
                    help="the canary run's base table: the training rows, or the release's synthetic rows")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # OpenMP threads spin under contention (measured ~15x slower with 2)
    train, meta = load()
    eps_list = [float(e) for e in args.epsilons.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    only = set(args.only.split(",")) if args.only else {"power", "dp", "small", "many"}
    rows: list[dict] = []
    stem = "empirical_audit" + ("-synthetic" if args.base == "synthetic" else "")
    out_json = RESULTS / f"{stem}.json"
    private_train = train
    bases: dict[tuple[float, int], object] = {}

    def base(eps: float, seed: int):
        if args.base == "private":
            return private_train
        if (eps, seed) not in bases:
            bases[(eps, seed)] = synthetic_base(private_train, meta, eps, seed)
        return bases[(eps, seed)]

    def record(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        RESULTS.mkdir(exist_ok=True)
        out_json.write_text(json.dumps({"command": "python " + " ".join(sys.argv),
                                        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                        "train_rows": len(train), "rows": rows}, indent=2) + "\n")

    for seed in seeds:
        if "power" in only:
            record(one_run(base(eps_list[0], seed), meta, eps_list[0], 0.0, args.canaries, seed))
        if "dp" in only:
            for eps in eps_list:
                record(one_run(base(eps, seed), meta, eps, 1.0, args.canaries, seed))
        if "small" in only:
            for noise in (0.0, 1.0):
                record(one_run(base(eps_list[0], seed), meta, eps_list[0], noise, args.canaries, seed, small=True))
        if "many" in only and args.many_run:
            for noise in (0.0, 1.0):
                record(many_run(base(eps_list[0], seed), meta, eps_list[0], noise, args.many_run, seed))
    lines = ["# Empirical privacy audit: power and validity", "",
             f"`{'python ' + ' '.join(sys.argv)}` — {os.cpu_count()} CPUs. Bundled breast-cancer table, "
             f"{len(train)} training rows; canary run's base table: "
             f"{'the release synthetic rows (no private row)' if args.base == 'synthetic' else 'the training rows'}; "
             "shipped defaults unless 'small' (generator 16, discriminator 32, "
             "200 steps). noise 0 = DP noise switched off with the accountant unaware (power check); "
             "noise 1 = the correct mechanism. A correct mechanism must give ε_lb ≤ ε claimed (95 % confidence).",
             "", "| audit | model | noise | ε claimed | ε_lb | correct / guesses | seed | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        guesses = f"{r['correct']} / {r['guesses']}" if "guesses" in r else \
            f"{r['runs']} runs, FPR≤{r['fpr_ub']}, FNR≤{r['fnr_ub']}"
        lines.append(f"| {r['audit']} | {r['model']} | {r['noise_scale']:g} | {r['epsilon_claimed']} | "
                     f"{r['epsilon_lower_bound']} | {guesses} | {r['seed']} | {r['seconds']} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
