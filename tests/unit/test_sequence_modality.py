"""The sequence modality's own pieces: schema, positional layout, copies by key, the conv critic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.validators import ModuleValidator

from synthrelease.audits.dp_figures import exact_copy_share_by_key
from synthrelease.errors import MetadataError
from synthrelease.gan.models import SequenceDiscriminator
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.base import modality_for
from synthrelease.modalities.sequence.positional import END, from_positions, positional_metadata, to_positions

META = {"version": 1, "name": "peps", "reviewed": True, "target": "label",
        "columns": {"pid": {"type": "identifier"},
                    "seq": {"type": "sequence", "alphabet": "protein", "min_length": 3, "max_length": 12},
                    "label": {"type": "categorical", "categories": ["a", "b"]}}}


@pytest.mark.parametrize(("change", "message"), [
    ({"alphabet": None}, "needs a public 'alphabet'"),
    ({"min_length": 20}, "must not exceed max_length"),
    ({"nullable": True}, "cannot be nullable"),
    ({"alphabet": "protein", "type": "float", "min": 0, "max": 1}, "apply to sequence columns"),
])
def test_sequence_columns_are_validated(change, message):
    doc = {**META, "columns": {**META["columns"], "seq": {**META["columns"]["seq"], **change}}}
    doc["columns"]["seq"] = {k: v for k, v in doc["columns"]["seq"].items() if v is not None}
    with pytest.raises(ValueError, match=message):
        Metadata.model_validate(doc)


def test_a_sequence_table_holds_sequence_label_and_ids_only():
    doc = {**META, "columns": {**META["columns"], "age": {"type": "integer", "min": 0, "max": 9}}}
    with pytest.raises(ValueError, match="neither"):
        Metadata.model_validate(doc)
    meta = Metadata.model_validate(META)
    assert meta.modality == "sequence" and modality_for(meta).name == "sequence"
    with pytest.raises(MetadataError, match="--modality table"):
        modality_for(meta, "table")


def test_positions_round_trip_and_public_layout():
    meta = Metadata.model_validate(META)
    df = pd.DataFrame({"pid": ["x", "y"], "seq": ["ACD", "KKKKKKKKKKKK"], "label": ["a", "b"]})
    pos = to_positions(df, meta)
    assert pos.shape == (2, 14) and pos.iloc[0, 3] == END and pos.iloc[1, 11] == "K"
    assert pos["_length"].tolist() == [3, 12]
    assert from_positions(pos, meta).equals(df[["seq", "label"]])
    pm = positional_metadata(meta)
    assert pm.columns["pos_001"].canonical_categories()[-1] == END and len(pm.columns) == 14
    # end tokens in the middle are dropped: letters are kept in order
    pos.iloc[1, 2] = END
    assert from_positions(pos, meta)["seq"][1] == "K" * 11


def test_copies_by_key_move_by_at_most_one_over_n_minus_one():
    rng = np.random.default_rng(0)
    train = np.array(["".join(rng.choice(list("ACDE"), 4)) for _ in range(50)])
    synthetic = np.concatenate([train[:10], ["AAAA", "CCCC"]])
    base = exact_copy_share_by_key(train, synthetic)
    assert base.values[0] == pytest.approx(np.isin(train, synthetic).mean())
    for i in (0, 20):
        fewer = exact_copy_share_by_key(np.delete(train, i), synthetic)
        assert abs(fewer.values[0] - base.values[0]) <= base.l2_sensitivity + 1e-12


def test_the_conv_critic_is_dp_sgd_friendly():
    d = SequenceDiscriminator(2 + 12 * 21, start=0, length=12, tokens=21, channels=8, hidden=16)
    assert ModuleValidator.validate(d, strict=False) == []
    x = torch.rand(5, 2 + 12 * 21)
    assert d(x).shape == (5,)
    with pytest.raises(ValueError, match="outside"):
        SequenceDiscriminator(10, start=0, length=12, tokens=21)
