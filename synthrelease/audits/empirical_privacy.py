"""Empirical privacy audit: does the DP-GAN leak more than its ε claim allows?

Method: privacy auditing with one training run (Steinke, Nasr, Jagielski, NeurIPS 2023):
m canaries (:mod:`.empirical.canaries`, public metadata + seed only) join a base table
independently with probability ½; the project's DP-GAN is trained once on that table with
the release's configuration; each canary gets a membership score; correct guesses on the
top-/bottom-k become ε_lb at 95 % confidence (:mod:`.empirical.bounds`). A correct (ε, δ)-DP
implementation gives ε_lb ≤ ε_claimed except with probability 5 %; ε_lb > ε_claimed is a
likely implementation fault (the gate names it so). The classic many-run audit (Jagielski
et al. 2020) is :func:`run_many_run_audit` (small models only; it costs one training run
per trial).

What it reads, by caller:

* In a release (the policy's ``privacy.empirical_audit``) the base table is the released
  SYNTHETIC rows, never a private row: the audit, its ε_lb and the gate clause that reads it
  are post-processing of the DP release, exact and free, and the verdict stays covered by
  the release's ε.
* ``synthrelease audit-privacy`` runs it on the PRIVATE table the steward names: that run
  reads private rows, is NOT differentially private, and its results are INTERNAL ONLY.
  Its ε is not in the ledger: the run's outputs (model, discriminator, synthetic rows,
  scores) are discarded and nothing from it is released or feeds a released model.

Other modalities go through the same functions: a modality hands in its audit run
(``trainer``), canaries (``canary_maker``) and distance space (``encode``); sequences: random
sequences as canaries and the autoregressive model's calibrated letter log-likelihood as
the white-box score (:mod:`synthrelease.modalities.sequence.audit_runs`).

Power (measured; see benchmarks/results/empirical_audit.md): a one-run audit with m
canaries can never show more than about ε ≈ 5 (m = 1000), and the scores here (white box:
the canaries' clipped gradients against every step's privatized gradient; final
discriminator logit; black box: distance to synthetic rows) are far from tight on the
shipped GAN configuration, so a pass is weak evidence; a failure is strong evidence.
"""

from __future__ import annotations

from synthrelease.audits.empirical.many_run import run_many_run_audit
from synthrelease.audits.empirical.one_run import run_one_run_audit

__all__ = ["run_many_run_audit", "run_one_run_audit"]
