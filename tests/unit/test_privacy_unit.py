"""privacy_unit_column: one person, one row, by a per-person rule."""

from __future__ import annotations

import pytest

from synthrelease.errors import DataValidationError, MetadataError
from synthrelease.pipeline import stages
from tests.conftest import TINY_METADATA, make_tiny_table

PERSONS = {**TINY_METADATA, "columns": {"person": {"type": "identifier"}, **TINY_METADATA["columns"]},
           "privacy_unit_column": "person"}


def test_only_each_persons_first_row_is_kept_and_a_person_moves_only_their_row():
    df = make_tiny_table(60, seed=1)
    df.insert(0, "person", [f"p{i // 3}" for i in range(60)])  # 20 persons, 3 rows each
    kept = stages.validate(stages.load(df, PERSONS)).table
    assert len(kept) == 20 and kept["person"].is_unique
    assert kept.equals(df.iloc[::3].reset_index(drop=True))
    without = stages.validate(stages.load(df[df["person"] != "p7"], PERSONS)).table
    assert without.equals(kept[kept["person"] != "p7"].reset_index(drop=True))


def test_the_unit_column_must_be_a_declared_identifier_without_gaps():
    with pytest.raises(MetadataError, match="privacy_unit_column"):
        stages.resolve_metadata({**TINY_METADATA, "privacy_unit_column": "age"})
    df = make_tiny_table(20, seed=1)
    df.insert(0, "person", [None] + [f"p{i}" for i in range(1, 20)])
    with pytest.raises(DataValidationError, match="privacy_unit_column 'person'"):
        stages.validate(stages.load(df, PERSONS))


@pytest.mark.parametrize("blank", ["", "  ", "nan", "NaN", "None", float("nan")])
def test_blank_person_ids_are_refused_in_npz_tiles_as_in_tables(tmp_path, blank):
    """Issue 26.10: an empty or NaN person id in an npz (stored as text by NumPy) is not a person."""
    import numpy as np

    from synthrelease.pipeline.stages import first_rows_per_person

    df = make_tiny_table(20, seed=1)
    df.insert(0, "person", [blank] + [f"p{i}" for i in range(1, 20)])
    with pytest.raises(DataValidationError, match="privacy_unit_column 'person'"):
        stages.validate(stages.load(df, PERSONS))
    ids = np.array([str(blank)] + [f"p{i}" for i in range(1, 20)])  # as np.savez stores a mixed list
    frame = df.assign(person=ids)
    with pytest.raises(DataValidationError, match="empty values"):
        first_rows_per_person(frame, "person", 3, source="tiles.npz")
