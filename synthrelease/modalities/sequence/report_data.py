"""Plot data of real vs synthetic sequences for the steward's INTERNAL report.

PRIVACY: computed on the PRIVATE training sequences; NOT differentially private. It goes
into the internal report's JSON (``plots.sequence``) and page only — never into a bundle,
a manifest or a release card. It holds shares (per position, per 2-mer, per length bin),
never a whole sequence. :mod:`synthrelease.report` draws it (``synthrelease report``
redraws it from the JSON alone).

Bounded whatever the data: ≤ :data:`MAX_POSITIONS` positions × the alphabet's letters,
≤ :data:`TOP_KMERS` 2-mers, ≤ :data:`MAX_LENGTH_BINS` length bins, per group; the groups
are all sequences plus, with a label, each of the first :data:`MAX_LABELS` declared classes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.metadata.alphabets import resolve_alphabet
from synthrelease.metadata.schema import Metadata

MAX_POSITIONS = 60
TOP_KMERS = 20
MAX_LENGTH_BINS = 30
MAX_LABELS = 6
NOTICE = ("INTERNAL: letter shares per position, 2-mer shares and length histograms of the PRIVATE training "
          "sequences against the synthetic ones; not differentially private; never part of a bundle")


def _round(values: Any) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), 5).tolist()


def position_shares(sequences: list[str], letters: str, positions: int) -> list[list[float]]:
    """``[positions][letters]``: share of each letter among the sequences long enough to have that position."""
    index = {c: j for j, c in enumerate(letters)}
    counts = np.zeros((positions, len(letters)))
    for seq in sequences:
        for i, ch in enumerate(seq[:positions]):
            j = index.get(ch)
            if j is not None:
                counts[i, j] += 1
    totals = counts.sum(axis=1, keepdims=True)
    return _round(np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0))


def kmer_shares(sequences: list[str], k: int = 2) -> Counter[str]:
    """Share of each overlapping k-mer among all k-mers of the sequences."""
    counts: Counter[str] = Counter()
    for seq in sequences:
        counts.update(seq[i:i + k] for i in range(len(seq) - k + 1))
    total = sum(counts.values())
    return Counter({key: v / total for key, v in counts.items()}) if total else counts


def top_kmers(real: list[str], synthetic: list[str], *, k: int = 2, top: int = TOP_KMERS) -> dict[str, Any]:
    """The ``top`` k-mers most frequent in either set (real share first), with both shares."""
    r, s = kmer_shares(real, k), kmer_shares(synthetic, k)
    keys = sorted(set(r) | set(s), key=lambda key: (-max(r.get(key, 0.0), s.get(key, 0.0)), key))[:top]
    keys.sort(key=lambda key: (-r.get(key, 0.0), key))
    return {"k": k, "kmers": keys, "real": _round([r.get(key, 0.0) for key in keys]),
            "synthetic": _round([s.get(key, 0.0) for key in keys])}


def length_histogram(real: list[str], synthetic: list[str], low: int, high: int) -> dict[str, Any]:
    """Shares of real and synthetic sequences per length bin over the declared ``[low, high]``."""
    bins = min(MAX_LENGTH_BINS, high - low + 1)
    edges = np.linspace(low - 0.5, high + 0.5, bins + 1)

    def shares(seqs: list[str]) -> list[float]:
        counts, _ = np.histogram([len(x) for x in seqs], bins=edges)
        return _round(counts / max(len(seqs), 1))

    return {"edges": _round(edges), "real": shares(real), "synthetic": shares(synthetic)}


def _group(label: str | None, real: list[str], synthetic: list[str], letters: str, positions: int,
           bounds: tuple[int, int]) -> dict[str, Any]:
    return {"label": label, "positions": {"real": position_shares(real, letters, positions),
                                          "synthetic": position_shares(synthetic, letters, positions)},
            "kmers": top_kmers(real, synthetic), "lengths": length_histogram(real, synthetic, *bounds)}


def sequence_plot_data(train: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> dict[str, Any]:
    """The internal report's ``plots.sequence`` entry (JSON-able, bounded). INTERNAL: reads private rows."""
    column = metadata.sequence_column
    assert column is not None
    spec = metadata.columns[column]
    letters = resolve_alphabet(spec.alphabet or "")
    bounds = (int(spec.min_length or 1), int(spec.max_length or 1))
    positions = min(MAX_POSITIONS, bounds[1])
    real, syn = train[column].astype(str).tolist(), synthetic[column].astype(str).tolist()
    groups = [_group(None, real, syn, letters, positions, bounds)]
    target = metadata.target
    if target is not None and target in train.columns and target in synthetic.columns:
        classes = [str(c) for c in metadata.columns[target].declared_categories()][:MAX_LABELS]
        real_labels, syn_labels = train[target].astype(str).to_numpy(), synthetic[target].astype(str).to_numpy()
        for c in classes:
            groups.append(_group(c, [s for s, lab in zip(real, real_labels, strict=True) if lab == c],
                                 [s for s, lab in zip(syn, syn_labels, strict=True) if lab == c],
                                 letters, positions, bounds))
    return {"notice": NOTICE, "column": column, "alphabet": letters, "label_column": target,
            "positions_shown": positions, "max_length": bounds[1], "groups": groups}
