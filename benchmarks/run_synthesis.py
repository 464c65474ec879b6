"""Synthesis benchmark on the peers' splits, scored by the peers' evaluator (run by hand).

For each data set (adult: target income; pbmc68k: target cell_type) and ε in {1, 3, 10}
at δ = 1e-5: train with the shipped defaults (pipeline.default_training_config) in a
child process (peak RSS measured), sample as many rows as real-train, and score with
../shared/peers/evaluate.py exactly as PEERS.md. Writes benchmarks/results/synthesis.json
and synthesis.md.

    python benchmarks/run_synthesis.py [--datasets adult,pbmc68k] [--epsilons 1,3,10] [--seeds 0,1,2] [--splits DIR]
        [--gate-policy policies/default.yaml --tag gate]

Seed s fixes the public streams (initialisation, latent noise: training seed s, sampling
seed s + 1); the DP noise is fresh OS entropy every run, as in a release. With several
seeds the markdown adds the mean and range per (data set, ε).

``--gate-policy``: train as ``release`` does under that policy — the DP gate's Gaussian
release is reserved in the accountant (its share of the budget no longer trains the
generator) — then compute the gate's figures on the peers' split (train = members, holdout
= non-members) and release them with the gate's noise; each row records the exact and the
noisy figures and their noise std.

``--metadata drafted``: instead of the curated ``benchmarks/metadata/NAME.yaml``, the
metadata a new user gets from ``synthrelease metadata infer`` on the training split
(bounds, categories, transforms, zero inflation, decimals and target as drafted), marked
reviewed unchanged — the user's path. ``--metadata FILE.yaml``: that file instead (a variant
under study). Rows record which metadata they used.

``--count-share S``: also as ``release`` does since row counts became private: the part
sizes are released once as DP counts with the share S of the budget (in the accountant),
the training defaults and sample rate follow the noisy training count (``public_rows``),
and the gate's figures are computed over the public slots derived from the noisy sizes.
Without it (the old release): exact sizes, no count release.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drafting import drafted_metadata
from key_values import key_values

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
RESULTS = HERE / "results"
TARGETS = {"adult": "income", "pbmc68k": "cell_type"}
PEER_BARS = {  # PEERS.md: best DP peer (quality, TSTR AUC) at each ε; DPCTGAN and PATECTGAN rows
    ("adult", 1): {"best_dp_quality": 0.813, "best_dp_tstr": 0.796, "dpctgan": (0.569, 0.667),
                   "patectgan": (0.513, 0.395)},
    ("adult", 3): {"best_dp_quality": 0.818, "best_dp_tstr": 0.782, "dpctgan": (0.457, 0.595),
                   "patectgan": (0.642, 0.641)},
    ("pbmc68k", 1): {"best_dp_quality": 0.368, "best_dp_tstr": 0.502, "dpctgan": (0.343, 0.502),
                     "patectgan": (0.368, 0.484)},
    ("pbmc68k", 3): {"best_dp_quality": 0.451, "best_dp_tstr": 0.543, "dpctgan": (0.388, 0.476),
                     "patectgan": (0.451, 0.543)},
}


def train_one(name: str, eps: float, splits: Path, out_csv: Path, info_json: Path, seed: int = 0,
              overrides: dict | None = None, gate_policy: str | None = None, count_share: float = 0.0,
              metadata: str = "curated") -> None:
    """Child process: train with the shipped defaults (and the gate's reserved entry), sample, write CSV and info."""
    import pandas as pd

    from synthrelease.api import default_training_config
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.gan.trainer import train_dp_gan
    from synthrelease.metadata.load import load_metadata
    from synthrelease.transforms.encoders import TableEncoder

    train = pd.read_csv(splits / f"{name}_train.csv")
    curated = HERE / "metadata" / f"{name}.yaml"
    meta = drafted_metadata(train, name) if metadata == "drafted" else load_metadata(curated if metadata == "curated"
                                                                             else Path(metadata))
    sizes = counts = None
    rows_for_defaults = len(train)
    if count_share > 0:  # the release's DP part sizes (the exact sizes stay in this process)
        from synthrelease.privacy.dp_counts import count_entry, release_sizes
        from synthrelease.privacy.randomness import PrivateRandomness

        counts = count_entry(count_share, epsilon=eps, delta=1e-5, accountant="rdp")
        n_holdout = len(pd.read_csv(splits / f"{name}_holdout.csv", usecols=[0]))
        sizes = release_sizes(len(train), n_holdout, 0, counts, PrivateRandomness())
        rows_for_defaults = sizes.rows_for_defaults
    cfg = default_training_config(rows_for_defaults, epsilon=eps, delta=1e-5, seed=seed, metadata=meta,
                                  condition_column=meta.target)
    if sizes is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, public_rows=rows_for_defaults)
    if overrides:
        import dataclasses

        cfg = dataclasses.replace(cfg, **overrides)
    policy = entry = None
    if gate_policy:
        from synthrelease.gate import dp_gate
        from synthrelease.policy.schema import load_policy

        policy = load_policy(gate_policy)[0]
        entry = dp_gate.gate_entry(policy, epsilon=eps, delta=1e-5, accountant=cfg.accountant)
    t0 = time.perf_counter()
    reserved = tuple(e for e in (counts, entry) if e is not None)
    model = train_dp_gan(train, TableEncoder(meta), cfg, condition_column=meta.target, reserved_entries=reserved)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synthetic = sample_frame(model, len(train), seed=seed + 1)
    synthetic.to_csv(out_csv, index=False)
    info = {"train_seconds": round(train_s, 1), "sample_seconds": round(time.perf_counter() - t0, 1),
            "privacy": model.privacy.to_dict(), "config": cfg.to_dict(), "last_log": model.history[-1]}
    if policy is not None and entry is not None:
        from synthrelease.privacy.randomness import PrivateRandomness

        holdout = pd.read_csv(splits / f"{name}_holdout.csv")
        names = dp_gate.figures_needed(policy)
        t0 = time.perf_counter()
        secret = PrivateRandomness()
        if sizes is not None:  # the release's public slots
            k1, k0 = sizes.gate_slots()
            train = dp_gate.slot_rows(train, k1, synthetic.iloc[:1], secret, "slots-train")
            holdout = dp_gate.slot_rows(holdout, k0, synthetic.iloc[:1], secret, "slots-holdout", blank=meta.target)
        exact = dp_gate.compute_figures(names, train, holdout, synthetic, meta, target=meta.target, seed=seed,
                                        slotted=sizes is not None)
        figures = dp_gate.release_figures(exact, names, entry, secret)
        info["dp_sizes"] = sizes.public() if sizes is not None else None
        info["dp_gate"] = {"policy": gate_policy, "share": policy.privacy.audit_budget_share,
                           "noise_multiplier": entry.noise_multiplier, "seconds": round(time.perf_counter() - t0, 1),
                           "figures": {k: {"exact": f.exact, "noisy": f.value, "noise_std": f.noise_std}
                                       for k, f in figures.items()}}
    info_json.write_text(json.dumps(info))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="adult,pbmc68k")
    ap.add_argument("--epsilons", default="1,3,10")
    ap.add_argument("--splits", default=None, help="folder of peers/split.py output (made if absent)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainingConfig override (repeatable); results go to synthesis-TAG.* with --tag")
    ap.add_argument("--tag", default="", help="suffix of the results files (synthesis-TAG.json/.md)")
    ap.add_argument("--merge", action="append", default=[], metavar="STEM",
                    help="no training: fold the rows of results/STEM.json (runs done in parallel under --tag) "
                         "into this run's results files")
    ap.add_argument("--gate-policy", default=None, help="reserve and release the DP gate of this policy")
    ap.add_argument("--count-share", type=float, default=0.0,
                    help="release the part sizes as DP counts with this share of the budget, as a release does")
    ap.add_argument("--metadata", default="curated",
                    help="curated: benchmarks/metadata/NAME.yaml; drafted: metadata infer on the training split; "
                         "or a metadata YAML file (one data set)")
    ap.add_argument("--one", nargs=5, metavar=("NAME", "EPS", "OUT_CSV", "INFO", "SEED"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        name, eps, out_csv, info, seed = a.one
        train_one(name, float(eps), Path(a.splits), Path(out_csv), Path(info), int(seed), key_values(a.set),
                  a.gate_policy, a.count_share, a.metadata)
        return
    splits = Path(a.splits) if a.splits else Path(tempfile.mkdtemp(prefix="splits-"))
    if not (splits / "adult_train.csv").exists():
        subprocess.run([sys.executable, str(SHARED / "peers" / "split.py"), "--out", str(splits)], check=True)
    rows = []
    for stem in a.merge:
        rows += json.loads((RESULTS / f"{stem}.json").read_text())["rows"]
    for name in ([] if a.merge else a.datasets.split(",")):
        for eps, seed in [(float(e), int(s)) for e in a.epsilons.split(",") for s in a.seeds.split(",")]:
            work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            syn, info = work / "synthetic.csv", work / "info.json"
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            gate = (["--gate-policy", a.gate_policy] if a.gate_policy else []) + \
                (["--count-share", str(a.count_share)] if a.count_share else []) + ["--metadata", a.metadata]
            subprocess.run([sys.executable, __file__, "--splits", str(splits), "--one", name, str(eps), str(syn),
                            str(info), str(seed), *[f"--set={kv}" for kv in a.set], *gate], check=True)
            wall = time.perf_counter() - t0
            peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
            ev = work / "eval.json"
            subprocess.run([sys.executable, str(SHARED / "peers" / "evaluate.py"), "--real-train",
                            str(splits / f"{name}_train.csv"), "--real-holdout", str(splits / f"{name}_holdout.csv"),
                            "--synthetic", str(syn), "--target", TARGETS[name], "--metadata",
                            str(splits / f"{name}_sdmeta.json"), "--out", str(ev)], check=True,
                           capture_output=True)
            summary = json.loads(ev.read_text())["summary"]
            meta = json.loads(info.read_text())
            row = {"dataset": name, "epsilon": eps, "seed": seed, "delta": 1e-5, "metadata": a.metadata,
                   "epsilon_spent": meta["privacy"]["epsilon"],
                   "train_seconds": meta["train_seconds"], "process_wall_seconds": round(wall, 1),
                   "peak_rss_mb": round(peak_mb), **{k: summary[k] for k in (
                       "quality_overall", "column_shapes", "column_pair_trends", "tstr_auc_hgb", "trtr_auc_hgb",
                       "tstr_auc_logreg", "dcr_mia_auc", "exact_copy_share")},
                   "mode_collapse_probe": meta["last_log"], "config": meta["config"],
                   "mechanisms": meta["privacy"]["mechanisms"], "dp_gate": meta.get("dp_gate"),
                   "dp_sizes": meta.get("dp_sizes")}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("dataset", "epsilon", "seed", "epsilon_spent", "train_seconds",
                                                  "quality_overall", "tstr_auc_hgb", "dcr_mia_auc")}), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"synthesis-{a.tag}" if a.tag else "synthesis"
    previous = RESULTS / f"{stem}.json"
    if previous.exists():  # keep rows of data sets / ε not rerun this time
        done = {(r["dataset"], r["epsilon"], r["seed"]) for r in rows}
        rows = [r for r in json.loads(previous.read_text())["rows"]
                if (r["dataset"], r["epsilon"], r.get("seed", 0)) not in done] + rows
        for r in rows:
            r.setdefault("seed", 0)
        rows.sort(key=lambda r: (r["dataset"], r["epsilon"], r["seed"]))
    step = RESULTS / "step_speed.json"
    out = {"rows": rows, "step_speed": json.loads(step.read_text()) if step.exists() else None,
           "command": "python benchmarks/run_synthesis.py " + " ".join(sys.argv[1:]), "overrides": a.set,
           "peer_bars": {f"{k[0]}@{k[1]}": v for k, v in PEER_BARS.items()}}
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1) + "\n")
    md = ["# Synthesis benchmark (synthrelease DP-GAN vs peers)", "",
          "Split and scoring: `../shared/peers/split.py` and `evaluate.py`, as in PEERS.md; δ = 1e-5; "
          f"{'overrides ' + ', '.join(a.set) if a.set else 'shipped defaults'}. "
          f"Command: `python benchmarks/run_synthesis.py {' '.join(sys.argv[1:])}`.", "",
          "| dataset | ε | seed | ε spent | train s | peak RSS MB | quality | shapes | pair trends | TSTR AUC (HGB) | "
          "TRTR AUC | best DP peer quality / TSTR | DCR-MIA AUC |", "|" + "---|" * 13]
    for r in rows:
        bar = PEER_BARS.get((r["dataset"], int(r["epsilon"])))
        peer = f"{bar['best_dp_quality']:.3f} / {bar['best_dp_tstr']:.3f}" if bar else "—"
        md.append(f"| {r['dataset']} | {r['epsilon']:g} | {r['seed']} | {r['epsilon_spent']:.3f} | "
                  f"{r['train_seconds']} | "
                  f"{r['peak_rss_mb']} | {r['quality_overall']:.3f} | {r['column_shapes']:.3f} | "
                  f"{r['column_pair_trends']:.3f} | {r['tstr_auc_hgb']:.3f} | {r['trtr_auc_hgb']:.3f} | {peer} | "
                  f"{r['dcr_mia_auc']:.3f} |")
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["epsilon"]), []).append(r)
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    if multi:
        md += ["", "Across seeds (mean, min–max):", "", "| dataset | ε | seeds | quality | TSTR AUC (HGB) | "
               "best DP peer quality / TSTR |", "|---|---|---|---|---|---|"]
        for (name, eps), rs in sorted(multi.items()):
            q = [r["quality_overall"] for r in rs]
            t = [r["tstr_auc_hgb"] for r in rs]
            bar = PEER_BARS.get((name, int(eps)))
            peer = f"{bar['best_dp_quality']:.3f} / {bar['best_dp_tstr']:.3f}" if bar else "—"
            md.append(f"| {name} | {eps:g} | {len(rs)} | {sum(q) / len(q):.3f} ({min(q):.3f}–{max(q):.3f}) | "
                      f"{sum(t) / len(t):.3f} ({min(t):.3f}–{max(t):.3f}) | {peer} |")
    gated = [r for r in rows if r.get("dp_gate")]
    if gated:
        names = list(gated[0]["dp_gate"]["figures"])
        md += ["", f"DP gate figures ({gated[0]['dp_gate']['policy']}, share {gated[0]['dp_gate']['share']:g} of "
               "the budget): exact (internal) / noisy (released) ± noise std, on the peers' split.", "",
               "| dataset | ε | seed | gate s | " + " | ".join(names) + " |", "|" + "---|" * (4 + len(names))]
        for r in gated:
            cells = []
            for n in names:
                f = r["dp_gate"]["figures"][n]
                exact = "—" if f["exact"] is None else f"{f['exact']:.3f}"
                noisy = "—" if f["noisy"] is None else f"{f['noisy']:.3f}"
                cells.append(f"{exact} / {noisy} ± {f['noise_std']:.3g}")
            md.append(f"| {r['dataset']} | {r['epsilon']:g} | {r['seed']} | {r['dp_gate']['seconds']} | "
                      + " | ".join(cells) + " |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
