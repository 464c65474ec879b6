"""Empirical privacy audit: canaries, one-run and many-run ε lower bounds (see ..empirical_privacy)."""
