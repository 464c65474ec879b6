"""Privacy auditing with one training run (Steinke, Nasr, Jagielski, NeurIPS 2023).

PRIVACY: reads the private training rows; NOT differentially private; results are
INTERNAL ONLY. The audit's own model, discriminator and table are discarded on return.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from synthrelease.audits.base import AuditResult
from synthrelease.audits.empirical.bounds import one_run_audit_bound
from synthrelease.audits.empirical.canaries import canary_metadata, make_canaries
from synthrelease.audits.empirical.run import TrainingRun, audit_config
from synthrelease.errors import PrivacyParameterError
from synthrelease.metadata.schema import Metadata
from synthrelease.privacy.randomness import SeedTree
from synthrelease.progress import ProgressCallback, ProgressEvent, ignore_progress

Score = Literal["white_box", "final_logit", "black_box"]

CanaryMaker = Callable[..., pd.DataFrame]
"""``(metadata, n, *, seed) -> n canary records`` from PUBLIC metadata and a public seed
(default :func:`make_canaries`: table rows; a modality may supply its own, e.g. sequences)."""

Encoder = Callable[[pd.DataFrame, Metadata], np.ndarray]
"""``(rows, metadata) -> float array``: the black-box score's distance space."""

DISCARDED = ("this audit's training run (private training rows + included canaries), its generator, "
             "discriminator and synthetic rows were discarded after scoring; none is in any bundle, and "
             "its ε is not in the ledger because nothing from it is released")


def black_box_scores(run: TrainingRun, canaries: pd.DataFrame, metadata: Metadata, *, n_synthetic: int,
                     seed: int, encode: Encoder | None = None) -> np.ndarray:
    """Minus the distance from each canary to its nearest synthetic row (higher = more likely in),
    in ``encode``'s space (default: the metadata-only table encoding)."""
    from sklearn.neighbors import NearestNeighbors

    from synthrelease.audits._encoding import encode_for_distance

    meta = canary_metadata(metadata)
    encode = encode or encode_for_distance
    synth = run.sample(n_synthetic, seed=seed)
    nn_index = NearestNeighbors(n_neighbors=1).fit(encode(synth, meta))
    dist, _ = nn_index.kneighbors(encode(canaries, meta))
    return -dist[:, 0].astype(np.float64)


def run_one_run_audit(
    real_train: pd.DataFrame,
    metadata: Metadata,
    config: Any,
    *,
    seed: int,
    n_canaries: int | None = None,
    score: Score = "white_box",
    progress: ProgressCallback | None = None,
    condition_column: str | None = None,
    significance: float = 0.05,
    k_values: list[int] | None = None,
    _unsafe_noise_scale: float = 1.0,
    trainer: Callable[..., TrainingRun] | None = None,
    canary_maker: CanaryMaker | None = None,
    encode: Encoder | None = None,
) -> AuditResult:
    """Audit the DP-GAN's ε claim with ``n_canaries`` canaries in one extra training run.

    ``n_canaries`` defaults to min(1,000, training rows), so the audit table is at most
    twice the training table.

    Each canary (:func:`make_canaries`, public metadata + seed only) joins a copy of
    ``real_train`` independently with probability ½; the DP-GAN is trained on that copy with
    ``config`` (batch rescaled to keep the sample rate, own seed, condition column
    ``condition_column`` or the metadata's target); every canary is scored (``white_box``:
    the final discriminator's logit; ``black_box``: minus its distance to the nearest of
    ``len(real_train)`` synthetic rows); the top-k are guessed "in" and the bottom-k "out"
    for each k of the sweep, and the count of correct guesses becomes ε_lb at confidence
    1 − ``significance`` (Bonferroni over the sweep; :mod:`.bounds`).

    Metrics: ``epsilon_lower_bound`` (ε_lb), ``epsilon_claimed`` (ε this run's accountant
    reports, at the run's δ), ``audit_correct_guesses``, ``audit_guesses`` (at the best k).
    A correct mechanism gives ε_lb ≤ ε_claimed except with probability ≤ ``significance``;
    ε_lb > ε_claimed points to an implementation fault.

    Other modalities plug in through ``trainer`` (their audit run and its white-box score),
    ``canary_maker`` (their canary records, e.g. random sequences) and ``encode`` (the
    black-box score's distance space); the defaults are the table's.

    ``_unsafe_noise_scale``: TEST-ONLY, scales the DP noise without telling the accountant
    (0 = the non-private power check). Never set from config files or the CLI.

    Reads private rows (``real_train``); NOT DP; results are INTERNAL ONLY.
    """
    started = time.perf_counter()
    if trainer is None:
        raise PrivacyParameterError("the one-run audit needs the train function of the audited synthesizer "
                                    "(a modality's audit_trainer)")
    progress = progress or ignore_progress
    if n_canaries is None:
        n_canaries = max(4, min(1000, len(real_train)))
    if n_canaries < 4:
        raise PrivacyParameterError(f"the empirical audit needs at least 4 canaries, got {n_canaries}")
    if score not in ("white_box", "final_logit", "black_box"):
        raise PrivacyParameterError(f"audit score must be white_box, final_logit or black_box, got {score!r}")
    seeds = SeedTree(seed)
    canaries = (canary_maker or make_canaries)(metadata, n_canaries, seed=seeds.integer("canaries"))
    canaries = canaries.reindex(columns=real_train.columns)
    included = seeds.numpy("canary-inclusion").random(n_canaries) < 0.5
    rows = pd.concat([real_train, canaries[included]], ignore_index=True)
    cfg = audit_config(config, n_release=len(real_train), n_audit=len(rows), seed=seeds.integer("audit-train"))
    progress(ProgressEvent("audit:empirical_privacy", 0, None, message="training the audit run"))
    run = trainer(rows, metadata, cfg, condition_column=condition_column or metadata.target,
                          canaries=canaries if score == "white_box" else None,
                          noise_scale=_unsafe_noise_scale, progress=progress)
    train_s = time.perf_counter() - started
    if score == "white_box" and run.alignment is not None:
        scores = run.alignment
    elif score == "final_logit":
        scores = run.final_logit_scores(canaries, seed=seeds.integer("audit-references"))
    else:
        scores = black_box_scores(run, canaries, metadata, n_synthetic=len(real_train),
                                  seed=seeds.integer("audit-sample"), encode=encode)
    bound = one_run_audit_bound(scores, included, delta=cfg.target_delta, significance=significance,
                                k_values=k_values)
    claimed = run.epsilon
    method = getattr(run, "score_methods", {}).get(score)  # what a modality's score is, when it says
    del run, rows  # the audit's model and table go no further
    runtime = time.perf_counter() - started
    details: dict[str, Any] = {
        "method": "one-run audit, Steinke, Nasr and Jagielski 2023 (arXiv 2305.08846)",
        "score": score, "n_canaries": n_canaries, "n_included": int(included.sum()),
        "delta": cfg.target_delta, "significance": significance,
        "bonferroni_tries": len(bound.sweep), "best_k_pos": bound.k_pos, "best_k_neg": bound.k_neg,
        "sweep": bound.sweep, "audit_training_config": cfg.to_dict(),
        "train_seconds": train_s, "runtime_seconds": runtime, "discarded": DISCARDED,
        "interpretation": ("epsilon_lower_bound > epsilon_claimed: likely implementation fault"
                           if bound.epsilon_lb > claimed else "no evidence against the ε claim"),
    }
    if method:
        details["score_method"] = method
    if _unsafe_noise_scale != 1.0:
        details["unsafe_noise_scale"] = _unsafe_noise_scale
    return AuditResult(
        name="empirical_privacy",
        metrics={"epsilon_lower_bound": bound.epsilon_lb, "epsilon_claimed": claimed,
                 "audit_correct_guesses": float(bound.correct), "audit_guesses": float(bound.guesses)},
        details=details, runtime_s=runtime,
    )
