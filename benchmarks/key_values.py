"""``KEY=VALUE`` command-line pairs (``--set``) as a dict: ints, floats and true/false parsed."""
from __future__ import annotations


def key_values(pairs: list[str]) -> dict:
    """``["n_steps=300", "kernel=values", "flag=true"]`` → ``{"n_steps": 300, "kernel": "values", "flag": True}``."""
    out: dict = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out
