"""Release policies: a versioned YAML schema, and errors that name file, line and key.

A policy is public: it may be shipped in a bundle and handed to verifiers. It holds
thresholds only — never data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthrelease._io import read_yaml, sha256_bytes
from synthrelease.errors import PolicyError

Fraction = float


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrivacyClauses(_Section):
    """Caps on the privacy loss of one release.

    Attributes:
        max_epsilon: the release's total ε (preprocessing + training) must not exceed this.
        max_delta: the δ used must not exceed this.
        require_delta_below_one_over_n: δ must be below 1/n for the n training rows.
        accountants: accountants whose ε is accepted.
    """

    max_epsilon: float = Field(gt=0)
    max_delta: float = Field(gt=0, lt=1)
    require_delta_below_one_over_n: bool = True
    accountants: list[Literal["rdp", "prv"]] = Field(default_factory=lambda: ["rdp", "prv"], min_length=1)


class DataClauses(_Section):
    """Requirements on the private input. ``min_rows``: fewest training rows accepted."""

    min_rows: int = Field(default=100, ge=1)


class FidelityClauses(_Section):
    """``min_quality_score``: sdmetrics QualityReport overall score (0..1) must reach this."""

    min_quality_score: Fraction = Field(ge=0, le=1)


class UtilityClauses(_Section):
    """``min_tstr_trtr_ratio``: TSTR AUC / TRTR AUC on the holdout must reach this."""

    min_tstr_trtr_ratio: float = Field(ge=0, le=2)


class MembershipClauses(_Section):
    """Membership-inference limits.

    Attributes:
        max_dcr_mia_auc: AUC of the distance-to-closest-record attack (0.5 = no signal).
        max_exact_copy_share: share of synthetic rows equal to a training row.
    """

    max_dcr_mia_auc: float = Field(ge=0.5, le=1)
    max_exact_copy_share: Fraction = Field(default=0.0, ge=0, le=1)


class Policy(BaseModel):
    """A release policy (schema version 1). Every section's clauses must pass."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    privacy: PrivacyClauses
    data: DataClauses = Field(default_factory=DataClauses)
    fidelity: FidelityClauses | None = None
    utility: UtilityClauses | None = None
    membership: MembershipClauses | None = None

    @model_validator(mode="after")
    def _needs_audits(self) -> Policy:
        if self.fidelity is None and self.utility is None and self.membership is None:
            raise ValueError("a policy needs at least one audit section (fidelity, utility, membership)")
        return self


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at key path ``loc`` (composed safely, no objects built)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(key):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_policy(path: str | os.PathLike[str]) -> tuple[Policy, str]:
    """Load and validate a policy file; returns the policy and the file's SHA-256.

    Raises:
        InputFileError: missing file or invalid YAML.
        PolicyError: one line naming the file, line and key of the first problem.
    """
    p = Path(path)
    raw = read_yaml(p, "policy")
    text = p.read_text(encoding="utf-8")
    if not isinstance(raw, dict):
        raise PolicyError(f"{p}: policy file must be a mapping (version, name, privacy, ...)")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        first = errs[0]
        loc = tuple(x for x in first["loc"] if not str(x).startswith("function-"))
        line = _line_of(text, loc)
        where = f"{p}:{line}" if line else str(p)
        key = ".".join(str(x) for x in loc) or "(top level)"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        raise PolicyError(f"{where}: policy key '{key}': {msg}{more}") from None
    return policy, sha256_bytes(p.read_bytes())
