"""Train on a peers/split.py split and score with peers/evaluate.py (dev loop; not part of CI).

    python benchmarks/quick_eval.py adult 1.0 [key=value ...]   # TrainingConfig overrides
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.sampling import sample_frame
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.load import load_metadata
from synthrelease.transforms.encoders import TableEncoder

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPLITS = Path("/tmp/splits")


def main() -> None:
    name, eps = sys.argv[1], float(sys.argv[2])
    kw = {}
    for a in sys.argv[3:]:
        k, v = a.split("=")
        kw[k] = int(v) if v.lstrip("-").isdigit() else float(v) if v.replace(".", "").replace("e-", "").isdigit() else v
    meta = load_metadata(Path(__file__).parent / "metadata" / f"{name}.yaml")
    train = pd.read_csv(SPLITS / f"{name}_train.csv")
    cfg = TrainingConfig(**{"target_epsilon": eps, "target_delta": 1e-5, "batch_size": 500, **kw})
    t = time.time()
    model = train_dp_gan(train, TableEncoder(meta), cfg, condition_column=meta.target)
    secs = time.time() - t
    syn = sample_frame(model, len(train), seed=1)
    out = Path(f"/tmp/syn_{name}.csv")
    syn.to_csv(out, index=False)
    res = subprocess.run([sys.executable, str(SHARED / "peers" / "evaluate.py"), "--real-train",
                          str(SPLITS / f"{name}_train.csv"), "--real-holdout", str(SPLITS / f"{name}_holdout.csv"),
                          "--synthetic", str(out), "--target", meta.target, "--metadata",
                          str(SPLITS / f"{name}_sdmeta.json"), "--out", "/tmp/eval.json", "--skip", "privacy",
                          "--cache-dir", "/tmp/evalcache"], capture_output=True, text=True, check=True)
    s = json.loads(res.stdout.strip().splitlines()[-1])
    sigma = model.privacy.entries[-1].noise_multiplier
    print(json.dumps({"cfg": kw, "eps": round(model.privacy.epsilon, 3), "sigma": round(sigma, 2),
                      "train_s": round(secs, 1), "quality": round(s["quality_overall"], 3),
                      "shapes": round(s["column_shapes"], 3), "pairs": round(s["column_pair_trends"], 3),
                      "tstr": round(s["tstr_auc_hgb"], 3), "trtr": round(s["trtr_auc_hgb"], 3)}))


if __name__ == "__main__":
    main()
