"""Saving and loading a trained image-tile generator without pickle (``synthrelease-image-model/1``).

The file holds tensors (the tile generator's ``state_dict``, the DP label frequencies) and
one JSON string (the training settings, the dataset's public metadata, the privacy spent,
tile size and channels). :func:`synthrelease.modalities.model_files.load_model` reads it with
``torch.load(weights_only=True)`` and hands the payload here by its format tag. The
discriminator — the only network that saw private tiles — is never saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthrelease.errors import ModelFileError
from synthrelease.modalities.model_files import described_payload

IMAGE_MODEL_FORMAT = "synthrelease-image-model/1"
EVOLVED_MODEL_FORMAT = "synthrelease-image-pe-model/1"
"""A Sim-PE model: simulator parameters, noisy weights, classes (tensors) and one JSON string."""


def is_image_model(model: Any) -> bool:
    """True for the image modality's trained model (a tile generator or a Sim-PE population)."""
    from synthrelease.modalities.image.model import TileModel
    from synthrelease.modalities.image.private_evolution import EvolvedTiles

    return isinstance(getattr(model, "inner", None), (TileModel, EvolvedTiles))


def image_model_payload(model: Any) -> dict[str, Any]:
    """The tensors-and-JSON payload of an image model (see the module docstring).

    Raises:
        InternalError: the model was trained with the test-only reproducible private randomness.
    """
    from synthrelease import __version__
    from synthrelease.gan.model_io import tensor_payload
    from synthrelease.modalities.image.private_evolution import EvolvedTiles

    inner = model.inner
    if isinstance(inner, EvolvedTiles):
        return _evolved_payload(model)
    info: dict[str, Any] = {
        "format": IMAGE_MODEL_FORMAT,
        "tool_version": __version__,
        "config": inner.config.to_dict(),
        "metadata": model.metadata.to_yaml_dict(),
        "privacy": inner.privacy.to_dict(),
        "size": int(inner.size),
        "channels": int(inner.channels),
        "n_classes": int(inner.generator.n_classes),
    }
    return tensor_payload(IMAGE_MODEL_FORMAT, info, inner.generator.state_dict(), inner.condition_probs,
                          replayable=bool(getattr(inner, "reproducible_private_randomness", False)))


def image_model_from_payload(path: Path, payload: dict[str, Any]) -> Any:
    """The image model of a payload read with ``weights_only=True``; every shape checked.

    Raises:
        ModelFileError: one line naming ``path`` for anything inconsistent.
    """
    from synthrelease.gan.trainer import PrivacySpent
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.image.model import ImageTrainingConfig, TileGenerator, TileModel

    try:
        info, metadata = described_payload(payload, IMAGE_MODEL_FORMAT, "image")
        # files written before resize-convolution hold transposed-convolution weights
        config = ImageTrainingConfig(**{"upsampling": "transpose", **info["config"]})
        spec = metadata.columns[metadata.image_column]
        size, channels, n_classes = int(info["size"]), int(info["channels"]), int(info["n_classes"])
        if size not in (16, 32, 64) or channels not in (1, 3):
            raise ValueError(f"tile shape {size}×{size}×{channels} is not supported")
        if (int(spec.height or 0), int(spec.width or spec.height or 0), int(spec.channels or 0)) != (
                size, size, channels):
            raise ValueError("the tile shape does not match the metadata's image column")
        declared = len(metadata.columns[metadata.target].canonical_categories()) if metadata.target else 0
        if n_classes not in (0, declared):
            raise ValueError(f"{n_classes} label classes, the metadata's target declares {declared}")
        state = payload["generator"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("generator weights are not a state dict of tensors")
        with torch.random.fork_rng(devices=[]):  # building the network must not move the global RNG
            generator = TileGenerator(config.latent_dim, n_classes, size, channels, config.generator_width,
                                      config.upsampling)
        generator.load_state_dict(state, strict=True)
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ModelFileError(f"{path}: corrupt synthrelease image model: generator weights {bad[0]!r} hold NaN "
                                 "or infinite values (it would sample blank tiles)")
        generator.eval()
        probs = payload.get("condition_probs")
        cond_probs = None
        if n_classes:
            if not isinstance(probs, torch.Tensor) or tuple(probs.shape) != (n_classes,):
                raise ValueError("label frequencies do not match the label classes")
            cond_probs = np.asarray(probs.numpy(), dtype=np.float64)
            if not np.isfinite(cond_probs).all() or (cond_probs < 0).any() or not abs(cond_probs.sum() - 1) < 1e-6:
                raise ValueError("label frequencies are not a probability vector")
        elif probs is not None:
            raise ValueError("label frequencies in an unconditional model")
        spent = PrivacySpent.from_dict(info["privacy"])
        inner = TileModel(generator, config, spent, cond_probs, size, channels,
                          train_seconds=float(info.get("train_seconds", 0.0)))
    except ModelFileError:
        raise
    except Exception as e:  # any inconsistency means a corrupt or foreign file
        text = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: corrupt synthrelease image model ({type(e).__name__}: {text})") from None
    return ModalityModel(inner, metadata)


def _evolved_payload(model: Any) -> dict[str, Any]:
    """The payload of a Sim-PE model: its arrays as tensors, the rest as JSON."""
    from synthrelease import __version__
    from synthrelease.gan.model_io import tensor_payload
    from synthrelease.modalities.image.private_evolution import torch_payload

    inner = model.inner
    info = {"format": EVOLVED_MODEL_FORMAT, "tool_version": __version__, "config": inner.config.to_dict(),
            "metadata": model.metadata.to_yaml_dict(), "privacy": inner.privacy.to_dict(), "stain": inner.stain,
            "size": int(inner.size), "channels": int(inner.channels),
            "sample_variation": float(inner.sample_variation)}
    return tensor_payload(EVOLVED_MODEL_FORMAT, info, torch_payload(inner), inner.condition_probs,
                          replayable=bool(inner.reproducible_private_randomness))


def evolved_model_from_payload(path: Path, payload: dict[str, Any]) -> Any:
    """The Sim-PE model of a payload read with ``weights_only=True``; every shape and range checked.

    Raises:
        ModelFileError: one line naming ``path`` for anything inconsistent.
    """
    from synthrelease.gan.trainer import PrivacySpent
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.image import simulator
    from synthrelease.modalities.image.model import ImageTrainingConfig
    from synthrelease.modalities.image.private_evolution import EvolvedTiles

    try:
        info, metadata = described_payload(payload, EVOLVED_MODEL_FORMAT, "image")
        spec = metadata.columns[metadata.image_column]
        size, channels, stain = int(info["size"]), int(info["channels"]), str(info["stain"])
        if (spec.height, spec.channels, spec.stain) != (size, channels, stain):
            raise ValueError("the tile shape or stain does not match the metadata's image column")
        arrays = payload["generator"]
        parameters = np.asarray(arrays["parameters"].numpy(), dtype=np.float64)
        weights = np.asarray(arrays["weights"].numpy(), dtype=np.float64)
        classes = np.asarray(arrays["classes"].numpy(), dtype=np.int64)
        n = len(parameters)
        if parameters.ndim == 2 and parameters.shape[1] != simulator.N_PARAMETERS:
            raise ValueError(f"its population has {parameters.shape[1]} simulator parameters, this version's "
                             f"simulator takes {simulator.N_PARAMETERS} (a model of an older synthrelease: "
                             "evolve it again)")
        if parameters.shape != (n, simulator.N_PARAMETERS) or weights.shape != (n,) or classes.shape != (n,):
            raise ValueError("the population's arrays do not match")
        if not (np.isfinite(parameters).all() and (parameters >= 0).all() and (parameters <= 1).all()
                and np.isfinite(weights).all() and (weights >= 0).all()):
            raise ValueError("the population holds values outside their ranges")
        declared = len(metadata.columns[metadata.target].canonical_categories()) if metadata.target else 0
        probs = payload.get("condition_probs")
        cond = None if probs is None else np.asarray(probs.numpy(), dtype=np.float64)
        if (cond is None) != (declared == 0) or (cond is not None and (cond.shape != (declared,)
                                                                          or classes.max() >= declared)):
            raise ValueError("label frequencies do not match the metadata's target")
        inner = EvolvedTiles(parameters, weights, classes, cond, stain, size, channels,
                             float(info["sample_variation"]), ImageTrainingConfig(**info["config"]),
                             PrivacySpent.from_dict(info["privacy"]))
    except Exception as e:  # any inconsistency means a corrupt or foreign file
        text = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: corrupt synthrelease Sim-PE image model ({type(e).__name__}: {text})") from None
    return ModalityModel(inner, metadata)
