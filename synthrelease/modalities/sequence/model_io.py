"""The sequence model file (``synthrelease-sequence-model/6``): the autoregressive model, without pickle.

The file holds tensors — the language model's ``state_dict`` and the DP (label, length)
frequencies — and one JSON string: the training settings, the dataset's public metadata
(alphabet, length bounds, labels), the vocabulary and the privacy spent.
:func:`synthrelease.modalities.model_files.load_model` reads it with
``torch.load(weights_only=True)`` (no code can run) and hands the payload here by its format
tag. Everything in it is the output of the accounted DP training (network weights: DP-SGD;
frequencies: one Gaussian release) or public; no private row and no private randomness.

Bump :data:`SEQUENCE_MODEL_FORMAT` whenever the network, the vocabulary layout or the
payload changes: a file of another format is refused in one line (train again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthrelease.errors import ModelFileError
from synthrelease.modalities.model_files import described_payload

SEQUENCE_MODEL_FORMAT = "synthrelease-sequence-model/6"


def is_sequence_model(model: Any) -> bool:
    """True for the sequence modality's autoregressive model (a ``ModalityModel`` around it)."""
    from synthrelease.modalities.sequence.autoregressive import AutoregressiveModel

    return isinstance(getattr(model, "inner", None), AutoregressiveModel)


def sequence_model_payload(model: Any) -> dict[str, Any]:
    """The tensors-and-JSON payload of a sequence model (see the module docstring).

    Raises:
        InternalError: the model was trained with the test-only reproducible private randomness.
    """
    from synthrelease import __version__
    from synthrelease.gan.model_io import tensor_payload

    inner = model.inner
    vocab = inner.vocabulary
    info: dict[str, Any] = {
        "format": SEQUENCE_MODEL_FORMAT,
        "tool_version": __version__,
        "config": inner.config.to_dict(),
        "metadata": model.metadata.to_yaml_dict(),
        "privacy": inner.privacy.to_dict(),
        "vocabulary": {"letters": vocab.letters, "classes": list(vocab.classes), "max_length": vocab.max_length,
                       "min_length": vocab.min_length},
        "train_seconds": float(inner.train_seconds),
    }
    payload = tensor_payload(SEQUENCE_MODEL_FORMAT, info, inner.network.state_dict(), None,
                             replayable=bool(inner.reproducible_private_randomness))
    payload["label_length"] = torch.as_tensor(np.asarray(inner.label_length), dtype=torch.float64)
    return payload


def sequence_model_from_payload(path: Path, payload: dict[str, Any]) -> Any:
    """The sequence model of a payload read with ``weights_only=True``; every part checked against
    the metadata it carries.

    Raises:
        ModelFileError: one line naming ``path`` for anything inconsistent.
    """
    from synthrelease.modalities.base import ModalityModel

    try:
        info, metadata = described_payload(payload, SEQUENCE_MODEL_FORMAT, "sequence")
        inner = _autoregressive(info, metadata, payload)
    except Exception as e:  # any inconsistency means a corrupt or foreign file
        text = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: corrupt synthrelease sequence model ({type(e).__name__}: {text})") from None
    return ModalityModel(inner, metadata)


def _autoregressive(info: dict[str, Any], metadata: Any, payload: dict[str, Any]) -> Any:
    """The :class:`AutoregressiveModel` of a checked description and its tensors.

    Raises:
        ValueError, KeyError, TypeError, RuntimeError: an inconsistent part (the caller names the file).
    """
    from synthrelease.gan.trainer import PrivacySpent
    from synthrelease.modalities.sequence.autoregressive import AutoregressiveModel, CausalConvLM
    from synthrelease.modalities.sequence.config import LEGACY_PRIOR_LAGS, SequenceTrainingConfig
    from synthrelease.modalities.sequence.modality import vocabulary_for

    config = SequenceTrainingConfig(**{"ar_prior_lags": LEGACY_PRIOR_LAGS, **info["config"]})
    vocab = vocabulary_for(metadata)
    stored = info["vocabulary"]
    if (stored["letters"], tuple(stored["classes"]), stored["max_length"], stored["min_length"]) != (
            vocab.letters, vocab.classes, vocab.max_length, vocab.min_length):
        raise ValueError("the vocabulary does not match the metadata's alphabet, lengths and labels")
    state = payload["generator"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("network weights are not a state dict of tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"network weights {bad[0]!r} hold NaN or infinite values")
    with torch.random.fork_rng(devices=[]):  # building the network must not move the global RNG
        network = CausalConvLM(vocab, config.ar_hidden, config.ar_lags, config.ar_prior_budget_share > 0,
                               config.ar_prior_order, config.ar_position_budget_share > 0,
                               config.ar_lag_budget_share > 0, config.ar_prior_lags)
    network.load_state_dict(state, strict=True)
    network.eval()
    freq = payload["label_length"]
    shape = (max(1, len(vocab.classes)), vocab.max_length - vocab.min_length + 1)
    if not isinstance(freq, torch.Tensor) or tuple(freq.shape) != shape:
        raise ValueError("the (label, length) frequencies do not match the labels and length bounds")
    label_length = np.asarray(freq.numpy(), dtype=np.float64)
    if not np.isfinite(label_length).all() or (label_length < 0).any() or not abs(label_length.sum() - 1) < 1e-6:
        raise ValueError("the (label, length) frequencies are not a probability table")
    return AutoregressiveModel(network, vocab, config, PrivacySpent.from_dict(info["privacy"]),
                               train_seconds=float(info.get("train_seconds", 0.0)), label_length=label_length)
