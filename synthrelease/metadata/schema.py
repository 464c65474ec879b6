"""The public metadata file: each column's kind and its PUBLIC domain.

Everything here is treated as public knowledge: the declared bounds of numerical
columns and the category lists of categorical columns are what the DP transforms use
to encode the private table, so they must come from documentation, a code book or
domain knowledge, never from the private rows themselves (unless marked and paid for
with ε, see :mod:`synthrelease.transforms`).

Example column declarations (YAML)::

    admitted:   {type: date, min: "2001-01-01", max: "2024-12-31", format: "%d/%m/%Y"}
    discharged: {type: date, min: 2001-01-01, max: 2025-06-30, nullable: true}
    sampled_at: {type: datetime, min: "2020-01-01T00:00:00", max: "2020-12-31T23:59:59"}
    weight_kg:  {type: float, min: 2, max: 250, decimals: 1}

Dates and datetimes are numbers inside the model (days / seconds since 1970-01-01, see
:mod:`synthrelease.metadata.dates`); ``min``/``max`` hold those numbers once loaded and
are written back as ISO strings.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_serializer, model_validator

from synthrelease.metadata.dates import TEMPORAL_TYPES, bound_to_number, check_format, number_to_iso

MAX_ABS_BOUND = 1e15
"""Declared numerical bounds must lie within ±this: wider ranges overflow (max − min) or lose precision."""

MAX_SEQUENCE_LENGTH = 2000
"""Longest declarable sequence: the generator emits one position per residue up to max_length."""

ColumnType = Literal["integer", "float", "categorical", "boolean", "identifier", "date", "datetime", "sequence",
                     "image"]
MAX_DECIMALS = 12
"""Most decimals a ``float`` column may declare."""
CategoryValue = str | int | float | bool


def canonical_category(value: Any) -> str | None:
    """The canonical string of a category value, or None for a missing value.

    ``1``, ``1.0`` and ``"1"`` are the same category; surrounding spaces are ignored.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
        if isinstance(value, bool):
            return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    s = str(value).strip()
    if s == "" or s.lower() == "nan":
        return None
    try:
        f = float(s)
    except ValueError:
        return s
    if f.is_integer() and s.lower() not in ("inf", "-inf", "infinity"):
        return str(int(f))
    return s


_HASH_SAFE = frozenset({"string", "integer", "floating", "mixed-integer-float", "boolean", "empty", "categorical"})
"""Inferred dtypes whose equal-hashing values share one canonical string (``1 == 1.0``; no ``True == 1``)."""


def canonical_category_series(series: pd.Series) -> pd.Series:
    """:func:`canonical_category` of every value (object Series, same index; None when missing),
    computed once per distinct value: a column of a million rows and ten categories costs ten calls."""
    if pd.api.types.infer_dtype(series, skipna=True) not in _HASH_SAFE:  # e.g. True beside 1: value by value
        return series.map(canonical_category).astype(object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    canon = np.array([canonical_category(u) for u in uniques] + [None], dtype=object)
    return pd.Series(canon[codes], index=series.index, dtype=object)


def rounded_bounds(lo: float, hi: float, decimals: int) -> tuple[float, float]:
    """The smallest value ≥ ``lo`` and the largest ≤ ``hi`` with ``decimals`` decimals.

    ``(lo', hi')`` with ``lo' > hi'`` when no such value lies in [lo, hi].
    """
    step = 10.0 ** -decimals
    r_lo, r_hi = round(lo, decimals), round(hi, decimals)
    if r_lo < lo:
        r_lo = round(r_lo + step, decimals)
    if r_hi > hi:
        r_hi = round(r_hi - step, decimals)
    return r_lo, r_hi


class DPBoundsSearch(BaseModel):
    """A PUBLIC search range for bounds estimated with DP (spends ε; see transforms.dp_bounds)."""

    model_config = ConfigDict(extra="forbid")

    search_min: float
    search_max: float

    @model_validator(mode="after")
    def _check(self) -> DPBoundsSearch:
        if not (math.isfinite(self.search_min) and math.isfinite(self.search_max)):
            raise ValueError("search_min and search_max must be finite")
        if max(abs(self.search_min), abs(self.search_max)) > MAX_ABS_BOUND:
            raise ValueError(f"search_min and search_max must lie within ±{MAX_ABS_BOUND:g}")
        if not self.search_min < self.search_max:
            raise ValueError("search_min must be below search_max")
        return self


class DPCategoriesSearch(BaseModel):
    """Categories discovered with DP instead of a declared list (spends ε and a little δ;
    see transforms.dp_categories). Values seen too rarely become ``other_label``."""

    model_config = ConfigDict(extra="forbid")

    max_categories: int = Field(default=50, ge=1, le=10_000)
    other_label: str = Field(default="<other>", min_length=1)


class SlideTiling(BaseModel):
    """How an image column's tiles are cut from a whole-slide TIFF/SVS when the data is a slide.

    Every field is a PUBLIC choice: a constant the data steward declares (from the scanner,
    the stain protocol or the study design), never estimated from the slide's pixels. The
    slide page at pyramid ``level`` is cut on a grid of ``tile_size`` × ``tile_size`` pixels
    every ``stride`` pixels (default: ``tile_size``, no overlap); a tile is kept when its share
    of tissue pixels (mean RGB intensity below ``tissue_threshold``) is at least
    ``min_tissue_share``; with ``max_tiles`` only the first kept tiles in row-major order.
    Each kept tile is block-averaged down to the column's ``height`` (so ``tile_size`` must be
    a multiple of it) and turned grey (luma) when ``channels`` is 1.

    Privacy unit: a slide holds tissue of ONE person, so all its tiles are that person's.
    The release's DP guarantee is per tile (row) unless ``privacy_unit_column`` is declared
    (then the slide is the unit and only its first tile is kept); tile-level DP does not bound
    the influence of the person behind the slide.
    """

    model_config = ConfigDict(extra="forbid")

    tile_size: int = Field(ge=8, le=4096)
    stride: int | None = Field(default=None, ge=1, le=4096)
    tissue_threshold: float = Field(default=220, ge=0, le=255)
    min_tissue_share: float = Field(default=0.5, ge=0, le=1)
    level: int = Field(default=0, ge=0)
    max_tiles: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _default_stride(self) -> SlideTiling:
        if self.stride is None:
            self.stride = self.tile_size
        return self


class ColumnSpec(BaseModel):
    """One column of the table.

    Attributes:
        type: ``integer``/``float`` (numerical), ``date``/``datetime`` (numerical inside the
            model: days / seconds since 1970-01-01), ``categorical``, ``boolean``, or
            ``identifier`` (dropped before training, never synthesised).
        nullable: whether missing values are allowed (they get an indicator).
        min, max: declared public bounds of a numerical column (values are clipped). For a
            ``date`` column, ISO dates (``"2001-01-01"``; YAML's unquoted dates are accepted
            too); for a ``datetime`` column, ISO datetimes (``"2001-01-01T08:00:00"``; a
            bare date means midnight). Once loaded they hold days (``date``) or seconds
            (``datetime``) since 1970-01-01, and are written back as ISO strings.
        dp_bounds: instead of min/max, a public search range within which the bounds are
            estimated from the rows with a DP histogram (costs a share of ε). Not for dates.
        categories: declared public category list of a categorical column.
        dp_categories: instead of ``categories``, discover the frequent values with a DP
            thresholded histogram (costs a share of ε and of δ; rare values → ``other_label``).
        transform: ``log1p`` for heavy-tailed non-negative columns, else ``none``.
        zero_inflated: model ``== 0`` separately from the positive part.
        format: ``date``/``datetime`` only: the strftime pattern the table writes values
            with, e.g. ``"%d/%m/%Y"``. Synthetic values are written with it. Default: ISO
            (``%Y-%m-%d``, ``%Y-%m-%dT%H:%M:%S``); without a declared format, input values
            may use any ISO 8601 spelling. Must write and read back a value unchanged.
        decimals: ``float`` only, 0..12: the precision synthetic values are written with
            (rounded after clipping to [min, max], inward at the bounds, so a value never
            leaves them). Integers always round to whole numbers; dates to whole days and
            datetimes to whole seconds.
        alphabet, min_length, max_length, too_long: ``sequence`` only (protein, DNA or RNA
            sequences, one per row): the public alphabet (``protein`` = the 20 canonical amino
            acids, ``dna``, ``rna``, or the letters themselves), the public length bounds, and
            what to do with a longer sequence (``refuse`` it as bad input, or ``clip`` it to
            ``max_length``). A table with a sequence column is released by the sequence
            modality (:mod:`synthrelease.modalities.sequence`).
        height, width, channels: ``image`` only: the public tile shape (pixels) and channels (1
            grey, 3 RGB) of 8-bit tiles (intensities 0–255). A table with an image column is
            released by the image modality (:mod:`synthrelease.modalities.image`).
        tiling: ``image`` only, optional: the PUBLIC tiling parameters (:class:`SlideTiling`)
            with which a whole-slide TIFF/SVS given as the data is cut into tiles on the fly.
            A slide is one person's tissue: see the privacy unit note there.
        stain: ``image`` only, optional: the PUBLIC stain family of the tiles (``he`` =
            haematoxylin and eosin, ``ihc_dab`` = DAB immunohistochemistry with a haematoxylin
            counterstain, ``fluorescence``). With a stain declared, the image modality can
            evolve tiles of its public tissue simulator toward the private ones (Sim-PE,
            :mod:`synthrelease.modalities.image.private_evolution`) instead of training a GAN.
        description: free text.
    """

    model_config = ConfigDict(extra="forbid")

    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    dp_bounds: DPBoundsSearch | None = None
    categories: list[CategoryValue] | None = None
    dp_categories: DPCategoriesSearch | None = None
    transform: Literal["none", "log1p"] = "none"
    zero_inflated: bool = False
    format: str | None = Field(default=None, min_length=1)
    decimals: int | None = Field(default=None, ge=0, le=MAX_DECIMALS)
    alphabet: str | None = Field(default=None, min_length=1)
    min_length: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1, le=MAX_SEQUENCE_LENGTH)
    too_long: Literal["refuse", "clip"] = "refuse"
    height: int | None = Field(default=None, ge=8, le=256)
    width: int | None = Field(default=None, ge=8, le=256)
    channels: Literal[1, 3] | None = None
    tiling: SlideTiling | None = None
    stain: Literal["he", "ihc_dab", "fluorescence"] | None = None
    description: str = ""

    @property
    def is_numerical(self) -> bool:
        """True for columns encoded as one number: ``integer``, ``float``, ``date``, ``datetime``."""
        return self.type in ("integer", "float", *TEMPORAL_TYPES)

    @property
    def is_temporal(self) -> bool:
        """True for ``date`` and ``datetime`` columns."""
        return self.type in TEMPORAL_TYPES

    @model_validator(mode="before")
    @classmethod
    def _temporal_bounds(cls, data: Any) -> Any:
        """ISO bounds of a date/datetime column → days/seconds since 1970-01-01."""
        if not isinstance(data, dict) or data.get("type") not in TEMPORAL_TYPES:
            return data
        kind, fmt = data["type"], data.get("format")
        out = dict(data)
        for key in ("min", "max"):
            if out.get(key) is not None:
                try:
                    out[key] = bound_to_number(out[key], kind, fmt if isinstance(fmt, str) else None)
                except (ValueError, OverflowError) as e:
                    raise ValueError(f"{key}: {e}") from None
        return out

    @field_serializer("min", "max")
    def _write_bound(self, value: float | None) -> float | str | None:
        if value is not None and self.is_temporal:
            return number_to_iso(value, self.type)
        return value

    def _bound_text(self, value: float) -> str:
        return number_to_iso(value, self.type) if self.is_temporal else f"{value:g}"

    @model_validator(mode="after")
    def _check_temporal_and_decimals(self) -> ColumnSpec:
        if self.is_temporal:
            if self.dp_bounds is not None:
                raise ValueError(f"a {self.type} column needs public bounds 'min' and 'max' as ISO {self.type}s; "
                                 "dp_bounds is not supported for dates")
            if self.transform != "none" or self.zero_inflated:
                raise ValueError(f"transform/zero_inflated do not apply to {self.type} columns")
            if self.format is not None:
                check_format(self.format, self.type)
        elif self.format is not None:
            raise ValueError(f"format applies to date and datetime columns, not {self.type}")
        if self.decimals is not None:
            if self.type != "float":
                raise ValueError(f"decimals applies to float columns, not {self.type}"
                                 + (" (integers always round to whole numbers)" if self.type == "integer" else ""))
            if self.min is not None and self.max is not None and math.isfinite(self.min) \
                    and math.isfinite(self.max) and self.min < self.max:
                lo, hi = rounded_bounds(self.min, self.max, self.decimals)
                if lo > hi:
                    raise ValueError(f"no value with {self.decimals} decimal(s) lies within [min, max] = "
                                     f"[{self.min:g}, {self.max:g}]")
        return self

    @model_validator(mode="after")
    def _check_image(self) -> ColumnSpec:
        given = [k for k in ("height", "width", "channels") if getattr(self, k) is not None]
        if self.type != "image":
            if given:
                raise ValueError(f"height/width/channels apply to image columns, not {self.type}")
            if self.tiling is not None or self.stain is not None:
                raise ValueError(f"tiling and stain apply to image columns, not {self.type}")
            return self
        if len(given) != 3:
            raise ValueError("an image column needs its public 'height', 'width' and 'channels' (1 or 3)")
        if self.height != self.width or self.height not in (16, 32, 64):
            raise ValueError("image tiles must be square, 16, 32 or 64 pixels (the DP convolutional GAN's sizes)")
        if self.nullable:
            raise ValueError("an image column cannot be nullable: every record is one tile")
        if self.tiling is not None and (self.tiling.tile_size < self.height
                                        or self.tiling.tile_size % self.height):
            raise ValueError(f"tiling.tile_size ({self.tiling.tile_size}) must be a multiple of the tile height "
                             f"({self.height}): slide tiles are block-averaged down to {self.height}×{self.height}")
        return self

    @model_validator(mode="after")
    def _check_sequence(self) -> ColumnSpec:
        given = [k for k in ("alphabet", "min_length", "max_length") if getattr(self, k) is not None]
        if self.type != "sequence":
            if given or self.too_long != "refuse":
                raise ValueError(f"alphabet/min_length/max_length/too_long apply to sequence columns, not {self.type}")
            return self
        from synthrelease.metadata.alphabets import resolve_alphabet

        if self.alphabet is None or self.min_length is None or self.max_length is None:
            raise ValueError("a sequence column needs a public 'alphabet' (protein, dna, rna or its letters), "
                             "'min_length' and 'max_length'")
        resolve_alphabet(self.alphabet)
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) must not exceed max_length ({self.max_length})")
        if self.nullable:
            raise ValueError("a sequence column cannot be nullable: every record is one sequence")
        return self

    @model_validator(mode="after")
    def _check_domain(self) -> ColumnSpec:
        if self.is_numerical:
            if self.categories is not None:
                raise ValueError("a numerical column takes min/max, not categories")
            if self.dp_bounds is not None:
                if self.min is not None or self.max is not None:
                    raise ValueError("give either public 'min'/'max' or 'dp_bounds', not both")
                lo, hi = self.dp_bounds.search_min, self.dp_bounds.search_max
            else:
                if (self.min is None or self.max is None) and self.is_temporal:
                    example = "'2001-01-01'" if self.type == "date" else "'2001-01-01T08:00:00'"
                    raise ValueError(f"a {self.type} column needs public bounds 'min' and 'max' "
                                     f"(ISO {self.type}s such as {example})")
                if self.min is None or self.max is None:
                    raise ValueError("a numerical column needs public bounds 'min' and 'max' "
                                     "(or 'dp_bounds' with a public search range, which spends ε)")
                if not (math.isfinite(self.min) and math.isfinite(self.max)):
                    raise ValueError("min and max must be finite numbers")
                if max(abs(self.min), abs(self.max)) > MAX_ABS_BOUND:
                    raise ValueError(f"min and max must lie within ±{MAX_ABS_BOUND:g} (beyond it the range "
                                     "overflows the encoding and a value's precision is lost)")
                if not self.min < self.max:
                    order = "before" if self.is_temporal else "below"
                    raise ValueError(f"min ({self._bound_text(self.min)}) must be {order} max "
                                     f"({self._bound_text(self.max)})")
                lo, hi = self.min, self.max
            if self.transform == "log1p" and lo < 0:
                raise ValueError("transform log1p needs min >= 0")
            if self.zero_inflated and not lo <= 0 <= hi:
                raise ValueError("zero_inflated needs 0 within [min, max]")
        else:
            if self.min is not None or self.max is not None or self.dp_bounds is not None:
                raise ValueError(f"a {self.type} column takes no min/max/dp_bounds")
            if self.transform != "none" or self.zero_inflated:
                raise ValueError(f"transform/zero_inflated apply to numerical columns, not {self.type}")
        if self.dp_categories is not None and self.type != "categorical":
            raise ValueError(f"dp_categories applies to categorical columns, not {self.type}")
        if self.type == "categorical" and self.dp_categories is not None:
            if self.categories is not None:
                raise ValueError("give either public 'categories' or 'dp_categories', not both")
        elif self.type == "categorical":
            if not self.categories:
                raise ValueError("a categorical column needs a non-empty public 'categories' list "
                                 "(or 'dp_categories', which spends ε)")
            canon = [canonical_category(c) for c in self.categories]
            if any(c is None for c in canon):
                raise ValueError("categories may not contain empty or missing values; use nullable: true")
            if len(set(canon)) != len(canon):
                raise ValueError("categories contain duplicates")
        elif self.categories is not None:
            raise ValueError(f"a {self.type} column takes no categories")
        return self

    def domain(self) -> tuple[float, float]:
        """Declared [min, max], or the public DP search range while bounds are undeclared."""
        if self.dp_bounds is not None:
            return self.dp_bounds.search_min, self.dp_bounds.search_max
        return float(self.min), float(self.max)  # type: ignore[arg-type]

    def rounded_domain(self) -> tuple[float, float]:
        """The smallest and largest values with ``decimals`` decimals inside [min, max] (the
        declared bounds when no ``decimals`` is declared)."""
        lo, hi = self.domain()
        if self.decimals is None:
            return lo, hi
        return rounded_bounds(lo, hi, self.decimals)

    def canonical_categories(self) -> list[str]:
        """Declared categories as canonical strings (booleans: ``False``, ``True``)."""
        if self.type == "boolean":
            return ["False", "True"]
        return [c for c in (canonical_category(v) for v in self.categories or []) if c is not None]

    def declared_categories(self) -> list[CategoryValue]:
        """Declared categories as written in the file (booleans: ``False``, ``True``)."""
        if self.type == "boolean":
            return [False, True]
        return list(self.categories or [])


MAX_NAME_LENGTH = 200
"""Longest dataset or column name (characters): names go into public cards and pages."""


def display_name_problem(name: str) -> str | None:
    """Why a dataset or column name cannot be shown in a public card, or None.

    Names are printed in the release card, the HTML pages and ``ledger show``: an empty name,
    one longer than :data:`MAX_NAME_LENGTH`, a line break or any other control character, and
    Unicode format characters (bidirectional overrides such as U+202E, zero-width marks) are
    refused, since they forge or reorder the lines around them.
    """
    import unicodedata

    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    for ch in name:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Zl", "Zp"):
            return (f"holds the control or formatting character U+{ord(ch):04X} (line breaks and bidirectional "
                    "marks are refused)")
    return None


class Metadata(BaseModel):
    """Public description of a table.

    Attributes:
        version: schema version (1).
        name: dataset name, used in reports and the ledger.
        reviewed: set to true by the data steward after checking that every bound and
            category list is public knowledge. Training refuses unreviewed metadata.
        target: optional column used for utility audits and as the generator's condition.
        columns: column name → :class:`ColumnSpec`, in table order.
        related_columns: optional groups of numerical columns known (from the domain, not
            from the rows) to move together, e.g. ``[[mean_radius, mean_perimeter,
            mean_area]]``: their pairwise joint histograms are released with DP and matched
            by the generator, so those correlations survive on small tables. Date and
            datetime columns count as numerical here (e.g. ``[[admitted, discharged]]``).
        privacy_unit_column: optional identifier column naming the PERSON each row belongs to
            (several tiles of one slide, several visits of one patient). Only the first row of
            each person is kept before anything else, so that one person is one row and the
            (ε, δ) guarantee protects the person, not just one of their rows. Without it, the
            unit is the row: declare it whenever a person can have several rows.
        max_rows_per_person: image tables only, with ``privacy_unit_column``: keep up to
            this many rows (tiles) of each person (the first ones, in file order) instead of
            one. A PUBLIC cap m: training then clips each person's summed gradient once
            (user-level DP-SGD), the tile mean embedding weights each tile 1/m, the label
            histogram's noise is scaled by m, the train/holdout coins are drawn per person and
            the DP gate's figures use each person's first tile, so (ε, δ) protects the whole
            person. Unset means 1.
        float_storage: ``float16`` holds every ``float`` column (and an AnnData ``X``) as
            float16 from the moment it is read: about 3 significant digits (a spacing of
            1/128 between 8 and 16), ample for log-normalised expression values, and half
            the memory of float32 (a 100,000 × 20,000 matrix: 3.7 GiB instead of 7.5). The
            values are validated, fingerprinted and trained on as stored. A public setting;
            unset keeps the reader's precision (float64 from text, float32 from AnnData).
        license: optional, public: the terms under which the synthetic release may be used, as an
            SPDX identifier (a versioned one such as ``CC-BY-4.0`` is written as its spdx.org URL in
            the bundle's ``croissant.json``), a URL, or a short text (e.g. the consortium agreement's name).
            Unset means none declared, and ``croissant.json`` says so.
        creator: optional, public: the person or organisation that holds the data and makes the
            release (``croissant.json``'s creator, a schema.org Organization); unset: the policy's
            ``signing.signer``, if any.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    name: str = "dataset"
    reviewed: StrictBool = False
    target: str | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    related_columns: list[list[str]] | None = None
    privacy_unit_column: str | None = None
    max_rows_per_person: int | None = Field(default=None, ge=1, le=1024)
    float_storage: Literal["float16"] | None = None
    license: str | None = None
    creator: str | None = None

    @model_validator(mode="after")
    def _check_names(self) -> Metadata:
        problem = display_name_problem(self.name)
        if problem:
            raise ValueError(f"name: {problem}")
        for key in ("license", "creator"):
            value = getattr(self, key)
            problem = display_name_problem(value) if value is not None else None
            if problem:
                raise ValueError(f"{key}: {problem}")
        for column in self.columns:
            problem = display_name_problem(column)
            if problem:
                raise ValueError(f"columns: the column name {column[:60]!r} {problem}")
        return self

    @model_validator(mode="after")
    def _check_privacy_unit(self) -> Metadata:
        c = self.privacy_unit_column
        if c is not None and (c not in self.columns or self.columns[c].type != "identifier"):
            raise ValueError(f"privacy_unit_column {c!r} must be a declared identifier column (the person's id)")
        if (self.max_rows_per_person or 1) > 1:
            if c is None:
                raise ValueError("max_rows_per_person needs privacy_unit_column (the person's id)")
            if not any(s.type == "image" for s in self.columns.values()):
                raise ValueError("max_rows_per_person above 1 applies to image tables only (user-level DP-SGD); "
                                 "a table keeps one row per person")
        return self

    @property
    def rows_per_person(self) -> int:
        """The public cap m of rows per privacy unit (1 unless declared)."""
        return int(self.max_rows_per_person or 1)

    @model_validator(mode="after")
    def _check_related(self) -> Metadata:
        for group in self.related_columns or []:
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(f"related_columns: group {group} needs two or more distinct columns")
            for c in group:
                if c not in self.columns or not self.columns[c].is_numerical:
                    raise ValueError(f"related_columns: {c!r} is not a declared numerical or date column")
        return self

    @property
    def related_pairs(self) -> list[tuple[str, str]]:
        """Every pair of columns within each ``related_columns`` group (public), in first-seen order."""
        seen: dict[tuple[str, str], None] = {}
        for group in self.related_columns or []:
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    seen.setdefault((a, b) if (b, a) not in seen else (b, a), None)
        return list(seen)

    @model_validator(mode="after")
    def _check_sequence_table(self) -> Metadata:
        images = [c for c, s in self.columns.items() if s.type == "image"]
        if images:
            others = [c for c, s in self.columns.items() if s.type not in ("image", "identifier") and c != self.target]
            if len(images) > 1 or others:
                raise ValueError("an image table holds one image column, its target label and identifiers only"
                                 + (f"; column {others[0]!r} is neither" if others else ""))
        sequences = [c for c, s in self.columns.items() if s.type == "sequence"]
        if not sequences:
            return self
        if len(sequences) > 1:
            raise ValueError(f"one sequence column per table, got {len(sequences)} ({', '.join(sequences)})")
        others = [c for c, s in self.columns.items() if s.type not in ("sequence", "identifier") and c != self.target]
        if others:
            raise ValueError(f"a sequence table holds the sequence, its target label and identifiers only; "
                             f"column {others[0]!r} is neither")
        if self.related_columns:
            raise ValueError("related_columns apply to numerical tables, not sequence tables")
        return self

    @property
    def sequence_column(self) -> str | None:
        """The sequence column, when the table holds sequences (then it is released by the sequence modality)."""
        return next((c for c, s in self.columns.items() if s.type == "sequence"), None)

    @property
    def image_column(self) -> str | None:
        """The image column, when the table holds image tiles (released by the image modality)."""
        return next((c for c, s in self.columns.items() if s.type == "image"), None)

    @property
    def modality(self) -> str:
        """``sequence`` or ``image`` when a column holds sequences or tiles, else ``table``."""
        if self.image_column is not None:
            return "image"
        return "sequence" if self.sequence_column is not None else "table"

    @model_validator(mode="after")
    def _check_target(self) -> Metadata:
        if self.target is not None:
            if self.target not in self.columns:
                raise ValueError(f"target {self.target!r} is not a declared column")
            if self.columns[self.target].type not in ("categorical", "boolean"):
                raise ValueError(f"target {self.target!r} must be categorical or boolean")
            if self.columns[self.target].dp_categories is not None:
                raise ValueError(f"target {self.target!r} needs a declared 'categories' list (it is the "
                                 "generator's condition), not dp_categories")
        if all(c.type == "identifier" for c in self.columns.values()):
            raise ValueError("every column is an identifier; nothing to synthesise")
        return self

    @property
    def model_columns(self) -> list[str]:
        """Columns that are synthesised (everything but identifiers), in table order."""
        return [c for c, s in self.columns.items() if s.type != "identifier"]

    @property
    def numerical_columns(self) -> list[str]:
        """Numerical (integer and float) columns; dates are in :attr:`date_columns`."""
        return [c for c, s in self.columns.items() if s.type in ("integer", "float")]

    @property
    def date_columns(self) -> list[str]:
        """``date`` and ``datetime`` columns (numbers inside the model, like numerical columns)."""
        return [c for c, s in self.columns.items() if s.is_temporal]

    @property
    def discrete_columns(self) -> list[str]:
        """Categorical and boolean columns."""
        return [c for c, s in self.columns.items() if s.type in ("categorical", "boolean")]

    def to_sdmetrics(self) -> dict[str, Any]:
        """The SDV/sdmetrics single-table metadata dict for the synthesised columns.

        Dates and datetimes are ``numerical``: the audits hand sdmetrics their numeric form
        (days / seconds since 1970-01-01, :func:`synthrelease.metadata.dates.column_numbers`)."""
        sd = {"integer": "numerical", "float": "numerical", "categorical": "categorical",
              "boolean": "boolean", "date": "numerical", "datetime": "numerical", "sequence": "text",
              "image": "unknown"}
        return {"columns": {c: {"sdtype": sd[self.columns[c].type]} for c in self.model_columns}}

    def to_yaml_dict(self) -> dict[str, Any]:
        """A plain dict for writing back to YAML (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_defaults=False, exclude_none=True)
