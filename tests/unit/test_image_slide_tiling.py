"""A whole-slide TIFF/SVS read directly as image data, tiled with the metadata's PUBLIC ``tiling``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from synthrelease.errors import InputFileError
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.image.modality import read_tiles, tiles_of

SVS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "he_skin_region.svs"
TISSUE = (180, 100, 150)


def _meta(size: int = 16, channels: int = 3, tiling: dict | None = None, **extra) -> dict:
    image = {"type": "image", "height": size, "width": size, "channels": channels}
    if tiling is not None:
        image["tiling"] = tiling
    return {"version": 1, "name": "slide", "reviewed": True,
            "columns": {"tile_id": {"type": "identifier"}, "tile": image}, **extra}


def _slide(path: Path) -> Path:
    """A 96 × 128 RGB slide on white: 6 full tissue tiles of 32 px (rows 0–1, cols 0–2), one
    quarter-tissue tile (row 2, col 0); tissue pixels alternate ±20 in a 2 × 2 checkerboard."""
    import tifffile

    page = np.full((96, 128, 3), 255, np.uint8)
    tissue = np.array(TISSUE, np.int16) + np.where((np.add.outer(np.arange(64), np.arange(96)) % 2)[..., None],
                                                    20, -20)
    page[:64, :96] = tissue.astype(np.uint8)
    page[64:80, :16] = TISSUE
    tifffile.imwrite(path, page, photometric="rgb")
    return path


def test_schema_accepts_tiling_with_public_defaults():
    spec = Metadata.model_validate(_meta(tiling={"tile_size": 64})).columns["tile"]
    t = spec.tiling
    assert (t.tile_size, t.stride, t.tissue_threshold, t.min_tissue_share, t.level, t.max_tiles) == \
        (64, 64, 220, 0.5, 0, None)
    full = Metadata.model_validate(_meta(size=32, tiling={"tile_size": 64, "stride": 32, "tissue_threshold": 200,
                                                          "min_tissue_share": 0.8, "level": 1, "max_tiles": 10}))
    assert full.columns["tile"].tiling.stride == 32
    back = Metadata.model_validate(full.to_yaml_dict())  # written back and read again unchanged
    assert back.columns["tile"].tiling == full.columns["tile"].tiling


@pytest.mark.parametrize("tiling, message", [
    ({"tile_size": 48}, "multiple of the tile height"),
    ({"tile_size": 8}, "multiple of the tile height"),
    ({"tile_size": 64, "tissue_threshold": 300}, "tissue_threshold"),
    ({"tile_size": 64, "min_tissue_share": 1.5}, "min_tissue_share"),
    ({"tile_size": 64, "level": -1}, "level"),
    ({"tile_size": 64, "max_tiles": 0}, "max_tiles"),
    ({"tile_size": 64, "stride": 0}, "stride"),
    ({"tile_size": 64, "overlap": 4}, "overlap"),
    ({"stride": 64}, "tile_size"),
])
def test_schema_rejects_bad_tiling(tiling, message):
    with pytest.raises(ValidationError, match=message):
        Metadata.model_validate(_meta(size=32, tiling=tiling))


def test_tiling_applies_to_image_columns_only():
    doc = {"version": 1, "columns": {"x": {"type": "integer", "min": 0, "max": 9, "tiling": {"tile_size": 64}}}}
    with pytest.raises(ValidationError, match="tiling and stain apply to image columns, not integer"):
        Metadata.model_validate(doc)


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".svs"])
def test_read_tiles_cuts_a_synthetic_slide(tmp_path, suffix):
    path = _slide(tmp_path / f"slide{suffix}")
    meta = Metadata.model_validate(_meta(tiling={"tile_size": 32}))
    table = read_tiles(path, meta)
    assert list(table.columns) == ["tile", "tile_id"] and len(table) == 6
    assert table["tile_id"].tolist() == [f"x{c}_y{r}" for r in (0, 1) for c in (0, 1, 2)]
    tiles = tiles_of(table, meta)
    assert tiles.shape == (6, 16, 16, 3) and tiles.dtype == np.uint8
    assert np.all(tiles == np.array(TISSUE, np.uint8))  # the ±20 checkerboard averages out 2 × 2


def test_read_tiles_grey_max_tiles_and_stride(tmp_path):
    path = _slide(tmp_path / "slide.tif")
    meta = Metadata.model_validate(_meta(channels=1, tiling={"tile_size": 32, "max_tiles": 4}))
    tiles = tiles_of(read_tiles(path, meta), meta)
    luma = round(0.299 * TISSUE[0] + 0.587 * TISSUE[1] + 0.114 * TISSUE[2])
    assert tiles.shape == (4, 16, 16, 1) and np.all(tiles == luma)
    # a lower share keeps the quarter-tissue tile too; an overlapping stride gives 3 × 5 all-tissue tiles
    assert len(read_tiles(path, Metadata.model_validate(_meta(tiling={"tile_size": 32,
                                                                       "min_tissue_share": 0.25})))) == 7
    overlapping = {"tile_size": 32, "stride": 16, "min_tissue_share": 1.0}
    assert len(read_tiles(path, Metadata.model_validate(_meta(tiling=overlapping)))) == 15


def test_a_slide_without_tiling_is_refused_in_one_line(tmp_path):
    path = _slide(tmp_path / "slide.svs")
    with pytest.raises(InputFileError) as exc:
        read_tiles(path, Metadata.model_validate(_meta()))
    message = str(exc.value)
    assert "\n" not in message and "slide.svs" in message and "tiling" in message and "'tile'" in message


def test_slide_errors_are_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "broken.tiff"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(InputFileError) as exc:
        read_tiles(bad, Metadata.model_validate(_meta(tiling={"tile_size": 32})))
    assert "\n" not in str(exc.value) and "broken.tiff" in str(exc.value)
    path = _slide(tmp_path / "slide.tif")
    labelled = _meta(tiling={"tile_size": 32}, target="stain")
    labelled["columns"]["stain"] = {"type": "categorical", "categories": ["a", "b"]}
    with pytest.raises(InputFileError, match=r"slide\.tif: a whole slide has no tile labels"):
        read_tiles(path, Metadata.model_validate(labelled))


def test_a_slide_is_one_privacy_unit(tmp_path):
    path = _slide(tmp_path / "slide.tif")
    doc = _meta(tiling={"tile_size": 32}, privacy_unit_column="patient")
    doc["columns"]["patient"] = {"type": "identifier"}
    table = read_tiles(path, Metadata.model_validate(doc))
    assert set(table["patient"]) == {"slide"} and table["tile_id"].is_unique


def test_load_dispatches_a_slide_to_the_image_reader(tmp_path):
    from synthrelease.pipeline import stages

    path = _slide(tmp_path / "slide.svs")
    loaded = stages.load(path, _meta(tiling={"tile_size": 32}))
    assert len(loaded.table) == 6 and loaded.source == str(path)


@pytest.mark.realdata
@pytest.mark.skipif(not SVS.exists(), reason=f"{SVS} is absent (../shared/data not mounted)")
def test_the_real_svs_slide_tiles_like_the_benchmark(tmp_path):
    meta_path = tmp_path / "meta.yaml"
    meta_path.write_text(yaml.safe_dump(_meta(size=32, tiling={"tile_size": 64, "stride": 64})))
    meta = Metadata.model_validate(yaml.safe_load(meta_path.read_text()))
    table = read_tiles(SVS, meta)
    tiles = tiles_of(table, meta)
    assert 500 <= len(tiles) <= 650 and tiles.shape[1:] == (32, 32, 3)
    from synthrelease.io.tiles import tile_slide

    big, _ = tile_slide(SVS, size=64, stride=64, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    expected = big.reshape(len(big), 32, 2, 32, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    np.testing.assert_array_equal(tiles, expected)  # the benchmark's preprocessing, from the metadata alone

