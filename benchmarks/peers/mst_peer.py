"""Run smartnoise-synth's MST on one training table (run by small_tables.py --peer mst, in the
peers' own environment: smartnoise-synth 1.0.8 needs opacus 0.14, so it lives in a separate venv).

    PEER_PYTHON train.csv spec.json synthetic.csv

spec.json (public metadata only): {"epsilon", "delta", "n_rows", "columns": {name: {"kind":
"numerical", "lower", "upper"} | {"kind": "categorical"}}}. Numerical columns are cut into
10 equal-width bins between their PUBLIC bounds (no preprocessing ε, as PEERS.md's pbmc68k
runs), categorical columns label-encoded; MST spends the whole ε.
"""
import json
import sys

import pandas as pd
from snsynth import Synthesizer
from snsynth.transform import BinTransformer, LabelTransformer, TableTransformer

train_path, spec_path, out_path = sys.argv[1:4]
spec = json.loads(open(spec_path).read())
df = pd.read_csv(train_path)
transformers = []
for name in df.columns:
    col = spec["columns"][name]
    nullable = bool(df[name].isna().any())
    if col["kind"] == "numerical":
        transformers.append(BinTransformer(bins=10, lower=col["lower"], upper=col["upper"], nullable=nullable))
    else:
        df[name] = df[name].astype(str)
        transformers.append(LabelTransformer(nullable=nullable))
synth = Synthesizer.create("mst", epsilon=spec["epsilon"], delta=spec["delta"])
synth.fit(df, transformer=TableTransformer(transformers), preprocessor_eps=0.0)
synth.sample(spec["n_rows"]).to_csv(out_path, index=False)
