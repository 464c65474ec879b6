"""The DP image GAN: accounting over every mechanism, the tile mean embedding's sensitivity,
user-level (per-person) clipping and fresh DP randomness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import GradSampleModule

from synthrelease.errors import InternalError, PrivacyParameterError
from synthrelease.modalities.image.embedding import TileFeatureMap, TileMeanEmbedding
from synthrelease.modalities.image.model import (
    ImageTrainingConfig,
    TileDiscriminator,
    _per_unit_grad_samples,
    _unit_index,
    sample_tiles,
    train_tile_gan,
)


def _tiles(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_feature_map_has_norm_at_most_one_and_public_parameters() -> None:
    fmap = TileFeatureMap(16, 3, 64, seed=3)
    x = torch.rand(50, 3, 16, 16) * 2 - 1
    norms = fmap(x).norm(dim=1)
    assert float(norms.max()) <= 1.0 + 1e-5
    again = TileFeatureMap(16, 3, 64, seed=3)
    assert torch.equal(fmap.freqs["colour"], again.freqs["colour"])  # a function of the public seed only


def test_one_unit_moves_the_embedding_sums_by_at_most_one() -> None:
    """Add/remove probe: the noiseless sums with and without one person's m tiles (weight 1/m)."""
    fmap = TileFeatureMap(16, 3, 64, seed=1)
    x = torch.rand(30, 3, 16, 16) * 2 - 1
    classes = torch.tensor([i % 2 for i in range(30)])
    m = 3
    full = TileMeanEmbedding.measure(x, classes, torch.full((30,), 1 / m), 2, feature_map=fmap,
                                     noise_multiplier=0.0, noise_generator=torch.Generator())
    without = TileMeanEmbedding.measure(x[3:], classes[3:], torch.full((27,), 1 / m), 2, feature_map=fmap,
                                        noise_multiplier=0.0, noise_generator=torch.Generator())
    assert float((full.sums - without.sums).norm()) <= 1.0 + 1e-5
    with pytest.raises(ValueError):
        TileMeanEmbedding.measure(x, classes, torch.full((30,), 2.0), 2, feature_map=fmap, noise_multiplier=0.0,
                                  noise_generator=torch.Generator())


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_per_unit_gradients_are_summed_before_clipping() -> None:
    torch.manual_seed(0)
    disc = GradSampleModule(TileDiscriminator(0, 16, 3, width=8))
    rows = torch.rand(5, 3 * 16 * 16) * 2 - 1
    disc(rows).sum().backward()
    per_tile = {name: p.grad_sample.clone() for name, p in disc.named_parameters()}
    owner = torch.tensor([0, 0, 1])  # tiles 0, 1 of unit 0; tile 2 of unit 1; rows 3, 4 are fake
    _per_unit_grad_samples(disc, owner, 2, 3)
    for name, p in disc.named_parameters():
        gs = p.grad_sample
        assert gs.shape[0] == 4
        assert torch.allclose(gs[0], per_tile[name][0] + per_tile[name][1], atol=1e-6)
        assert torch.allclose(gs[1], per_tile[name][2])
        assert torch.allclose(gs[2:], per_tile[name][3:])


def test_unit_index_pads_and_enforces_the_cap() -> None:
    table, m = _unit_index(5, np.array(["a", "b", "a", "c", "b"]), 2)
    assert m == 2 and table.shape == (3, 2)
    assert sorted(table[0].tolist()) == [0, 2] and table[2].tolist() == [3, -1]
    with pytest.raises(InternalError):
        _unit_index(3, np.array(["a", "a", "a"]), 2)
    table, m = _unit_index(4, None, 1)
    assert m == 1 and table[:, 0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("units", [None, np.repeat(np.arange(20), 2)])
def test_training_spends_at_most_the_target_over_every_mechanism(units: np.ndarray | None) -> None:
    tiles = _tiles(40)
    labels = np.arange(40) % 2
    cfg = ImageTrainingConfig(target_epsilon=2.0, target_delta=1e-3, n_steps=4, batch_size=8,
                              embedding_features=32, generator_width=16, discriminator_width=8)
    model = train_tile_gan(tiles, labels, 2, cfg, units=units, max_tiles_per_unit=1 if units is None else 2)
    labels_seen = [e.label for e in model.privacy.entries]
    assert any(lab.startswith("tile mean embeddings") for lab in labels_seen)
    assert any(lab.startswith("condition histogram") for lab in labels_seen)
    assert sum(e.steps for e in model.privacy.entries if e.label.startswith("discriminator")) == 4
    assert 1.9 < model.privacy.epsilon <= 2.0
    out, idx = sample_tiles(model, 10, seed=0)
    assert out.shape == (10, 16, 16, 3) and out.dtype == np.uint8 and idx is not None


def test_embedding_noise_is_fresh_entropy_not_the_seed() -> None:
    tiles = _tiles(20)
    cfg = ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-3, n_steps=1, batch_size=4,
                              embedding_features=32, generator_width=16, discriminator_width=8, seed=5)
    a = train_tile_gan(tiles, None, 0, cfg)
    b = train_tile_gan(tiles, None, 0, cfg)
    # same public seed, same data: the released generators differ because the DP noise differs
    wa = next(iter(a.generator.state_dict().values()))
    wb = next(iter(b.generator.state_dict().values()))
    assert not torch.equal(wa, wb)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(PrivacyParameterError):
        ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-5, condition_epsilon_share=0.3,
                            embedding_epsilon_share=0.7)
    with pytest.raises(PrivacyParameterError):
        train_tile_gan(_tiles(4), None, 0, ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-5, n_steps=1),
                       units=np.array([0, 0, 0, 0]), max_tiles_per_unit=4)


def test_split_by_person_keeps_each_person_on_one_side() -> None:
    import pandas as pd

    from synthrelease.pipeline.stages import split
    from synthrelease.privacy.randomness import PrivateRandomness

    table = pd.DataFrame({"pid": np.repeat(np.arange(200), 3), "v": np.arange(600)})
    parts = split(table, holdout_fraction=0.3, randomness=PrivateRandomness(), unit_column="pid")
    assert not set(parts.train["pid"]) & set(parts.holdout["pid"])
    assert len(parts.train) % 3 == 0 and len(parts.holdout) % 3 == 0


def test_a_model_trained_with_test_only_randomness_is_never_saved(tmp_path) -> None:
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.image.model_io import image_model_payload
    from synthrelease.privacy.randomness import PrivateRandomness

    cfg = ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-3, n_steps=1, batch_size=4,
                              embedding_features=32, generator_width=16, discriminator_width=8)
    model = train_tile_gan(_tiles(20), None, 0, cfg, randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert model.reproducible_private_randomness
    from synthrelease.metadata.schema import Metadata

    meta = Metadata.model_validate({"version": 1, "reviewed": True, "columns": {
        "tile": {"type": "image", "height": 16, "width": 16, "channels": 3}}})
    with pytest.raises(InternalError, match="reproducible"):
        image_model_payload(ModalityModel(model, meta))


def test_public_pretraining_on_the_simulator_costs_no_epsilon():
    """Issue 28: pre-training on simulated tiles reads no private tile: the same accountant entries."""
    from synthrelease.modalities.image.model import ImageTrainingConfig, train_tile_gan
    from synthrelease.privacy.randomness import PrivateRandomness

    tiles = np.random.default_rng(0).integers(0, 256, (60, 16, 16, 3), dtype=np.uint8)
    runs = []
    for steps in (0, 20):
        cfg = ImageTrainingConfig(target_epsilon=5.0, target_delta=1e-4, n_steps=3, batch_size=16,
                                  pretrain_stain="he" if steps else "", pretrain_steps=steps)
        runs.append(train_tile_gan(tiles, None, 0, cfg, randomness=PrivateRandomness.unsafe_reproducible_for_tests(0)))
    plain, pretrained = runs
    assert [e.as_history() for e in plain.privacy.entries] == [e.as_history() for e in pretrained.privacy.entries]
    assert plain.privacy.epsilon == pretrained.privacy.epsilon
    first = next(iter(plain.generator.state_dict()))
    assert not torch.equal(plain.generator.state_dict()[first], pretrained.generator.state_dict()[first])


def test_pretraining_needs_a_stain():
    from synthrelease.errors import PrivacyParameterError
    from synthrelease.modalities.image.model import ImageTrainingConfig

    with pytest.raises(PrivacyParameterError, match="pretrain_stain"):
        ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-5, pretrain_steps=10)


def _nyquist_share(generator: torch.nn.Module, latent: int = 64) -> float:
    """Share of the mean tile's (over 256 latents) variance in its 2 × 2 phase pattern: the
    checkerboard a generator prints whatever its input."""
    with torch.no_grad():
        mean = generator(torch.randn(256, latent, generator=torch.Generator().manual_seed(1)), None).mean(0)
    centred = mean - mean.mean(dim=(1, 2), keepdim=True)
    phases = centred.unfold(1, 2, 2).unfold(2, 2, 2).mean(dim=(1, 2))  # [C, 2, 2]: the periodic part
    return float((phases**2).mean() / (centred**2).mean())


def test_the_generator_upsamples_by_resize_convolution_without_a_checkerboard():
    """Issue 28: nearest resize + 3 × 3 convolution (Odena et al. 2016) replaces the 4 × 4 stride-2
    transposed convolution, whose uneven overlap prints a 2 × 2 pattern on every tile."""
    from synthrelease.modalities.image.model import TileGenerator

    for size in (16, 32, 64):
        gen = TileGenerator(64, 0, size, 3, 16)
        assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in gen.modules())
        assert gen(torch.randn(2, 64), None).shape == (2, 3, size, size)
    shares = {}
    for upsampling in ("resize_conv", "transpose"):
        torch.manual_seed(0)
        shares[upsampling] = _nyquist_share(TileGenerator(64, 0, 32, 3, 32, upsampling).eval())
    assert shares["resize_conv"] < 0.5 * shares["transpose"], shares
    with pytest.raises(ValueError, match="upsampling"):
        TileGenerator(64, 0, 32, 3, 16, "bilinear-ish")


def test_a_model_file_written_with_transposed_convolutions_still_loads(tmp_path) -> None:
    """Model files from before resize-convolution have no ``upsampling`` setting: they load as
    transposed-convolution generators and sample as before."""
    import json

    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.image.model import sample_tiles
    from synthrelease.modalities.image.model_io import image_model_from_payload, image_model_payload

    cfg = ImageTrainingConfig(target_epsilon=1.0, target_delta=1e-3, n_steps=1, batch_size=4, embedding_features=32,
                              generator_width=16, discriminator_width=8, upsampling="transpose")
    model = train_tile_gan(_tiles(20), None, 0, cfg)
    meta = Metadata.model_validate({"version": 1, "reviewed": True, "columns": {
        "tile": {"type": "image", "height": 16, "width": 16, "channels": 3}}})
    payload = image_model_payload(ModalityModel(model, meta))
    info = json.loads(payload["info_json"])
    del info["config"]["upsampling"]  # as an older version wrote it
    payload["info_json"] = json.dumps(info)
    loaded = image_model_from_payload(tmp_path / "old.pt", payload).inner
    assert loaded.config.upsampling == "transpose"
    np.testing.assert_array_equal(sample_tiles(loaded, 8, seed=2)[0], sample_tiles(model, 8, seed=2)[0])
