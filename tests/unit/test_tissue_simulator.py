"""The procedural tissue-tile simulator (a public prior): shapes, determinism, smoothness, colour, validation."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from synthrelease.modalities.image import simulator
from synthrelease.modalities.image.simulator import (
    N_PARAMETERS,
    PARAMETER_NAMES,
    STAIN_FAMILIES,
    perturb_parameters,
    random_parameters,
    render_tiles,
)


def _params(n: int = 1, **values: float) -> np.ndarray:
    """``n`` identical rows, every parameter 0.5 unless given."""
    row = np.full(N_PARAMETERS, 0.5)
    for name, value in values.items():
        row[PARAMETER_NAMES.index(name)] = value
    return np.tile(row, (n, 1))


def _luma(tiles: np.ndarray) -> np.ndarray:
    return tiles.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_the_parameter_space_is_named_and_sized():
    assert N_PARAMETERS == len(PARAMETER_NAMES) and 12 <= N_PARAMETERS <= 24
    assert len(set(PARAMETER_NAMES)) == N_PARAMETERS
    assert {"nuclei_density", "ihc_positivity", "blur", "noise", "brightness"} <= set(PARAMETER_NAMES)
    assert STAIN_FAMILIES == ("he", "ihc_dab", "fluorescence")


@pytest.mark.parametrize("stain", STAIN_FAMILIES)
@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_dtype(stain, size, channels):
    params = random_parameters(3, np.random.default_rng(size))
    tiles = render_tiles(params, np.array([0, 1, 2]), size=size, stain=stain, channels=channels)
    assert tiles.shape == (3, size, size, channels) and tiles.dtype == np.uint8
    assert tiles.std() > 0  # not a blank image


def test_no_tiles_gives_an_empty_stack():
    tiles = render_tiles(np.empty((0, N_PARAMETERS)), np.empty(0, dtype=np.int64), size=32, stain="he")
    assert tiles.shape == (0, 32, 32, 3) and tiles.dtype == np.uint8


def test_grey_tiles_are_the_luma_of_the_rgb_tiles():
    params, seeds = random_parameters(4, np.random.default_rng(3)), np.arange(4)
    rgb = render_tiles(params, seeds, size=32, stain="he")
    grey = render_tiles(params, seeds, size=32, stain="he", channels=1)
    assert np.abs(grey[..., 0].astype(float) - _luma(rgb)).max() <= 1.0


@pytest.mark.parametrize("stain", STAIN_FAMILIES)
def test_equal_params_and_seed_give_the_same_tile_whatever_the_batch(stain):
    params = random_parameters(12, np.random.default_rng(5))
    seeds = np.arange(100, 112)
    batch = render_tiles(params, seeds, size=32, stain=stain)
    np.testing.assert_array_equal(batch, render_tiles(params, seeds, size=32, stain=stain))
    for i in (0, 7):  # alone, and in a reordered batch
        np.testing.assert_array_equal(render_tiles(params[i:i + 1], seeds[i:i + 1], size=32, stain=stain)[0],
                                      batch[i])
    np.testing.assert_array_equal(render_tiles(params[::-1], seeds[::-1], size=32, stain=stain), batch[::-1])


@pytest.mark.parametrize("stain", STAIN_FAMILIES)
def test_a_small_parameter_change_keeps_the_layout_and_a_new_seed_changes_it(stain):
    params = random_parameters(16, np.random.default_rng(9))
    seeds = np.arange(16)
    base = render_tiles(params, seeds, size=32, stain=stain).astype(float)
    nudged = render_tiles(perturb_parameters(params, 0.01, np.random.default_rng(1)), seeds, size=32, stain=stain)
    reseeded = render_tiles(params, seeds + 1000, size=32, stain=stain)
    small = np.abs(base - nudged).mean()
    large = np.abs(base - reseeded).mean()
    assert small < 4.0, small  # grey levels (of 255)
    assert large > 20.0, large
    assert large > 6 * small


def test_more_nuclei_give_more_dark_pixels():
    seeds = np.arange(16)
    sparse = render_tiles(_params(16, nuclei_density=0.05, lumen_fraction=0.0), seeds, size=32, stain="he")
    dense = render_tiles(_params(16, nuclei_density=0.95, lumen_fraction=0.0), seeds, size=32, stain="he")
    dark_sparse, dark_dense = ((_luma(t) < 110).mean() for t in (sparse, dense))
    assert dark_dense > dark_sparse + 0.1, (dark_sparse, dark_dense)


def test_more_lumen_gives_more_white_pixels():
    seeds = np.arange(16)
    solid = render_tiles(_params(16, lumen_fraction=0.0), seeds, size=32, stain="he")
    open_ = render_tiles(_params(16, lumen_fraction=1.0), seeds, size=32, stain="he")
    white_solid, white_open = ((_luma(t) > 215).mean() for t in (solid, open_))
    assert white_open > white_solid + 0.2, (white_solid, white_open)


def test_he_tiles_are_pink_purple_on_average():
    tiles = render_tiles(random_parameters(64, np.random.default_rng(11)), np.arange(64), size=32, stain="he")
    r, g, b = tiles.reshape(-1, 3).astype(float).mean(0)
    assert r > g + 20 and b > g + 20, (r, g, b)


def _brown_share(tiles: np.ndarray) -> float:
    r, g, b = np.moveaxis(tiles.astype(float), -1, 0)
    return float(((r > g) & (g > b) & (r - b > 30) & (r < 220)).mean())


def test_ihc_tiles_are_brown_where_cells_are_positive():
    seeds = np.arange(16)
    common = {"nuclei_density": 0.9, "lumen_fraction": 0.0}
    positive = render_tiles(_params(16, ihc_positivity=1.0, **common), seeds, size=32, stain="ihc_dab")
    negative = render_tiles(_params(16, ihc_positivity=0.0, **common), seeds, size=32, stain="ihc_dab")
    assert _brown_share(positive) > 0.05, _brown_share(positive)
    assert _brown_share(negative) < 0.005, _brown_share(negative)
    r, _, b = negative.reshape(-1, 3).astype(float).mean(0)
    assert b >= r - 2  # negative cells: blue haematoxylin counterstain, no brown


def test_fluorescence_is_bright_blue_nuclei_on_a_dark_background():
    seeds = np.arange(16)
    tiles = render_tiles(_params(16, nuclei_density=0.8, cytoplasm=0.0, ihc_positivity=0.0), seeds, size=32,
                         stain="fluorescence")
    he = render_tiles(_params(16, nuclei_density=0.8), seeds, size=32, stain="he")
    assert _luma(tiles).mean() < 90 and _luma(tiles).mean() < _luma(he).mean() - 60
    assert np.median(_luma(tiles)) < 60  # mostly dark
    r, _, b = np.moveaxis(tiles.astype(float), -1, 0)
    bright = b > 120
    assert bright.mean() > 0.05 and (b[bright] > r[bright] + 40).mean() > 0.9  # the bright pixels are blue


@pytest.mark.parametrize("params", [
    _params(2, nuclei_density=1.2),  # above 1
    _params(2, blur=-0.1),  # below 0
    np.full((2, N_PARAMETERS), np.nan),
])
def test_parameters_outside_the_unit_interval_are_refused(params):
    with pytest.raises(ValueError, match=r"params must lie in \[0, 1\]"):
        render_tiles(params, np.arange(2), size=32, stain="he")


@pytest.mark.parametrize("params", [np.full(N_PARAMETERS, 0.5), np.full((2, N_PARAMETERS + 1), 0.5),
                                    np.full((2, 3, N_PARAMETERS), 0.5)])
def test_parameters_of_the_wrong_shape_are_refused(params):
    with pytest.raises(ValueError, match=r"params must have shape \[n, "):
        render_tiles(params, np.arange(len(params)), size=32, stain="he")


def test_bad_stain_size_channels_and_seeds_are_refused():
    p = _params(2)
    with pytest.raises(ValueError, match=r"unknown stain 'masson'; expected one of he, ihc_dab, fluorescence"):
        render_tiles(p, np.arange(2), size=32, stain="masson")
    for size in (8, 65, 32.0):
        with pytest.raises(ValueError, match="size must be an integer from 16 to 64"):
            render_tiles(p, np.arange(2), size=size, stain="he")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        render_tiles(p, np.arange(2), size=32, stain="he", channels=4)
    for seeds in (np.arange(3), np.array([0.5, 1.5]), np.arange(4).reshape(2, 2)):
        with pytest.raises(ValueError, match="seeds must be a 1-D integer array of length 2"):
            render_tiles(p, seeds, size=32, stain="he")
    with pytest.raises(ValueError, match="non-negative"):
        render_tiles(p, np.array([0, -1]), size=32, stain="he")


def test_random_parameters_lie_in_the_unit_cube():
    params = random_parameters(500, np.random.default_rng(0))
    assert params.shape == (500, N_PARAMETERS) and params.dtype == np.float64
    assert params.min() >= 0.0 and params.max() <= 1.0 and params.std(0).min() > 0.2
    np.testing.assert_array_equal(params, random_parameters(500, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="non-negative integer"):
        random_parameters(-1, np.random.default_rng(0))


def test_perturbed_parameters_stay_in_the_unit_cube():
    params = random_parameters(200, np.random.default_rng(1))
    for scale in (0.0, 0.05, 0.5, 5.0):
        moved = perturb_parameters(params, scale, np.random.default_rng(2))
        assert moved.shape == params.shape and moved.min() >= 0.0 and moved.max() <= 1.0
    np.testing.assert_array_equal(perturb_parameters(params, 0.0, np.random.default_rng(2)), params)
    small = perturb_parameters(params, 0.01, np.random.default_rng(2))
    assert 0.004 < np.abs(small - params).mean() < 0.01
    with pytest.raises(ValueError, match="scale must be a finite number"):
        perturb_parameters(params, -0.1, np.random.default_rng(2))
    with pytest.raises(ValueError, match="params must have shape"):
        perturb_parameters(params[:, :3], 0.1, np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"params must lie in \[0, 1\]"):
        perturb_parameters(params + 1.0, 0.1, np.random.default_rng(2))


def test_the_module_depends_on_nothing_but_numpy_scipy_and_skimage():
    tree = ast.parse(Path(simulator.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "functools", "dataclasses", "numpy", "scipy", "skimage"}, roots
