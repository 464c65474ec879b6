"""The public-bounded feature view of image tiles: bounds hold on extreme tiles, rows are deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from synthrelease.metadata.schema import ColumnSpec
from synthrelease.modalities.image.features import feature_view, view_columns


def _extreme_tiles(channels: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(7)
    tiles = [
        rng.integers(0, 256, (size, size, channels)),  # noise
        np.zeros((size, size, channels)),  # black
        np.full((size, size, channels), 255),  # white (saturated)
        np.full((size, size, channels), 128),  # flat grey
        (np.indices((size, size)).sum(0) % 2)[..., None].repeat(channels, -1) * 255,  # pixel checkerboard
        ((np.indices((size, size)) // 4).sum(0) % 2)[..., None].repeat(channels, -1) * 255,  # 4-px checkerboard
        np.tile(np.linspace(0, 255, size)[None, :, None], (size, 1, channels)),  # ramp
        rng.choice([0, 255], (size, size, channels)),  # salt and pepper
    ]
    if channels == 3:
        for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255)):
            tiles.append(np.broadcast_to(np.array(colour), (size, size, 3)))
        half = np.zeros((size, size, 3))
        half[:, : size // 2] = (255, 0, 0)
        half[:, size // 2:] = (0, 255, 255)
        tiles.append(half)
    return np.stack(tiles).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_values_stay_within_the_declared_public_bounds(channels):
    spec = view_columns(channels)
    assert 14 <= len(spec) <= 32
    for name, column in spec.items():
        ColumnSpec.model_validate(column)  # the project's metadata column format
        assert column["type"] == "float" and column["min"] < column["max"] and column["description"], name
    images = _extreme_tiles(channels)
    frame = feature_view(images)
    assert list(frame.columns) == list(spec) and len(frame) == len(images)
    assert np.isfinite(frame.to_numpy()).all()
    for name, column in spec.items():
        assert frame[name].between(column["min"], column["max"]).all(), name
    # the extreme tiles really reach the ends of the scales (the bounds are not vacuous)
    grey = images[1:3]
    flat = feature_view(grey)
    first = "grey" if channels == 1 else "r"
    assert flat[f"{first}_mean"].tolist() == [0.0, 1.0]
    assert flat["white_share"].tolist() == [0.0, 1.0] and flat["black_share"].tolist() == [1.0, 0.0]
    assert (flat["glcm_correlation"] == 0).all() and (flat["hf_energy_share"] == 0).all()
    checker = feature_view(images[4:5])
    assert checker[f"{first}_std"].iloc[0] == pytest.approx(0.5)
    assert checker["hf_energy_share"].iloc[0] == pytest.approx(1.0)


def test_rows_depend_on_their_tile_alone_and_are_deterministic():
    images = _extreme_tiles(3)
    whole = feature_view(images)
    again = feature_view(images.copy())
    assert whole.equals(again)
    alone = feature_view(images[3:4]).reset_index(drop=True)
    np.testing.assert_array_equal(alone.to_numpy(), whole.iloc[3:4].to_numpy())
    shuffled = feature_view(images[::-1])
    np.testing.assert_array_equal(shuffled.to_numpy()[::-1], whole.to_numpy())


def test_colour_features_tell_red_from_blue():
    red = np.broadcast_to(np.array([200, 30, 30], np.uint8), (2, 8, 8, 3))
    blue = np.broadcast_to(np.array([30, 30, 200], np.uint8), (2, 8, 8, 3))
    frame = feature_view(np.concatenate([red, blue]))
    assert (frame["r_mean"].iloc[:2] > frame["b_mean"].iloc[:2]).all()
    assert (frame["hue_mean"].iloc[2:] > 0.6).all() and (frame["hue_mean"].iloc[:2] < 0.05).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        feature_view(np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError):
        view_columns(4)
    assert feature_view(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, len(view_columns(3)))


def test_the_nuclei_features_see_morphology_the_colour_statistics_miss():
    """Issue 28: haematoxylin density, nuclear share and nuclei per pixel (rgb2hed, public level)."""
    from synthrelease.modalities.image import simulator

    params = np.full((2, simulator.N_PARAMETERS), 0.5)
    params[:, simulator.PARAMETER_NAMES.index("nuclei_density")] = [0.15, 0.9]
    params[:, simulator.PARAMETER_NAMES.index("lumen_fraction")] = 0.0
    tiles = simulator.render_tiles(params, np.array([7, 7]), size=32, stain="he")
    view = feature_view(tiles)
    assert view.loc[1, "nuclear_share"] > view.loc[0, "nuclear_share"]
    assert view.loc[1, "nuclei_density"] > view.loc[0, "nuclei_density"] > 0
    assert view.loc[1, "haematoxylin_mean"] > view.loc[0, "haematoxylin_mean"]
    blank = feature_view(np.full((1, 16, 16, 3), 255, np.uint8))
    assert blank.loc[0, ["nuclear_share", "nuclei_density"]].tolist() == [0.0, 0.0]
