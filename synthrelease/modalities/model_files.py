"""Model files of every modality: written and read without pickle, dispatched on the format tag.

A model file is ``torch.save`` of a dict holding only tensors and JSON strings, read back
with ``torch.load(weights_only=True)``, which refuses arbitrary objects: loading an
untrusted model file cannot execute code. Each modality brings its payload functions; this
module imports none of them until a file names its format.
"""

from __future__ import annotations

import importlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from synthrelease import __version__
from synthrelease.errors import ModelFileError
from synthrelease.io.files import write_bytes_atomic

MODEL_READERS: dict[str, tuple[str, str]] = {
    "synthrelease-model/1": ("synthrelease.gan.model_io", "table_model_from_payload"),
    "synthrelease-image-model/1": ("synthrelease.modalities.image.model_io", "image_model_from_payload"),
    "synthrelease-image-pe-model/1": ("synthrelease.modalities.image.model_io", "evolved_model_from_payload"),
    "synthrelease-sequence-model/6": ("synthrelease.modalities.sequence.model_io", "sequence_model_from_payload"),
}
"""Format tag → (module, function(path, payload) -> model)."""


def described_payload(payload: dict[str, Any], fmt: str, modality: str) -> tuple[dict[str, Any], Any]:
    """A payload's JSON description and its metadata, checked against the format tag and the
    metadata's modality (shared by the modalities' readers).

    Raises:
        ValueError: not this format's description, or metadata of another modality.
    """
    import json

    from synthrelease.metadata.schema import Metadata

    info = json.loads(payload["info_json"])
    if not isinstance(info, dict) or info.get("format") != fmt:
        raise ValueError("the model description does not match its format tag")
    metadata = Metadata.model_validate(info["metadata"])
    if metadata.modality != modality:
        raise ValueError(f"its metadata does not declare {'an' if modality == 'image' else 'a'} {modality} column")
    return info, metadata


def _payload_of(model: Any) -> dict[str, Any]:
    from synthrelease.gan.trainer import TrainedModel

    if isinstance(model, TrainedModel):  # tables: the DP-GAN over encoded rows
        from synthrelease.gan.model_io import table_model_payload

        return table_model_payload(model)
    image_io = importlib.import_module("synthrelease.modalities.image.model_io")
    if image_io.is_image_model(model):
        return image_io.image_model_payload(model)
    sequence_io = importlib.import_module("synthrelease.modalities.sequence.model_io")
    if sequence_io.is_sequence_model(model):
        return sequence_io.sequence_model_payload(model)
    raise TypeError(f"no model file format for a {type(model).__name__}")


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a trained model (generator, encoder or tile spec, privacy record) to ``path`` atomically.

    Raises:
        InternalError: the model was trained with the test-only reproducible randomness.
    """
    buf = io.BytesIO()
    torch.save(_payload_of(model), buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model file written by :func:`save_model`, refusing anything but tensors and JSON.

    A table model comes back as a :class:`synthrelease.gan.trainer.TrainedModel`, an image or
    sequence model as its modality's model (generator + metadata). A file of another format
    version (an older or newer synthrelease) is refused in one line.

    Raises:
        ModelFileError: missing file, not a synthrelease model, or corrupt content.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: model file not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refused, truncated zip, not a torch file
        raise ModelFileError(f"{p}: not a readable synthrelease model ({type(e).__name__})") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(fmt, str) and fmt.startswith("synthrelease-") and fmt not in MODEL_READERS:
        raise ModelFileError(f"{p}: a model file of format {fmt[:80]!r}, which this synthrelease ({__version__}) does "
                             f"not read (it reads {', '.join(MODEL_READERS)}): train the model again with it")
    if fmt not in MODEL_READERS:
        raise ModelFileError(f"{p}: not a synthrelease model file (format {' or '.join(MODEL_READERS)} expected)")
    module, function = MODEL_READERS[str(fmt)]
    return getattr(importlib.import_module(module), function)(p, payload)
