"""synthrelease: differentially private synthetic data with an audited, signed release gate.

The Python API (loaded on first use, so ``import synthrelease`` stays light)::

    from synthrelease import release, GateRefused
    outcome = release(df, metadata="m.yaml", policy="p.yaml", epsilon=1.0, out_dir="bundle",
                      signing_key="k.pem")
"""

from typing import Any

__version__ = "0.1.0"

_API = {
    "release": ("synthrelease.api", "release"),
    "preflight_release": ("synthrelease.api", "preflight_release"),
    "train_model": ("synthrelease.api", "train_model"),
    "ReleaseOutcome": ("synthrelease.api", "ReleaseOutcome"),
    "GateRefused": ("synthrelease.errors", "GateRefused"),
    "SynthreleaseError": ("synthrelease.errors", "SynthreleaseError"),
    "generate_keypair": ("synthrelease.bundle.signing", "generate_keypair"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'synthrelease' has no attribute {name!r}")
