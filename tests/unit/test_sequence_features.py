"""The public-bounded feature view of sequences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from synthrelease.errors import DataValidationError
from synthrelease.metadata.alphabets import ALPHABETS
from synthrelease.metadata.schema import ColumnSpec
from synthrelease.modalities.sequence.features import PKA_LEHNINGER, _charge, feature_view, view_columns

PROTEIN = ALPHABETS["protein"]


def _random_sequences(letters: str, n: int, max_length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = ["".join(rng.choice(list(letters), rng.integers(1, max_length + 1))) for _ in range(n)]
    # extremes: every homopolymer at length 1 and at max_length, and alternations
    out += [c * k for c in letters for k in (1, max_length)]
    out += [(letters[0] + letters[-1]) * (max_length // 2), "KR" * (max_length // 2), "DE" * (max_length // 2)]
    return [s for s in out if all(c in letters for c in s)]


@pytest.mark.parametrize("alphabet", ["protein", "dna", "rna", "ACGNT"])
def test_values_stay_within_the_public_bounds(alphabet):
    max_length = 50
    letters = {"protein": PROTEIN, "dna": "ACGT", "rna": "ACGU"}.get(alphabet, alphabet)
    seqs = pd.Series(_random_sequences(letters, 400, max_length, seed=1), name="seq")
    view = feature_view(seqs, alphabet=alphabet)
    cols = view_columns(alphabet, min_length=1, max_length=max_length)
    assert list(view.columns) == list(cols)
    for name, spec in cols.items():
        ColumnSpec.model_validate(spec)  # the project's metadata column format
        assert view[name].between(spec["min"], spec["max"]).all(), name
        assert (view[name].dtype.kind == "i") == (spec["type"] == "integer"), name
    assert np.allclose(view[[f"frac_{c}" for c in letters]].sum(axis=1), 1.0)


def test_extreme_peptides_reach_their_bounds_closely():
    view = feature_view(pd.Series(["K" * 40, "D" * 40, "R", "I" * 3]), alphabet="protein")
    cols = view_columns("protein", min_length=1, max_length=40)
    assert view["net_charge"][0] > 0.95 * cols["net_charge"]["max"] - 1
    assert view["net_charge"][1] < 0.95 * cols["net_charge"]["min"] + 1
    assert view["hydrophobic_moment"][2] == pytest.approx(cols["hydrophobic_moment"]["max"])
    assert view["hydrophobicity"][3] == cols["hydrophobicity"]["max"] and view["hydrophobicity"][2] == -4.5
    assert view["isoelectric_point"][0] > 10 and view["isoelectric_point"][1] < 4


def test_hand_checked_kkkk():
    v = feature_view(pd.Series(["KKKK"]), alphabet="protein").iloc[0]
    assert v["length"] == 4 and v["frac_K"] == 1.0 and v["frac_D"] == 0.0 and v["max_homopolymer_run"] == 4
    k = 1 / (1 + 10 ** (7.4 - 10.53))
    n_ter, c_ter = 1 / (1 + 10 ** (7.4 - 9.69)), -1 / (1 + 10 ** (2.34 - 7.4))
    assert v["net_charge"] == pytest.approx(4 * k + n_ter + c_ter, abs=1e-12)
    assert v["net_charge"] == pytest.approx(3.9919432197620375, abs=1e-9)  # peptides 0.5.0: charge(pH=7.4)
    assert v["hydrophobicity"] == pytest.approx(-3.9)
    angles = [math.radians(100 * i) for i in range(4)]
    moment = 1.5 * math.hypot(sum(map(math.cos, angles)), sum(map(math.sin, angles))) / 4
    assert v["hydrophobic_moment"] == pytest.approx(moment, abs=1e-12)


@pytest.mark.parametrize(("seq", "charge", "kd", "moment", "pi"), [  # values of the peptides package 0.5.0
    ("FLPVLAGLTPSIVPKLVCLLTKKC", 2.7080106179772567, 1.2666666666666666, 0.22406891581396027, 9.667790030129254),
    ("QWGRRCCGWGPGRRYCVRWC", 4.423384549605714, -0.95, 0.2266386149309933, 9.715918543748558),
    ("GLFDIVKKVVGALGSL", 0.9936025383008988, 1.2375, 0.4783203389532787, 9.537297862581909),
])
def test_protein_descriptors_match_the_peptides_package(seq, charge, kd, moment, pi):
    v = feature_view(pd.Series([seq]), alphabet="protein").iloc[0]
    assert v["net_charge"] == pytest.approx(charge, abs=1e-9)
    assert v["hydrophobicity"] == pytest.approx(kd, abs=1e-12)
    assert v["hydrophobic_moment"] == pytest.approx(moment, abs=1e-12)
    assert v["isoelectric_point"] == pytest.approx(pi, abs=1e-6)  # peptides stops its bisection earlier


def test_charge_at_ph7_matches_the_documented_peptides_example():
    counts = feature_view(pd.Series(["FLPVLAGLTPSIVPKLVCLLTKKC"]), alphabet="protein")
    counts = (counts[[f"frac_{c}" for c in PROTEIN]].to_numpy() * 24).round()
    assert _charge(counts, PROTEIN, 7.0, PKA_LEHNINGER)[0] == pytest.approx(2.8731, abs=1e-4)  # peptides' docs


def test_each_row_depends_on_its_own_sequence_only():
    seqs = _random_sequences(PROTEIN, 60, 30, seed=2)
    together = feature_view(pd.Series(seqs), alphabet="protein")
    alone = pd.concat([feature_view(pd.Series([s], index=[i]), alphabet="protein") for i, s in enumerate(seqs)])
    pd.testing.assert_frame_equal(together, alone)


def test_homopolymer_runs_do_not_cross_sequence_boundaries():
    view = feature_view(pd.Series(["ACA", "AAC", "GGGTTTT", "A"]), alphabet="dna")
    assert view["max_homopolymer_run"].tolist() == [1, 2, 4, 1]
    assert view["length"].tolist() == [3, 3, 7, 1]
    assert view["frac_T"].tolist() == [0.0, 0.0, 4 / 7, 0.0]


def test_dna_view_has_no_protein_descriptors_and_keeps_the_index():
    view = feature_view(pd.Series(["ACGT", "TTTT"], index=["a", "b"]), alphabet="dna")
    assert list(view.columns) == ["length", "frac_A", "frac_C", "frac_G", "frac_T", "max_homopolymer_run"]
    assert view.index.tolist() == ["a", "b"]


def test_view_columns_bounds_come_from_the_public_bounds_only():
    cols = view_columns("protein", min_length=5, max_length=60)
    assert cols["length"] == {"type": "integer", "min": 5, "max": 60, "description": "sequence length (letters)"}
    assert (cols["max_homopolymer_run"]["min"], cols["max_homopolymer_run"]["max"]) == (1, 60)
    assert (cols["net_charge"]["min"], cols["net_charge"]["max"]) == (-61.0, 61.0)
    assert (cols["hydrophobicity"]["min"], cols["hydrophobicity"]["max"]) == (-4.5, 4.5)
    assert (cols["hydrophobic_moment"]["min"], cols["hydrophobic_moment"]["max"]) == (0.0, 2.53)
    assert (cols["isoelectric_point"]["min"], cols["isoelectric_point"]["max"]) == (0.0, 14.0)
    with pytest.raises(ValueError):
        view_columns("protein", min_length=0, max_length=10)
    with pytest.raises(ValueError):
        view_columns("protein", min_length=11, max_length=10)


@pytest.mark.parametrize("bad", ["ACGX", "acgt", "", None])
def test_unclean_sequences_are_refused_by_row(bad):
    with pytest.raises(DataValidationError, match=r"column 'dna', row 2: ") as excinfo:
        feature_view(pd.Series(["ACGT", bad], name="dna"), alphabet="dna")
    assert "ACGX" not in str(excinfo.value)
