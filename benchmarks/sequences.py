"""Sequence releases on amp_vs_uniprot or splice (run by hand): the DP generators against simple DP baselines.

Data (``--dataset``), each split stratified 80/20 with random_state 0 (as ``peers/split.py`` splits):

* ``amp`` (default): ``../shared/data/amp_vs_uniprot.csv`` (5,200 peptides, AMP vs random UniProt;
  modlAMP, BSD-3); public metadata: protein alphabet, length 7–50 (the 5 % of AMPs longer than 50
  are clipped to 50 on both sides, a public rule), label {AMP, UniProt}.
* ``splice``: ``benchmarks/data/splice_dna.csv`` (3,186 primate splice-junction DNA windows, UCI,
  CC BY 4.0; ``benchmarks/dna_data.py`` and ``benchmarks/data/README.md``); public metadata from
  the data set's declared design: DNA alphabet, length 60–60, label {ei, ie, n}.

Systems, each trained on the training part at ε ∈ {1, 3, 10} (δ = 1e-5) and
"∞" (ε = 10⁶: DP-SGD with negligible noise, the non-private reference):

* ``autoregressive``: synthrelease's sequence modality as a release trains it by default (the
  autoregressive DP language model and its DP (label, length) histogram);
* ``gan``: the modality's positional DP-GAN (conv1d critic, DP marginals);
* ``markov``: one Gaussian release of per-label order-2 transition counts in three
  relative-position bands plus composition, lengths and label counts (sensitivity 2),
  sampled left to right;
* ``baseline``: one Gaussian release of, per label, the letter composition (each
  sequence adds its letter fractions: L2 ≤ 1) and the length histogram (one count), plus
  the label counts — sensitivity √3 — then letters drawn i.i.d. from the noisy per-label
  composition at a length drawn from the noisy per-label length histogram.

The baselines take the alphabet, length bounds and labels from the dataset's public metadata.
Scored with ``synthrelease.modalities.sequence.audits.run_sequence_audits`` against the real train
and holdout (TSTR/TRTR: k-mer logistic regression, AUC on the real holdout); protein descriptors
(hydrophobicity, charge) for ``amp``; for ``splice`` instead the KS statistic of GC content, the
per-label mean positional TV (the windows are aligned) and the share of synthetic donors with GT
at +1/+2 and acceptors with AG at −2/−1 (real: about 0.99 each).

    OMP_NUM_THREADS=2 python benchmarks/sequences.py [--dataset amp|splice] [--epsilons 1,3,10,inf]
        [--seeds 0] [--steps N] [--systems baseline,markov,autoregressive,gan] [--option KEY=VALUE …] [--tag NAME]
        [--metadata curated|drafted]

``--metadata drafted``: every system trains on what ``synthrelease metadata infer --target label``
drafts from the raw training split (alphabet and length bounds read off the data, nothing
clipped), accepted as reviewed unchanged — a new user's path. The scores still compare the
synthetic sequences with the curated run's real training and holdout parts, so the numbers compare.

Writes benchmarks/results/sequences[-dna][-TAG].{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "amp_vs_uniprot.csv"
DNA_DATA = HERE / "data" / "splice_dna.csv"
RESULTS = HERE / "results"
METADATA = {"version": 1, "name": "amp_vs_uniprot", "reviewed": True, "target": "label",
            "columns": {"sequence": {"type": "sequence", "alphabet": "protein", "min_length": 7, "max_length": 50,
                                     "too_long": "clip"},
                        "label": {"type": "categorical", "categories": ["AMP", "UniProt"]}}}
DNA_METADATA = {"version": 1, "name": "splice_dna", "reviewed": True, "target": "label",
                "columns": {"id": {"type": "identifier"},
                            "sequence": {"type": "sequence", "alphabet": "dna", "min_length": 60, "max_length": 60},
                            "label": {"type": "categorical", "categories": ["ei", "ie", "n"]}}}
COMMON = ("tstr_auc", "trtr_auc", "kmer2_js", "kmer3_js", "composition_tv", "length_tv",
          "real_vs_synthetic_accuracy", "unique_share", "novel_share", "exact_copy_share_train",
          "near_copy_share_train", "near_copy_share_holdout", "nn_identity_mia_auc")
DATASETS = {
    "amp": {"path": DATA, "metadata": METADATA, "stem": "sequences", "title": "amp_vs_uniprot", "unit": "peptides",
            "columns": (*COMMON, "descriptor_ks_hydrophobicity", "descriptor_ks_net_charge",
                        "descriptor_ks_hydrophobic_moment", "descriptor_ks_isoelectric_point", "train_seconds")},
    "splice": {"path": DNA_DATA, "metadata": DNA_METADATA, "stem": "sequences-dna", "title": "splice_dna (UCI)",
               "unit": "DNA windows",
               "columns": (*COMMON, "gc_content_ks", "position_tv_by_label", "ei_gt_share", "ie_ag_share",
                           "train_seconds")},
}
COLUMNS = DATASETS["amp"]["columns"]


def _public(meta: dict) -> tuple[str, list[str], np.ndarray]:
    """The letters, label categories and length range a dataset's public metadata declares."""
    from synthrelease.metadata.alphabets import resolve_alphabet

    spec = meta["columns"]["sequence"]
    return (resolve_alphabet(spec["alphabet"]), list(meta["columns"]["label"]["categories"]),
            np.arange(spec["min_length"], spec["max_length"] + 1))


def baseline(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int,
             meta: dict = METADATA) -> pd.DataFrame:
    """DP per-label composition + length histogram (one Gaussian release), sampled i.i.d."""
    from synthrelease.privacy.accounting import histogram_noise_for
    from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

    letters, labels, lengths = _public(meta)
    comp = np.zeros((len(labels), len(letters)))
    hist = np.zeros((len(labels), len(lengths)))
    counts = np.zeros(len(labels))
    for seq, lab in zip(train["sequence"], train["label"], strict=True):
        k = labels.index(lab)
        for ch in seq:
            comp[k, letters.index(ch)] += 1.0 / len(seq)
        hist[k, len(seq) - lengths[0]] += 1
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
           bands: int = 3, meta: dict = METADATA) -> pd.DataFrame:
    """DP per-label order-2 Markov chain: one Gaussian release of, per label, the label count, the
    length histogram, the composition (letter fractions, L2 ≤ 1) and the 3-mer transition counts
    (context of two symbols, '^' before the start, then the next letter or the end '$') in each of
    ``bands`` relative-position bands, each sequence's counts divided by their L2 norm (≤ 1):
    sensitivity 2. Each noisy next-symbol row is clipped at 0 and mixed with the noisy composition
    (weight 1 count), then sampled left to right."""
    from synthrelease.privacy.accounting import histogram_noise_for
    from synthrelease.privacy.randomness import PrivateRandomness, gaussian_noise

    letters, labels, lengths = _public(meta)
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
        hist[k, len(seq) - lengths[0]] += 1
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
                   steps: int | None, meta, options: dict[str, float | int] | None = None) -> pd.DataFrame:
    """The sequence modality's default generator, as a release trains it: the autoregressive DP
    language model (synthrelease.modalities.sequence.autoregressive), with ``options`` replacing
    its default settings."""
    from synthrelease.modalities.sequence import modality as sm

    cfg = sm.default_config(len(train), epsilon=epsilon, delta=delta, seed=seed, metadata=meta,
                            condition_column="label", n_steps=steps)
    cfg = dataclasses.replace(cfg, **(options or {}))
    model = sm.fit(train, meta, cfg, condition_column="label")
    return sm.sample(model, n_rows, seed=seed + 1)


def gan(train: pd.DataFrame, n_rows: int, *, epsilon: float, delta: float, seed: int, steps: int | None,
        meta) -> pd.DataFrame:
    from synthrelease.modalities.sequence import modality as sm

    cfg = sm.default_config(len(train), epsilon=epsilon, delta=delta, seed=seed, metadata=meta,
                            condition_column="label", n_steps=steps)
    model = sm.fit(train, meta, dataclasses.replace(cfg, generator="positional_gan"), condition_column="label")
    return sm.sample(model, n_rows, seed=seed + 1)


def nucleotide_figures(train: pd.DataFrame, synthetic: pd.DataFrame, labels: list[str],
                       letters: str = "ACGT") -> dict[str, float]:
    """Figures that mean something for aligned DNA windows (protein descriptors do not).

    ``gc_content_ks``: two-sample KS statistic of the per-sequence GC fraction (real training against
    synthetic). ``position_tv_by_label``: per label, the mean over positions of the total variation
    distance between the real and synthetic nucleotide frequencies at that position, averaged over
    labels with the real label shares as weights (a label the synthetic rows lack counts 1); positions
    past a sequence's end are left out. ``ei_gt_share`` / ``ie_ag_share``: share of synthetic ``ei``
    windows with GT at positions 31–32 (the donor's +1/+2) and of ``ie`` windows with AG at 29–30
    (the acceptor's −2/−1); None without such rows.
    """
    from scipy.stats import ks_2samp

    def gc(seqs: pd.Series) -> np.ndarray:
        return np.array([(q.count("G") + q.count("C")) / len(q) for q in seqs])

    def profile(seqs: pd.Series, width: int) -> np.ndarray:
        out = np.zeros((width, len(letters)))
        for q in seqs:
            for t, ch in enumerate(q[:width]):
                out[t, letters.index(ch)] += 1
        return out / np.maximum(out.sum(axis=1, keepdims=True), 1)

    width = int(train["sequence"].str.len().max())
    tv, weight = 0.0, 0.0
    for lab in labels:
        real = train.loc[train["label"] == lab, "sequence"]
        fake = synthetic.loc[synthetic["label"] == lab, "sequence"]
        share = len(real) / len(train)
        tv += share * (1.0 if len(fake) == 0 else
                       float(0.5 * np.abs(profile(real, width) - profile(fake, width)).sum(axis=1).mean()))
        weight += share
    ks = ks_2samp(gc(train["sequence"]), gc(synthetic["sequence"])).statistic
    out: dict[str, float] = {"gc_content_ks": float(ks), "position_tv_by_label": tv / weight}
    for name, lab, lo, motif in (("ei_gt_share", "ei", 30, "GT"), ("ie_ag_share", "ie", 28, "AG")):
        seqs = synthetic.loc[synthetic["label"] == lab, "sequence"]
        if len(seqs):
            out[name] = float(seqs.str[lo:lo + 2].eq(motif).mean())
    return out


def _drafted(raw: pd.DataFrame, path: str, name: str) -> tuple[pd.DataFrame, object]:
    """The raw training split (the curated run's rows) validated against ``metadata infer``'s draft
    of it, accepted as reviewed unchanged, and that draft."""
    from drafting import drafted_metadata
    from sklearn.model_selection import train_test_split

    from synthrelease.modalities.sequence import modality as sm

    raw_train = train_test_split(raw, test_size=0.2, random_state=0, stratify=raw["label"])[0].reset_index(drop=True)
    meta = drafted_metadata(raw_train, name, target="label")
    return sm.validate(raw_train, meta, path), meta


def main() -> None:
    from sklearn.model_selection import train_test_split

    from synthrelease.metadata.alphabets import resolve_alphabet
    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.sequence import modality as sm
    from synthrelease.modalities.sequence.audits import run_sequence_audits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="amp")
    ap.add_argument("--epsilons", default="1,3,10,inf")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--systems", default="baseline,gan")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--tag", default="")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a numeric setting of the autoregressive system (e.g. ar_cells_budget_share=0.1)")
    ap.add_argument("--metadata", choices=("curated", "drafted"), default="curated",
                    help="curated: the dataset's public metadata; drafted: metadata infer on the raw training split")
    a = ap.parse_args()
    # whole numbers stay integers (ar_hidden, ar_lags, ar_prior_order), the rest are floats
    options = {k: int(v) if v.strip().lstrip("-").isdigit() else float(v)
               for k, v in (o.split("=", 1) for o in a.option)}
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    ds = DATASETS[a.dataset]
    columns = ds["columns"]
    meta_doc = ds["metadata"]
    meta = Metadata.model_validate(meta_doc)
    alphabet = resolve_alphabet(meta_doc["columns"]["sequence"]["alphabet"])
    labels = list(meta_doc["columns"]["label"]["categories"])
    raw = pd.read_csv(ds["path"])
    df = sm.validate(raw, meta, str(ds["path"]))
    train, hold = train_test_split(df, test_size=0.2, random_state=0, stratify=df["label"])
    train, hold = train.reset_index(drop=True), hold.reset_index(drop=True)
    model_train, model_meta, model_doc = train, meta, meta_doc  # what the systems train on
    if a.metadata == "drafted":
        model_train, model_meta = _drafted(raw, str(ds["path"]), meta_doc["name"])
        model_doc = model_meta.model_dump(mode="json")
    rows = []
    for eps_text in a.epsilons.split(","):
        eps = 1e6 if eps_text == "inf" else float(eps_text)
        for system in a.systems.split(","):
            for seed in [int(s) for s in a.seeds.split(",")]:
                t0 = time.perf_counter()
                if system == "baseline":
                    syn = baseline(model_train, len(train), epsilon=eps, delta=1e-5, seed=seed, meta=model_doc)
                elif system == "markov":
                    syn = markov(model_train, len(train), epsilon=eps, delta=1e-5, seed=seed, meta=model_doc)
                elif system == "autoregressive":
                    syn = autoregressive(model_train, len(train), epsilon=eps, delta=1e-5, seed=seed,
                                         steps=a.steps, meta=model_meta, options=options)
                else:
                    syn = gan(model_train, len(train), epsilon=eps, delta=1e-5, seed=seed, steps=a.steps,
                              meta=model_meta)
                seconds = time.perf_counter() - t0
                res = run_sequence_audits(train, hold, syn, sequence_column="sequence", label_column="label",
                                          alphabet=alphabet, seed=seed)
                row = {"system": system, "epsilon": eps_text, "seed": seed, "metadata": a.metadata,
                       "train_seconds": round(seconds, 1),
                       "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                       **{k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}}
                if alphabet in ("ACGT", "ACGU"):
                    row.update(nucleotide_figures(train, syn.astype({"label": str}), labels, alphabet))
                rows.append(row)
                print(json.dumps({k: row.get(k) for k in ("system", "epsilon", "seed", *columns)}), flush=True)
    stem = ds["stem"] + (f"-{a.tag}" if a.tag else "")
    command = f"OMP_NUM_THREADS={threads} python benchmarks/sequences.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, "dataset": a.dataset, "rows": rows},
                                                     indent=1) + "\n")
    extra = ""
    if alphabet in ("ACGT", "ACGU"):
        floor = nucleotide_figures(train, hold.astype({"label": str}), labels, alphabet)
        extra = (" GC KS: KS statistic of per-sequence GC content; position TV: per-label mean over the positions of "
                 "the TV between real and synthetic nucleotide frequencies (0 = identical); GT/AG shares: synthetic "
                 "`ei` windows with GT at +1/+2 and `ie` windows with AG at −2/−1. The real holdout scored the same "
                 "way against the real training (the sampling floor): " +
                 ", ".join(f"{k} {v:.3f}" for k, v in floor.items()) + ".")
    source = "curated" if a.metadata == "curated" else "drafted by metadata infer on the raw training split, unedited"
    md = [f"# Sequence releases on {ds['title']} ({a.tag or 'shipped defaults'})", "",
          f"Command: `{command}` ({threads} CPU thread(s)). Metadata: {source}. "
          f"{len(train):,} training / {len(hold):,} holdout "
          f"{ds['unit']}; δ = 1e-5; "
          "ε = inf means ε = 10⁶ (negligible noise). Mean over seeds ± their standard deviation (ddof 1). "
          "TSTR/TRTR: k-mer logistic regression AUC on "
          "the real holdout; JS/TV: lower is better; copy shares: synthetic sequences identical to (exact) or "
          "≥ 90 % identical to (near) a training / holdout sequence. Peak RSS is the benchmark process's running "
          "maximum." + extra, "", "| system | ε | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["epsilon"]), []).append(r)
    for (system, eps), rs in groups.items():
        cells = []
        for c in columns:
            vals = [r[c] for r in rs if r.get(c) is not None]
            spread = f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 and c != "train_seconds" else ""
            cells.append(f"{np.mean(vals):.3f}{spread}" if vals else "—")
        md.append(f"| {system} | {eps} | " + " | ".join(cells) + " |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
