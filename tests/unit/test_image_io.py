"""Image-tile input and output: folders, npz archives, slide tiling; bad files are one-line InputFileErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthrelease.errors import InputFileError
from synthrelease.io.tiles import read_image_folder, read_npz, tile_slide, write_npz, write_png_folder
from synthrelease.modalities.image.grids import png_data_uri, tile_grid

SVS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "he_skin_region.svs"


def _tiles(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _one_line_naming(exc: pytest.ExceptionInfo, name: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert name in message


@pytest.mark.parametrize("channels", [1, 3])
def test_png_folder_round_trip(tmp_path, channels):
    images = _tiles(5, channels=channels)
    ids = [f"tile_{i}" for i in (3, 0, 4, 1, 2)]
    out = write_png_folder(tmp_path / "pngs", images, ids)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in ids)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    read, frame = read_image_folder(out, size=8, channels=channels)
    order = np.argsort(ids)
    assert read.dtype == np.uint8 and read.shape == (5, 8, 8, channels)
    np.testing.assert_array_equal(read, images[order])
    assert frame["image_id"].tolist() == sorted(ids)


def test_png_folder_refuses_non_empty_target(tmp_path):
    target = tmp_path / "pngs"
    target.mkdir()
    (target / "old.txt").write_text("x")
    with pytest.raises(InputFileError):
        write_png_folder(target, _tiles(2), ["a", "b"])


def test_folder_labels_joined_and_checked(tmp_path):
    write_png_folder(tmp_path / "pngs", _tiles(3), ["a", "b", "c"])
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"image_id": ["c", "a", "b"], "label": ["x", "y", "z"]}).to_csv(csv, index=False)
    _, frame = read_image_folder(tmp_path / "pngs", size=8, channels=3, labels_csv=csv)
    assert frame.to_dict("list") == {"image_id": ["a", "b", "c"], "label": ["y", "z", "x"]}
    # issue 26.9: errors name the row (or count), never the image_id (ids can identify a sample)
    cases = ((["a", "b", "zz"], "data row 3"), (["a", "b"], "1 tile(s)"), (["a", "b", "a", "c"], "data row 3"))
    for ids, says in cases:
        pd.DataFrame({"image_id": ids, "label": list(range(len(ids)))}).to_csv(csv, index=False)
        with pytest.raises(InputFileError) as exc:
            read_image_folder(tmp_path / "pngs", size=8, channels=3, labels_csv=csv)
        _one_line_naming(exc, says)
        assert "zz" not in str(exc.value) and "'a'" not in str(exc.value) and "'c'" not in str(exc.value)


def test_wrong_shape_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    Image.fromarray(_tiles(1)[0]).save(folder / "a.png")
    Image.fromarray(_tiles(1, size=9)[0]).save(folder / "b_big.png")
    with pytest.raises(InputFileError) as exc:
        read_image_folder(folder, size=8, channels=3)
    _one_line_naming(exc, "b_big.png")
    Image.fromarray(_tiles(1, channels=1)[0][..., 0]).save(folder / "b_big.png")  # right size, grey
    with pytest.raises(InputFileError) as exc:
        read_image_folder(folder, size=8, channels=3)
    _one_line_naming(exc, "b_big.png")


@pytest.mark.parametrize("content", [b"this is not an image", None])
def test_non_image_or_truncated_file_is_refused(tmp_path, content):
    folder = tmp_path / "tiles"
    folder.mkdir()
    Image.fromarray(_tiles(1)[0]).save(folder / "a.png")
    if content is None:  # a truncated PNG
        Image.fromarray(_tiles(1, size=8)[0]).save(folder / "bad.png")
        data = (folder / "bad.png").read_bytes()
        (folder / "bad.png").write_bytes(data[: len(data) // 2])
    else:
        (folder / "bad.png").write_bytes(content)
    with pytest.raises(InputFileError) as exc:
        read_image_folder(folder, size=8, channels=3)
    _one_line_naming(exc, "bad.png")


def test_other_file_types_and_empty_folder_are_refused(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    with pytest.raises(InputFileError) as exc:
        read_image_folder(folder, size=8, channels=3)
    _one_line_naming(exc, "tiles")
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(InputFileError) as exc:
        read_image_folder(folder, size=8, channels=3)
    _one_line_naming(exc, "notes.txt")


def test_npz_round_trip(tmp_path):
    images = _tiles(4)
    frame = pd.DataFrame({"image_id": ["w", "x", "y", "z"], "label": ["a", "b", "a", "b"]})
    path = write_npz(tmp_path / "tiles.npz", images, frame)
    assert path == tmp_path / "tiles.npz" and sorted(p.name for p in tmp_path.iterdir()) == ["tiles.npz"]
    read, back = read_npz(path, size=8, channels=3)
    np.testing.assert_array_equal(read, images)
    assert back.to_dict("list") == frame.to_dict("list")


def test_npz_grey_without_channel_axis(tmp_path):
    path = tmp_path / "grey.npz"
    np.savez(path, images=_tiles(3, channels=1)[..., 0], labels=np.array([0, 1, 0]))
    read, frame = read_npz(path, size=8, channels=1)
    assert read.shape == (3, 8, 8, 1)
    assert frame["image_id"].tolist() == ["0", "1", "2"] and frame["label"].tolist() == [0, 1, 0]


def test_a_text_file_named_npz_is_not_called_a_pickle(tmp_path):
    """Issue 26.9: np.load falls back to unpickling a non-zip file; the message says what the file is not."""
    text = tmp_path / "notes.npz"
    text.write_text("patient,stain\np1,HE\n")
    with pytest.raises(InputFileError) as exc:
        read_npz(text, size=8, channels=3)
    assert "not an .npz archive" in str(exc.value) and "pickle" not in str(exc.value)
    _one_line_naming(exc, "notes.npz")


def test_npz_bad_files_are_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=_tiles(2), labels=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InputFileError) as exc:
        read_npz(pickled, size=8, channels=3)
    _one_line_naming(exc, "pickled.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=_tiles(2, size=9))
    with pytest.raises(InputFileError) as exc:
        read_npz(wrong, size=8, channels=3)
    _one_line_naming(exc, "wrong.npz")
    floats = tmp_path / "floats.npz"
    np.savez(floats, images=_tiles(2).astype(np.float32))
    with pytest.raises(InputFileError) as exc:
        read_npz(floats, size=8, channels=3)
    _one_line_naming(exc, "floats.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputFileError) as exc:
        read_npz(garbage, size=8, channels=3)
    _one_line_naming(exc, "garbage.npz")


@pytest.mark.parametrize("compression", [None, "jpeg"])
def test_tile_slide_keeps_only_tissue_tiles(tmp_path, compression):
    import tifffile

    slide = np.full((256, 192, 3), 255, dtype=np.uint8)
    slide[64:128, 64:160] = (120, 60, 140)  # the "tissue": grid rows 2-3, columns 2-4 at 32 px
    path = tmp_path / "toy_slide.tif"
    tifffile.imwrite(path, slide, tile=(64, 64), photometric="rgb", compression=compression)
    tiles, frame = tile_slide(path, size=32, stride=32, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    assert tiles.shape == (6, 32, 32, 3) and tiles.dtype == np.uint8
    assert frame["image_id"].tolist() == ["x2_y2", "x3_y2", "x4_y2", "x2_y3", "x3_y3", "x4_y3"]
    assert set(frame["slide"]) == {"toy_slide"}
    assert np.all(tiles.astype(float).mean(axis=-1) < 220)
    limited, _ = tile_slide(path, size=32, stride=32, tissue_threshold=220, min_tissue_share=0.5, max_tiles=2)
    np.testing.assert_array_equal(limited, tiles[:2])
    with pytest.raises(InputFileError) as exc:
        tile_slide(path, size=32, stride=32, tissue_threshold=10, min_tissue_share=0.5, max_tiles=None)
    _one_line_naming(exc, "toy_slide.tif")


def test_tile_slide_refuses_a_non_tiff(tmp_path):
    path = tmp_path / "fake.svs"
    path.write_bytes(b"patient 4711 not a tiff at all")
    with pytest.raises(InputFileError) as exc:
        tile_slide(path, size=32, stride=32, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    _one_line_naming(exc, "fake.svs")
    assert "4711" not in str(exc.value)  # issue 26.9: the file's first bytes are never echoed


def _declared_big_slide(path: Path, side: int = 20000, tile: int = 512) -> Path:
    """A slide whose page DECLARES side × side RGB pixels in a small file (black, zlib tiles)."""
    import tifffile

    block = np.zeros((tile, tile, 3), dtype=np.uint8)
    count = (-(-side // tile)) ** 2
    tifffile.imwrite(path, (block for _ in range(count)), shape=(side, side, 3), dtype="uint8",
                     tile=(tile, tile), photometric="rgb", compression="zlib")
    return path


def test_tile_slide_bounds_the_tile_count_from_the_declared_page_before_reading(tmp_path):
    """Issue 26.5: ``stride: 1`` asked for gigabytes; the grid's size is checked first."""
    path = _declared_big_slide(tmp_path / "big.tif")
    with pytest.raises(InputFileError) as exc:
        tile_slide(path, size=256, stride=1, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    _one_line_naming(exc, "big.tif")
    assert "max_tiles" in str(exc.value) and "GiB" in str(exc.value)


def test_tile_slide_reads_a_large_page_by_bands_not_whole(tmp_path):
    """Issue 26.5: a small file declaring a 20000² page (1.1 GiB decoded) is read band by band."""
    import tracemalloc

    path = _declared_big_slide(tmp_path / "big.tif")
    tracemalloc.start()
    try:
        tiles, frame = tile_slide(path, size=256, stride=256, tissue_threshold=220, min_tissue_share=0.5,
                                  max_tiles=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tiles.shape == (3, 256, 256, 3) and frame["image_id"].tolist() == ["x0_y0", "x1_y0", "x2_y0"]
    assert peak < 400 * 1024**2, f"peak {peak / 1024**2:.0f} MiB: the page was not read by bands"


def test_tile_slide_refuses_a_page_stored_in_one_huge_strip(tmp_path, monkeypatch):
    import tifffile

    from synthrelease.io import tiles as image_io

    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, np.zeros((256, 256, 3), dtype=np.uint8), rowsperstrip=256, photometric="rgb")
    monkeypatch.setattr(image_io, "MAX_SLIDE_CHUNK_BYTES", 64 * 1024)
    with pytest.raises(InputFileError) as exc:
        tile_slide(path, size=32, stride=32, tissue_threshold=220, min_tissue_share=0.5, max_tiles=1)
    _one_line_naming(exc, "strip.tif")
    assert "tiled TIFF" in str(exc.value)


def test_tile_slide_grid_matches_overlapping_strides_across_bands(tmp_path):
    """Bands of grid rows cut with an overlapping stride give the tiles of a whole-page cut."""
    import tifffile

    rng = np.random.default_rng(3)
    slide = rng.integers(0, 256, (1400, 300, 3), dtype=np.uint8)
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, slide, tile=(128, 128), photometric="rgb")
    tiles, frame = tile_slide(path, size=64, stride=48, tissue_threshold=255, min_tissue_share=0.0, max_tiles=None)
    ys, xs = np.arange(0, 1400 - 64 + 1, 48), np.arange(0, 300 - 64 + 1, 48)
    expected = np.stack([slide[y:y + 64, x:x + 64] for y in ys for x in xs])
    np.testing.assert_array_equal(tiles, expected)
    assert frame["image_id"].tolist() == [f"x{c}_y{r}" for r in range(len(ys)) for c in range(len(xs))]


@pytest.mark.realdata
@pytest.mark.skipif(not SVS.exists(), reason=f"{SVS} is absent (../shared/data not mounted)")
def test_tile_real_svs_slide():
    tiles, frame = tile_slide(SVS, size=64, stride=64, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    assert 200 <= len(tiles) <= 1000
    assert tiles.shape[1:] == (64, 64, 3) and frame["image_id"].is_unique
    assert set(frame["slide"]) == {"he_skin_region"}


def test_tile_grid_and_data_uri():
    images = _tiles(10, size=4)
    grid = tile_grid(images, columns=4, max_tiles=9)
    assert grid.shape == (3 * 6 + 2, 4 * 6 + 2, 3)
    np.testing.assert_array_equal(grid[2:6, 2:6], images[0])
    np.testing.assert_array_equal(grid[8:12, 8:12], images[5])
    assert np.all(grid[:2] == 255) and np.all(grid[14:20, 8:] == 255)  # separators and the empty cells
    uri = png_data_uri(grid)
    assert uri.startswith("data:image/png;base64,")
    import base64
    import io

    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(back, grid)
