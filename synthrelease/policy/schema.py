"""Release policies: a versioned YAML schema, and errors that name file, line and key.

A policy is public: it may be shipped in a bundle and handed to verifiers. It holds
thresholds and public domain rules only — never data.

Versions:
    1, 2: gated on the EXACT audit figures of private rows (not DP). Refused since the
       release gate became differentially private: the same thresholds now mean
       something else, so an old file must be rewritten, never reinterpreted silently.
    3: the gate compares DIFFERENTIALLY PRIVATE figures (each audit statistic with a
       bounded sensitivity, released with Gaussian noise from ``privacy.audit_budget_share``
       of the release's budget; see :mod:`synthrelease.gate.dp_gate`). Clauses: privacy
       (max ε, max δ, δ < 1/n, accountants, audit budget share, lifetime cap, empirical
       audit), data (min rows), fidelity (quality, coverage, missing-category share),
       utility (TSTR AUC), membership (DCR AUC, exact copies, worst attack AUC, mean TPR
       over FPR ≤ 1 % / 0.1 %), plausibility rules (on synthetic rows only: exact), signing.
       Not DP-releasable, so refused with a hint: ``utility.min_tstr_trtr_ratio`` (TRTR
       trains a model on private rows: unbounded sensitivity) and
       ``membership.shadow_attack.max_auc`` (the shadow attack's figures stay internal).

Impossible values are refused at load time: ε ≤ 0 or not finite, δ outside (0, 1),
shares and scores outside [0, 1], membership-attack AUC limits outside [0.5, 1] (0.5
is a coin flip, so a lower limit could never pass), TPR limits at FPR α below α
(a no-signal attack already has TPR ≈ α), a lifetime ε cap below the per-release cap,
range rules with min > max.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from synthrelease.errors import PolicyError
from synthrelease.io.files import read_yaml, sha256_bytes

SCHEMA_VERSIONS = (3,)

Share = Annotated[float, Field(ge=0, le=1)]
AttackAUC = Annotated[float, Field(ge=0.5, le=1)]
CategoryValue = str | int | float | bool
RULE_KINDS = ("range", "in_set", "less_than", "before", "non_negative", "conditional")
ALL_NUMERICAL = "all numerical"


def _refused(value: float | None, why: str) -> float | None:
    """A version-3 validator for a key that is no longer allowed (its figure is not DP-releasable)."""
    if value is not None:
        raise ValueError(why)
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, serialize_by_alias=True)


class EmpiricalAuditClause(_Section):
    """``required``: run the one-run empirical privacy audit (Steinke et al. 2023).

    The release fails when the audit's ε lower bound exceeds the ε the accountant claims:
    a DP-correct implementation cannot be caught spending more than it claims, so this
    points at an implementation fault, not at bad luck.
    """

    required: bool = False


class PrivacyClauses(_Section):
    """Caps on the privacy loss of one release.

    Attributes:
        max_epsilon: the release's total ε (preprocessing + training) must not exceed this.
        max_delta: the δ used must not exceed this; in (0, 1).
        require_delta_below_one_over_n: δ must be below 1/n for the n training rows.
        accountants: accountants whose ε is accepted.
        audit_budget_share: (v3) share of the release's privacy budget (of its Rényi-DP
            curve, so the total ε stays the requested ε) spent on the DP release gate's
            noisy figures; the rest trains the generator. In (0, 0.5]; default 0.1.
        count_budget_share: share of the release's Rényi-DP curve spent on the one noisy
            release of the part sizes (training and holdout units) that every size-derived
            setting, the default synthetic row count, the row-count clauses and the gate's
            slot counts come from (privacy/dp_counts.py). In (0, 0.2]; default 0.05.
        audit_noise_allocation: how the gate's one Gaussian release shares its noise among
            the figures (same ε; synthrelease/gate/dp_gate.py ``ALLOCATIONS``):
            ``proportional`` (default: each figure's noise in proportion to its sensitivity,
            so the training-side figures — quality, copies — are nearly exact),
            ``least_refusal`` (the noise scales that make a release whose exact figures ALL
            clear their limits by ``audit_design_margin`` least likely to be refused; it moves
            noise onto the training-side figures, so a copy-share clause whose good value sits
            only its limit away from 0 is refused more often) or ``equalised`` (every figure
            the same noise std).
        audit_design_margin: the margin, in the figures' units, ``least_refusal`` designs for
            (and ``--dry-run`` reports against). In (0, 0.5]; default 0.05.
        audit_clear_by_stds: the decision rule under noise: a DP-figure clause passes when the
            noisy figure clears its limit by this many of its noise stds. 0 (default): the
            noisy value itself (a release whose exact figure sits on the limit passes half
            the time); 1.645: a release whose exact figure fails passes at most 5 % of the
            time, at the price of refusing more good ones; negative: the reverse. In [-3, 3].
        lifetime_epsilon_cap: (v2) total ε all releases of one dataset may spend; the
            ledger enforces it. Must be ≥ ``max_epsilon``.
        empirical_audit: (v2) the empirical privacy audit.
    """

    max_epsilon: float = Field(gt=0)
    max_delta: float = Field(gt=0, lt=1)
    require_delta_below_one_over_n: bool = True
    accountants: list[Literal["rdp", "prv"]] = Field(default_factory=lambda: ["rdp", "prv"], min_length=1)
    audit_budget_share: float = Field(default=0.1, gt=0, le=0.5)
    count_budget_share: float = Field(default=0.05, gt=0, le=0.2)
    audit_noise_allocation: Literal["least_refusal", "equalised", "proportional"] = "proportional"
    audit_design_margin: float = Field(default=0.05, gt=0, le=0.5)
    audit_clear_by_stds: float = Field(default=0.0, ge=-3.0, le=3.0)
    lifetime_epsilon_cap: float | None = Field(default=None, gt=0)
    empirical_audit: EmpiricalAuditClause | None = None

    @field_validator("lifetime_epsilon_cap")
    @classmethod
    def _cap_covers_one_release(cls, v: float | None, info: ValidationInfo) -> float | None:
        max_eps = info.data.get("max_epsilon")
        if v is not None and max_eps is not None and v < max_eps:
            raise ValueError(f"lifetime_epsilon_cap ({v:g}) is below max_epsilon ({max_eps:g}); "
                             "lower max_epsilon instead")
        return v


class DataClauses(_Section):
    """Requirements on the private input. ``min_rows``: fewest training rows (persons) accepted,
    compared with the DP count of the training part (the exact count is private).
    ``holdout_fraction``: each person's (secret) chance of landing in the holdout the audits
    and the gate score against instead of training; a larger holdout makes the figures over
    it (TSTR, the membership attacks) less noisy and leaves fewer rows to train. In
    [0.05, 0.5]; default 0.2 (a caller's explicit ``holdout_fraction`` wins)."""

    min_rows: int = Field(default=100, ge=1)
    holdout_fraction: float = Field(default=0.2, ge=0.05, le=0.5)


class FidelityClauses(_Section):
    """Fidelity of the synthetic rows to the training rows (audit ``fidelity``), on DP figures.

    Attributes:
        min_quality_score: DP quality score (0..1): sdmetrics' Column Shapes (KS/TV
            complement) and Column Pair Trends with every pair scored by its contingency
            similarity on public bins; must reach this.
        min_prdc_coverage: DP share of training rows inside the synthetic rows' k-NN balls
            (coverage of the real data by the synthetic manifold) must reach this.
        max_missing_category_share: DP share of training rows (averaged over categorical
            columns) whose category the synthetic rows never take must not exceed this.
    """

    min_quality_score: Share
    min_prdc_coverage: Share | None = None
    max_missing_category_share: Share | None = None


class UtilityClauses(_Section):
    """Train-synthetic-test-real utility (audit ``utility``).

    A model is trained on the synthetic rows and tested on the real holdout rows.

    Attributes:
        min_tstr_accuracy: its DP accuracy on the holdout must reach this (noise ∝ 1/holdout rows).
        min_tstr_auc: its DP ROC AUC (macro one-vs-rest for several classes) must reach
            this; noisier than the accuracy on small holdouts.
        min_tstr_trtr_ratio: REFUSED since version 3 (TRTR trains on private rows, so it has
            no bounded sensitivity and cannot be released with DP); use the two above.
    At least one of ``min_tstr_accuracy`` and ``min_tstr_auc`` is required.
    """

    min_tstr_accuracy: Share | None = None
    min_tstr_auc: Share | None = None
    min_tstr_trtr_ratio: float | None = None

    @model_validator(mode="after")
    def _one_clause(self) -> UtilityClauses:
        if self.min_tstr_accuracy is None and self.min_tstr_auc is None:
            raise ValueError("the utility section needs min_tstr_accuracy or min_tstr_auc")
        return self

    @field_validator("min_tstr_trtr_ratio")
    @classmethod
    def _not_dp(cls, v: float | None) -> float | None:
        return _refused(v, "not releasable with DP: TRTR trains a model on the private rows (unbounded "
                           "sensitivity); gate on utility.min_tstr_accuracy or min_tstr_auc instead (TRTR stays "
                           "in the internal report)")


class ShadowAttackClause(_Section):
    """Targeted shadow-model membership attack (audit ``shadow``): INTERNAL, never gating.

    Attributes:
        required: run the attack (costly: it retrains the generator on shadow data); its
            results go to the internal report only.
        max_auc: REFUSED since version 3 (not DP-releasable).
    """

    required: bool = True
    max_auc: float | None = None

    @field_validator("max_auc")
    @classmethod
    def _not_dp(cls, v: float | None) -> float | None:
        return _refused(v, "the shadow attack retrains on private rows chosen from private rows: its figures "
                           "have no DP bound, so they cannot gate a release; they stay in the internal report "
                           "(remove max_auc)")


class MembershipClauses(_Section):
    """Membership-inference limits on DP figures (audit ``membership``).

    Attributes:
        max_dcr_mia_auc: DP AUC of the distance-to-closest-record attack, training rows vs
            holdout rows (0.5 = no signal).
        max_exact_copy_share: DP share of training rows that have an exact copy among the
            synthetic rows (default 0.01: a DP figure carries noise, so a limit of 0 fails
            about half the time even when nothing is copied).
        max_mia_auc: worst DP AUC over the DCR, NNDR and density-ratio attacks.
        max_tpr_at_fpr_1pct: worst attack's DP mean TPR over FPR ∈ [0, 1 %] (a no-signal
            attack gives ≈ 0.005); at least 0.01.
        max_tpr_at_fpr_0_1pct: the same over FPR ∈ [0, 0.1 %]; at least 0.001. Its noise
            scales with 1/(0.001 · holdout rows): only meaningful with ≳ 100,000 holdout rows.
        shadow_attack: the shadow attack (internal only).
    """

    max_dcr_mia_auc: AttackAUC
    max_exact_copy_share: Share = 0.01
    max_mia_auc: AttackAUC | None = None
    max_tpr_at_fpr_1pct: float | None = Field(default=None, ge=0.01, le=1)
    max_tpr_at_fpr_0_1pct: float | None = Field(default=None, ge=0.001, le=1)
    shadow_attack: ShadowAttackClause | None = None


# ---------------------------------------------------------------- plausibility rules

class _RangeBody(_Section):
    column: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> _RangeBody:
        if self.min is None and self.max is None:
            raise ValueError("a range rule needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class _InSetBody(_Section):
    column: str = Field(min_length=1)
    values: list[CategoryValue] = Field(min_length=1)


class _RuleBase(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)
    max_violation_share: Share = 0.0
    description: str = ""


class RangeRule(_RuleBase, _RangeBody):
    """``min ≤ column ≤ max`` (either side optional). Missing values are not violations."""

    kind: Literal["range"]


class InSetRule(_RuleBase, _InSetBody):
    """``column`` takes only the listed values. Missing values are not violations."""

    kind: Literal["in_set"]


class _PairBody(_RuleBase):
    column_a: str = Field(min_length=1)
    column_b: str = Field(min_length=1)
    or_equal: bool = False

    @model_validator(mode="after")
    def _two_columns(self) -> _PairBody:
        if self.column_a == self.column_b:
            raise ValueError("column_a and column_b must differ")
        return self


class LessThanRule(_PairBody):
    """``column_a < column_b`` (``≤`` with ``or_equal``); rows missing either are skipped.

    Two numerical columns, or two date/datetime columns (compared as points in time)."""

    kind: Literal["less_than"]


class BeforeRule(_PairBody):
    """Date ``column_a`` is before date ``column_b`` (the same day/instant allowed with
    ``or_equal``); rows missing either are skipped. Both columns must be ``date`` or
    ``datetime`` columns of the metadata (checked against it before training); a date
    compared with a datetime is taken at midnight."""

    kind: Literal["before"]


class NonNegativeRule(_RuleBase):
    """Every listed numerical column (or ``all numerical``) is ≥ 0.

    The measured share is the worst column's share of negative values.
    """

    kind: Literal["non_negative"]
    columns: list[str] | Literal["all numerical"]

    @field_validator("columns")
    @classmethod
    def _non_empty(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list) and not v:
            raise ValueError("give at least one column, or 'all numerical'")
        return v


class RuleCondition(_Section):
    """The ``if`` of a conditional rule: ``column`` equals a value or is in a set."""

    column: str = Field(min_length=1)
    equals: CategoryValue | None = None
    in_set: list[CategoryValue] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> RuleCondition:
        if (self.equals is None) == (self.in_set is None):
            raise ValueError("give exactly one of 'equals' and 'in_set'")
        return self


class ThenRange(_RangeBody):
    """The ``then`` of a conditional rule: a range."""

    kind: Literal["range"]


class ThenInSet(_InSetBody):
    """The ``then`` of a conditional rule: an allowed set."""

    kind: Literal["in_set"]


class ConditionalRule(_RuleBase):
    """On the rows where ``if`` holds, the ``then`` rule holds.

    The measured share is over those rows only (0 when no row meets the condition).
    """

    kind: Literal["conditional"]
    if_: RuleCondition = Field(alias="if")
    then: Annotated[ThenRange | ThenInSet, Field(discriminator="kind")]


PlausibilityRule = Annotated[
    RangeRule | InSetRule | LessThanRule | BeforeRule | NonNegativeRule | ConditionalRule,
    Field(discriminator="kind")]


class PlausibilityClauses(_Section):
    """(v2) Public domain rules checked on the SYNTHETIC rows (audit ``plausibility``).

    Each rule fails the gate when its violation share (violating rows / rows with a
    value, see :mod:`synthrelease.audits.plausibility`) exceeds its ``max_violation_share``.
    """

    rules: list[PlausibilityRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> PlausibilityClauses:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} is used twice")
            seen.add(r.id)
        return self


class SigningClauses(_Section):
    """(v2) Who signs a release.

    Attributes:
        signer: the signing person or organisation (free text, shown in the report).
        allowed_key_fingerprints: SHA-256 fingerprints of the Ed25519 public keys that
            may sign (as printed by :func:`synthrelease.bundle.signing.key_fingerprint`);
            any other key is refused before training (exit 2). Absent: any key.
    """

    signer: str = Field(min_length=1)
    allowed_key_fingerprints: list[str] | None = Field(default=None, min_length=1)

    @field_validator("allowed_key_fingerprints")
    @classmethod
    def _hex(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for fp in v:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", fp):
                raise ValueError(f"{fp!r} is not a SHA-256 fingerprint (64 hex digits)")
        return [fp.lower() for fp in v]


class Policy(BaseModel):
    """A release policy (schema version 3). Every clause must pass, on DP figures."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, serialize_by_alias=True)

    version: Literal[3]
    name: str = Field(min_length=1)
    description: str = ""
    privacy: PrivacyClauses
    data: DataClauses = Field(default_factory=DataClauses)
    fidelity: FidelityClauses | None = None
    utility: UtilityClauses | None = None
    membership: MembershipClauses | None = None
    plausibility: PlausibilityClauses | None = None
    signing: SigningClauses | None = None

    @model_validator(mode="after")
    def _needs_audits(self) -> Policy:
        if self.fidelity is None and self.utility is None and self.membership is None:
            raise ValueError("a policy needs at least one audit section (fidelity, utility, membership)")
        return self

    @property
    def lifetime_epsilon_cap(self) -> float | None:
        """The per-dataset lifetime ε cap the ledger enforces (None: no cap)."""
        return self.privacy.lifetime_epsilon_cap

    @property
    def rules(self) -> list[Any]:
        """The plausibility rules (empty when none)."""
        return list(self.plausibility.rules) if self.plausibility is not None else []

    @property
    def shadow_attack_required(self) -> bool:
        """True when the policy requires the shadow attack."""
        m = self.membership
        return bool(m is not None and m.shadow_attack is not None and m.shadow_attack.required)

    @property
    def empirical_audit_required(self) -> bool:
        """True when the policy requires the empirical privacy audit."""
        e = self.privacy.empirical_audit
        return bool(e is not None and e.required)


OLD_VERSION_HINT = (
    "gates on exact audit figures of private rows, which is not differentially private; this "
    "synthrelease gates on DP figures: rewrite it as 'version: 3' (see policies/default.yaml; "
    "utility.min_tstr_trtr_ratio becomes min_tstr_accuracy or min_tstr_auc, shadow_attack.max_auc is gone, "
    "thresholds now apply to noisy figures)")


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
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


_line_of = line_of  # backwards-compatible private name


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union/discriminator tags, which are not keys of the file."""
    out: list[Any] = []
    for x in loc:
        s = str(x)
        if s.startswith("function-") or "[" in s:
            continue
        if s in RULE_KINDS and out and (isinstance(out[-1], int) or out[-1] == "then"):
            continue
        out.append(x)
    return tuple(out)


def _rule_label(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """`` (rule 'id')`` when ``loc`` points into a plausibility rule that has an id."""
    if len(loc) < 3 or loc[:2] != ("plausibility", "rules") or not isinstance(loc[2], int):
        return ""
    try:
        rule_id = raw["plausibility"]["rules"][loc[2]].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return f" (rule '{rule_id}')" if isinstance(rule_id, str) else ""


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
    if raw.get("version") in (1, 2):
        line = line_of(text, ("version",))
        where = f"{p}:{line}" if line else str(p)
        raise PolicyError(f"{where}: policy key 'version': version {raw['version']} {OLD_VERSION_HINT}")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        first = errs[0]
        loc = _clean_loc(tuple(first["loc"]))
        line = line_of(text, loc)
        where = f"{p}:{line}" if line else str(p)
        key = ".".join(str(x) for x in loc) or "(top level)"
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        if len(msg) > 240:  # pydantic may echo a whole offending value (found by the fuzz test)
            msg = msg[:237] + "..."
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        rule = _rule_label(raw, loc)
        raise PolicyError(f"{where}: policy key '{key}'{rule}: {msg}{more}".replace("\n", " ")) from None
    return policy, sha256_bytes(p.read_bytes())
