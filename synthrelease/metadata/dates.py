"""Date and datetime columns: their numeric form inside the model, from PUBLIC metadata only.

Inside synthrelease a ``date`` column is a number of days since 1970-01-01 and a
``datetime`` column a number of seconds since 1970-01-01T00:00:00 (naive wall-clock
time; a value written with a UTC offset is converted to UTC). The conversion uses only
the column's declared type and ``format``, never the rows:

* the schema converts the declared ``min``/``max`` (ISO strings, or the dates YAML
  parses) to these units with :func:`bound_to_number` and writes them back as ISO
  strings with :func:`number_to_iso`;
* the encoder, validation and every audit read a date column's values with
  :func:`to_numbers` (through :func:`column_numbers`), the same way on private and
  synthetic tables: unparsable values become NaN, like a non-number in a numerical column;
* decoding writes generated values (whole days, whole seconds) back as strings in the
  declared format with :func:`to_strings`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from synthrelease.metadata.schema import ColumnSpec

TEMPORAL_TYPES = ("date", "datetime")
"""Column types stored as numbers of days (``date``) or seconds (``datetime``) since 1970-01-01."""

UNIT_SECONDS = {"date": 86400, "datetime": 1}
"""Seconds in one unit of each temporal type's numeric form."""

DEFAULT_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%dT%H:%M:%S"}
"""How values are written when the metadata declares no ``format`` (ISO 8601). When reading
a column without a declared format, any ISO 8601 spelling is accepted (``T`` or a space,
optional seconds, an optional UTC offset)."""

_EPOCH = datetime(1970, 1, 1)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")
_EPOCH_UTC = pd.Timestamp("1970-01-01", tz="UTC")
_FORMAT_SAMPLES = (datetime(2001, 2, 3, 4, 5, 6), datetime(1999, 12, 31, 23, 59, 58))


def check_format(fmt: str, kind: str) -> None:
    """Refuse a ``format`` that cannot write a value and read it back unchanged.

    Raises:
        ValueError: one sentence naming the format.
    """
    if "%" not in fmt:
        raise ValueError(f"format {fmt!r} has no strftime directive (e.g. '%d/%m/%Y')")
    for sample in _FORMAT_SAMPLES:
        value = datetime(sample.year, sample.month, sample.day) if kind == "date" else sample
        try:
            back = datetime.strptime(value.strftime(fmt), fmt)
        except ValueError:
            back = None
        if back != value:
            need = "year, month and day" if kind == "date" else "year, month, day, hour, minute and second"
            shown = value.date().isoformat() if kind == "date" else value.isoformat()
            raise ValueError(f"format {fmt!r} cannot write {shown} and read it back unchanged "
                             f"(a {kind} format needs the {need})")


def _to_datetime(value: Any, kind: str, fmt: str | None) -> datetime:
    if isinstance(value, datetime):  # pd.Timestamp too
        dt = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        example = "2001-01-01" if kind == "date" else "2001-01-01T08:00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            if fmt is None:
                raise ValueError(f"{value!r} is not an ISO {kind} (e.g. '{example}')") from None
            try:
                dt = datetime.strptime(text, fmt)
            except ValueError:
                raise ValueError(f"{value!r} is neither an ISO {kind} (e.g. '{example}') nor written as "
                                 f"{fmt!r}") from None
    else:
        example = "2001-01-01" if kind == "date" else "2001-01-01T08:00:00"
        raise ValueError(f"a {kind} bound must be an ISO {kind} string such as '{example}', "
                         f"not {type(value).__name__} {value!r}")
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def bound_to_number(value: Any, kind: str, fmt: str | None = None) -> float:
    """A declared bound (ISO string, ``datetime.date``/``datetime``, or a string in ``fmt``) in
    days (``date``) or seconds (``datetime``) since 1970-01-01.

    Raises:
        ValueError: not a date of that kind (a number, an unparsable string, a time of day
            on a ``date`` bound).
    """
    if isinstance(value, bool | int | float):
        example = "2001-01-01" if kind == "date" else "2001-01-01T08:00:00"
        raise ValueError(f"a {kind} bound must be an ISO {kind} string such as '{example}', not the number {value!r}")
    dt = _to_datetime(value, kind, fmt)
    seconds = (dt - _EPOCH) / timedelta(seconds=1)
    if kind == "date":
        if seconds % 86400:
            raise ValueError(f"{value!s} has a time of day; the bounds of a date column are dates (e.g. '2001-01-01')")
        return float(seconds // 86400)
    return float(seconds)


def number_to_iso(x: float, kind: str) -> str:
    """The ISO string of a number of days (``date``) or seconds (``datetime``) since 1970-01-01."""
    if kind == "date":
        return (_EPOCH + timedelta(days=round(x))).date().isoformat()
    dt = _EPOCH + timedelta(seconds=x)
    return dt.isoformat(timespec="seconds" if dt.microsecond == 0 else "microseconds")


def _parse_strings(texts: list[str], kind: str, fmt: str | None) -> np.ndarray:
    """Seconds since the epoch of each string (NaN when unparsable); pandas, then Python for the rest."""
    out = np.full(len(texts), np.nan)
    ok = np.array([fmt is not None or _ISO.fullmatch(t) is not None for t in texts], dtype=bool)
    if not ok.any():
        return out
    chosen = [t for t, good in zip(texts, ok, strict=True) if good]
    parsed = pd.to_datetime(pd.Series(chosen, dtype=object), format=fmt or "ISO8601", errors="coerce", utc=True)
    out[ok] = ((parsed - _EPOCH_UTC) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    for i in np.nonzero(np.isnan(out) & ok)[0]:  # outside pandas' 1677..2262 range, or truly unparsable
        try:
            dt = datetime.strptime(texts[i], fmt) if fmt is not None else datetime.fromisoformat(texts[i])
        except ValueError:
            continue
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        out[i] = (dt - _EPOCH) / timedelta(seconds=1)
    return out


def _number_text(v: Any) -> str | None:
    """A number read by pandas from a date column written as digits (e.g. ``20010131`` for ``%Y%m%d``)."""
    f = float(v)
    if not math.isfinite(f):
        return None
    return str(int(f)) if f.is_integer() else repr(f)


def to_numbers(series: pd.Series, kind: str, fmt: str | None = None) -> np.ndarray:
    """float64 days (``date``) or seconds (``datetime``) since 1970-01-01 of each value.

    Strings are read with ``fmt`` (strftime pattern), or as any ISO 8601 spelling when
    ``fmt`` is None; ``datetime.date``/``datetime``/numpy/pandas datetimes are taken as they
    are; a value with a UTC offset is converted to UTC. Missing, empty and unparsable values
    are NaN, and so is a time of day other than midnight in a ``date`` column. Parses each
    distinct value once. Reads whatever rows it is given (private or synthetic) and learns
    nothing from them.
    """
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        ts = series
        if getattr(series.dtype, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        seconds = ((ts - _EPOCH_UTC) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = np.full(len(uniques), np.nan)
        texts: list[str] = []
        where: list[int] = []
        for i, v in enumerate(uniques):
            if isinstance(v, datetime | date | np.datetime64):
                values[i] = _stamp_seconds(v, kind)
                continue
            if isinstance(v, bool | np.bool_):
                continue
            text = _number_text(v) if isinstance(v, int | float | np.integer | np.floating) else str(v).strip()
            if text:
                texts.append(text)
                where.append(i)
        values[where] = _parse_strings(texts, kind, fmt)
        seconds = np.where(codes >= 0, values[np.maximum(codes, 0)], np.nan) if len(uniques) else \
            np.full(len(series), np.nan)
    if kind == "date":
        with np.errstate(invalid="ignore"):
            days = seconds / 86400.0
            return np.where(days == np.floor(days), days, np.nan)
    return seconds


def to_strings(values: np.ndarray, kind: str, fmt: str | None = None) -> pd.Series:
    """Days/seconds since 1970-01-01 as strings in ``fmt`` (default ISO); NaN → None.

    Values are rounded to whole days (``date``) or whole seconds (``datetime``).
    """
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    whole = np.where(missing, 0.0, np.round(values)).astype(np.int64)
    stamps = pd.Series(whole.astype("datetime64[D]" if kind == "date" else "datetime64[s]"))
    text = stamps.dt.strftime(fmt or DEFAULT_FORMATS[kind]).astype(object)
    text[missing] = None
    return text.reset_index(drop=True)


def _stamp_seconds(value: datetime | date | np.datetime64, kind: str) -> float:
    """Seconds since 1970 of a date object; NaN for one no datetime can hold (e.g. NaT or beyond
    year 9999): the caller's validation reports it as a value that is not a date."""
    stamp = pd.Timestamp(value) if isinstance(value, np.datetime64) else value
    if stamp is pd.NaT:
        return float("nan")
    try:
        return (_to_datetime(stamp, kind, None) - _EPOCH) / timedelta(seconds=1)
    except (ValueError, OverflowError):
        return float("nan")  # explicit: not a representable date → counted as "not a date"


def column_numbers(series: pd.Series, spec: ColumnSpec) -> pd.Series:
    """A numerical column's values as float (NaN for missing or unparsable), same index.

    ``integer``/``float``: ``pd.to_numeric``; ``date``/``datetime``: :func:`to_numbers` with
    the declared format. This is how the encoder, validation and the audits read a
    numerical column, so private and synthetic tables are converted identically.
    """
    if spec.type in TEMPORAL_TYPES:
        return pd.Series(to_numbers(series, spec.type, spec.format), index=series.index, dtype=float)
    return pd.to_numeric(series, errors="coerce").astype(float)


def held_as_numbers(spec: ColumnSpec, dtype: np.dtype) -> bool:
    """True when :func:`column_numbers` of an ``integer``/``float`` column held with ``dtype``
    is just its values as float64 (a numeric dtype: nothing to parse), so blocks of such
    columns can be converted at once."""
    return spec.type in ("integer", "float") and dtype.kind in "fiu"
