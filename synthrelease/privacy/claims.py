"""The public wording of the privacy claim: what the guarantee covers, where the randomness came
from, and ε rounded for display (always UP: a reported ε is never smaller than the one spent)."""

from __future__ import annotations

import math

PUBLIC_SEED_NOTE = ("every DP mechanism (noise of all releases and of DP-SGD, Poisson masks) and the "
                    "train/holdout coins used fresh operating-system entropy, never stored; the public seed "
                    "fixes only public randomness (initialisation, latent noise, audit models)")

GUARANTEE_COVERS = ("the synthetic rows, the generator they came from, every figure in this manifest and "
                    "release card, and the verdict itself (whether this bundle exists): one (ε, δ)-DP "
                    "computation on the private table, add/remove one row")


def ceil_decimals(value: float, decimals: int) -> float:
    """``value`` rounded UP at ``decimals`` decimals (a reported ε is never rounded down)."""
    factor = 10.0 ** decimals
    return math.ceil(value * factor - 1e-9) / factor
