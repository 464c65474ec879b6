"""Probes behind README's "what moved the autoregressive model" (run by hand, one at a time).

    OMP_NUM_THREADS=2 python benchmarks/sequence_probe.py dp --eps 3 [--set ar_prior_budget_share=0.3 n_steps=3 ...]
    OMP_NUM_THREADS=2 python benchmarks/sequence_probe.py exact

``dp``: one release of the sequence modality's autoregressive model on amp_vs_uniprot (the
split of ``benchmarks/sequences.py``) with ``SequenceTrainingConfig`` overrides; prints the
holdout letter NLL and the sequence audits (TSTR, k-mer JS, length TV, copies, MIA).
``exact``: non-private references — each training peptide's letters shuffled, i.i.d. letters
of its label's composition, and exact per-label order-1 / order-2 Markov chains — scored the
same way (the ceiling a DP release of those statistics approaches). Prints only.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd
import torch
from sequences import DATA, METADATA
from sklearn.model_selection import train_test_split

from synthrelease.metadata.alphabets import ALPHABETS
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.sequence import autoregressive as ar
from synthrelease.modalities.sequence import modality as sm
from synthrelease.modalities.sequence.audits import run_sequence_audits

SHOWN = ("tstr_auc", "kmer2_js", "kmer3_js", "length_tv", "real_vs_synthetic_accuracy", "near_copy_share_train",
         "nn_identity_mia_auc")


def _split() -> tuple[Metadata, pd.DataFrame, pd.DataFrame]:
    meta = Metadata.model_validate(METADATA)
    df = sm.validate(pd.read_csv(DATA), meta, str(DATA))
    train, hold = train_test_split(df, test_size=0.2, random_state=0, stratify=df["label"])
    return meta, train.reset_index(drop=True), hold.reset_index(drop=True)


def _score(name: str, train: pd.DataFrame, hold: pd.DataFrame, syn: pd.DataFrame) -> None:
    r = run_sequence_audits(train, hold, syn, sequence_column="sequence", label_column="label",
                            alphabet=ALPHABETS["protein"], seed=0)
    print(name, {k: round(r.metrics[k], 3) for k in SHOWN if r.metrics.get(k) is not None}, flush=True)


def dp(eps: float, overrides: list[str]) -> None:
    meta, train, hold = _split()
    cfg = sm.default_config(len(train), epsilon=eps, delta=1e-5, seed=0, metadata=meta, condition_column="label")
    changes = {}
    for item in overrides:
        key, value = item.split("=")
        kind = type(getattr(cfg, key))
        changes[key] = kind(float(value)) if kind in (int, float) else value
    cfg = dataclasses.replace(cfg, **changes)
    started = time.perf_counter()
    model = sm.fit(train, meta, cfg, condition_column="label")
    inner = model.inner
    tokens = inner.vocabulary.encode(list(hold.sequence), list(hold.label))
    with torch.no_grad():
        nll = float(ar._record_loss(inner.network, tokens).sum() * tokens.shape[1]
                    / sum(len(s) + 2 for s in hold.sequence))
    print(f"eps {eps} {changes} fit {time.perf_counter() - started:.0f} s, holdout NLL/token {nll:.3f}")
    _score("autoregressive", train, hold, sm.sample(model, len(train), seed=1))


def _markov(train: pd.DataFrame, order: int, rng: np.random.Generator) -> pd.DataFrame:
    letters = ALPHABETS["protein"]
    index = {c: i for i, c in enumerate(letters)}
    out = train.copy()
    for label in train.label.unique():
        rows = train.label == label
        counts: dict[str, np.ndarray] = {}
        for seq in train.sequence[rows]:
            ctx = "^" * order
            for ch in seq:
                counts.setdefault(ctx, np.zeros(len(letters)))[index[ch]] += 1
                ctx = (ctx + ch)[-order:]
        drawn = []
        for seq in train.sequence[rows]:
            ctx, letters_out = "^" * order, []
            for _ in range(len(seq)):
                c = counts.get(ctx, np.ones(len(letters))) + 0.5
                ch = letters[rng.choice(len(letters), p=c / c.sum())]
                letters_out.append(ch)
                ctx = (ctx + ch)[-order:]
            drawn.append("".join(letters_out))
        out.loc[rows, "sequence"] = drawn
    return out


def exact() -> None:
    _, train, hold = _split()
    rng = np.random.default_rng(0)
    shuffled = train.copy()
    shuffled["sequence"] = ["".join(rng.permutation(list(s))) for s in train.sequence]
    _score("shuffled within each peptide", train, hold, shuffled)
    iid = train.copy()
    for label in train.label.unique():
        rows = train.label == label
        pool = np.array(list("".join(train.sequence[rows])))
        iid.loc[rows, "sequence"] = ["".join(rng.choice(pool, len(s))) for s in train.sequence[rows]]
    _score("i.i.d. letters of the label's composition", train, hold, iid)
    for order in (1, 2):
        _score(f"exact order-{order} Markov", train, hold, _markov(train, order, rng))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", choices=("dp", "exact"))
    ap.add_argument("--eps", type=float, default=3.0)
    ap.add_argument("--set", nargs="*", default=[])
    a = ap.parse_args()
    torch.set_num_threads(2)
    dp(a.eps, a.set) if a.probe == "dp" else exact()


if __name__ == "__main__":
    main()
