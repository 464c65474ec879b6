from __future__ import annotations

import json
import os

import pytest

from synthrelease.errors import DataValidationError
from synthrelease.validation.expectations import check_table, validate_table


def test_analytics_is_off_after_import():
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


def test_valid_table_passes(tiny_metadata, tiny_table):
    report = check_table(tiny_table, tiny_metadata)
    assert report.success and report.n_checks > 10


def test_failures_name_column_check_and_count_but_never_values(tiny_metadata, tiny_table):
    df = tiny_table.copy()
    df.loc[df.index[:3], "age"] = 987654
    df.loc[df.index[5], "sex"] = "Zebra-9731"
    df.loc[df.index[6:8], "outcome"] = None
    df.loc[df.index[9], "bmi"] = "not-a-number-4471"
    with pytest.raises(DataValidationError) as err:
        validate_table(df, tiny_metadata, source="private.csv")
    msg = str(err.value)
    assert msg.startswith("private.csv: ")
    assert "column 'age': 3 row(s) outside" in msg
    assert "column 'sex': 1 row(s) not in the declared categories" in msg
    assert "column 'outcome': 2 row(s) missing" in msg
    assert "column 'bmi': 1 row(s) not numbers" in msg
    report = check_table(df, tiny_metadata)
    blob = msg + json.dumps(report.gx_result) + " ".join(err.value.problems)
    for secret in ("987654", "Zebra-9731", "not-a-number-4471"):
        assert secret not in blob


def test_missing_and_undeclared_columns(tiny_metadata, tiny_table):
    df = tiny_table.drop(columns=["bmi"]).assign(ssn="x")
    failures = check_table(df, tiny_metadata).failures
    assert {(f.column, f.expectation) for f in failures} == {
        ("bmi", "expect_column_to_exist"), ("ssn", "expect_column_to_be_declared")}


def test_categories_match_canonically(tiny_metadata, tiny_table):
    df = tiny_table.copy()
    df["stage"] = df["stage"].astype(float)  # 1.0 is category "1"
    assert check_table(df, tiny_metadata).success
    df["stage"] = df["stage"].astype(int).astype(str)
    assert check_table(df, tiny_metadata).success


def test_integer_column_rejects_fractions(tiny_metadata, tiny_table):
    df = tiny_table.copy()
    df["age"] = df["age"].astype(float)
    df.loc[df.index[0], "age"] = 40.5
    failures = check_table(df, tiny_metadata).failures
    assert [(f.column, f.expectation, f.unexpected_count) for f in failures] == [("age", "values_are_integers", 1)]


def test_wide_tables_use_vectorised_numeric_checks_with_same_results(monkeypatch, tiny_metadata, tiny_table):
    import synthrelease.validation.expectations as ex

    df = tiny_table.copy()
    df.loc[df.index[:4], "age"] = 987654
    df.loc[df.index[:2], "dose"] = None
    narrow = {(f.column, f.expectation, f.unexpected_count) for f in check_table(df, tiny_metadata).failures}
    monkeypatch.setattr(ex, "WIDE_NUMERIC_COLUMNS", 1)
    wide = {(f.column, f.expectation, f.unexpected_count) for f in check_table(df, tiny_metadata).failures}
    assert wide == narrow == {("age", "expect_column_values_to_be_between", 4),
                              ("dose", "expect_column_values_to_not_be_null", 2)}
