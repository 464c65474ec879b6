from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synthrelease.errors import InputFileError, MetadataError
from synthrelease.metadata.infer import infer_metadata, metadata_to_yaml
from synthrelease.metadata.load import load_metadata, require_reviewed
from synthrelease.metadata.schema import Metadata, canonical_category, canonical_category_series
from tests.conftest import TINY_METADATA, make_tiny_table


def _write(tmp_path, obj, name="m.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(obj, sort_keys=False))
    return p


def test_valid_metadata_loads(tmp_path):
    meta = load_metadata(_write(tmp_path, TINY_METADATA))
    assert meta.model_columns[0] == "age" and "patient_id" not in meta.model_columns
    assert meta.to_sdmetrics()["columns"]["smoker"] == {"sdtype": "boolean"}
    assert meta.columns["stage"].canonical_categories() == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"age": {"type": "integer", "min": 5, "max": 1}}, "columns.age"),
        ({"age": {"type": "integer"}}, "public bounds"),
        ({"sex": {"type": "categorical"}}, "categories"),
        ({"sex": {"type": "categorical", "categories": ["F", "F"]}}, "duplicates"),
        ({"age": {"type": "integer", "min": 0, "max": 9, "colour": "red"}}, "unknown key"),
        ({"age": {"type": "number", "min": 0, "max": 9}}, "columns.age.type"),
    ],
)
def test_invalid_metadata_names_file_and_field(tmp_path, patch, needle):
    bad = {**TINY_METADATA, "columns": {**TINY_METADATA["columns"], **patch}}
    path = _write(tmp_path, bad)
    with pytest.raises(MetadataError) as err:
        load_metadata(path)
    assert str(path) in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_target_must_be_declared_and_discrete(tmp_path):
    with pytest.raises(MetadataError, match="target"):
        load_metadata(_write(tmp_path, {**TINY_METADATA, "target": "age"}))


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_metadata(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("columns: [unclosed\n")
    with pytest.raises(InputFileError, match="line"):
        load_metadata(p)


def test_unreviewed_metadata_is_refused():
    meta = Metadata.model_validate({**TINY_METADATA, "reviewed": False})
    with pytest.raises(MetadataError, match="reviewed: true"):
        require_reviewed(meta, "m.yaml")


def test_infer_drafts_unreviewed_with_warning():
    df = make_tiny_table(200, seed=1)
    meta = infer_metadata(df, name="x", target="outcome")
    assert meta.reviewed is False
    assert meta.columns["patient_id"].type == "identifier"
    assert meta.columns["age"].type == "integer"
    assert meta.columns["sex"].type == "categorical"
    text = metadata_to_yaml(meta, draft=True)
    assert "PRIVATE" in text and "reviewed: false" in text
    assert Metadata.model_validate(yaml.safe_load(text)) == meta


@pytest.mark.parametrize(("value", "canon"), [(1, "1"), (1.0, "1"), ("1", "1"), (" a ", "a"), (True, "True"),
                                              (float("nan"), None), ("", None), (2.5, "2.5")])
def test_canonical_category(value, canon):
    assert canonical_category(value) == canon


@pytest.mark.parametrize("values", [
    [1, 2.0, float("nan"), 3.5, 2],
    ["a", " b", "", "nan", None, "a"],
    [True, 1, 0, False, None],  # True == 1 when hashed: must still give "True" and "1"
    ["1", "1.0", 1, " 7 "],
    [],
])
def test_canonical_categories_equals_the_value_by_value_canonical_form(values):
    series = pd.Series(values, dtype=object)
    got = canonical_category_series(series).tolist()
    assert got == [canonical_category(v) for v in values]
    typed = pd.Series(values)  # pandas' own dtype (float, bool-object, string…)
    assert canonical_category_series(typed).tolist() == [canonical_category(v) for v in typed.tolist()]
