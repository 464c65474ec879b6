"""Reading metadata files. Errors name the file and the field path."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from synthrelease.errors import MetadataError
from synthrelease.io.files import read_yaml
from synthrelease.metadata.schema import Metadata


def format_validation_error(path: str | os.PathLike[str], err: ValidationError, what: str) -> str:
    """One line naming the file, the field path and the first problem (+ a count of the rest)."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"] if p not in ("function-after",)) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{path}: {what} field '{loc}': {msg}{more}"


def load_metadata(path: str | os.PathLike[str]) -> Metadata:
    """Load and validate a metadata YAML file.

    Raises:
        InputFileError: the file is missing or not YAML.
        MetadataError: the content does not follow the schema.
    """
    raw = read_yaml(path, "metadata")
    if not isinstance(raw, dict):
        raise MetadataError(f"{path}: metadata file must be a mapping with a 'columns' key")
    try:
        return Metadata.model_validate(raw)
    except ValidationError as e:
        raise MetadataError(format_validation_error(path, e, "metadata")) from None


def require_reviewed(metadata: Metadata, path: str | os.PathLike[str] | None) -> None:
    """Refuse metadata that a steward has not marked ``reviewed: true``.

    Raises:
        MetadataError: ``reviewed`` is false.
    """
    if not metadata.reviewed:
        where = Path(path) if path is not None else "metadata"
        raise MetadataError(
            f"{where}: metadata is not reviewed: check that every min/max and category list "
            "is public knowledge (not read off the private rows), then set 'reviewed: true'"
        )
