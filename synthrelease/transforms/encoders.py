"""Reversible encoding of a table into the generator's space, from PUBLIC metadata only.

Guarantee: no parameter of :class:`TableEncoder` depends on the private rows. Bounds,
category lists, the log transform and the zero/missing indicators are all read from
the declared metadata; :meth:`TableEncoder.encode` applies them to rows but learns
nothing from them. So the encoder itself may be released with the generator at no ε
cost (tested: changing private rows changes no parameter).

Encoded layout, per synthesised column, in metadata order:

* numerical: ``[missing?] [zero?] value`` — an optional 2-way one-hot for missing
  (nullable columns), an optional 2-way one-hot for exactly-zero (``zero_inflated``),
  then one continuous value in [-1, 1]: the clipped value, ``log1p``-transformed if
  declared, scaled linearly from the declared public bounds.
* date / datetime: as numerical, the value being days / seconds since 1970-01-01, read
  from the declared ``format`` (:mod:`synthrelease.metadata.dates`); decoded to whole
  days / seconds and written back as strings in that format.
* categorical / boolean: one-hot over the declared categories, plus ``<missing>`` for
  nullable columns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from synthrelease.errors import MetadataError, ModelFileError
from synthrelease.metadata.dates import column_numbers, to_strings
from synthrelease.metadata.schema import ColumnSpec, Metadata, canonical_category_series

MISSING = "<missing>"
SpanKind = Literal["continuous", "discrete"]


@dataclass(frozen=True)
class Span:
    """A slice of the encoded vector.

    Attributes:
        column: source column.
        role: ``value`` (continuous value), ``category``, ``missing`` or ``zero`` (indicators).
        kind: ``continuous`` (one tanh output) or ``discrete`` (a softmax block).
        start: first index in the encoded vector.
        width: number of entries (1 for continuous).
    """

    column: str
    role: str
    kind: SpanKind
    start: int
    width: int

    @property
    def stop(self) -> int:
        """One past the last index."""
        return self.start + self.width


PLAIN_FLOATS_AT_ONCE = 64
"""Above this many ``float`` columns without ``decimals``, :meth:`TableEncoder.decode` decodes
them as one block (same values)."""


def _forward(spec: ColumnSpec, x: np.ndarray) -> np.ndarray:
    """Clip to the public bounds, apply the declared transform, scale to [-1, 1]."""
    lo, hi = float(spec.min), float(spec.max)  # type: ignore[arg-type]
    x = np.clip(x, lo, hi)
    if spec.transform == "log1p":
        x, lo, hi = np.log1p(x), math.log1p(lo), math.log1p(hi)
    return (2.0 * (x - lo) / (hi - lo) - 1.0).astype(np.float32)


def _float16_within(v: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
    """``v`` as float16, each value rounded inward where rounding would cross a declared bound
    (``lo``/``hi``: scalars, or one per column of a 2-D ``v``)."""
    out = v.astype(np.float16)
    wide = out.astype(np.float64)
    with np.errstate(invalid="ignore"):
        over, under = wide > hi, wide < lo
    out[over] = np.nextafter(out[over], np.float16(-np.inf))
    out[under] = np.nextafter(out[under], np.float16(np.inf))
    return out


def _inverse(spec: ColumnSpec, v: np.ndarray) -> np.ndarray:
    lo, hi = float(spec.min), float(spec.max)  # type: ignore[arg-type]
    tlo, thi = (math.log1p(lo), math.log1p(hi)) if spec.transform == "log1p" else (lo, hi)
    x = (np.clip(v, -1.0, 1.0) + 1.0) / 2.0 * (thi - tlo) + tlo
    if spec.transform == "log1p":
        x = np.expm1(x)
    x = np.clip(x, lo, hi)
    if spec.type == "integer" or spec.is_temporal:  # whole numbers, whole days, whole seconds
        x = np.clip(np.round(x), math.ceil(lo), math.floor(hi))
    elif spec.decimals is not None:
        r_lo, r_hi = spec.rounded_domain()
        if r_lo <= r_hi:  # rounded inward at the bounds: never outside [min, max]
            x = np.clip(np.round(x, spec.decimals), r_lo, r_hi)
    return x


class TableEncoder:
    """Encode/decode a table with parameters taken only from public metadata.

    Args:
        metadata: the reviewed public metadata.
    """

    def __init__(self, metadata: Metadata) -> None:
        undeclared = [c for c in metadata.model_columns if metadata.columns[c].dp_bounds is not None]
        if undeclared:
            raise MetadataError(f"column '{undeclared[0]}' has no public bounds yet: estimate them with "
                                "transforms.dp_bounds (spends ε) before encoding")
        undiscovered = [c for c in metadata.model_columns if metadata.columns[c].dp_categories is not None]
        if undiscovered:
            raise MetadataError(f"column '{undiscovered[0]}' has no public categories yet: discover them with "
                                "transforms.dp_categories (spends ε) before encoding")
        self.metadata = metadata
        self.columns = metadata.model_columns
        spans: list[Span] = []
        pos = 0

        def add(column: str, role: str, kind: SpanKind, width: int) -> None:
            nonlocal pos
            spans.append(Span(column, role, kind, pos, width))
            pos += width

        for name in self.columns:
            spec = metadata.columns[name]
            if spec.is_numerical:
                if spec.nullable:
                    add(name, "missing", "discrete", 2)
                if spec.zero_inflated:
                    add(name, "zero", "discrete", 2)
                add(name, "value", "continuous", 1)
            else:
                add(name, "category", "discrete", len(self.categories(name)))
        self.spans: tuple[Span, ...] = tuple(spans)
        self._span_index = {(sp.column, sp.role): sp for sp in spans}
        self.width = pos
        self._numeric = _NumericBlock.build(self)

    def categories(self, column: str) -> list[str]:
        """Canonical categories of a discrete column, ``<missing>`` last if nullable."""
        spec = self.metadata.columns[column]
        cats = spec.canonical_categories()
        return [*cats, MISSING] if spec.nullable else cats

    def span(self, column: str, role: str) -> Span:
        """The span of ``column`` with ``role``."""
        return self._span_index[(column, role)]

    def parameters(self) -> dict[str, Any]:
        """Every parameter of the encoding, as plain JSON-able data (for tests and saving)."""
        return {
            "metadata": self.metadata.to_yaml_dict(),
            "column_order": list(self.metadata.columns),
            "spans": [asdict(s) for s in self.spans],
            "categories": {c: self.categories(c) for c in self.metadata.discrete_columns
                           if c in self.columns},
            "width": self.width,
        }

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Encode rows (already validated against the metadata) to float32 [n, width].

        Values outside the declared domain are clipped (numerical) or mapped to no
        category (an all-zero block) — validation refuses such tables before training.
        """
        n = len(df)
        out = np.zeros((n, self.width), dtype=np.float32)
        self._numeric.encode_into(df, out)
        for s in self.spans:
            if s.role != "category":
                continue  # numerical spans: one vectorised block above
            spec = self.metadata.columns[s.column]
            index = {c: i for i, c in enumerate(self.categories(s.column))}
            canon = canonical_category_series(df[s.column])
            if spec.nullable:
                canon = canon.fillna(MISSING)
            codes = canon.map(index).to_numpy()
            ok = ~pd.isna(codes)
            rows = np.nonzero(ok)[0]
            out[rows, s.start + codes[ok].astype(int)] = 1.0
        return out

    def decode(self, encoded: np.ndarray) -> pd.DataFrame:
        """Decode generator output to a table with the declared types (post-processing).

        Discrete blocks are decoded by argmax (the generator's sampler has already drawn
        a one-hot sample); continuous values are inverse-scaled, clipped to the declared
        bounds and rounded for integer columns (and to ``decimals`` for float columns that
        declare it, inward at the bounds); date/datetime columns become strings in their
        declared format (whole days / seconds; missing → None).
        """
        if encoded.ndim != 2 or encoded.shape[1] != self.width:
            raise ValueError(f"expected shape [n, {self.width}], got {encoded.shape}")
        n = encoded.shape[0]
        data: dict[str, Any] = {}
        float_dtype = np.float16 if self.metadata.float_storage == "float16" else float
        plain = [c for c in self.columns if self.metadata.columns[c].type == "float"
                 and self.metadata.columns[c].decimals is None]
        block = self._decode_plain_floats(encoded, plain) if len(plain) > PLAIN_FLOATS_AT_ONCE else None
        for name in self.columns:
            spec = self.metadata.columns[name]
            if block is not None and name in block.columns:
                continue
            if not spec.is_numerical:
                s = self.span(name, "category")
                codes = encoded[:, s.start:s.stop].argmax(axis=1)
                declared = spec.declared_categories()
                values = np.array([*declared, None], dtype=object)
                if spec.nullable:
                    data[name] = pd.Series(values[codes], dtype=object)
                else:
                    data[name] = pd.Series(values[:-1][codes], dtype=object)
                if spec.type == "boolean":
                    data[name] = data[name].astype("boolean" if spec.nullable else bool)
                continue
            v = _inverse(spec, encoded[:, self.span(name, "value").start].astype(np.float64))
            if spec.zero_inflated:
                z = self.span(name, "zero")
                v = np.where(encoded[:, z.start:z.stop].argmax(axis=1) == 0, 0.0, v)
            col = pd.Series(v, dtype=float)
            if spec.nullable:
                m = self.span(name, "missing")
                col[encoded[:, m.start:m.stop].argmax(axis=1) == 1] = np.nan
            if spec.type == "integer":
                col = col.round().astype("Int64") if spec.nullable else col.round().astype(np.int64)
            elif spec.is_temporal:
                col = to_strings(col.to_numpy(), spec.type, spec.format)
            elif float_dtype is not float:  # the metadata's float_storage, as the input was held
                col = pd.Series(_float16_within(col.to_numpy(), *spec.domain()))
            data[name] = col
        if block is None:
            return pd.DataFrame(data, index=pd.RangeIndex(n))
        rest = pd.DataFrame(data, index=pd.RangeIndex(n))
        return pd.concat([rest, block], axis=1)[list(self.columns)]

    def _decode_plain_floats(self, encoded: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The ``float`` columns without ``decimals``, decoded all at once: elementwise the same
        operations (and values) as the per-column path, without one Series per column (a
        20,000-gene table: seconds per chunk saved)."""
        specs = [self.metadata.columns[c] for c in columns]
        lo = np.array([float(sp.min) for sp in specs])  # type: ignore[arg-type]
        hi = np.array([float(sp.max) for sp in specs])  # type: ignore[arg-type]
        log1p = np.array([sp.transform == "log1p" for sp in specs])
        tlo, thi = np.where(log1p, np.log1p(np.where(log1p, lo, 0.0)), lo), np.where(log1p, np.log1p(np.where(
            log1p, hi, 0.0)), hi)
        v = encoded[:, [self.span(c, "value").start for c in columns]].astype(np.float64)
        x = (np.clip(v, -1.0, 1.0) + 1.0) / 2.0 * (thi - tlo) + tlo
        if log1p.any():
            x[:, log1p] = np.expm1(x[:, log1p])
        x = np.clip(x, lo, hi)
        zi = [j for j, sp in enumerate(specs) if sp.zero_inflated]
        if zi:
            z = np.array([self.span(columns[j], "zero").start for j in zi])
            x[:, zi] = np.where(encoded[:, z] >= encoded[:, z + 1], 0.0, x[:, zi])  # argmax 0 (first on ties)
        nl = [j for j, sp in enumerate(specs) if sp.nullable]
        if nl:
            m = np.array([self.span(columns[j], "missing").start for j in nl])
            x[:, nl] = np.where(encoded[:, m + 1] > encoded[:, m], np.nan, x[:, nl])  # argmax 1
        if self.metadata.float_storage == "float16":
            x = _float16_within(x, lo, hi)
        return pd.DataFrame(x, columns=columns, index=pd.RangeIndex(len(x)))

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> TableEncoder:
        """Rebuild from :meth:`parameters` (e.g. read from a model file), checking it.

        Raises:
            ModelFileError: the parameters do not describe a valid encoder.
        """
        try:
            meta = dict(params["metadata"])
            # JSON writers may sort keys: restore the declared column order.
            meta["columns"] = {c: meta["columns"][c] for c in params["column_order"]}
            enc = cls(Metadata.model_validate(meta))
        except Exception as e:  # any schema problem means a corrupt model file
            raise ModelFileError(f"model's encoder metadata is invalid: {type(e).__name__}") from None
        if enc.width != params.get("width"):
            raise ModelFileError("model's encoder width does not match its metadata")
        return enc


@dataclass(frozen=True)
class _NumericBlock:
    """Every numerical column's encoding parameters as arrays, so that encoding is a few
    matrix operations however many columns there are (wide expression matrices).

    All parameters come from the public metadata (bounds, transform, indicators)."""

    columns: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    log1p: np.ndarray
    zero_inflated: np.ndarray
    value_idx: np.ndarray
    zero_idx: np.ndarray  # first entry of the zero indicator, -1 if none
    missing_idx: np.ndarray  # first entry of the missing indicator, -1 if none
    temporal: dict[str, ColumnSpec]  # date/datetime columns, read with their declared format

    @classmethod
    def build(cls, encoder: TableEncoder) -> _NumericBlock:
        cols = [c for c in encoder.columns if encoder.metadata.columns[c].is_numerical]
        specs = [encoder.metadata.columns[c] for c in cols]

        def start(c: str, role: str, present: bool) -> int:
            return encoder.span(c, role).start if present else -1

        return cls(
            tuple(cols),
            np.array([float(s.min) for s in specs], dtype=np.float64),  # type: ignore[arg-type]
            np.array([float(s.max) for s in specs], dtype=np.float64),  # type: ignore[arg-type]
            np.array([s.transform == "log1p" for s in specs], dtype=bool),
            np.array([s.zero_inflated for s in specs], dtype=bool),
            np.array([encoder.span(c, "value").start for c in cols], dtype=np.int64),
            np.array([start(c, "zero", s.zero_inflated) for c, s in zip(cols, specs, strict=True)], dtype=np.int64),
            np.array([start(c, "missing", s.nullable) for c, s in zip(cols, specs, strict=True)], dtype=np.int64),
            {c: s for c, s in zip(cols, specs, strict=True) if s.is_temporal},
        )

    def _matrix(self, df: pd.DataFrame) -> np.ndarray:
        """The numerical columns as float64 [n, C]; unparseable values become NaN."""
        frame = df.loc[:, list(self.columns)]
        if self.temporal:  # dates: days / seconds since 1970-01-01, read with the declared format
            frame = frame.assign(**{c: column_numbers(frame[c], spec) for c, spec in self.temporal.items()})
        numeric = frame.dtypes.map(lambda d: pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d))
        if not bool(numeric.all()):
            frame = frame.apply(lambda col: pd.to_numeric(col, errors="coerce"))
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)

    def encode_into(self, df: pd.DataFrame, out: np.ndarray) -> None:
        """Write the value, zero and missing entries of every numerical column into ``out``."""
        if not self.columns:
            return
        x = self._matrix(df)
        missing = np.isnan(x)
        filled = np.clip(np.where(missing, self.lo, x), self.lo, self.hi)
        tlo = np.where(self.log1p, np.log1p(np.maximum(self.lo, 0.0)), self.lo)
        thi = np.where(self.log1p, np.log1p(np.maximum(self.hi, 0.0)), self.hi)
        t = np.where(self.log1p, np.log1p(np.where(self.log1p, np.maximum(filled, 0.0), 0.0)), filled)
        v = (2.0 * (t - tlo) / (thi - tlo) - 1.0).astype(np.float32)
        zero = (filled == 0) & ~missing
        v = np.where(self.zero_inflated & zero, np.float32(-1.0), v)
        v[missing] = 0.0
        out[:, self.value_idx] = v
        z = self.zero_idx >= 0
        if z.any():
            out[:, self.zero_idx[z]] = zero[:, z]
            out[:, self.zero_idx[z] + 1] = ~zero[:, z]
        m = self.missing_idx >= 0
        if m.any():
            out[:, self.missing_idx[m]] = ~missing[:, m]
            out[:, self.missing_idx[m] + 1] = missing[:, m]
