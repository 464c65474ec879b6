"""synthrelease: differentially private synthetic data with an audited, signed release gate."""

__version__ = "0.1.0"
