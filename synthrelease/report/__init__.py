"""Human-readable reports: the steward's INTERNAL HTML report and the public release card.

Modules: :mod:`~synthrelease.report.plot_data` (bounded plot data computed on private rows:
INTERNAL), :mod:`~synthrelease.report.plots` (matplotlib figures as PNG),
:mod:`~synthrelease.report.explain` (one plain sentence and a good direction per clause,
metric and DP figure), :mod:`~synthrelease.report.internal` (the internal page's view
model), :mod:`~synthrelease.report.html` (Jinja2 rendering) and
:mod:`~synthrelease.report.card` (the public release card, DP figures only).
"""
