"""The user's path in the benchmarks: ``metadata infer``'s draft of a training split, accepted unedited."""
from __future__ import annotations


def drafted_metadata(train, name: str, target: str | None = None):
    """What ``synthrelease metadata infer [--target TARGET]`` drafts from ``train`` (bounds,
    categories, transforms, zero inflation, decimals and, without ``target``, a target by name),
    marked reviewed without edits — as a new user who accepts the draft would."""
    from synthrelease.metadata.infer import infer_metadata

    return infer_metadata(train, name=name, target=target).model_copy(update={"reviewed": True})
