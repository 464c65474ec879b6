"""Date and datetime columns: schema, encoding, validation, infer, training, audits, `before` rules."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from synthrelease.audits.plausibility import check_rules, run_plausibility
from synthrelease.errors import DataValidationError, MetadataError, PolicyError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.sampling import sample_frame
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.metadata.dates import column_numbers, to_numbers, to_strings
from synthrelease.metadata.infer import infer_metadata, metadata_to_yaml
from synthrelease.metadata.load import load_metadata
from synthrelease.metadata.schema import ColumnSpec, Metadata
from synthrelease.policy.schema import PlausibilityClauses, load_policy
from synthrelease.privacy.randomness import PrivateRandomness
from synthrelease.transforms.encoders import TableEncoder
from synthrelease.validation.expectations import check_table, validate_table

META = {
    "version": 1, "name": "admissions", "reviewed": True, "target": "ward",
    "columns": {
        "admitted": {"type": "date", "min": "2020-01-01", "max": "2020-12-31", "format": "%d/%m/%Y"},
        "discharged": {"type": "date", "min": "2020-01-01", "max": "2021-03-31", "nullable": True},
        "seen_at": {"type": "datetime", "min": "2020-01-01T00:00:00", "max": "2021-03-31T23:59:59"},
        "age": {"type": "integer", "min": 0, "max": 100},
        "ward": {"type": "categorical", "categories": ["A", "B"]},
    },
}


def admissions(n: int, seed: int = 0) -> pd.DataFrame:
    """Admission before discharge (a few missing discharges), a datetime on the discharge day."""
    rng = np.random.default_rng(seed)
    admitted = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 366, n), unit="D")
    stay = pd.to_timedelta(rng.integers(0, 30, n), unit="D")
    discharged = (admitted + stay).strftime("%Y-%m-%d").to_numpy(dtype=object)
    discharged[rng.random(n) < 0.1] = None
    seen = admitted + stay + pd.to_timedelta(rng.integers(0, 86400, n), unit="s")
    return pd.DataFrame({
        "admitted": admitted.strftime("%d/%m/%Y"), "discharged": discharged,
        "seen_at": seen.strftime("%Y-%m-%dT%H:%M:%S"), "age": rng.integers(18, 90, n),
        "ward": rng.choice(["A", "B"], n),
    })


@pytest.fixture(scope="module")
def meta() -> Metadata:
    return Metadata.model_validate(META)


# ------------------------------------------------------------------------------------ schema


def test_bounds_are_iso_strings_or_yaml_dates_and_written_back_as_iso(tmp_path):
    text = yaml.safe_dump(META, sort_keys=False).replace("'2020-01-01'", "2020-01-01")  # unquoted: datetime.date
    assert "min: 2020-01-01\n" in text
    path = tmp_path / "m.yaml"
    path.write_text(text)
    meta = load_metadata(path)
    spec = meta.columns["admitted"]
    assert spec.is_numerical and spec.is_temporal and spec.domain() == (18262.0, 18627.0)  # days since 1970
    assert meta.columns["seen_at"].domain()[0] == 18262 * 86400.0  # seconds since 1970
    dumped = meta.to_yaml_dict()["columns"]
    assert dumped["admitted"]["min"] == "2020-01-01" and dumped["seen_at"]["max"] == "2021-03-31T23:59:59"
    assert Metadata.model_validate(yaml.safe_load(yaml.safe_dump(meta.to_yaml_dict()))) == meta
    assert meta.date_columns == ["admitted", "discharged", "seen_at"] and meta.numerical_columns == ["age"]
    assert meta.to_sdmetrics()["columns"]["admitted"] == {"sdtype": "numerical"}
    assert ColumnSpec(type="date", min=dt.date(2001, 1, 1), max=dt.datetime(2002, 1, 1)).domain() == (11323, 11688)
    assert ColumnSpec(type="datetime", min="2001-01-01", max="2001-01-01 08:00").domain() == (
        11323 * 86400.0, 11323 * 86400.0 + 8 * 3600)


@pytest.mark.parametrize(("patch", "needle"), [
    ({"type": "date", "min": "2020-13-01", "max": "2021-01-01"}, "min: '2020-13-01' is not an ISO date"),
    ({"type": "date", "min": "2021-01-01", "max": "2020-01-01"}, "min (2021-01-01) must be before max (2020-01-01)"),
    ({"type": "date", "min": "2020-01-01", "max": "2020-01-01"}, "must be before max"),
    ({"type": "datetime", "min": "2020-01-01T09:00:00", "max": "2020-01-01T08:00:00"}, "must be before max"),
    ({"type": "date", "min": 2020, "max": "2021-01-01"}, "not the number 2020"),
    ({"type": "date", "min": "2020-01-01T08:00:00", "max": "2021-01-01"}, "has a time of day"),
    ({"type": "date"}, "needs public bounds 'min' and 'max'"),
    ({"type": "date", "min": "2020-01-01", "max": "2021-01-01", "format": "%Y-%m"}, "format '%Y-%m' cannot"),
    ({"type": "datetime", "min": "2020-01-01", "max": "2021-01-01", "format": "%d/%m/%Y"}, "hour, minute"),
    ({"type": "date", "min": "2020-01-01", "max": "2021-01-01", "format": "dd/mm/yyyy"}, "no strftime directive"),
    ({"type": "float", "min": 0, "max": 1, "format": "%Y-%m-%d"}, "format applies to date"),
    ({"type": "date", "dp_bounds": {"search_min": 0, "search_max": 9}}, "dp_bounds is not supported"),
    ({"type": "date", "min": "2020-01-01", "max": "2021-01-01", "transform": "log1p"}, "do not apply"),
    ({"type": "date", "min": "2020-01-01", "max": "2021-01-01", "categories": ["x"]}, "not categories"),
])
def test_bad_date_columns_are_one_line_errors_naming_file_and_column(tmp_path, patch, needle):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**META, "columns": {**META["columns"], "admitted": patch}}, sort_keys=False))
    with pytest.raises(MetadataError) as err:
        load_metadata(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: metadata field 'columns.admitted'") and needle in msg and "\n" not in msg


def test_date_formats_may_give_bounds_too():
    spec = ColumnSpec(type="date", min="01/02/2001", max="2001-03-01", format="%d/%m/%Y")
    assert spec.model_dump(mode="json")["min"] == "2001-02-01"


# ------------------------------------------------------------------------------------ encoding


def test_encode_decode_round_trip_of_dates_and_datetimes(meta):
    df = admissions(300)
    enc = TableEncoder(meta)
    back = enc.decode(enc.encode(df))
    assert back["admitted"].tolist() == df["admitted"].tolist()  # whole days: exact, in the declared format
    # whole seconds, ISO; the float32 encoding of 15 months resolves a few seconds
    assert back["seen_at"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").all()
    drift = pd.to_datetime(back["seen_at"]) - pd.to_datetime(df["seen_at"])
    assert drift.abs().max() <= pd.Timedelta(seconds=5)
    missing = df["discharged"].isna()
    assert back["discharged"][missing].isna().all()
    assert back["discharged"][~missing].tolist() == df["discharged"][~missing].tolist()
    # arbitrary generator outputs: whole days, within the declared bounds, in the declared format
    rng = np.random.default_rng(1)
    x = enc.encode(df)
    x[:, enc.span("admitted", "value").start] = rng.uniform(-1.5, 1.5, len(df))
    out = enc.decode(x)["admitted"]
    days = to_numbers(out, "date", "%d/%m/%Y")
    assert not np.isnan(days).any() and days.min() >= 18262 and days.max() <= 18627
    assert out.str.fullmatch(r"\d{2}/\d{2}/\d{4}").all()


def test_values_parse_from_many_spellings_and_outside_pandas_range():
    s = pd.Series(["2001-01-02", "2001-01-02T00:00:00", " 1600-03-01 ", None, "", "2001", "02/01/2001", "x",
                   "2001-01-02T08:00:00"], dtype=object)
    days = to_numbers(s, "date")
    assert days[0] == days[1] == 11324 and days[2] == (dt.date(1600, 3, 1) - dt.date(1970, 1, 1)).days
    assert np.isnan(days[3:]).all()  # missing, empty, year only, another format, junk, a time of day
    secs = to_numbers(s, "datetime")
    assert secs[8] == 11324 * 86400 + 8 * 3600 and np.isnan(secs[5])
    assert to_numbers(pd.Series([dt.date(2001, 1, 2), pd.Timestamp("2001-01-02"), np.datetime64("2001-01-02")]),
                      "date").tolist() == [11324.0] * 3
    assert to_numbers(pd.Series(pd.to_datetime(["2001-01-02", None])), "date")[0] == 11324
    assert to_numbers(pd.Series([20010102, 20010103]), "date", "%Y%m%d").tolist() == [11324.0, 11325.0]
    assert to_strings(np.array([11324.4, np.nan, -135140]), "date").tolist() == ["2001-01-02", None, "1600-01-01"]
    spec = ColumnSpec(type="date", min="2000-01-01", max="2002-01-01", format="%d.%m.%Y")
    assert column_numbers(pd.Series(["02.01.2001"], index=[7]), spec).loc[7] == 11324


# ------------------------------------------------------------------------------------ validation


def test_validation_refuses_unparsable_and_out_of_bound_dates_naming_the_column(meta):
    df = admissions(60)
    assert check_table(df, meta).success
    df.loc[0:2, "admitted"] = "2020-03-01"  # ISO, but the column declares %d/%m/%Y
    df.loc[3, "admitted"] = "31/12/2021"  # after max
    df.loc[4, "discharged"] = "garbage-9931"
    df.loc[5, "seen_at"] = "2019-12-31T23:59:59"  # before min
    with pytest.raises(DataValidationError) as err:
        validate_table(df, meta, source="private.csv")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("private.csv: ")
    assert "column 'admitted': 3 row(s) not dates written as '%d/%m/%Y'" in msg
    assert "column 'admitted': 1 row(s) outside the declared [min, max]" in msg
    assert "column 'discharged': 1 row(s) not ISO dates" in msg
    assert "column 'seen_at': 1 row(s) outside the declared [min, max]" in msg
    assert "garbage-9931" not in msg + " ".join(err.value.problems)


# ------------------------------------------------------------------------------------ infer


def test_infer_drafts_date_type_format_and_bounds():
    df = admissions(80).assign(
        us=lambda d: pd.to_datetime(d["admitted"], format="%d/%m/%Y").dt.strftime("%m/%d/%Y"),
        early=["03/04/2001", "01/02/2001"] * 40,  # day/month order ambiguous
        stamp=pd.to_datetime(["2001-01-02 08:00:00", "2001-01-03 09:30:00"] * 40),
        dotted=["31.12.1999", "01.01.2000"] * 40,
    )
    meta = infer_metadata(df, name="x", target="ward")
    cols = meta.columns
    assert meta.reviewed is False
    assert (cols["admitted"].type, cols["admitted"].format) == ("date", "%d/%m/%Y")
    assert (cols["discharged"].type, cols["discharged"].format, cols["discharged"].nullable) == ("date", "%Y-%m-%d",
                                                                                                  True)
    assert (cols["seen_at"].type, cols["seen_at"].format) == ("datetime", "%Y-%m-%dT%H:%M:%S")
    assert (cols["us"].type, cols["us"].format) == ("date", "%m/%d/%Y")
    assert cols["early"].format == "%d/%m/%Y" and "ambiguous" in cols["early"].description
    assert (cols["stamp"].type, cols["stamp"].format) == ("datetime", None)
    assert cols["dotted"].format == "%d.%m.%Y"
    days = pd.to_datetime(df["admitted"], format="%d/%m/%Y")
    dumped = meta.to_yaml_dict()["columns"]
    assert dumped["admitted"]["min"] == days.min().date().isoformat()  # the data's own bounds, as for numbers
    assert dumped["admitted"]["max"] == days.max().date().isoformat()
    assert dumped["stamp"]["min"] == "2001-01-02T08:00:00"
    assert check_table(df, meta).success  # the draft describes the table it came from
    text = metadata_to_yaml(meta, draft=True)
    assert "PRIVATE" in text and Metadata.model_validate(yaml.safe_load(text)) == meta


def test_infer_leaves_text_that_is_not_all_dates_alone():
    df = pd.DataFrame({"mixed": ["2001-01-02", "soon"] * 30, "code": [f"c{i}" for i in range(60)]})
    cols = infer_metadata(df).columns
    assert cols["mixed"].type == "categorical" and cols["code"].type == "identifier"


# ------------------------------------------------------------------------------------ training


def test_tiny_dp_gan_samples_dates_in_format_within_bounds(meta):
    df = admissions(200)
    cfg = TrainingConfig(target_epsilon=2.0, target_delta=1e-4, batch_size=32, n_steps=10, generator_hidden=16,
                         discriminator_hidden=16, latent_dim=8)
    model = train_dp_gan(df, TableEncoder(meta), cfg, condition_column="ward",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    syn = sample_frame(model, 150, seed=2)
    adm = syn["admitted"]
    assert adm.notna().all() and adm.map(type).eq(str).all()
    assert adm.str.fullmatch(r"\d{2}/\d{2}/\d{4}").all()
    parsed = pd.to_datetime(adm, format="%d/%m/%Y")
    assert parsed.min() >= pd.Timestamp("2020-01-01") and parsed.max() <= pd.Timestamp("2020-12-31")
    seen = pd.to_datetime(syn["seen_at"], format="%Y-%m-%dT%H:%M:%S")
    assert seen.notna().all() and seen.min() >= pd.Timestamp("2020-01-01")
    assert seen.max() <= pd.Timestamp("2021-03-31T23:59:59")
    assert syn["discharged"].dropna().str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert check_table(syn, meta).success  # synthetic rows pass the metadata's own checks
    params = json.loads(json.dumps(model.encoder.parameters()))  # as a model file stores it: ISO bounds
    assert params["metadata"]["columns"]["seen_at"]["min"] == "2020-01-01T00:00:00"
    assert TableEncoder.from_parameters(params).metadata == meta

    # every audit reads the date columns (converted identically on both sides)
    from synthrelease.audits.fidelity import run_fidelity
    from synthrelease.audits.membership import run_membership
    from synthrelease.audits.utility import run_utility
    from synthrelease.budget.fingerprint import table_fingerprint
    from synthrelease.gate import dp_gate
    from synthrelease.report.plot_data import collect_plot_data

    train, hold = df.iloc[:150].reset_index(drop=True), df.iloc[150:].reset_index(drop=True)
    audits = {"fidelity": run_fidelity(train, syn, meta, seed=0),
              "utility": run_utility(train, hold, syn, meta, target="ward", seed=0),
              "membership": run_membership(train, hold, syn, meta, seed=0)}
    shapes = {r["column"]: r for r in audits["fidelity"].details["column_shapes"]}
    assert 0.0 <= shapes["admitted"]["score"] <= 1.0 and audits["fidelity"].details["n_errors"] == 0
    assert audits["utility"].metrics["tstr_accuracy"] is not None
    names = ["quality_score", "coverage", "tstr_accuracy", "dcr_mia_auc", "exact_copy_share"]
    figures = dp_gate.compute_figures(names, train, hold, syn, meta, target="ward", seed=0)
    assert all(figures[n] is not None for n in names)
    plots = collect_plot_data(train, hold, syn, meta, audits, seed=0, target="ward")
    assert plots
    # the ledger's fingerprint reads dates as dates: a re-export in ISO or as Parquet datetimes is the same table
    iso_meta = Metadata.model_validate({**META, "columns": {**META["columns"], "admitted": {
        k: v for k, v in META["columns"]["admitted"].items() if k != "format"}}})
    as_dates = pd.to_datetime(df["admitted"], format="%d/%m/%Y")
    assert table_fingerprint(df, meta) == table_fingerprint(df.assign(admitted=as_dates), meta) == \
        table_fingerprint(df.assign(admitted=as_dates.dt.strftime("%Y-%m-%d")), iso_meta)


# ------------------------------------------------------------------------------------ `before` rules


def _rules(*rules):
    return PlausibilityClauses.model_validate({"rules": list(rules)}).rules


def test_before_rule_passes_on_ordered_dates_and_measures_violations(meta):
    df = admissions(100)
    rules = _rules({"id": "adm_before_dis", "kind": "before", "column_a": "admitted", "column_b": "discharged",
                    "or_equal": True},
                   {"id": "adm_before_seen", "kind": "before", "column_a": "admitted", "column_b": "seen_at"},
                   {"id": "dis_lt_seen", "kind": "less_than", "column_a": "discharged", "column_b": "seen_at",
                    "or_equal": True})
    res = run_plausibility(df, meta, rules)
    assert res.metrics["violation_share:adm_before_dis"] == 0.0
    assert res.metrics["violation_share:adm_before_seen"] == 0.0  # a date is its midnight
    assert res.metrics["violation_share:dis_lt_seen"] == 0.0

    bad = df.copy()
    present = bad.index[bad["discharged"].notna()]
    swap = present[:9]  # 9 discharges moved before their admission
    adm = pd.to_datetime(bad.loc[swap, "admitted"], format="%d/%m/%Y")
    bad.loc[swap, "discharged"] = (adm - pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
    same_day = present[9:12]  # 3 same-day discharges: fine with or_equal, violations without
    bad.loc[same_day, "discharged"] = pd.to_datetime(bad.loc[same_day, "admitted"],
                                                     format="%d/%m/%Y").dt.strftime("%Y-%m-%d")
    res = run_plausibility(bad, meta, _rules(
        {"id": "strict", "kind": "before", "column_a": "admitted", "column_b": "discharged"},
        {"id": "lenient", "kind": "before", "column_a": "admitted", "column_b": "discharged", "or_equal": True,
         "max_violation_share": 0.05}))
    n = len(present)  # rows missing a discharge are not in the rule's domain
    strict_share = (9 + 3 + int((pd.to_datetime(df.loc[present[12:], "discharged"]) ==
                                 pd.to_datetime(df.loc[present[12:], "admitted"], format="%d/%m/%Y")).sum())) / n
    assert res.metrics["violation_share:strict"] == pytest.approx(strict_share)
    assert res.metrics["violation_share:lenient"] == pytest.approx(9 / n)
    assert res.details["rules"][1]["kind"] == "before" and res.details["rules"][1]["passed"] is False
    # less_than on two date columns measures the same thing
    res = run_plausibility(bad, meta, _rules({"id": "lt", "kind": "less_than", "column_a": "admitted",
                                              "column_b": "discharged", "or_equal": True}))
    assert res.metrics["violation_share:lt"] == pytest.approx(9 / n)


@pytest.mark.parametrize(("rule", "needle"), [
    ({"kind": "before", "column_a": "admitted", "column_b": "age"}, "column 'age' is integer; a before rule needs"),
    ({"kind": "before", "column_a": "ward", "column_b": "admitted"}, "column 'ward' is categorical"),
    ({"kind": "before", "column_a": "admitted", "column_b": "nope"}, "column 'nope' is not declared"),
    ({"kind": "less_than", "column_a": "admitted", "column_b": "age"}, "not 'admitted' (date) with 'age' (integer)"),
    ({"kind": "range", "column": "admitted", "min": 0}, "date columns take part only in before and less_than"),
    ({"kind": "non_negative", "columns": ["seen_at"]}, "column 'seen_at' is datetime"),
])
def test_rules_on_the_wrong_columns_are_refused_before_training(meta, tmp_path, rule, needle):
    with pytest.raises(PolicyError) as err:
        check_rules(_rules({"id": "r1", **rule}), meta, policy_path="policy.yaml")
    assert "plausibility rule 'r1'" in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_policy_file_with_a_before_rule_loads(tmp_path):
    doc = {"version": 3, "name": "p", "privacy": {"max_epsilon": 5, "max_delta": 1e-5},
           "membership": {"max_dcr_mia_auc": 0.6},
           "plausibility": {"rules": [{"id": "order", "kind": "before", "column_a": "admitted",
                                       "column_b": "discharged", "or_equal": True, "max_violation_share": 0.05}]}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    policy, _ = load_policy(path)
    (rule,) = policy.rules
    assert (rule.kind, rule.or_equal, rule.max_violation_share) == ("before", True, 0.05)
    doc["plausibility"]["rules"][0]["column_b"] = "admitted"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match="column_a and column_b must differ"):
        load_policy(path)
