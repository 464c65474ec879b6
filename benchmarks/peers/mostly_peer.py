"""Run MOSTLY AI's open-source engine (mostlyai-engine 2.7.3: TabularARGN, DP-SGD via Opacus, RDP
accountant) with differential privacy on one training table, in its own venv
(benchmarks/peers/setup_envs.sh mostly).

    PEER_PYTHON mostly_peer.py train.csv spec.json synthetic.csv

spec.json: as mst_peer.py ({"epsilon", "delta", "n_rows", "columns"}; optional "seed", "options").
The engine takes no public bounds or category lists: it learns them under its own DP "value
protection" (Laplace on per-column histograms). Budget, all inside the spec's total (ε, δ):

* value protection: options.vp_share (default 0.1, as PEERS.md's MOSTLY run) of ε, handed to the
  engine as value_protection_epsilon. The engine splits it over n_columns + 1 parts but spends a
  numeric column's part twice when the column has < 100 distinct values (DP bounds + DP rare-value
  filter) and does not count the second one; we charge that worst case for EVERY numeric column
  of the spec (public count, data-independent): vp_true = vp * (n_cols + n_numeric) / (n_cols + 1).
* DP-SGD: the engine stops when RDP ε + vp (its own count) exceeds max_epsilon and keeps the best
  checkpoint below it, so max_epsilon = ε − (vp_true − vp): its reported ε ≤ max_epsilon means our
  total ≤ ε. The noise multiplier is chosen (Opacus get_noise_multiplier, RDP) so that
  options.epochs (default 5, as PEERS.md) epochs of Poisson-sampled batches of options.batch_size
  (default: the engine's heuristic for small flat tables, 2^floor(log2(n_trn/64)) in [8, 512]) fit
  ε − vp_true; δ goes to training (the Laplace parts are pure ε).

Not DP-accounted by the engine (noted in the results): it keeps 20 % of the rows as its own
validation split, used (non-privately) to pick the checkpoint and for early stopping; numeric
digit counts / has-NaN flags come from the data. Rare categories are replaced by samples of the
non-rare ones (options.rare = "sample"; "constant" keeps the engine's _RARE_ token).
synthetic.csv.info.json: epsilon_reported = the engine's own (rounded) dp_eps at the checkpoint it kept;
epsilon_accounted = the exact RDP ε of that checkpoint's saved accountant + vp_true.
"""
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from mostlyai import engine
from mostlyai.engine.domain import DifferentialPrivacyConfig
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

train_path, spec_path, out_path = sys.argv[1:4]
spec = json.loads(open(spec_path).read())
opt = spec.get("options", {})
seed = spec.get("seed", 0)
torch.set_num_threads(int(opt.get("threads", 1)))
df = pd.read_csv(train_path)
eps, delta = float(spec["epsilon"]), float(spec["delta"])
n_cols = len(df.columns)
n_num = sum(spec["columns"][c]["kind"] == "numerical" for c in df.columns)
vp = float(opt.get("vp_share", 0.1)) * eps
vp_true = vp * (n_cols + n_num) / (n_cols + 1)
max_epsilon = eps - (vp_true - vp)
epochs = int(opt.get("epochs", 5))

ws = Path(opt.get("workspace") or tempfile.mkdtemp(prefix="mostly-ws-"))
engine.set_random_state(seed)
t0 = time.perf_counter()
engine.split(tgt_data=df, model_type="TABULAR", workspace_dir=ws)
dp = DifferentialPrivacyConfig(max_epsilon=max_epsilon, delta=delta, value_protection_epsilon=vp)
engine.analyze(value_protection=True, differential_privacy=dp, workspace_dir=ws)
engine.encode(workspace_dir=ws)
stats = json.loads((ws / "ModelStore" / "tgt-stats" / "stats.json").read_text())
n_trn = int(stats["no_of_training_records"])
batch = int(opt.get("batch_size") or min(512, max(8, 2 ** int(math.log2(max(1, n_trn / 64))))))
sample_rate = 1 / math.ceil(n_trn / batch)  # Opacus' Poisson rate: 1 / len(data loader)
steps = epochs * max(1, n_trn // batch)  # the engine's epoch = n_trn // batch logical steps
sigma = float(opt.get("noise_multiplier") or get_noise_multiplier(
    target_epsilon=eps - vp_true, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant="rdp"))
dp = DifferentialPrivacyConfig(max_epsilon=max_epsilon, delta=delta, value_protection_epsilon=vp,
                               noise_multiplier=sigma, max_grad_norm=float(opt.get("max_grad_norm", 1.0)))
engine.train(max_epochs=epochs, batch_size=batch, differential_privacy=dp, device="cpu", workspace_dir=ws,
             max_training_time=float(opt.get("max_training_minutes", 14400)))
fit_s = time.perf_counter() - t0
engine.generate(sample_size=int(spec["n_rows"]), device="cpu", workspace_dir=ws,
                rare_category_replacement_method=opt.get("rare", "sample").upper())
syn = pd.concat([pd.read_parquet(p) for p in sorted((ws / "SyntheticData").glob("*.parquet"))], ignore_index=True)
syn = syn[list(df.columns)]
for name, dtype in df.dtypes.items():  # the training dtypes (an integer column with NaNs stays float)
    col = pd.to_numeric(syn[name], errors="coerce") if pd.api.types.is_numeric_dtype(dtype) else syn[name]
    syn[name] = col if (pd.api.types.is_integer_dtype(dtype) and col.isna().any()) else col.astype(dtype)
syn.to_csv(out_path, index=False)

prog = pd.read_csv(ws / "ModelStore" / "model-data" / "progress-messages.csv")
kept = prog[prog["is_checkpoint"] == 1]
acc = RDPAccountant()  # the accountant saved with the kept checkpoint: its exact (unrounded) training ε
acc.load_state_dict(torch.load(ws / "ModelStore" / "model-data" / "dp-accountant.pt", weights_only=True))
eps_train = float(acc.get_epsilon(delta))
info = {"system": "mostly", "epsilon_given": eps, "delta": delta,
        "epsilon_reported": float(kept["dp_eps"].iloc[-1]) if len(kept) else None,
        "epsilon_training_rdp": eps_train, "epsilon_accounted": eps_train + vp_true,
        "value_protection_epsilon": vp, "value_protection_epsilon_worst_case": vp_true,
        "max_epsilon_given_to_engine": max_epsilon, "noise_multiplier": sigma, "batch_size": batch,
        "sample_rate": sample_rate, "epochs_planned": epochs, "n_trn_engine": n_trn,
        "n_val_engine": int(stats["no_of_validation_records"]),
        "epochs_run": float(prog["epoch"].max()),
        "checkpoint_epoch": float(kept["epoch"].iloc[-1]) if len(kept) else None,
        "encodings": {c: s.get("encoding_type") for c, s in stats["columns"].items()},
        "progress": prog[["epoch", "is_checkpoint", "trn_loss", "val_loss", "dp_eps"]].to_dict("records"),
        "seed": seed, "fit_seconds": round(fit_s, 1), "workspace": str(ws)}
open(out_path + ".info.json", "w").write(json.dumps(info, indent=1, default=str))
print(json.dumps({k: info[k] for k in ("system", "epsilon_reported", "epsilon_accounted", "noise_multiplier",
                                       "checkpoint_epoch", "fit_seconds")}))
