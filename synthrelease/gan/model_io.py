"""The table DP-GAN's model file (``synthrelease-model/1``): its content, without pickle.

A model file holds only tensors (the generator's ``state_dict``, the DP condition
frequencies) and one JSON string (encoder parameters, architecture, privacy spent, and
the training table's format: its kind and, for AnnData, which of the metadata's columns
were ``obs`` and which genes; files without it are read as before).
It is read with ``torch.load(weights_only=True)``, which refuses arbitrary objects,
so loading an untrusted model file cannot execute code. The discriminator — the only
network that saw private rows directly — is never saved. Files are written and read by
:mod:`synthrelease.modalities.model_files`, which dispatches on the format tag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthrelease import __version__
from synthrelease.errors import InternalError, ModelFileError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.models import Generator
from synthrelease.gan.trainer import PrivacySpent, TrainedModel
from synthrelease.io.formats import TableFormat
from synthrelease.transforms.encoders import TableEncoder

MODEL_FORMAT = "synthrelease-model/1"


def table_model_payload(model: TrainedModel) -> dict[str, Any]:
    """The file content of a table model: generator, encoder and privacy record, no pickle.

    The file holds no private randomness: DP noise came from fresh OS entropy that was
    never stored; ``config.seed`` fixes public streams only.

    Raises:
        InternalError: the model was trained with the test-only reproducible randomness.
    """
    info: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "tool_version": __version__,
        "encoder": model.encoder.parameters(),
        "config": model.config.to_dict(),
        "condition_column": model.condition_column,
        "privacy": model.privacy.to_dict(),
    }
    if model.table_format is not None:  # public: the format and the metadata's column names only
        info["table_format"] = model.table_format.to_dict()
    return tensor_payload(MODEL_FORMAT, info, model.generator.state_dict(), model.condition_probs,
                          replayable=model.reproducible_private_randomness)


def tensor_payload(fmt: str, info: dict[str, Any], generator_state: dict[str, Any], condition_probs: Any, *,
                   replayable: bool) -> dict[str, Any]:
    """A model file's content: the format tag, one JSON string, the generator's tensors, the DP
    condition frequencies (if any) — nothing ``torch.load(weights_only=True)`` would refuse.

    Raises:
        InternalError: ``replayable``: the model was trained with the test-only reproducible
            private randomness (its DP noise could be replayed), so it is never saved.
    """
    if replayable:
        raise InternalError("refusing to save a model trained with test-only reproducible private randomness "
                            "(its DP noise could be replayed)")
    payload: dict[str, Any] = {"format": fmt, "info_json": json.dumps(info), "generator": generator_state}
    if condition_probs is not None:
        payload["condition_probs"] = torch.as_tensor(np.asarray(condition_probs), dtype=torch.float64)
    return payload


def table_model_from_payload(p: Path, payload: dict[str, Any]) -> TrainedModel:
    """The :class:`TrainedModel` of a ``synthrelease-model/1`` file's content (read with
    ``torch.load(weights_only=True)`` by :func:`synthrelease.modalities.model_files.load_model`).

    Raises:
        ModelFileError: corrupt content (names the file).
    """
    try:
        info = json.loads(payload["info_json"])
        encoder = TableEncoder.from_parameters(info["encoder"])
        config = TrainingConfig(**info["config"])
        cond_col = info["condition_column"]
        cond_span = encoder.span(cond_col, "category") if cond_col else None
        generator = Generator(config.latent_dim, cond_span.width if cond_span else 0,
                              config.generator_hidden, encoder.spans, cond_span)
        generator.load_state_dict(payload["generator"], strict=True)
        bad = [k for k, v in payload["generator"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ModelFileError(f"{p}: corrupt synthrelease model: generator weights {bad[0]!r} hold NaN or "
                                 "infinite values (it would sample blank rows)")
        generator.eval()
        spent = PrivacySpent.from_dict(info["privacy"])
        table_format = TableFormat.from_dict(info["table_format"]) if info.get("table_format") else None
        probs = payload.get("condition_probs")
        cond_probs = None if probs is None else np.asarray(probs.numpy(), dtype=np.float64)
        if cond_span is not None and (cond_probs is None or cond_probs.shape != (cond_span.width,)):
            raise ValueError("condition frequencies do not match the condition column")
    except ModelFileError:
        raise
    except Exception as e:  # any inconsistency means a corrupt or foreign file
        raise ModelFileError(f"{p}: corrupt synthrelease model ({type(e).__name__}: {e})") from None
    return TrainedModel(generator=generator, encoder=encoder, config=config, privacy=spent,
                        condition_column=cond_col, condition_probs=cond_probs,
                        train_seconds=float(info.get("train_seconds", 0.0)), table_format=table_format)
