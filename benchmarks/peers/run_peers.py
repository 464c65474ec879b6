"""DP peer synthesizers on adult, each in its own venv, scored like our benchmarks (run by hand).

Splits adult with ../shared/peers/split.py (as run_synthesis.py), builds spec.json from the curated
public metadata benchmarks/metadata/adult.yaml (bounds, category lists), runs each peer's runner
(``PEER_PYTHON runner.py train.csv spec.json synthetic.csv``, see dpmm_peer.py / mostly_peer.py)
in its venv with a timeout, and scores with ../shared/peers/evaluate.py. Run in the project's venv;
make the peers' venvs first with benchmarks/peers/setup_envs.sh.

    nice -n 19 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/peers/run_peers.py \\
        [--peers dpmm-mst,dpmm-aim,dpmm-privbayes,mostly] [--epsilons 1] [--seeds 0] [--tag TAG]
        [--timeout-min 45] [--rows N] [--set KEY=VALUE ...] [--merge STEM ...] [--splits DIR]

--set KEY=VALUE goes into spec["options"] (e.g. epochs=2 for mostly, max_model_size=10 for AIM);
--rows N trains on the first N training rows only (quick checks; scored against those rows);
--merge STEM folds the rows of benchmarks/results/STEM.json (earlier runs) into this table.
Venvs: $PEER_ENVS/{dpmm,mostly} (default /work/peer_envs). Writes benchmarks/results/peers-adult[-TAG].{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
SHARED = BENCH.parents[1] / "shared" / "peers"
RESULTS = BENCH / "results"
ENVS = Path(os.environ.get("PEER_ENVS", "/work/peer_envs"))
PEERS = {  # name: (venv, runner, extra argument)
    "dpmm-mst": ("dpmm", "dpmm_peer.py", "mst"), "dpmm-aim": ("dpmm", "dpmm_peer.py", "aim"),
    "dpmm-privbayes": ("dpmm", "dpmm_peer.py", "privbayes"), "mostly": ("mostly", "mostly_peer.py", None)}
SUMMARY = ("quality_overall", "column_shapes", "column_pair_trends", "column_pair_trends_all_pairs",
           "tstr_auc_hgb", "trtr_auc_hgb", "tstr_auc_logreg", "dcr_mia_auc", "exact_copy_share")


def make_spec(eps: float, delta: float, n_rows: int, seed: int, options: dict) -> dict:
    """spec.json from the curated public metadata (bounds of numerical columns, category lists)."""
    from synthrelease.metadata.load import load_metadata

    meta = load_metadata(BENCH / "metadata" / "adult.yaml")
    cols = {}
    for c in meta.model_columns:
        col = meta.columns[c]
        cols[c] = ({"kind": "numerical", "lower": col.min, "upper": col.max} if col.is_numerical and c != meta.target
                   else {"kind": "categorical", "categories": list(col.categories) if col.categories else None})
    return {"epsilon": eps, "delta": delta, "n_rows": n_rows, "seed": seed, "options": options, "columns": cols}


def run_peer(peer: str, train_csv: Path, spec: dict, work: Path, timeout_s: float) -> dict:
    """Run one peer's runner in its venv (own process group, killed on timeout); wall time and status."""
    venv, runner, arg = PEERS[peer]
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    syn = work / "synthetic.csv"
    cmd = [str(ENVS / venv / "bin" / "python"), str(HERE / runner), str(train_csv), str(work / "spec.json"), str(syn)]
    cmd += [arg] if arg else []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    with open(work / "runner.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"status": "timeout", "train_wall_s": round(time.perf_counter() - t0, 1)}
    wall = round(time.perf_counter() - t0, 1)
    if rc != 0 or not syn.exists():
        tail = (work / "runner.log").read_text().strip().splitlines()[-1:] or [""]
        return {"status": f"failed (rc {rc}): {tail[0][:200]}", "train_wall_s": wall}
    info_path = Path(str(syn) + ".info.json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {"status": "ok", "train_wall_s": wall, "info": info}


def score(train_csv: Path, splits: Path, syn: Path, out: Path) -> dict:
    subprocess.run([sys.executable, str(SHARED / "evaluate.py"), "--real-train", str(train_csv), "--real-holdout",
                    str(splits / "adult_holdout.csv"), "--synthetic", str(syn), "--target", "income", "--metadata",
                    str(splits / "adult_sdmeta.json"), "--out", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text())["summary"]


def _f(v, nd=3) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def markdown(command: str, rows: list[dict], tag: str) -> str:
    md = [f"# DP peers on adult{f' ({tag})' if tag else ''}", "", f"Command: `{command}`", "",
          "Split and scorer: ../shared/peers/split.py (stratified 80/20, seed 0; train 26,048 / holdout 6,513) and "
          "../shared/peers/evaluate.py, as PEERS.md. δ = 1e-5. Each peer trains on real-train only in its own venv "
          "(benchmarks/peers/setup_envs.sh) and samples as many rows as real-train. "
          "**Wall times are indicative only**: "
          "2-core machine, runs at nice 19 with 1 BLAS/OMP thread while other benchmarks (and, for the adult table, "
          "two of these runs at once: dpmm-aim beside the others) shared the cores; train wall s "
          "= the whole runner process (imports, preprocessing, fit, sampling, CSV).", "",
          "| system | seed | ε given | ε reported | train wall s | quality overall | shapes | pair trends (all pairs) "
          "| TSTR AUC (HGB) | TRTR AUC | DCR-MIA AUC | status / settings |", "|" + "---|" * 12]
    for r in rows:
        s, i = r.get("summary") or {}, r.get("info") or {}
        eps_rep = i.get("epsilon_reported")
        if i.get("epsilon_accounted") is not None:
            eps_rep = f"{_f(eps_rep, 2)} (accounted {_f(i['epsilon_accounted'])})"
        else:
            eps_rep = _f(eps_rep)
        md.append(f"| {r['peer']} | {r['seed']} | {r['epsilon']:g} | {eps_rep} | {r['train_wall_s']:.0f} | "
                  f"{_f(s.get('quality_overall'))} | {_f(s.get('column_shapes'))} | {_f(s.get('column_pair_trends'))} "
                  f"({_f(s.get('column_pair_trends_all_pairs'))}) | {_f(s.get('tstr_auc_hgb'))} | "
                  f"{_f(s.get('trtr_auc_hgb'))} | {_f(s.get('dcr_mia_auc'))} | {r['status']}; {r['settings']} |")
    md += ["", "Notes:", "",
           "* dpmm 0.1.9 (end-to-end DP pipelines): the PUBLIC bounds and category lists of "
           "benchmarks/metadata/adult.yaml go into dpmm's domain (no ε on bounds, no categories read off the data). "
           "dpmm's PrivTree binner still chooses the bin edges of the 6 numerical columns from the data: 10 % of ε "
           "(Laplace, split over those columns), the model (zCDP, δ) gets 90 %; ε reported = dpmm's own bookkeeping "
           "(model ε + binners' spent ε). PEERS.md's dpmm rows gave no bounds or categories (DP bounds from "
           "proc_epsilon, categories read off the data), hence not the same setting. Its exponential-mechanism "
           "choices use numpy's RandomState seeded with the seed; the measurement noise is OpenDP's.",
           "* MOSTLY AI engine 2.7.3 (TabularARGN, DP-SGD, Opacus RDP): takes no public bounds; value protection "
           "(DP bounds / rare-category filter) gets 0.1 of ε. The engine under-counts it (a numeric column with < 100 "
           "distinct values pays twice); 'accounted' charges that worst case for all 6 numerical columns plus the "
           "exact RDP ε of the kept checkpoint's accountant, and max_epsilon was lowered so that it stays ≤ ε. "
           "The noise multiplier is set so that 5 epochs (batch 256 = the engine's heuristic, Poisson sampling) "
           "fit the budget. Not DP-accounted: the engine's own 20 % validation split picks the checkpoint; "
           "digit/NaN flags of numeric columns. Rare categories resampled from non-rare ones (no _RARE_ token). "
           "torch 2.13.0+cpu, 1 thread."]
    groups: dict = {}
    for r in rows:
        if r.get("summary"):
            groups.setdefault((r["peer"], r["epsilon"]), []).append(r["summary"])
    multi = {k: v for k, v in groups.items() if len(v) > 1}
    if multi:
        md += ["", "Mean (min–max) over seeds:", "", "| system | ε | runs | quality overall | TSTR AUC (HGB) | "
               "DCR-MIA AUC |", "|---|---|---|---|---|---|"]
        for (peer, eps), ss in multi.items():
            cells = [f"{np.mean(v):.3f} ({min(v):.3f}–{max(v):.3f})" for v in
                     ([x[k] for x in ss] for k in ("quality_overall", "tstr_auc_hgb", "dcr_mia_auc"))]
            md.append(f"| {peer} | {eps:g} | {len(ss)} | " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"


def settings(peer: str, info: dict, options: dict) -> str:
    if peer == "mostly" and info:
        return (f"engine {info.get('epochs_run')} epochs, kept checkpoint epoch {info.get('checkpoint_epoch')}, "
                f"noise multiplier {info.get('noise_multiplier', 0):.3f}, batch {info.get('batch_size')}, "
                f"value protection ε {info.get('value_protection_epsilon')} (worst case "
                f"{_f(info.get('value_protection_epsilon_worst_case'), 4)})")
    if info:
        extra = f", max_model_size {info['max_model_size']}" if info.get("max_model_size") is not None else ""
        return (f"model ε {_f(info.get('epsilon_model'))} + binning ε {_f(info.get('epsilon_preprocessing'))} "
                f"({info.get('binner')}, bins {info.get('n_bins')}){extra}, gen {info.get('gen_kwargs') or 'defaults'}")
    aim = " (AIM: max_model_size 80, rounds 16·d, n_iters 1000 unless set)" if peer == "dpmm-aim" else ""
    return f"options {options or 'runner defaults'}{aim}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default="dpmm-mst,dpmm-aim,dpmm-privbayes,mostly", help="'' with --merge: table only")
    ap.add_argument("--epsilons", default="1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--tag", default="")
    ap.add_argument("--timeout-min", type=float, default=45.0)
    ap.add_argument("--rows", type=int, default=0, help="train on the first N training rows only (quick checks)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec['options'] entry")
    ap.add_argument("--merge", action="append", default=[], metavar="STEM", help="fold in rows of results/STEM.json")
    ap.add_argument("--splits", default=None, help="folder of split.py output (made if absent)")
    a = ap.parse_args()
    splits = Path(a.splits) if a.splits else Path(tempfile.mkdtemp(prefix="peer-splits-"))
    if not (splits / "adult_train.csv").exists():
        subprocess.run([sys.executable, str(SHARED / "split.py"), "--out", str(splits), "--names", "adult"], check=True)
    stem = "peers-adult" + (f"-{a.tag}" if a.tag else "")
    command = "nice -n 19 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/peers/run_peers.py " \
        + " ".join(sys.argv[1:])
    merged = [json.loads((RESULTS / f"{m}.json").read_text()) for m in a.merge]
    rows = [r for m in merged for r in m["rows"]]
    if merged:  # show the commands that produced the merged rows
        command = " ; ".join([m["command"] for m in merged] + ([command] if a.peers else []))
    sys.path.insert(0, str(BENCH))
    from key_values import key_values

    options = key_values(a.set)
    for peer in [p for p in a.peers.split(",") if p]:
        for eps in [float(e) for e in a.epsilons.split(",")]:
            for seed in [int(s) for s in a.seeds.split(",")]:
                work = Path(tempfile.mkdtemp(prefix=f"peer-{peer}-"))
                train = pd.read_csv(splits / "adult_train.csv")
                train_csv = splits / "adult_train.csv"
                if a.rows:
                    train_csv = work / "train.csv"
                    train.head(a.rows).to_csv(train_csv, index=False)
                n_rows = min(a.rows, len(train)) if a.rows else len(train)
                spec = make_spec(eps, a.delta, n_rows, seed, options)
                res = run_peer(peer, train_csv, spec, work, a.timeout_min * 60)
                summary = None
                if res["status"] == "ok":
                    try:
                        summary = score(train_csv, splits, work / "synthetic.csv", work / "eval.json")
                    except subprocess.CalledProcessError as e:
                        res["status"] = f"scoring failed: {e.stderr.decode().strip().splitlines()[-1][:200]}"
                info = res.get("info", {})
                row = {"peer": peer, "epsilon": eps, "delta": a.delta, "seed": seed, "rows": n_rows,
                       "options": options, "status": res["status"], "train_wall_s": res["train_wall_s"],
                       "settings": settings(peer, info, options), "summary": summary,
                       "info": {k: v for k, v in info.items() if k != "progress"}, "work": str(work)}
                if res["status"] == "timeout":
                    row["status"] = f"TIMEOUT after {a.timeout_min:g} min (killed, no output)"
                rows.append(row)
                write(stem, command, rows, a.tag)
                print(json.dumps({k: row[k] for k in ("peer", "epsilon", "seed", "status", "train_wall_s")}
                                 | {k: (summary or {}).get(k) for k in ("quality_overall", "tstr_auc_hgb",
                                                                        "dcr_mia_auc")}), flush=True)
    write(stem, command, rows, a.tag)


def write(stem: str, command: str, rows: list[dict], tag: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(command, rows, tag))


if __name__ == "__main__":
    main()
