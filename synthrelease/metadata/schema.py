"""The public metadata file: each column's kind and its PUBLIC domain.

Everything here is treated as public knowledge: the declared bounds of numerical
columns and the category lists of categorical columns are what the DP transforms use
to encode the private table, so they must come from documentation, a code book or
domain knowledge, never from the private rows themselves (unless marked and paid for
with ε, see :mod:`synthrelease.transforms`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

MAX_ABS_BOUND = 1e15
"""Declared numerical bounds must lie within ±this: wider ranges overflow (max − min) or lose precision."""

ColumnType = Literal["integer", "float", "categorical", "boolean", "identifier"]
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


class ColumnSpec(BaseModel):
    """One column of the table.

    Attributes:
        type: ``integer``/``float`` (numerical), ``categorical``, ``boolean``, or
            ``identifier`` (dropped before training, never synthesised).
        nullable: whether missing values are allowed (they get an indicator).
        min, max: declared public bounds of a numerical column (values are clipped).
        dp_bounds: instead of min/max, a public search range within which the bounds are
            estimated from the rows with a DP histogram (costs a share of ε).
        categories: declared public category list of a categorical column.
        dp_categories: instead of ``categories``, discover the frequent values with a DP
            thresholded histogram (costs a share of ε and of δ; rare values → ``other_label``).
        transform: ``log1p`` for heavy-tailed non-negative columns, else ``none``.
        zero_inflated: model ``== 0`` separately from the positive part.
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
    description: str = ""

    @property
    def is_numerical(self) -> bool:
        """True for ``integer`` and ``float`` columns."""
        return self.type in ("integer", "float")

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
                if self.min is None or self.max is None:
                    raise ValueError("a numerical column needs public bounds 'min' and 'max' "
                                     "(or 'dp_bounds' with a public search range, which spends ε)")
                if not (math.isfinite(self.min) and math.isfinite(self.max)):
                    raise ValueError("min and max must be finite numbers")
                if max(abs(self.min), abs(self.max)) > MAX_ABS_BOUND:
                    raise ValueError(f"min and max must lie within ±{MAX_ABS_BOUND:g} (beyond it the range "
                                     "overflows the encoding and a value's precision is lost)")
                if not self.min < self.max:
                    raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
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
            by the generator, so those correlations survive on small tables.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    name: str = "dataset"
    reviewed: StrictBool = False
    target: str | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    related_columns: list[list[str]] | None = None

    @model_validator(mode="after")
    def _check_related(self) -> Metadata:
        for group in self.related_columns or []:
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(f"related_columns: group {group} needs two or more distinct columns")
            for c in group:
                if c not in self.columns or not self.columns[c].is_numerical:
                    raise ValueError(f"related_columns: {c!r} is not a declared numerical column")
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
        """Numerical (integer and float) columns."""
        return [c for c, s in self.columns.items() if s.is_numerical]

    @property
    def discrete_columns(self) -> list[str]:
        """Categorical and boolean columns."""
        return [c for c, s in self.columns.items() if s.type in ("categorical", "boolean")]

    def to_sdmetrics(self) -> dict[str, Any]:
        """The SDV/sdmetrics single-table metadata dict for the synthesised columns."""
        sd = {"integer": "numerical", "float": "numerical", "categorical": "categorical",
              "boolean": "boolean"}
        return {"columns": {c: {"sdtype": sd[self.columns[c].type]} for c in self.model_columns}}

    def to_yaml_dict(self) -> dict[str, Any]:
        """A plain dict for writing back to YAML (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_defaults=False, exclude_none=True)
