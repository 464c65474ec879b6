"""Run dpmm 0.1.9 (MST, AIM or PrivBayes pipeline) on one training table, in dpmm's own venv
(benchmarks/peers/setup_envs.sh dpmm; dpmm pins numpy 1.26.4 / pandas 2.1.0 / scikit-learn 1.5.0).

    PEER_PYTHON dpmm_peer.py train.csv spec.json synthetic.csv [mst|aim|privbayes]

spec.json (public metadata only, as mst_peer.py): {"epsilon", "delta", "n_rows", "columns": {name:
{"kind": "numerical", "lower", "upper"} | {"kind": "categorical", "categories": [...]?}}}; optional
"seed", "model" (if no 4th argument) and "options" (below).

Budget: the total (ε, δ) of the spec. The PUBLIC bounds go into dpmm's domain, so no ε is spent on
bounds; the categories of the spec, when given, too (else dpmm reads them off the data and warns
"PrivacyLeakage"). dpmm's default end-to-end binner (PrivTree) still spends ε on choosing the bin
edges of numerical columns (Laplace, pure ε): options.proc_share (default 0.1, as PEERS.md's dpmm
runs) of ε goes there, split evenly over the numerical columns, and the model gets the rest
(zCDP with δ). options.binner = "uniform": equal-width bins between the public bounds, no
preprocessing ε, the model gets all of ε. The ε reported (synthetic.csv.info.json) is dpmm's own
bookkeeping: model ε + the ε its binners say they spent.

Other options: n_bins ("auto"), n_iters (model default), compress (true), max_model_size (AIM: 80,
the AIM paper's default; the pipeline would otherwise pass None = no limit), rounds (AIM),
degree (AIM / PrivBayes, 2).
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from dpmm.pipelines import AIMPipeline, MSTPipeline, PrivBayesPipeline

PIPES = {"mst": MSTPipeline, "aim": AIMPipeline, "privbayes": PrivBayesPipeline}

train_path, spec_path, out_path = sys.argv[1:4]
spec = json.loads(open(spec_path).read())
model = (sys.argv[4] if len(sys.argv) > 4 else spec.get("model", "mst")).lower()
opt = spec.get("options", {})
seed = spec.get("seed", 0)
df = pd.read_csv(train_path)
dtypes = df.dtypes

domain, no_categories = {}, []
for name in df.columns:
    col = spec["columns"][name]
    if col["kind"] == "numerical":
        domain[name] = {"lower": col["lower"], "upper": col["upper"]}
    else:
        if pd.api.types.is_numeric_dtype(df[name]):  # a categorical code column: dpmm's encoder needs strings
            df[name] = df[name].astype(str)
        if col.get("categories") is not None:
            domain[name] = {"categories": [str(c) for c in col["categories"]]}
        else:
            no_categories.append(name)

eps, delta = float(spec["epsilon"]), float(spec["delta"])
binner = opt.get("binner", "priv-tree")
n_num = sum(spec["columns"][c]["kind"] == "numerical" for c in df.columns)
proc_eps = float(opt.get("proc_share", 0.1)) * eps if binner == "priv-tree" and n_num else None
gen_kwargs = {k: opt[k] for k in ("n_iters", "rounds", "degree") if k in opt}
max_model_size = opt.get("max_model_size", 80 if model == "aim" else None)
pipe = PIPES[model](epsilon=eps - (proc_eps or 0.0), delta=delta, compress=bool(opt.get("compress", True)),
                    max_model_size=max_model_size, n_jobs=1, gen_kwargs=gen_kwargs, binner_type=binner,
                    proc_epsilon=proc_eps, n_bins=opt.get("n_bins", "auto"))
t0 = time.perf_counter()
pipe.fit(df, domain=domain, random_state=seed)
fit_s = time.perf_counter() - t0
syn = pipe.generate(n_records=int(spec["n_rows"]), random_state=seed + 1)
syn = syn[list(df.columns)]
for name, dtype in dtypes.items():  # the training dtypes (categorical code columns were made strings above)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_numeric_dtype(syn[name]):
        syn[name] = pd.to_numeric(syn[name])
    syn[name] = syn[name].astype(dtype)
syn.to_csv(out_path, index=False)

spent_proc = {c: v for c, v in (pipe.proc.spent_epsilon if pipe.proc is not None else {}).items() if v}
info = {"system": f"dpmm-{model}", "epsilon_given": eps, "delta": delta,
        "epsilon_reported": (eps - (proc_eps or 0.0)) + float(sum(spent_proc.values())),
        "epsilon_model": eps - (proc_eps or 0.0), "epsilon_preprocessing": proc_eps or 0.0,
        "epsilon_preprocessing_spent_per_column": spent_proc,
        "binner": binner, "n_bins": {c: int(v) for c, v in pipe.proc.n_bins.items()} if pipe.proc else None,
        "max_model_size": max_model_size, "gen_kwargs": gen_kwargs, "seed": seed,
        "categories_read_off_data": no_categories, "fit_seconds": round(fit_s, 1),
        "notes": "public bounds in dpmm's domain (no ε on bounds)"
                 + ("; PrivTree bin edges paid from preprocessing ε" if proc_eps else "; no preprocessing ε")}
open(out_path + ".info.json", "w").write(json.dumps(info, indent=1, default=lambda o: o.item()
                                                   if isinstance(o, np.generic) else str(o)))
print(json.dumps({k: info[k] for k in ("system", "epsilon_reported", "fit_seconds")}))
