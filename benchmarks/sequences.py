"""Sequence releases on amp_vs_uniprot (run by hand): the DP-GAN against a simple DP baseline.

Data: ``../shared/data/amp_vs_uniprot.csv`` (5,200 peptides, AMP vs random UniProt;
modlAMP, BSD-3), split stratified 80/20 with random_state 0 (as ``peers/split.py`` splits),
public metadata: protein alphabet, length 7–50 (the 5 % of AMPs longer than 50 are
clipped to 50 on both sides, a public rule), label {AMP, UniProt}.

Systems, each trained on the 4,160 training peptides at ε ∈ {1, 3, 10} (δ = 1e-5) and
"∞" (ε = 10⁶: DP-SGD with negligible noise, the non-private reference):

* ``autoregressive``: synthrelease's sequence modality as a release trains it by default (the
  autoregressive DP language model and its DP (label, length) histogram);
* ``gan``: the modality's positional DP-GAN (conv1d critic, DP marginals);
* ``markov``: one Gaussian release of per-label order-2 transition counts in three
  relative-position bands plus composition, lengths and label counts (sensitivity 2),
  sampled left to right;
* ``baseline``: one Gaussian release of, per label, the amino-acid composition (each
  sequence adds its letter fractions: L2 ≤ 1) and the length histogram (one count), plus
  the label counts — sensitivity √3 — then letters drawn i.i.d. from the noisy per-label
  composition at a length drawn from the noisy per-label length histogram.

Scored with ``synthrelease.modalities.sequence.audits.run_sequence_audits`` against the real train
and holdout (TSTR/TRTR: k-mer logistic regression, AUC on the real holdout).

    OMP_NUM_THREADS=2 python benchmarks/sequences.py [--epsilons 1,3,10,inf] [--seeds 0] [--steps N]
        [--systems baseline,markov,autoregressive,gan] [--tag NAME]

Writes benchmarks/results/sequences.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "amp_vs_uniprot.csv"
RESULTS = HERE / "results"
METADATA = {"version": 1, "name": "amp_vs_uniprot", "reviewed": True, "target": "label",
            "columns": {"sequence": {"type": "sequence", "alphabet": "protein", "min_length": 7, "max_length": 50,
                                     "too_long": "clip"},
                        "label": {"type": "categorical", "categories": ["AMP", "UniProt"]}}}
COLUMNS = ("tstr_auc", "trtr_auc", "kmer2_js", "kmer3_js", "composition_tv", "length_tv", "unique_share",
           "exact_copy_share_train", "near_copy_share_train", "near_copy_share_holdout", "nn_identity_mia_auc",
           "descriptor_ks_hydrophobicity", "descriptor_ks_net_charge", "train_seconds")


def baseline(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int) -> pd.DataFrame:
    """DP per-label composition + length histogram (one Gaussian release), sampled i.i.d."""
    from synthrelease.metadata.alphabets import ALPHABETS
    from synthrelease.privacy.accounting import histogram_noise_for
    from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

    letters = ALPHABETS["protein"]
    labels = METADATA["columns"]["label"]["categories"]
    lengths = np.arange(7, 51)
    comp = np.zeros((len(labels), len(letters)))
    hist = np.zeros((len(labels), len(lengths)))
    counts = np.zeros(len(labels))
    for seq, lab in zip(train["sequence"], train["label"], strict=True):
        k = labels.index(lab)
        for ch in seq:
            comp[k, letters.index(ch)] += 1.0 / len(seq)
        hist[k, len(seq) - 7] += 1
        counts[k] += 1
    sigma = histogram_noise_for(epsilon=epsilon, delta=delta).noise_multiplier * np.sqrt(3)
    gen = PrivateRandomness().torch("baseline")
    noisy = [np.clip(a + gaussian_noise(a.shape, sigma, gen).numpy(), 0, None) for a in (comp, hist, counts)]
    comp, hist, counts = (x + 1e-6 for x in noisy)
    rng = np.random.default_rng(seed)
    label_idx = rng.choice(len(labels), size=n_rows, p=counts / counts.sum())
    seqs = []
    for k in label_idx:
        n = int(rng.choice(lengths, p=hist[k] / hist[k].sum()))
        seqs.append("".join(rng.choice(list(letters), size=n, p=comp[k] / comp[k].sum())))
    return pd.DataFrame({"sequence": seqs, "label": [labels[k] for k in label_idx]})


def markov(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int,
           bands: int = 3) -> pd.DataFrame:
    """DP per-label order-2 Markov chain: one Gaussian release of, per label, the label count, the
    length histogram, the composition (letter fractions, L2 ≤ 1) and the 3-mer transition counts
    (context of two symbols, '^' before the start, then the next letter or the end '$') in each of
    ``bands`` relative-position bands, each sequence's counts divided by their L2 norm (≤ 1):
    sensitivity 2. Each noisy next-symbol row is clipped at 0 and mixed with the noisy composition
    (weight 1 count), then sampled left to right."""
    from synthrelease.metadata.alphabets import ALPHABETS
    from synthrelease.privacy.accounting import histogram_noise_for
    from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

    letters = ALPHABETS["protein"]
    labels = METADATA["columns"]["label"]["categories"]
    lengths = np.arange(7, 51)
    a = len(letters)
    ctx = a + 1  # letters and '^'
    comp = np.zeros((len(labels), a))
    hist = np.zeros((len(labels), len(lengths)))
    counts = np.zeros(len(labels))
    trans = np.zeros((len(labels), bands, ctx, ctx, a + 1))  # next: letters and '$'
    for seq, lab in zip(train["sequence"], train["label"], strict=True):
        k = labels.index(lab)
        codes = [letters.index(ch) for ch in seq]
        for c in codes:
            comp[k, c] += 1.0 / len(seq)
        hist[k, len(seq) - 7] += 1
        counts[k] += 1
        mine = np.zeros((bands, ctx, ctx, a + 1))
        padded = [a, a, *codes, a]  # '^' '^' letters, then '$' (index a on the next axis)
        for t in range(2, len(padded)):
            band = min(bands - 1, (t - 2) * bands // (len(codes) + 1))
            mine[band, padded[t - 2], padded[t - 1], padded[t]] += 1.0
        trans[k] += mine / np.linalg.norm(mine)
    sigma = histogram_noise_for(epsilon=epsilon, delta=delta).noise_multiplier * 2.0
    gen = PrivateRandomness().torch("markov")
    comp, hist, counts, trans = (np.clip(x + gaussian_noise(x.shape, sigma, gen).numpy(), 0, None)
                                 for x in (comp, hist, counts, trans))
    comp, hist, counts = comp + 1e-6, hist + 1e-6, counts + 1e-6
    rng = np.random.default_rng(seed)
    label_idx = rng.choice(len(labels), size=n_rows, p=counts / counts.sum())
    seqs = []
    for k in label_idx:
        n = int(rng.choice(lengths, p=hist[k] / hist[k].sum()))
        prior = comp[k] / comp[k].sum()
        out = [a, a]
        for t in range(n):
            band = min(bands - 1, t * bands // (n + 1))
            row = trans[k, band, out[-2], out[-1], :a]
            p = row + prior  # one pseudo-count of the composition
            out.append(int(rng.choice(a, p=p / p.sum())))
        seqs.append("".join(letters[c] for c in out[2:]))
    return pd.DataFrame({"sequence": seqs, "label": [labels[k] for k in label_idx]})


def autoregressive(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int,
                   steps: int | None, meta) -> pd.DataFrame:
    """The sequence modality's default generator, as a release trains it: the autoregressive DP
    language model (synthrelease.modalities.sequence.autoregressive)."""
    from synthrelease.modalities.sequence import modality as sm

    cfg = sm.default_config(len(train), epsilon=epsilon, delta=delta, seed=seed, metadata=meta,
                            condition_column="label", n_steps=steps)
    model = sm.fit(train, meta, cfg, condition_column="label")
    return sm.sample(model, n_rows, seed=seed + 1)


def gan(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int, steps: int | None,
        meta) -> pd.DataFrame:
    from synthrelease.modalities.sequence import modality as sm

    cfg = sm.default_config(len(train), epsilon=epsilon, delta=delta, seed=seed, metadata=meta,
                            condition_column="label", n_steps=steps)
    model = sm.fit(train, meta, dataclasses.replace(cfg, generator="positional_gan"), condition_column="label")
    return sm.sample(model, n_rows, seed=seed + 1)


def main() -> None:
    from sklearn.model_selection import train_test_split

    from synthrelease.metadata.alphabets import ALPHABETS
    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.sequence import modality as sm
    from synthrelease.modalities.sequence.audits import run_sequence_audits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", default="1,3,10,inf")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--systems", default="baseline,gan")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    meta = Metadata.model_validate(METADATA)
    df = sm.validate(pd.read_csv(DATA), meta, str(DATA))
    train, hold = train_test_split(df, test_size=0.2, random_state=0, stratify=df["label"])
    train, hold = train.reset_index(drop=True), hold.reset_index(drop=True)
    rows = []
    for eps_text in a.epsilons.split(","):
        eps = 1e6 if eps_text == "inf" else float(eps_text)
        for system in a.systems.split(","):
            for seed in [int(s) for s in a.seeds.split(",")]:
                t0 = time.perf_counter()
                if system == "baseline":
                    syn = baseline(train, len(train), epsilon=eps, delta=1e-5, seed=seed)
                elif system == "markov":
                    syn = markov(train, len(train), epsilon=eps, delta=1e-5, seed=seed)
                elif system == "autoregressive":
                    syn = autoregressive(train, len(train), epsilon=eps, delta=1e-5, seed=seed, steps=a.steps,
                                         meta=meta)
                else:
                    syn = gan(train, len(train), epsilon=eps, delta=1e-5, seed=seed, steps=a.steps, meta=meta)
                seconds = time.perf_counter() - t0
                res = run_sequence_audits(train, hold, syn, sequence_column="sequence", label_column="label",
                                          alphabet=ALPHABETS["protein"], seed=seed)
                row = {"system": system, "epsilon": eps_text, "seed": seed, "train_seconds": round(seconds, 1),
                       "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                       **{k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}}
                rows.append(row)
                print(json.dumps({k: row.get(k) for k in ("system", "epsilon", "seed", *COLUMNS)}), flush=True)
    stem = "sequences" + (f"-{a.tag}" if a.tag else "")
    command = "OMP_NUM_THREADS=2 python benchmarks/sequences.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    md = [f"# Sequence releases on amp_vs_uniprot ({a.tag or 'shipped defaults'})", "",
          f"Command: `{command}` (2 CPU cores). 4,160 training / 1,040 holdout peptides; δ = 1e-5; "
          "ε = inf means ε = 10⁶ (negligible noise). Mean over seeds. TSTR/TRTR: k-mer logistic regression AUC on "
          "the real holdout; JS/TV: lower is better; copy shares: synthetic sequences identical to (exact) or "
          "≥ 90 % identical to (near) a training / holdout sequence. Peak RSS is the benchmark process's running "
          "maximum.", "", "| system | ε | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["epsilon"]), []).append(r)
    for (system, eps), rs in groups.items():
        cells = []
        for c in COLUMNS:
            vals = [r[c] for r in rs if r.get(c) is not None]
            cells.append(f"{np.mean(vals):.3f}" if vals else "—")
        md.append(f"| {system} | {eps} | " + " | ".join(cells) + " |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
