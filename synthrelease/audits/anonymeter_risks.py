"""The three anonymisation risks of the Article 29 Working Party (Opinion 05/2014) — singling
out, linkability, inference — measured with anonymeter (Statice; Giomi et al., PoPETs 2023).

INTERNAL: these attacks read private rows (the training rows and the holdout). The figures are
NOT differentially private; they go to the steward's internal report only, never into a
bundle, and no policy clause reads them (they never decide whether a release happens).

How each risk is measured. Every attack reads the synthetic rows only, and is run twice: on
the training rows (the people the generator learned from) and on the holdout, the control
(people of the same population the generator never saw). anonymeter's risk is the excess
success on the training rows, ``(attack − control) / (1 − control)``, with its confidence
interval (Wilson score intervals of the two rates, propagated; 95 %). A baseline (random
guessing) is run too; an attack no better than it makes anonymeter warn that the figure
cannot be trusted, and the warning is kept with the figure.

* **singling out** (univariate): predicates built from the synthetic rows (a value that occurs
  once, a column's extremes) that match exactly one row. Training and control rows are first
  deduplicated and cut to the same size (a seeded sample of the larger), so that a predicate
  is equally likely to isolate a row of either by chance; anonymeter's own size correction
  (which, in 1.1.0, fits a constant) is then never used. Multivariate predicates (3 columns)
  are optional: they took 49 s on adult against 3 s.
* **linkability**: each attacked row's columns are split in two halves — the audited columns in
  metadata order, alternately (1st, 3rd, 5th… | 2nd, 4th, …), so each half mixes column kinds —
  and the attack succeeds when the two halves share one of their nearest synthetic rows
  (anonymeter's Gower-like distance; 10 neighbours as in anonymeter's adult example, at most
  1 % of the synthetic rows).
* **inference**: the secret is the release's target (the label) when there is one, else the
  first categorical or boolean column, else the first column; the attacker knows every other
  audited column and guesses the secret as that of the nearest synthetic row (numerical
  secrets: right within anonymeter's 5 % relative tolerance). The baseline guesses a random
  synthetic row's value (anonymeter 1.0's baseline: 1.1.0 aligns those guesses by row label,
  so its baseline scores almost nothing; the risk itself never reads the baseline).

Rows are read through the PUBLIC metadata: numericals (dates as days / seconds since
1970-01-01) as floats, categoricals and booleans as canonical strings with a missing value
as a category of its own (``<missing>``). Identifier columns are left out. anonymeter's
distance is undefined when one side misses a numerical value, so rows with a missing
numerical value are left out (complete cases; how many is in the details). Sequences and
images are audited on their modality's public feature view (one row per record).

Cost, bounded whatever the table: at most :data:`N_ATTACKS` attacks per risk, at most
:data:`MAX_SYNTHETIC_ROWS` synthetic rows (a seeded sample: the attacker then holds fewer
rows, so the figures can only be lower), at most :data:`MAX_COLUMNS` columns (wider tables are
skipped with the reason). Skipped with a one-line reason, never an error: anonymeter not
installed, fewer than :data:`MIN_ROWS` complete training or holdout rows, no column to audit;
linkability and inference also need two columns. On adult (26,048 train, 6,513 holdout,
26,048 DP-GAN rows, 15 columns, one thread) the audit took 12.6 s: singling out 1.7 s,
linkability 5.8 s, inference 3.9 s (22–26 s while the machine's 2 cores were busy), plus
about 4 s once per machine to compile anonymeter's numba kernels (cached on disk after).
The neighbour searches now run on :func:`attack_threads` threads: 4.8–5.4 s for the whole
audit in an adult release on 2 cores, against 7.2–7.8 s on one (README, "Speed of an
everyday release").

Randomness: the public audit ``seed`` draws the attacked rows (numpy's global generator is
seeded for anonymeter's calls and restored after them) and shuffles the singling-out
predicates; anonymeter's linkability baseline draws fresh OS entropy, and polars' grouping
lists the candidate predicates in no fixed order, so the singling-out figure and the
linkability baseline vary between runs (within their intervals); linkability and inference
repeat exactly.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.metadata.dates import column_numbers
from synthrelease.metadata.schema import Metadata, canonical_category

log = logging.getLogger(__name__)

N_ATTACKS = 500
"""Attacks per risk (anonymeter's default), fewer when the holdout or training rows are fewer."""
MIN_ROWS = 50
"""Fewer complete training or holdout rows than this: the audit is skipped (its intervals would
span most of [0, 1])."""
MAX_COLUMNS = 64
"""Wider tables are skipped: anonymeter's brute-force mixed-type neighbour search grows with the width."""
MAX_SYNTHETIC_ROWS = 50_000
"""The attacker's synthetic rows: a seeded sample of at most this many."""
CONFIDENCE_LEVEL = 0.95
MULTIVARIATE_COLUMNS = 3
"""Columns per predicate of the optional multivariate singling-out attack (anonymeter's default)."""
MULTIVARIATE_MAX_ATTEMPTS = 100_000
"""Predicates tried at most by the multivariate singling-out attack."""
MISSING = "<missing>"

RISKS = ("singling_out", "singling_out_multivariate", "linkability", "inference")
NOTE = ("These figures read private rows (the training rows and the holdout), are NOT differentially private, "
        "stay in this internal report (never in a bundle) and are never a gate clause: no policy clause reads "
        "them, so they never decide a release.")
METHOD = ("anonymeter (Statice; Giomi et al., PoPETs 2023): the three risks of the Article 29 Working Party "
          "(Opinion 05/2014). Each attack reads the synthetic rows only and is run on the training rows and on "
          "the holdout (control: rows the generator never saw); risk = (attack − control) / (1 − control), "
          "0 = the synthetic rows help the attacker no more against the training rows than against anyone "
          "else of the population; 95 % confidence interval from anonymeter.")
INSTALL_HINT = "pip install --no-deps -c constraints.txt anonymeter"

_numba_cache_enabled = False


class _Skip(Exception):
    """Why the audit (or one risk) cannot run: one line for the report."""


def attack_threads() -> int:
    """Threads for anonymeter's neighbour searches (numba, no GIL): ``OMP_NUM_THREADS`` when set
    (the test suite's workers set 1), else every core. The figures do not depend on it."""
    setting = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(setting) if setting.isdigit() else os.cpu_count() or 1)


@dataclass(frozen=True)
class _Frames:
    """The rows anonymeter reads: typed from the public metadata, complete cases only."""

    train: pd.DataFrame
    control: pd.DataFrame
    synthetic: pd.DataFrame
    columns: list[str]
    numerical: list[str]
    rows: dict[str, int]


def run_anonymeter(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                   target: str | None = None, seed: int = 0, n_attacks: int = N_ATTACKS,
                   multivariate: bool = False, on: str = "rows") -> AuditResult:
    """Singling-out, linkability and inference risks of ``synthetic`` for the people of ``train``,
    with ``holdout`` as anonymeter's control. Reads PRIVATE rows: INTERNAL, not DP, never gated.

    ``on`` says what the rows are (``rows``, or a modality's feature view) for the report.
    Never raises for a table it cannot audit: the result then has no metrics and
    ``details["skipped"]`` says why in one line; a risk that cannot be measured has its own
    ``skipped`` (or ``error``) entry.
    """
    t0 = time.perf_counter()
    details: dict[str, Any] = {"note": NOTE, "method": METHOD, "on": on, "confidence_level": CONFIDENCE_LEVEL}
    try:
        evaluators = _library()
        frames = anonymeter_frames(train, holdout, synthetic, metadata, seed=seed)
    except _Skip as why:
        details["skipped"] = str(why)
        return AuditResult("anonymeter", {}, details, runtime_s=time.perf_counter() - t0)
    n = min(n_attacks, len(frames.train), len(frames.control))
    details.update(rows=frames.rows, columns=frames.columns, n_attacks=n)
    names = [r for r in RISKS if multivariate or r != "singling_out_multivariate"]
    risks: dict[str, dict[str, Any]] = {}
    for name in names:
        risks[name] = _measure(name, evaluators, frames, metadata, target=target, seed=seed, n_attacks=n)
    details["risks"] = risks
    metrics: dict[str, float | None] = {}
    for name, r in risks.items():
        if "risk" in r:
            metrics[f"{name}_risk"] = r["risk"]
            metrics[f"{name}_risk_ci_low"], metrics[f"{name}_risk_ci_high"] = r["ci"]
    return AuditResult("anonymeter", metrics, details, runtime_s=time.perf_counter() - t0)


def _library() -> Any:
    """``anonymeter.evaluators``, with on-disk caching of its two numba kernels (compiling them took
    4–9 s per process on 2 busy cores; a cached load 0.4 s)."""
    global _numba_cache_enabled
    try:
        import anonymeter.evaluators as evaluators  # before .neighbors: the package imports in a cycle
    except ImportError as e:
        raise _Skip(f"anonymeter is not installed ({e}); install it with `{INSTALL_HINT}`") from None
    if not _numba_cache_enabled:
        from anonymeter.neighbors import mixed_types_kneighbors as kernels

        for kernel in (kernels.gower_distance, kernels._nearest_neighbors):
            try:
                kernel.enable_caching()  # what @jit(cache=True) does
            except RuntimeError as e:  # numba: no writable cache folder ("no locator available")
                log.info("anonymeter's numba kernels compile in every process: %s", e)
        _numba_cache_enabled = True
    return evaluators


def audited_columns(metadata: Metadata, *frames: pd.DataFrame) -> list[str]:
    """The columns anonymeter reads: numerical, date, categorical and boolean columns present in every frame,
    in metadata order (identifiers, sequences and images are not among them)."""
    kinds = ("integer", "float", "date", "datetime", "categorical", "boolean")
    return [c for c, s in metadata.columns.items() if s.type in kinds and all(c in f.columns for f in frames)]


def _typed(df: pd.DataFrame, metadata: Metadata, columns: list[str]) -> pd.DataFrame:
    """Floats for numericals (NaN missing), canonical strings for the others (missing → ``<missing>``)."""
    out = {}
    for c in columns:
        spec = metadata.columns[c]
        if spec.is_numerical:
            out[c] = column_numbers(df[c], spec).to_numpy(dtype=np.float64)
        else:
            codes, uniques = pd.factorize(df[c], use_na_sentinel=True)
            labels = np.array([canonical_category(u) or MISSING for u in uniques] + [MISSING], dtype=object)
            out[c] = labels[codes]
    return pd.DataFrame(out, columns=columns)


def anonymeter_frames(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, *,
                      seed: int = 0) -> _Frames:
    """The three tables typed from the metadata, complete cases only, synthetic rows capped.

    Raises:
        _Skip: no column, too many columns, or too few complete training or holdout rows.
    """
    columns = audited_columns(metadata, train, holdout, synthetic)
    if not columns:
        raise _Skip("no numerical, date, categorical or boolean column to audit")
    if len(columns) > MAX_COLUMNS:
        raise _Skip(f"{len(columns)} columns: above {MAX_COLUMNS}, anonymeter's brute-force neighbour search "
                    "would be slow (wide tables are not audited)")
    numerical = [c for c in columns if metadata.columns[c].is_numerical]
    typed = {k: _typed(df, metadata, columns) for k, df in (("train", train), ("holdout", holdout),
                                                              ("synthetic", synthetic))}
    rows: dict[str, int] = {}
    for k, df in typed.items():
        complete = df.dropna(subset=numerical).reset_index(drop=True) if numerical else df
        rows[f"{k}_rows"], rows[f"{k}_incomplete_rows_left_out"] = len(complete), len(df) - len(complete)
        typed[k] = complete
    if len(typed["synthetic"]) > MAX_SYNTHETIC_ROWS:
        typed["synthetic"] = typed["synthetic"].sample(MAX_SYNTHETIC_ROWS, random_state=seed).reset_index(drop=True)
        rows["synthetic_rows_used"] = MAX_SYNTHETIC_ROWS
    for k in ("train", "holdout"):
        if len(typed[k]) < MIN_ROWS:
            raise _Skip(f"{len(typed[k])} complete {k} rows: fewer than {MIN_ROWS}, too few for a meaningful "
                        "estimate")
    if len(typed["synthetic"]) == 0:
        raise _Skip("no complete synthetic row")
    return _Frames(typed["train"], typed["holdout"], typed["synthetic"], columns, numerical, rows)


def linkability_halves(columns: list[str]) -> tuple[list[str], list[str]]:
    """The attacker's two auxiliary tables: the columns in metadata order, alternately (a fixed rule, no data)."""
    return columns[0::2], columns[1::2]


def inference_secret(columns: list[str], metadata: Metadata, target: str | None) -> str:
    """The target when audited, else the metadata's target, else the first categorical or boolean column,
    else the first column."""
    for candidate in (target, metadata.target):
        if candidate is not None and candidate in columns:
            return candidate
    return next((c for c in columns if not metadata.columns[c].is_numerical), columns[0])


def equal_size_unique(train: pd.DataFrame, control: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables without duplicate rows and cut to the same size (a seeded sample of the larger one)."""
    train, control = train.drop_duplicates(ignore_index=True), control.drop_duplicates(ignore_index=True)
    n = min(len(train), len(control))
    return (train.sample(n, random_state=seed, ignore_index=True) if len(train) > n else train,
            control.sample(n, random_state=seed + 1, ignore_index=True) if len(control) > n else control)


def _measure(name: str, evaluators: Any, frames: _Frames, metadata: Metadata, *, target: str | None, seed: int,
             n_attacks: int) -> dict[str, Any]:
    """One risk: its value, interval, rates, settings, sentence and anonymeter's warnings; or why not."""
    try:
        run, settings = _attack(name, evaluators, frames, metadata, target=target, seed=seed, n_attacks=n_attacks)
    except _Skip as why:
        return {"skipped": str(why)}
    messages: list[str] = []
    t = time.perf_counter()
    try:
        with _captured(messages), _global_numpy_seed(seed):
            results = run()
            risk = results.risk()
    except Exception as e:  # one attack's failure leaves the others standing
        return {"error": f"{type(e).__name__}: {e}", "settings": settings, "warnings": _unique(messages)}
    control, control_error = (None, None) if results.control_rate is None else results.control_rate
    out = {"risk": float(risk.value), "ci": [float(risk.ci[0]), float(risk.ci[1])],
           "attack_rate": float(results.attack_rate.value), "attack_rate_error": float(results.attack_rate.error),
           "baseline_rate": float(results.baseline_rate.value),
           "baseline_rate_error": float(results.baseline_rate.error),
           "control_rate": None if control is None else float(control),
           "control_rate_error": None if control_error is None else float(control_error),
           "n_attacks": int(results.n_attacks_ori), "n_success": int(results.n_success),
           "n_baseline": int(results.n_baseline),
           "n_control": None if results.n_control is None else float(results.n_control),
           "settings": settings, "seconds": round(time.perf_counter() - t, 3), "warnings": _unique(messages)}
    out["sentence"] = risk_sentence(name, out)
    return out


def _attack(name: str, evaluators: Any, frames: _Frames, metadata: Metadata, *, target: str | None, seed: int,
            n_attacks: int) -> tuple[Callable[[], Any], dict[str, Any]]:
    """What measures one risk (a closure returning anonymeter's ``EvaluationResults``) and its settings."""
    if name.startswith("singling_out"):
        train, control = equal_size_unique(frames.train, frames.control, seed=seed)
        mode = "multivariate" if name.endswith("multivariate") else "univariate"
        n = min(n_attacks, len(train))
        settings: dict[str, Any] = {"mode": mode, "n_attacks": n, "rows_each": len(train),
                                    "rows": "training and holdout rows deduplicated and cut to the same size"}
        if mode == "multivariate":
            if len(frames.columns) < MULTIVARIATE_COLUMNS:
                raise _Skip(f"{len(frames.columns)} column(s): 3-column predicates need at least 3")
            settings |= {"columns_per_predicate": MULTIVARIATE_COLUMNS, "max_attempts": MULTIVARIATE_MAX_ATTEMPTS}
        return (lambda: evaluators.SinglingOutEvaluator(
            ori=train, syn=frames.synthetic, control=control, n_attacks=n, n_cols=MULTIVARIATE_COLUMNS,
            max_attempts=MULTIVARIATE_MAX_ATTEMPTS, seed=seed).evaluate(mode=mode).results(
            confidence_level=CONFIDENCE_LEVEL)), settings
    if len(frames.columns) < 2:
        raise _Skip("one column: the attacker needs at least two (known columns and a secret, or two halves)")
    if name == "linkability":
        halves = linkability_halves(frames.columns)
        k = link_neighbours(len(frames.synthetic))
        settings = {"aux_columns": [list(halves[0]), list(halves[1])], "n_neighbors": k, "n_attacks": n_attacks,
                    "split": "audited columns in metadata order, alternately"}
        return (lambda: evaluators.LinkabilityEvaluator(
            ori=frames.train, syn=frames.synthetic, aux_cols=halves, n_attacks=n_attacks, n_neighbors=k,
            control=frames.control).evaluate(n_jobs=attack_threads()).results(
            confidence_level=CONFIDENCE_LEVEL)), settings
    secret = inference_secret(frames.columns, metadata, target)
    aux = [c for c in frames.columns if c != secret]
    regression = secret in frames.numerical
    settings = {"secret": secret, "aux_columns": aux, "regression": regression, "n_attacks": n_attacks,
                "baseline": "a random synthetic row's value, compared position by position (anonymeter 1.0's "
                            "baseline; 1.1.0 aligns these guesses by row label and so scores almost none)"}

    def run() -> Any:
        evaluator = evaluators.InferenceEvaluator(ori=frames.train, syn=frames.synthetic, aux_cols=aux, secret=secret,
                                                  regression=regression, n_attacks=n_attacks, control=frames.control)
        first = evaluator.evaluate(n_jobs=attack_threads()).results(confidence_level=CONFIDENCE_LEVEL)
        n_base = min(len(frames.synthetic), first.n_attacks_ori)
        return type(first)(n_attacks=(first.n_attacks_ori, n_base, first.n_attacks_control),
                           n_success=first.n_success, n_control=first.n_control,
                           n_baseline=_inference_baseline(frames, secret, regression, n_base),
                           confidence_level=CONFIDENCE_LEVEL)

    return run, settings


def link_neighbours(n_synthetic: int) -> int:
    """Nearest synthetic rows a linkability attack compares: 10 (anonymeter's adult example), at most 1 % of
    the synthetic rows (at least 1), so that random links stay rare on small tables."""
    return max(1, min(10, n_synthetic // 100))


def _inference_baseline(frames: _Frames, secret: str, regression: bool, n: int) -> int:
    """Correct guesses of the naive attacker: the secret of a random synthetic row for a random training row
    (numpy's global generator, seeded by the caller)."""
    from anonymeter.evaluators.inference_evaluator import evaluate_inference_guesses

    targets = frames.train.sample(n, replace=False)
    guesses = pd.Series(frames.synthetic.sample(n, replace=False)[secret].to_numpy(), index=targets.index)
    return int(evaluate_inference_guesses(guesses=guesses, secrets=targets[secret], regression=regression).sum())


_WHAT = {
    "singling_out": "Of {n} predicates built from the synthetic rows (a value seen once, a column's extremes), "
                    "{a} single out exactly one training row and {c} one holdout row (random predicates: {b}).",
    "singling_out_multivariate": "Of {n} three-column predicates built from the synthetic rows, {a} single out "
                                 "exactly one training row and {c} one holdout row (random predicates: {b}).",
    "linkability": "Splitting each attacked row's columns in two halves, the nearest synthetic rows link the "
                   "halves back together for {a} of training rows and {c} of holdout rows (random links: {b}).",
    "inference": "Guessing '{secret}' from the other columns as the nearest synthetic row's value is right for "
                 "{a} of training rows and {c} of holdout rows (a random synthetic row's value: {b}).",
}


def risk_sentence(name: str, r: dict[str, Any]) -> str:
    """One plain sentence on a measured risk: the rates, then what the interval says."""
    def pct(x: float | None) -> str:
        return "—" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"

    what = _WHAT[name].format(n=r["n_attacks"], a=pct(r["attack_rate"]), c=pct(r["control_rate"]),
                              b=pct(r["baseline_rate"]), secret=r["settings"].get("secret", ""))
    lo, hi = r["ci"]
    if lo > 0:
        verdict = (f"Risk {pct(r['risk'])} (95 % CI {pct(lo)} – {pct(hi)}): the synthetic rows help this attack "
                   "measurably more against the people they were trained on than against others.")
    else:
        verdict = (f"Risk {pct(r['risk'])} (95 % CI {pct(lo)} – {pct(hi)}): no excess over the holdout is "
                   f"measurable with {r['n_attacks']} attacks; the risk is at most {pct(hi)} at 95 % confidence.")
    if r["attack_rate"] <= r["baseline_rate"]:
        verdict += " The attack did no better than random guessing here, so anonymeter flags the figure as unreliable."
    return f"{what} {verdict}"


def _unique(messages: list[str]) -> list[str]:
    return list(dict.fromkeys(messages))[:5]


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _captured(messages: list[str]) -> Iterator[None]:
    """anonymeter's warnings and log warnings into ``messages`` (kept with the figure, not printed)."""
    logger = logging.getLogger("anonymeter")
    handler, propagate = _ListHandler(messages), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                messages.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """numpy's global generator seeded (anonymeter samples its attacked rows from it), then restored."""
    state = np.random.get_state()  # noqa: NPY002 - anonymeter draws from the legacy global generator
    np.random.seed(seed % 2**32)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002
