"""The internal report's sequence plots: bounded plot data with known answers, drawn from JSON alone."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import modality_for
from synthrelease.modalities.sequence.report_data import MAX_POSITIONS, sequence_plot_data, top_kmers
from synthrelease.report import plots
from synthrelease.report.internal import _release_schema_problem, distributions_view, sequence_figures

META = {"version": 1, "name": "dna", "reviewed": True, "target": "label",
        "columns": {"seq": {"type": "sequence", "alphabet": "dna", "min_length": 2, "max_length": 4},
                    "label": {"type": "categorical", "categories": ["x", "y"]}}}


@pytest.fixture
def meta() -> Metadata:
    return Metadata.model_validate(META)


def test_plot_data_known_answers(meta):
    real = pd.DataFrame({"seq": ["AC", "AG", "ACGT", "TT"], "label": ["x", "x", "y", "y"]})
    syn = pd.DataFrame({"seq": ["AAAA", "CC"], "label": ["x", "y"]})
    data = sequence_plot_data(real, syn, meta)
    assert data["alphabet"] == "ACGT" and data["positions_shown"] == 4 and "INTERNAL" in data["notice"]
    assert [g["label"] for g in data["groups"]] == [None, "x", "y"]
    everyone = data["groups"][0]
    # position 1: A, A, A, T of the real sequences; positions 3 and 4: only ACGT reaches them
    assert everyone["positions"]["real"][0] == [0.75, 0.0, 0.0, 0.25]
    assert everyone["positions"]["real"][3] == [0.0, 0.0, 0.0, 1.0]
    assert everyone["positions"]["synthetic"][2] == [1.0, 0.0, 0.0, 0.0]
    # lengths 2..4, one bin each: real 3 of length 2, 1 of length 4
    assert everyone["lengths"]["real"] == [0.75, 0.0, 0.25] and everyone["lengths"]["synthetic"] == [0.5, 0.0, 0.5]
    # label y: ACGT and TT
    assert data["groups"][2]["positions"]["real"][0] == [0.5, 0.0, 0.0, 0.5]
    assert data["groups"][1]["lengths"]["synthetic"] == [0.0, 0.0, 1.0]


def test_top_kmers_are_ordered_by_real_share_and_bounded():
    out = top_kmers(["AAAC", "AC"], ["CCCC"], k=2, top=3)
    # real 2-mers: AA, AA, AC, AC → AA 0.5, AC 0.5; synthetic CC 1.0
    assert out["kmers"] == ["AA", "AC", "CC"]
    assert out["real"] == [0.5, 0.5, 0.0] and out["synthetic"] == [0.0, 0.0, 1.0]
    assert len(top_kmers(["ACGTACGTTGCA"], ["GGGG"], top=2)["kmers"]) == 2


def test_positions_are_capped_and_shares_sum_to_one():
    meta = Metadata.model_validate({**META, "columns": {**META["columns"], "seq": {
        "type": "sequence", "alphabet": "dna", "min_length": 2, "max_length": 200}}})
    real = pd.DataFrame({"seq": ["ACGT" * 40, "GG"], "label": ["x", "y"]})
    data = sequence_plot_data(real, real, meta)
    matrix = data["groups"][0]["positions"]["real"]
    assert len(matrix) == MAX_POSITIONS == data["positions_shown"]
    assert all(abs(sum(row) - 1.0) < 1e-9 for row in matrix)
    assert len(data["groups"][0]["lengths"]["real"]) == 30 and sum(data["groups"][0]["lengths"]["real"]) == 1.0


def test_the_modality_hands_its_plot_data_and_the_report_draws_it_from_json(meta):
    real = pd.DataFrame({"seq": ["ACGT", "AC", "GGT"], "label": ["x", "y", "x"]})
    syn = pd.DataFrame({"seq": ["ACGA", "TT"], "label": ["x", "y"]})
    plot_data = json.loads(json.dumps(modality_for(meta).report_plot_data(real, syn, meta)))
    figures = sequence_figures(plot_data["sequence"])
    assert len(figures) == 2 * 3  # (letters per position, 2-mers and lengths) × (all, x, y)
    assert all(f["src"].startswith("data:image/png;base64,") for f in figures)
    assert "PRIVATE" in figures[0]["caption"] and "labelled y" in figures[-1]["alt"]
    view = distributions_view({"notice": "n", **plot_data})
    assert len(view["figures"]) == 6
    group = plot_data["sequence"]["groups"][0]
    png = plots.position_letter_heatmaps(group, "ACGT")
    assert png.startswith(b"\x89PNG") and png == plots.position_letter_heatmaps(group, "ACGT")
    assert sequence_figures(None) == []


def test_a_report_with_malformed_sequence_plots_is_named():
    doc = {"privacy": {"epsilon": 1.0, "delta": 1e-6, "mechanisms": []}, "audits": {}, "plots": {"sequence": []}}
    assert "plots.sequence" in (_release_schema_problem(doc) or "")
