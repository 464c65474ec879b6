"""Small-cohort fidelity benchmark (run by hand): the bundled demo table and public clinical cohorts.

Data: ``demo`` = the bundled Breast Cancer Wisconsin table (569 rows, 30 measurements,
target diagnosis); ``diabetes`` = scikit-learn's diabetes table in raw units, made into a
clinical table (benchmarks/metadata/diabetes.yaml: 442 patients, 11 columns + target
high_progression = progression > 140); ``whas500``, ``gbsg2`` and ``gse7390`` (a 198-patient
breast-cancer expression cohort, 76 genes) from benchmarks/survival_tables.py, each with its
public metadata in benchmarks/metadata/. Split as ``../shared/peers/split.py`` splits
(stratified 80/20, random_state 0); scored by ``../shared/peers/evaluate.py`` (quality, TSTR)
plus what a clinician notices at once, computed here on the same split:

* strong correlations: every numerical pair with |r| ≥ 0.5 in the real training rows —
  share whose synthetic r has the same sign, share with the same sign AND within 0.3 of the
  real r (``strong_kept``, the clinician's check), and mean |r_syn − r_real|;
* spread: per numerical column std_syn / std_real — median, and share within 25 % of 1;
* PRDC precision and coverage (synthrelease's fidelity audit, metadata-only embedding).

Each run trains with ``pipeline.default_training_config`` (plus ``--set`` overrides), fresh
DP noise (as a release), the public seed fixing initialisation and latent noise.

    python benchmarks/small_tables.py [--datasets demo,diabetes] [--epsilons 1] [--seeds 0,1,2]
        [--set KEY=VALUE ...] [--tag TAG] [--peer mst --peer-python VENV/bin/python]

``--peer mst`` scores smartnoise-synth 1.0.8's MST instead (benchmarks/peers/mst_peer.py, run in
a venv of its own: ``pip install smartnoise-synth --no-deps`` plus mbi, disjoint-set, opendp,
smartnoise-sql, antlr4-python3-runtime==4.9.3, pyyaml, sqlalchemy, "pandas<3");
``--peer dpmm-mst`` / ``dpmm-aim`` / ``dpmm-privbayes`` score dpmm 0.1.9's models
(benchmarks/peers/dpmm_peer.py in the venv of ``benchmarks/peers/setup_envs.sh``: public bounds
and category lists in dpmm's domain, 10 % of ε on its PrivTree bin edges).

``--metadata drafted``: instead of the curated ``benchmarks/metadata/NAME.yaml``, the draft of
``synthrelease metadata infer --target TARGET`` on the training split (bounds, categories,
transforms, zero inflation and decimals as drafted), accepted as reviewed without edits — a
new user's path. Peers keep the curated bounds. Rows record which metadata they used.

Writes benchmarks/results/small_tables[-TAG].{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from drafting import drafted_metadata
from key_values import key_values

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
RESULTS = HERE / "results"


def load(name: str) -> tuple[pd.DataFrame, object]:
    """The table and its public metadata."""
    from synthrelease.io.formats import read_table
    from synthrelease.metadata.load import load_metadata

    if name == "demo":
        data = resources.files("synthrelease") / "data"
        return (read_table(Path(str(data / "breast_cancer.csv"))),
                load_metadata(Path(str(data / "breast_cancer.metadata.yaml"))))
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        raw = load_diabetes(scaled=False, as_frame=True).frame
        df = pd.DataFrame({
            "age": raw["age"].astype(int), "sex": raw["sex"].astype(int), "bmi": raw["bmi"], "bp": raw["bp"],
            "total_chol": raw["s1"], "ldl": raw["s2"], "hdl": raw["s3"], "tch_hdl_ratio": raw["s4"],
            "log_triglycerides": raw["s5"], "glucose": raw["s6"], "progression": raw["target"],
            "high_progression": np.where(raw["target"] > 140, "yes", "no")})
        return df, load_metadata(HERE / "metadata" / "diabetes.yaml")
    if name in ("whas500", "gbsg2", "gse7390"):
        from survival_tables import load_table

        return load_table(name), load_metadata(HERE / "metadata" / f"{name}.yaml")
    raise SystemExit(f"unknown dataset {name}")


def split(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """As ../shared/peers/split.py: stratified 80/20, random_state 0."""
    from sklearn.model_selection import train_test_split

    train, hold = train_test_split(df, test_size=0.2, random_state=0, stratify=df[target])
    return train.reset_index(drop=True), hold.reset_index(drop=True)


def clinician_metrics(train: pd.DataFrame, syn: pd.DataFrame, meta) -> dict:
    """Strong-correlation signs and error, spread ratios, PRDC precision/coverage."""
    from synthrelease.audits.fidelity import run_fidelity

    num = [c for c in meta.model_columns if meta.columns[c].is_numerical]
    real_r = train[num].astype(float).corr().to_numpy()
    syn_r = syn[num].astype(float).corr().to_numpy()
    iu = np.triu_indices(len(num), 1)
    strong = np.abs(real_r[iu]) >= 0.5
    rr, sr = real_r[iu][strong], np.nan_to_num(syn_r[iu][strong])
    ratio = (syn[num].astype(float).std() / train[num].astype(float).std()).to_numpy()
    fid = run_fidelity(train, syn, meta, seed=0)
    return {"strong_pairs": int(strong.sum()),
            "strong_sign_agreement": float(np.mean(np.sign(sr) == np.sign(rr))) if strong.any() else None,
            "strong_kept": float(np.mean((np.sign(sr) == np.sign(rr)) & (np.abs(sr - rr) <= 0.3)))
            if strong.any() else None,
            "strong_abs_error": float(np.mean(np.abs(sr - rr))) if strong.any() else None,
            "std_ratio_median": float(np.median(ratio)),
            "std_within_25pct": float(np.mean(np.abs(ratio - 1) <= 0.25)),
            "prdc_precision": fid.metrics.get("prdc_precision"), "prdc_coverage": fid.metrics.get("prdc_coverage")}


PEER_RUNNERS = {"mst": ("mst_peer.py",), "dpmm-mst": ("dpmm_peer.py", "mst"), "dpmm-aim": ("dpmm_peer.py", "aim"),
                "dpmm-privbayes": ("dpmm_peer.py", "privbayes")}
"""Peer name: runner in benchmarks/peers/ and its extra argument (smartnoise's MST, dpmm's models)."""


def run_peer(peer: tuple[str, str], train: pd.DataFrame, meta, eps: float, delta: float,
             work: Path) -> tuple[pd.DataFrame, float]:
    """Train a peer (``(name, python)``, a key of PEER_RUNNERS) in its own environment on the
    training rows with the PUBLIC bounds and category lists; returns its synthetic rows and ε."""
    name, python = peer
    if name not in PEER_RUNNERS:
        raise SystemExit(f"unknown peer {name}: one of {', '.join(PEER_RUNNERS)}")
    cols = meta.model_columns
    spec = {"epsilon": eps, "delta": delta, "n_rows": len(train), "columns": {
        c: ({"kind": "numerical", "lower": meta.columns[c].min, "upper": meta.columns[c].max}
            if meta.columns[c].is_numerical and c != meta.target else
            {"kind": "categorical", "categories": [str(v) for v in meta.columns[c].canonical_categories()]})
        for c in cols}}
    (work / "peer_spec.json").write_text(json.dumps(spec))
    train[cols].to_csv(work / "peer_train.csv", index=False)
    runner, *extra = PEER_RUNNERS[name]
    subprocess.run([python, str(HERE / "peers" / runner), str(work / "peer_train.csv"),
                    str(work / "peer_spec.json"), str(work / "peer_synthetic.csv"), *extra], check=True)
    syn = pd.read_csv(work / "peer_synthetic.csv")
    for c in cols:
        if not meta.columns[c].is_numerical:
            syn[c] = syn[c].astype(train[c].dtype)
    return syn, eps


def run_one(name: str, eps: float, seed: int, overrides: dict, work: Path,
            peer: tuple[str, str] | None = None, metadata: str = "curated") -> dict:
    """Train, sample, score with the peers' evaluator and the clinician metrics."""
    from synthrelease.api import default_training_config
    from synthrelease.gan.sampling import sample_frame
    from synthrelease.gan.trainer import fit_dp_synthesizer
    from synthrelease.privacy.parameters import default_delta

    df, meta = load(name)
    train, hold = split(df, meta.target)
    # the model trains on the drafted metadata; scoring always reads the curated one, so numbers compare
    model_meta = drafted_metadata(train, name, meta.target) if metadata == "drafted" and not peer else meta
    cfg = default_training_config(len(train), epsilon=eps, delta=min(1e-5, default_delta(len(train))), seed=seed,
                                  metadata=model_meta, condition_column=meta.target)
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    t0 = time.perf_counter()
    if peer:
        syn, spent = run_peer(peer, train, meta, eps, cfg.target_delta, work)
    else:
        model = fit_dp_synthesizer(train, model_meta, cfg, condition_column=meta.target)
        syn, spent = sample_frame(model, len(train), seed=seed + 1), model.privacy.epsilon
    train_s = time.perf_counter() - t0
    for part, frame in (("train", train), ("holdout", hold), ("synthetic", syn)):
        frame[meta.model_columns].to_csv(work / f"{part}.csv", index=False)  # identifiers are not synthesised
    sdmeta = {"columns": {c: {"sdtype": "numerical" if meta.columns[c].is_numerical and c != meta.target
                              else "categorical"} for c in meta.model_columns}}
    (work / "sdmeta.json").write_text(json.dumps(sdmeta))
    subprocess.run([sys.executable, str(SHARED / "peers" / "evaluate.py"), "--real-train", str(work / "train.csv"),
                    "--real-holdout", str(work / "holdout.csv"), "--synthetic", str(work / "synthetic.csv"),
                    "--target", meta.target, "--metadata", str(work / "sdmeta.json"), "--out",
                    str(work / "eval.json")], check=True, capture_output=True)
    summary = json.loads((work / "eval.json").read_text())["summary"]
    return {"dataset": name, "epsilon": eps, "seed": seed, "epsilon_spent": spent, "system": peer[0] if peer else
            "synthrelease",
            "train_seconds": round(train_s, 1), "overrides": overrides, "metadata": "curated" if peer else metadata,
            "kernel": cfg.embedding_kernel if cfg.embedding_epsilon_share > 0 else "marginals",
            "marginal_share": cfg.marginal_epsilon_share, "embedding_share": cfg.embedding_epsilon_share,
            **{k: summary[k] for k in ("quality_overall", "column_shapes", "column_pair_trends", "tstr_auc_hgb",
                                       "trtr_auc_hgb", "dcr_mia_auc")},
            **clinician_metrics(train, syn, meta)}


COLUMNS = ("quality_overall", "tstr_auc_hgb", "strong_sign_agreement", "strong_kept", "strong_abs_error",
           "std_ratio_median", "std_within_25pct", "prdc_precision", "prdc_coverage")


def _fmt(values: list) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    return f"{np.mean(vals):.3f} ({min(vals):.3f}–{max(vals):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="demo,diabetes")
    ap.add_argument("--epsilons", default="1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="")
    ap.add_argument("--peer", default="", help="run a peer instead: " + ", ".join(PEER_RUNNERS)
                    + " (needs --peer-python)")
    ap.add_argument("--peer-python", default="", help="python of the peer's venv (benchmarks/peers/setup_envs.sh)")
    ap.add_argument("--metadata", choices=("curated", "drafted"), default="curated",
                    help="curated: benchmarks/metadata/NAME.yaml; drafted: metadata infer on the training split")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    overrides = key_values(a.set)
    rows = []
    for name in a.datasets.split(","):
        for eps in [float(e) for e in a.epsilons.split(",")]:
            for seed in [int(s) for s in a.seeds.split(",")]:
                row = run_one(name, eps, seed, overrides, Path(tempfile.mkdtemp(prefix=f"small-{name}-")),
                              (a.peer, a.peer_python) if a.peer else None, a.metadata)
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("dataset", "epsilon", "seed", *COLUMNS)}), flush=True)
    stem = "small_tables" + (f"-{a.tag}" if a.tag else "")
    command = "python benchmarks/small_tables.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    md = [f"# Small-cohort fidelity ({a.tag or 'shipped defaults'})", "", f"Command: `{command}`. "
          f"Metadata: {'curated' if a.peer or a.metadata == 'curated' else 'drafted (metadata infer, unedited)'}. "
          "Peers' evaluator for quality and TSTR AUC (HGB); strong pairs = numerical pairs with real |r| ≥ 0.5; "
          "std ratio = synthetic / real per numerical column. Mean (min–max) over seeds.", "",
          "| dataset | ε | runs | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (3 + len(COLUMNS))]
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["epsilon"]), []).append(r)
    for (name, eps), rs in groups.items():
        md.append(f"| {name} | {eps:g} | {len(rs)} | " + " | ".join(_fmt([r[c] for r in rs]) for c in COLUMNS) + " |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
