"""A public-bounded feature view of sequences: the columns through which sequences enter the release gate.

The gate computes its DP figures (quality score, TSTR, nearest-neighbour membership attacks)
on tables whose every column has PUBLIC bounds. :func:`feature_view` maps each sequence to a
row of numbers that is a function of that sequence ALONE (no statistics across rows, so
adding or removing one sequence changes exactly one row of the view, as the gate's
sensitivity proofs need), and :func:`view_columns` gives the view's bounds from the public
alphabet and length bounds only. Every value of the view lies within those bounds.

Columns: ``length``; ``frac_<X>`` (share of positions holding letter X) for each letter of the
alphabet; ``max_homopolymer_run`` (longest run of one letter); and, for the protein alphabet
only, ``net_charge``, ``hydrophobicity``, ``hydrophobic_moment`` and ``isoelectric_point``.

The protein descriptors are computed here, vectorised over all sequences, with the published
constants and formulas the ``peptides`` package (R Peptides) uses by default, and match it to
~1e-9 (checked against its documented values in the tests):

* ``net_charge``: Henderson-Hasselbalch sum at pH 7.4 with the Lehninger pKa scale (peptides'
  ``Peptide.charge(pH=7.4)``): side chains K, R, H (+) and D, E, C, Y (−), plus the N- and
  C-terminus.
* ``hydrophobicity``: mean Kyte-Doolittle value (``Peptide.hydrophobicity("KyteDoolittle")``).
* ``hydrophobic_moment``: Eisenberg et al. (1984), consensus Eisenberg scale, 100° per residue,
  one window spanning the whole sequence: |Σ h_i·e^{i·100°·i}| / length
  (``Peptide.hydrophobic_moment(angle=100, window=length)``).
* ``isoelectric_point``: the pH in [0, 14] where the net charge with the EMBOSS pKa scale is 0,
  by bisection (``Peptide.isoelectric_point()``).

``peptides`` itself is not a dependency: it is GPL-3.0 (this project is Apache-2.0) and its
per-sequence Python loops took ~3.4 s for 10,000 peptides of length 5-60, against ~0.07 s here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synthrelease.errors import DataValidationError
from synthrelease.metadata.alphabets import ALPHABETS, _check_bounds, resolve_alphabet

PROTEIN = ALPHABETS["protein"]
PH = 7.4
"""pH of ``net_charge`` (physiological)."""
MOMENT_ANGLE_DEG = 100.0
"""Rotation per residue of the hydrophobic moment (α-helix)."""

# Lehninger (charge) and EMBOSS (pI) pKa scales, as in peptides.tables.PK
PKA_LEHNINGER = {"C": 8.18, "D": 3.65, "E": 4.25, "H": 6.0, "K": 10.53, "R": 12.48, "Y": 10.07,
                 "cTer": 2.34, "nTer": 9.69}
PKA_EMBOSS = {"C": 8.5, "D": 3.9, "E": 4.1, "H": 6.5, "K": 10.8, "R": 12.5, "Y": 10.1, "cTer": 3.6, "nTer": 8.6}
CHARGE_SIGN = {"K": 1.0, "R": 1.0, "H": 1.0, "D": -1.0, "E": -1.0, "C": -1.0, "Y": -1.0}
KYTE_DOOLITTLE = {"A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4, "H": -3.2,
                  "I": 4.5, "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8, "T": -0.7, "W": -0.9,
                  "Y": -1.3, "V": 4.2}
EISENBERG = {"A": 0.62, "R": -2.53, "N": -0.78, "D": -0.9, "C": 0.29, "Q": -0.85, "E": -0.74, "G": 0.48, "H": -0.4,
             "I": 1.38, "L": 1.06, "K": -1.5, "M": 0.64, "F": 1.19, "P": 0.12, "S": -0.18, "T": -0.05, "W": 0.81,
             "Y": 0.26, "V": 1.08}
PROTEIN_DESCRIPTORS = ("net_charge", "hydrophobicity", "hydrophobic_moment", "isoelectric_point")
PI_BISECTION_STEPS = 60
"""Halvings of [0, 14] for the isoelectric point (14·2⁻⁶⁰: exact to float precision)."""


def _encode(sequences: pd.Series, letters: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(letter index per position of all sequences concatenated, lengths, sequence index per position).

    Raises DataValidationError naming the first row (1-based) that is not a non-empty string of
    the alphabet's letters; no value is shown.
    """
    values = sequences.tolist()
    lut = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(letters):
        lut[ord(c)] = i
    lengths = np.empty(len(values), dtype=np.int64)
    for row, s in enumerate(values):
        if not isinstance(s, str) or not s or not s.isascii():
            raise DataValidationError(f"feature view: column {sequences.name!r}, row {row + 1}: not a non-empty "
                                      "sequence of the alphabet (clean the column with check_sequences first)")
        lengths[row] = len(s)
    joined = np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8) if values else np.empty(0, np.uint8)
    codes = lut[joined]
    seq_of = np.repeat(np.arange(len(values)), lengths)
    if (codes < 0).any():
        row = int(seq_of[np.argmax(codes < 0)]) + 1
        raise DataValidationError(f"feature view: column {sequences.name!r}, row {row}: letter outside the alphabet "
                                  "(clean the column with check_sequences first)")
    return codes, lengths, seq_of


def _charge(counts: np.ndarray, letters: str, ph: np.ndarray | float, pka: dict[str, float]) -> np.ndarray:
    """Net charge (Henderson-Hasselbalch) from letter counts [n, |alphabet|], at ``ph`` ([n] or a scalar)."""
    ph = np.asarray(ph, dtype=np.float64)
    total = 1.0 / (1.0 + 10.0 ** (ph - pka["nTer"])) - 1.0 / (1.0 + 10.0 ** (pka["cTer"] - ph))
    for aa, sign in CHARGE_SIGN.items():
        j = letters.find(aa)
        if j >= 0:
            total = total + counts[:, j] * (sign / (1.0 + 10.0 ** (sign * (ph - pka[aa]))))
    return np.broadcast_to(total, (counts.shape[0],)).astype(np.float64)


def _isoelectric_point(counts: np.ndarray, letters: str) -> np.ndarray:
    """pH in [0, 14] where the EMBOSS-scale charge is 0, by vectorised bisection (charge falls with pH)."""
    lo = np.zeros(counts.shape[0])
    hi = np.full(counts.shape[0], 14.0)
    for _ in range(PI_BISECTION_STEPS):
        mid = (lo + hi) / 2
        positive = _charge(counts, letters, mid, PKA_EMBOSS) > 0
        lo = np.where(positive, mid, lo)
        hi = np.where(positive, hi, mid)
    return (lo + hi) / 2


def feature_view(sequences: pd.Series, *, alphabet: str) -> pd.DataFrame:
    """The feature view of sequences: one row per sequence, each a function of that sequence alone.

    Reads whatever rows it is given (private rows in the gate; the view is not private by itself:
    its DP comes from the gate's mechanisms and the bounds of :func:`view_columns`).

    Args:
        sequences: cleaned sequences (:func:`~synthrelease.metadata.alphabets.check_sequences`):
            non-empty strings of the alphabet's upper-case letters.
        alphabet: a name or explicit letters (:func:`~synthrelease.metadata.alphabets.resolve_alphabet`).
            The protein descriptors are added for the protein alphabet (exactly its 20 letters) only.

    Returns:
        Same index as ``sequences``; ``length`` and ``max_homopolymer_run`` int64, the rest float64.

    Raises:
        DataValidationError: a row (named by its 1-based number, no value) that is missing, empty,
            or holds a letter outside the alphabet.
    """
    letters = resolve_alphabet(alphabet)
    codes, lengths, seq_of = _encode(sequences, letters)
    n, a = len(lengths), len(letters)
    counts = np.bincount(seq_of * a + codes, minlength=n * a).reshape(n, a).astype(np.float64)
    out: dict[str, np.ndarray] = {"length": lengths}
    safe_len = np.maximum(lengths, 1)
    for j, c in enumerate(letters):
        out[f"frac_{c}"] = counts[:, j] / safe_len
    # runs: a new run starts at each sequence start and wherever the letter changes
    starts = np.ones(len(codes), dtype=bool)
    if len(codes) > 1:
        starts[1:] = (codes[1:] != codes[:-1]) | (seq_of[1:] != seq_of[:-1])
    run_start = np.flatnonzero(starts)
    run_len = np.diff(np.r_[run_start, len(codes)])
    longest = np.zeros(n, dtype=np.int64)
    np.maximum.at(longest, seq_of[run_start], run_len)
    out["max_homopolymer_run"] = longest
    if letters == PROTEIN:
        out["net_charge"] = _charge(counts, letters, PH, PKA_LEHNINGER)
        kd = np.array([KYTE_DOOLITTLE[c] for c in letters])
        out["hydrophobicity"] = counts @ kd / safe_len
        first = np.r_[0, np.cumsum(lengths)[:-1]] if n else np.zeros(0, np.int64)
        position = np.arange(len(codes)) - np.repeat(first, lengths)
        theta = np.radians((MOMENT_ANGLE_DEG * position) % 360.0)
        h = np.array([EISENBERG[c] for c in letters])[codes]
        sin_sum = np.bincount(seq_of, weights=h * np.sin(theta), minlength=n)
        cos_sum = np.bincount(seq_of, weights=h * np.cos(theta), minlength=n)
        out["hydrophobic_moment"] = np.hypot(sin_sum, cos_sum) / safe_len
        out["isoelectric_point"] = _isoelectric_point(counts, letters)
    return pd.DataFrame(out, index=sequences.index)


def view_columns(alphabet: str, *, min_length: int, max_length: int) -> dict[str, dict]:
    """PUBLIC metadata of the feature view (ColumnSpec format), from the alphabet and length bounds only.

    Bounds: ``length`` [min_length, max_length]; ``frac_<X>`` [0, 1]; ``max_homopolymer_run``
    [1, max_length]; protein only: ``net_charge`` [−(max_length + 1), max_length + 1] (each
    residue carries a charge in (−1, 1) and the two termini together one in (−1, 1)),
    ``hydrophobicity`` [−4.5, 4.5] (the Kyte-Doolittle extremes, R and I), ``hydrophobic_moment``
    [0, 2.53] (the largest |Eisenberg value|, R: a mean of unit vectors weighted by values
    within ±2.53), ``isoelectric_point`` [0, 14].

    Returns:
        ``{column: {"type": "integer"|"float", "min": ..., "max": ..., "description": ...}}``
        in the order of :func:`feature_view`'s columns.

    Raises:
        ValueError: a bad alphabet or bounds (not 1 ≤ min_length ≤ max_length).
    """
    letters = resolve_alphabet(alphabet)
    _check_bounds(min_length, max_length)
    cols: dict[str, dict] = {
        "length": {"type": "integer", "min": int(min_length), "max": int(max_length),
                   "description": "sequence length (letters)"},
    }
    for c in letters:
        cols[f"frac_{c}"] = {"type": "float", "min": 0.0, "max": 1.0, "description": f"share of positions holding {c}"}
    cols["max_homopolymer_run"] = {"type": "integer", "min": 1, "max": int(max_length),
                                   "description": "longest run of one repeated letter"}
    if letters == PROTEIN:
        cols["net_charge"] = {"type": "float", "min": -float(max_length + 1), "max": float(max_length + 1),
                              "description": f"net charge at pH {PH} (Lehninger pKa, with termini)"}
        kd = KYTE_DOOLITTLE.values()
        cols["hydrophobicity"] = {"type": "float", "min": min(kd), "max": max(kd),
                                  "description": "mean Kyte-Doolittle hydrophobicity"}
        cols["hydrophobic_moment"] = {"type": "float", "min": 0.0,
                                      "max": max(math.fabs(v) for v in EISENBERG.values()),
                                      "description": "Eisenberg hydrophobic moment, 100 degrees, whole-sequence window"}
        cols["isoelectric_point"] = {"type": "float", "min": 0.0, "max": 14.0,
                                     "description": "isoelectric point (EMBOSS pKa)"}
    return cols
