"""Sequence-aware audits: distribution fidelity, diversity, memorisation, a membership attack and TSTR utility.

Reads private rows (the real training sequences and the holdout). NOT differentially private:
the result is internal-only (the steward's internal report); only coarse, rounded figures may
be released. The DP guarantee of the generator is the privacy claim; the memorisation and
membership figures here only catch gross copying (similarity-based privacy metrics can pass
while privacy is violated: Ganev & De Cristofaro 2023, arXiv 2312.05114).

Similarity between two sequences is rapidfuzz's normalised Levenshtein similarity,
1 − edit distance / max(length₁, length₂) (1 = identical), computed with
``rapidfuzz.process.cdist`` in blocks of at most ``max_pairs`` pairs, so memory stays bounded.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from scipy import sparse
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from synthrelease.audits.attack_metrics import LOW_FPRS, attack_summary, roc_points
from synthrelease.audits.base import AuditResult
from synthrelease.errors import DataValidationError
from synthrelease.metadata.alphabets import check_sequences, resolve_alphabet
from synthrelease.metadata.schema import canonical_category
from synthrelease.modalities.sequence.features import PROTEIN, PROTEIN_DESCRIPTORS, _encode, feature_view

NEAR_COPY_SIMILARITY = 0.9
"""A synthetic sequence is a near copy when its most similar real sequence has similarity ≥ this."""
PAIR_SAMPLE = 2000
"""Synthetic pairs (at most) behind ``mean_pairwise_identity_synthetic``."""
KMER_SIZES_JS = (2, 3)
KMER_SIZES_UTILITY = (1, 2, 3)
KMER_SIZES_DISTINGUISH = (1, 2)
DISTINGUISH_FOLDS = 5
LOGREG_MAX_ITER = 1000
_TIE = 1e-9  # similarities are exact ratios; the tolerance only guards the ≥ 0.9 comparison against rounding

CAVEAT = ("Similarity-based memorisation and membership figures are weak privacy evidence: they can pass while "
          "privacy is violated (Ganev & De Cristofaro 2023, arXiv 2312.05114). The privacy claim is the generator's "
          "differential privacy guarantee; these figures only catch gross copying.")

MEANINGS = {
    "length_tv": "Total variation distance between the length distributions of the real training and the synthetic "
                 "sequences (0 = identical, 1 = disjoint); lower is better.",
    "composition_tv": "Total variation distance between the pooled letter compositions of the real training and the "
                      "synthetic sequences (0 = identical); lower is better.",
    "kmer2_js": "Jensen-Shannon divergence (base 2, 0 to 1) between the pooled 2-mer spectra of the real training and "
                "the synthetic sequences; lower is better.",
    "kmer3_js": "Jensen-Shannon divergence (base 2, 0 to 1) between the pooled 3-mer spectra of the real training and "
                "the synthetic sequences; lower is better.",
    "descriptor_ks_net_charge": "Two-sample Kolmogorov-Smirnov statistic between the real training and synthetic "
                                "distributions of net charge at pH 7.4 (0 = identical); lower is better.",
    "descriptor_ks_hydrophobicity": "Two-sample Kolmogorov-Smirnov statistic between the real training and synthetic "
                                    "distributions of mean Kyte-Doolittle hydrophobicity; lower is better.",
    "descriptor_ks_hydrophobic_moment": "Two-sample Kolmogorov-Smirnov statistic between the real training and "
                                        "synthetic distributions of the Eisenberg hydrophobic moment; lower is better.",
    "descriptor_ks_isoelectric_point": "Two-sample Kolmogorov-Smirnov statistic between the real training and "
                                       "synthetic distributions of the isoelectric point; lower is better.",
    "unique_share": "Distinct synthetic sequences divided by the number of synthetic sequences; near 1 is good, "
                    "low means the generator repeats itself (mode collapse).",
    "novel_share": "Share of the distinct synthetic sequences that do not occur in the real training set; high is "
                   "good, low means the generator reproduces training sequences.",
    "mean_pairwise_identity_synthetic": "Mean normalised Levenshtein similarity between random pairs of synthetic "
                                        "sequences; should be close to the same figure for real sequences, and near "
                                        "1 means mode collapse.",
    "nn_identity_synthetic_to_train_mean": "Mean, over synthetic sequences, of the similarity to the most similar "
                                           "real training sequence; compare it with the holdout figure in the "
                                           "details: much higher than that means the generator hugs its training "
                                           "data.",
    "exact_copy_share_train": "Share of synthetic sequences identical to a real training sequence; lower is better, "
                              "and it should not exceed exact_copy_share_holdout by much.",
    "exact_copy_share_holdout": "Share of synthetic sequences identical to a real holdout sequence (never seen in "
                                "training): the level of exact copying expected by chance.",
    "near_copy_share_train": "Share of synthetic sequences whose most similar real training sequence has normalised "
                             "Levenshtein similarity >= 0.9 (exact copies included); lower is better, and it should "
                             "not exceed near_copy_share_holdout by much.",
    "near_copy_share_holdout": "Share of synthetic sequences whose most similar real holdout sequence has similarity "
                               ">= 0.9: the level of near copying expected by chance.",
    "nn_identity_mia_auc": "ROC AUC of a membership attack scoring each real sequence by its similarity to the most "
                           "similar synthetic sequence, training (members) against holdout (non-members); 0.5 is "
                           "ideal, higher means training sequences leak.",
    "nn_identity_tpr_at_fpr_1pct": "Share of training sequences the same attack flags as members at a threshold "
                                   "flagging at most 1% of the holdout sequences; near 0.01 is ideal, higher is worse.",
    "nn_identity_tpr_at_fpr_0_1pct": "Share of training sequences the same attack flags as members at a threshold "
                                     "flagging at most 0.1% of the holdout sequences; near 0.001 is ideal, higher is "
                                     "worse.",
    "real_vs_synthetic_accuracy": "Cross-validated accuracy of a logistic regression on 1/2-mer shares and length "
                                  "telling training sequences from synthetic ones; 0.5 (chance) is ideal, 1 means "
                                  "every synthetic sequence is recognisable as synthetic.",
    "tstr_auc": "ROC AUC (macro one-vs-rest for more than two classes) on the real holdout of a k-mer logistic "
                "regression trained on the synthetic sequences and labels; higher is better, close to trtr_auc is "
                "the goal.",
    "trtr_auc": "The same model trained on the real training sequences instead: the reference tstr_auc is compared "
                "with; higher means the labels are predictable from the sequences.",
}


# --- helpers ---------------------------------------------------------------------------------------------------

def _clean(df: pd.DataFrame, column: str, letters: str, what: str) -> pd.Series:
    """The table's sequences, stripped and upper-cased; refuses a missing column or a bad row (named, no value)."""
    if column not in df.columns:
        raise DataValidationError(f"sequence audit: the {what} table lacks the sequence column {column!r}")
    if len(df) == 0:
        raise DataValidationError(f"sequence audit: the {what} table has no rows")
    s = df[column].reset_index(drop=True)
    return check_sequences(s, letters, min_length=1, max_length=max([1, *(len(v) for v in s if isinstance(v, str))]),
                           source=f"sequence audit ({what} table)", column=column)


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation between two count vectors (each normalised)."""
    return float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())


def _kmer_codes(codes: np.ndarray, lengths: np.ndarray, seq_of: np.ndarray, k: int,
                a: int) -> tuple[np.ndarray, np.ndarray]:
    """(k-mer code, sequence index) of every k-mer lying within one sequence (code in [0, a^k))."""
    n_windows = len(codes) - k + 1
    if n_windows <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    value = np.zeros(n_windows, dtype=np.int64)
    for j in range(k):
        value = value * a + codes[j:j + n_windows]
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    position = np.arange(n_windows) - first[seq_of[:n_windows]]
    inside = position + k <= lengths[seq_of[:n_windows]]
    return value[inside], seq_of[:n_windows][inside]


class _Encoded:
    """Letter codes of a cleaned sequence column, concatenated (see :func:`features._encode`)."""

    def __init__(self, seqs: pd.Series, letters: str) -> None:
        self.seqs = seqs
        self.codes, self.lengths, self.seq_of = _encode(seqs, letters)
        self.a = len(letters)

    def spectrum(self, k: int) -> np.ndarray:
        """Pooled k-mer counts, length a^k."""
        values, _ = _kmer_codes(self.codes, self.lengths, self.seq_of, k, self.a)
        return np.bincount(values, minlength=self.a ** k).astype(np.float64)

    def kmer_matrix(self, ks: tuple[int, ...]) -> sparse.csr_matrix:
        """[n, Σ a^k + 1]: k-mer counts divided by the sequence length, for each k, then the length."""
        n = len(self.lengths)
        rows, cols, vals = [], [], []
        offset = 0
        for k in ks:
            values, which = _kmer_codes(self.codes, self.lengths, self.seq_of, k, self.a)
            rows.append(which)
            cols.append(values + offset)
            vals.append(1.0 / self.lengths[which])
            offset += self.a ** k
        rows.append(np.arange(n))
        cols.append(np.full(n, offset))
        vals.append(self.lengths.astype(np.float64))
        m = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, offset + 1))
        return m.tocsr()  # duplicates (repeated k-mers) are summed


def _js(p: np.ndarray, q: np.ndarray) -> float | None:
    """Jensen-Shannon divergence (base 2) between two count vectors; None when either is empty."""
    if p.sum() == 0 or q.sum() == 0:
        return None
    return float(jensenshannon(p, q, base=2) ** 2)


def _nearest_similarities(queries: list[str], choices: list[str], max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(most similar choice per query, most similar query per choice), normalised Levenshtein, blocked.

    ``rapidfuzz.process.cdist`` (float64, one worker) over blocks of at most ``max_pairs`` pairs.
    """
    best_q = np.zeros(len(queries))
    best_c = np.zeros(len(choices))
    col_step = max(1, min(len(choices), max_pairs))
    row_step = max(1, max_pairs // col_step)
    for c0 in range(0, len(choices), col_step):
        cb = choices[c0:c0 + col_step]
        for r0 in range(0, len(queries), row_step):
            sim = cdist(queries[r0:r0 + row_step], cb, scorer=Levenshtein.normalized_similarity,
                        dtype=np.float64, workers=1)
            np.maximum(best_q[r0:r0 + row_step], sim.max(axis=1), out=best_q[r0:r0 + row_step])
            np.maximum(best_c[c0:c0 + col_step], sim.max(axis=0), out=best_c[c0:c0 + col_step])
    return best_q, best_c


def _pairwise_identity(seqs: list[str], rng: np.random.Generator) -> tuple[float | None, int]:
    """(mean similarity over all pairs of distinct rows, or a seeded sample of PAIR_SAMPLE of them; pairs used)."""
    n = len(seqs)
    if n < 2:
        return None, 0
    if n * (n - 1) // 2 <= PAIR_SAMPLE:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, PAIR_SAMPLE)
        j = (i + rng.integers(1, n, PAIR_SAMPLE)) % n  # never i itself
    sims = [Levenshtein.normalized_similarity(seqs[x], seqs[y]) for x, y in zip(i.tolist(), j.tolist(), strict=True)]
    return float(np.mean(sims)), len(sims)


def _labels(df: pd.DataFrame, column: str, what: str) -> np.ndarray:
    if column not in df.columns:
        raise DataValidationError(f"sequence audit: the {what} table lacks the label column {column!r}")
    return np.array([canonical_category(v) for v in df[column].tolist()], dtype=object)


def _fit_auc(x_fit: sparse.csr_matrix, y_fit: np.ndarray, x_test: sparse.csr_matrix, y_test: np.ndarray,
             seed: int) -> tuple[float, bool]:
    """(AUC on the test rows, converged) of a MaxAbs-scaled logistic regression; macro one-vs-rest for > 2 classes."""
    model = make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=LOGREG_MAX_ITER, random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_fit, y_fit)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    proba = model.predict_proba(x_test)
    known = {c: i for i, c in enumerate(model.classes_.tolist())}
    classes = sorted(set(y_test.tolist()))

    def score(c: str) -> np.ndarray:  # a class the model never saw gets probability 0
        return proba[:, known[c]] if c in known else np.zeros(len(y_test))

    if len(classes) == 2:
        return float(roc_auc_score(y_test == classes[1], score(classes[1]))), converged
    return float(np.mean([roc_auc_score(y_test == c, score(c)) for c in classes])), converged


def _utility(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, label_column: str,
             enc: dict[str, _Encoded], seed: int) -> tuple[dict[str, float | None], dict[str, Any]]:
    labels = {"train": _labels(train, label_column, "train"), "holdout": _labels(holdout, label_column, "holdout"),
              "synthetic": _labels(synthetic, label_column, "synthetic")}
    keep = {k: np.array([v is not None for v in y], dtype=bool) for k, y in labels.items()}
    n_classes = {k: len(set(labels[k][keep[k]].tolist())) for k in labels}
    details: dict[str, Any] = {
        "label_column": label_column, "classes": n_classes,
        "rows_with_label": {k: int(m.sum()) for k, m in keep.items()},
        "method": ("features: counts of each k-mer (k = 1, 2, 3) divided by the sequence length, plus the length; "
                   f"MaxAbsScaler then LogisticRegression(max_iter={LOGREG_MAX_ITER}, lbfgs, random_state=seed); "
                   "ROC AUC on the real holdout (binary: AUC of the second class in sorted order; more classes: "
                   "macro one-vs-rest mean over the holdout's classes)"),
    }
    metrics: dict[str, float | None] = {"tstr_auc": None, "trtr_auc": None}
    if n_classes["holdout"] < 2:
        details["skipped"] = "the holdout has fewer than 2 classes"
        return metrics, details
    x = {k: enc[k].kmer_matrix(KMER_SIZES_UTILITY) for k in enc}
    x_test, y_test = x["holdout"][keep["holdout"]], labels["holdout"][keep["holdout"]].astype(str)
    converged = {}
    for metric, source in (("tstr_auc", "synthetic"), ("trtr_auc", "train")):
        if n_classes[source] < 2:
            details[f"{metric}_skipped"] = f"the {source} table has fewer than 2 classes"
            continue
        metrics[metric], converged[metric] = _fit_auc(x[source][keep[source]], labels[source][keep[source]].astype(str),
                                                      x_test, y_test, seed)
    details["converged"] = converged
    return metrics, details


# --- the audit's steps -----------------------------------------------------------------------------------------

def _clean_tables(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, column: str,
                  letters: str) -> dict[str, pd.Series]:
    """The cleaned sequences of train, holdout and synthetic, checked in that order (reads private rows; INTERNAL)."""
    return {"train": _clean(train, column, letters, "train"),
            "holdout": _clean(holdout, column, letters, "holdout"),
            "synthetic": _clean(synthetic, column, letters, "synthetic")}


def _distribution_fidelity(enc: dict[str, _Encoded], views: dict[str, pd.DataFrame], letters: str,
                           other: str) -> dict[str, float | None]:
    """Length and composition TV, k-mer JS and (protein) descriptor KS of ``other`` against train.

    Reads private rows; INTERNAL.
    """
    top = int(max(enc["train"].lengths.max(), enc[other].lengths.max())) + 1
    out: dict[str, float | None] = {
        "length_tv": _tv(np.bincount(enc["train"].lengths, minlength=top).astype(float),
                         np.bincount(enc[other].lengths, minlength=top).astype(float)),
        "composition_tv": _tv(enc["train"].spectrum(1), enc[other].spectrum(1)),
    }
    for k in KMER_SIZES_JS:
        out[f"kmer{k}_js"] = _js(enc["train"].spectrum(k), enc[other].spectrum(k))
    if letters == PROTEIN:
        for name in PROTEIN_DESCRIPTORS:
            out[f"descriptor_ks_{name}"] = float(ks_2samp(views["train"][name], views[other][name]).statistic)
    return out


def _distinguishability(enc: dict[str, _Encoded], other: str, seed: int) -> float | None:
    """Cross-validated accuracy of a logistic regression telling training sequences from ``other``
    ones on 1/2-mer shares and length, the larger side subsampled (seeded) to the smaller: 0.5 =
    indistinguishable. Reads private rows; INTERNAL."""
    m = min(len(enc["train"].lengths), len(enc[other].lengths))
    if m < DISTINGUISH_FOLDS:
        return None
    rng = np.random.default_rng(seed)
    x = sparse.vstack([enc[k].kmer_matrix(KMER_SIZES_DISTINGUISH)[np.sort(rng.permutation(len(enc[k].lengths))[:m])]
                       for k in ("train", other)]).tocsr()
    y = np.repeat([0, 1], m)
    model = make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=LOGREG_MAX_ITER, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        folds = StratifiedKFold(DISTINGUISH_FOLDS, shuffle=True, random_state=seed)
        return float(cross_val_score(model, x, y, cv=folds, scoring="accuracy").mean())


def _diversity(lists: dict[str, list[str]], rng: np.random.Generator) -> tuple[dict[str, float | None], int]:
    """(``unique_share``, ``novel_share``, ``mean_pairwise_identity_synthetic``; synthetic pairs used).

    Draws the pair sample from ``rng`` (when there are more than PAIR_SAMPLE pairs). Reads private rows; INTERNAL.
    """
    distinct = set(lists["synthetic"])
    metrics: dict[str, float | None] = {"unique_share": len(distinct) / len(lists["synthetic"]),
                                        "novel_share": len(distinct - set(lists["train"])) / len(distinct)}
    metrics["mean_pairwise_identity_synthetic"], pairs_used = _pairwise_identity(lists["synthetic"], rng)
    return metrics, pairs_used


@dataclass(frozen=True)
class _Similarities:
    """Nearest normalised Levenshtein similarities (in [0, 1]) between synthetic and real sequences. INTERNAL."""

    syn_to_train: np.ndarray
    train_to_syn: np.ndarray
    syn_to_holdout: np.ndarray
    holdout_to_syn: np.ndarray


def _nearest_to_real(lists: dict[str, list[str]], max_pairs: int) -> _Similarities:
    """Most similar train / holdout sequence of each synthetic one and vice versa (reads private rows; INTERNAL)."""
    syn_to_train, train_to_syn = _nearest_similarities(lists["synthetic"], lists["train"], max_pairs)
    syn_to_holdout, holdout_to_syn = _nearest_similarities(lists["synthetic"], lists["holdout"], max_pairs)
    return _Similarities(syn_to_train, train_to_syn, syn_to_holdout, holdout_to_syn)


def _memorisation(lists: dict[str, list[str]], sims: _Similarities) -> dict[str, float | None]:
    """Mean nearest similarity to train, exact- and near-copy shares against train and holdout (INTERNAL)."""
    train_set, holdout_set = set(lists["train"]), set(lists["holdout"])
    return {
        "nn_identity_synthetic_to_train_mean": float(sims.syn_to_train.mean()),
        "exact_copy_share_train": float(np.mean([s in train_set for s in lists["synthetic"]])),
        "exact_copy_share_holdout": float(np.mean([s in holdout_set for s in lists["synthetic"]])),
        "near_copy_share_train": float(np.mean(sims.syn_to_train >= NEAR_COPY_SIMILARITY - _TIE)),
        "near_copy_share_holdout": float(np.mean(sims.syn_to_holdout >= NEAR_COPY_SIMILARITY - _TIE)),
    }


@dataclass(frozen=True)
class _Attack:
    """The nearest-identity membership attack on a balanced sample. INTERNAL: scores of private rows."""

    summary: dict[str, Any]
    """:func:`~synthrelease.audits.attack_metrics.attack_summary` of the scores."""
    members: np.ndarray
    nonmembers: np.ndarray
    subsampled: str | None
    """The table subsampled to the smaller one's size (``train`` / ``holdout``), or None."""

    def metrics(self) -> dict[str, float | None]:
        """``nn_identity_mia_auc`` and ``nn_identity_tpr_at_fpr_<fpr>`` per low FPR."""
        out: dict[str, float | None] = {"nn_identity_mia_auc": self.summary["auc"]}
        for fpr in LOW_FPRS:
            out[f"nn_identity_tpr_at_fpr_{fpr}"] = self.summary[f"tpr_at_fpr_{fpr}"]
        return out


def _membership_attack(sims: _Similarities, rng: np.random.Generator, seed: int) -> _Attack:
    """Score = similarity of a real sequence to its most similar synthetic one; members = train, non-members =
    holdout, the larger set subsampled by ``rng`` (train first) to the smaller's size. INTERNAL."""
    n_train, n_holdout = len(sims.train_to_syn), len(sims.holdout_to_syn)
    m = min(n_train, n_holdout)
    tr_idx = np.sort(rng.choice(n_train, size=m, replace=False)) if n_train > m else np.arange(m)
    ho_idx = np.sort(rng.choice(n_holdout, size=m, replace=False)) if n_holdout > m else np.arange(m)
    members, nonmembers = sims.train_to_syn[tr_idx], sims.holdout_to_syn[ho_idx]
    subsampled = "train" if n_train > m else ("holdout" if n_holdout > m else None)
    return _Attack(attack_summary(members, nonmembers, seed=seed), members, nonmembers, subsampled)


def _sequence_details(metrics: dict[str, float | None], lists: dict[str, list[str]], letters: str,
                      baseline: dict[str, float | None], sims: _Similarities, pairs_used: int, max_pairs: int,
                      attack: _Attack, utility_details: dict[str, Any]) -> dict[str, Any]:
    """The audit's details: meanings, counts, the noise floor, attack and utility breakdowns, methods. INTERNAL."""
    m = len(attack.members)
    return {
        "meanings": {k: MEANINGS[k] for k in metrics if k in MEANINGS},
        "rows": {k: len(v) for k, v in lists.items()},
        "alphabet": letters,
        "holdout_vs_train": {"notice": "the same fidelity figures for the real holdout against the real training "
                                       "rows: the level expected from sampling noise alone", **baseline},
        "nn_identity_synthetic_to_holdout_mean": float(sims.syn_to_holdout.mean()),
        "pairwise_identity_pairs": pairs_used,
        "near_copy_similarity": NEAR_COPY_SIMILARITY,
        "similarity": ("rapidfuzz Levenshtein.normalized_similarity = 1 - edit distance / max(len1, len2), "
                       f"process.cdist in blocks of at most {max_pairs} pairs, workers=1"),
        "attack": {**attack.summary, "members": m, "non_members": m, "subsampled": attack.subsampled,
                   "method": ("score = similarity of a real sequence to its most similar synthetic sequence "
                              "(higher = more likely a member); AUC, TPR at 1% / 0.1% FPR and their intervals by "
                              "synthrelease.audits.attack_metrics.attack_summary")},
        "plots": {"notice": "INTERNAL: attack scores of private rows; never part of a bundle",
                  "roc": {"nn_identity": roc_points(attack.members, attack.nonmembers)}},
        "utility": utility_details,
        "seed_use": ("one np.random.default_rng(seed): the synthetic pair sample, then the attack subsample; "
                     "attack_summary's bootstrap and the models' random_state use seed"),
        "caveat": CAVEAT,
    }


# --- the audit ------------------------------------------------------------------------------------------------

def run_sequence_audits(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *,
                        sequence_column: str, label_column: str | None, alphabet: str, seed: int,
                        max_pairs: int = 2_000_000) -> AuditResult:
    """Sequence-aware fidelity, diversity, memorisation, membership and utility figures.

    Reads private rows (``train``, ``holdout``); NOT differentially private; the result is
    internal-only (the steward's internal report). ``details["meanings"]`` has one sentence per
    metric (what it measures, which direction is good).

    Metrics (floats; None when they cannot be computed):
        ``length_tv``, ``composition_tv``: total variation, train vs synthetic, of the length
            distribution and of the pooled letter composition.
        ``kmer2_js``, ``kmer3_js``: Jensen-Shannon divergence (base 2) of the pooled k-mer spectra.
        ``descriptor_ks_<name>`` (protein alphabet only): two-sample KS statistic (scipy) of each
            protein descriptor of :func:`~synthrelease.modalities.sequence.features.feature_view`.
        ``real_vs_synthetic_accuracy``: 5-fold cross-validated accuracy of a logistic regression
            on 1/2-mer shares and length telling training from synthetic sequences (balanced,
            seeded subsample); 0.5 = indistinguishable (the holdout's figure is in the details).
        ``unique_share``: distinct synthetic sequences / synthetic rows. ``novel_share``: share of
            the DISTINCT synthetic sequences absent from the training set.
        ``mean_pairwise_identity_synthetic``: mean normalised Levenshtein similarity over all pairs
            of distinct synthetic rows, or a seeded sample of 2,000 of them.
        ``nn_identity_synthetic_to_train_mean``: mean over synthetic rows of the similarity to the
            most similar training sequence.
        ``exact_copy_share_train`` / ``_holdout``: share of synthetic rows equal to a training /
            holdout sequence. ``near_copy_share_train`` / ``_holdout``: share whose most similar
            training / holdout sequence has similarity ≥ 0.9.
        ``nn_identity_mia_auc``, ``nn_identity_tpr_at_fpr_1pct``, ``nn_identity_tpr_at_fpr_0_1pct``:
            membership attack, score = similarity of a real sequence to its most similar synthetic
            sequence; members = training rows, non-members = holdout rows, the larger set subsampled
            (seeded) to the size of the smaller; AUC and TPR at low FPR by the project's
            :func:`~synthrelease.audits.attack_metrics.attack_summary` (threshold at the
            (⌊FPR·m⌋+1)-th largest non-member score, strict >, so ties count as not flagged).
        ``tstr_auc``, ``trtr_auc`` (with ``label_column``): k-mer logistic regression trained on
            synthetic / real training rows, ROC AUC on the holdout (macro one-vs-rest for > 2
            classes); None when the holdout or the training source has fewer than 2 classes.

    Details (INTERNAL) also hold the same fidelity figures for holdout vs train (the sampling-noise
    floor), the attack's CIs and ROC curve, counts and methods.

    Args:
        train, holdout, synthetic: tables with ``sequence_column`` (and ``label_column``).
        sequence_column: the sequences (stripped and upper-cased here; letters outside the
            alphabet are refused).
        label_column: the class label, or None to skip the utility figures.
        alphabet: a name or explicit letters (:func:`~synthrelease.metadata.alphabets.resolve_alphabet`).
        seed: seeds one ``np.random.default_rng`` (pair sample, attack subsample, bootstrap) and the
            models' ``random_state``.
        max_pairs: similarity pairs computed at once (memory: 8 bytes each).

    Returns:
        AuditResult named ``sequence`` (``internal_only``).

    Raises:
        DataValidationError: a table without rows or without a named column, or a bad sequence
            (named by table, column and row, never its text).
        ValueError: a bad alphabet or ``max_pairs`` < 1.
    """
    started = time.perf_counter()
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be at least 1, not {max_pairs}")
    letters = resolve_alphabet(alphabet)
    rng = np.random.default_rng(seed)
    seqs = _clean_tables(train, holdout, synthetic, sequence_column, letters)
    enc = {k: _Encoded(s, letters) for k, s in seqs.items()}
    lists = {k: s.tolist() for k, s in seqs.items()}
    views = ({k: feature_view(s, alphabet=letters) for k, s in seqs.items()} if letters == PROTEIN else {})

    metrics = _distribution_fidelity(enc, views, letters, "synthetic")
    baseline = _distribution_fidelity(enc, views, letters, "holdout")  # the noise floor (details)
    metrics["real_vs_synthetic_accuracy"] = _distinguishability(enc, "synthetic", seed)
    baseline["real_vs_synthetic_accuracy"] = _distinguishability(enc, "holdout", seed)
    diversity, pairs_used = _diversity(lists, rng)
    metrics.update(diversity)
    sims = _nearest_to_real(lists, max_pairs)
    metrics.update(_memorisation(lists, sims))
    attack = _membership_attack(sims, rng, seed)
    metrics.update(attack.metrics())
    utility_details: dict[str, Any] = {"skipped": "no label column given"}
    if label_column is not None:
        utility_metrics, utility_details = _utility(train, holdout, synthetic, label_column, enc, seed)
        metrics.update(utility_metrics)

    details = _sequence_details(metrics, lists, letters, baseline, sims, pairs_used, max_pairs, attack, utility_details)
    return AuditResult("sequence", metrics, details, time.perf_counter() - started)
