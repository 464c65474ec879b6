"""`train` and `sample` for image tiles: a pickle-free image model file, tiles streamed in chunks, atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from synthrelease.budget.ledger import Ledger
from tests.conftest import one_line_error, run_cli

META = {"version": 1, "name": "tiles", "reviewed": True, "target": "stain",
        "columns": {"tile_id": {"type": "identifier"},
                    "tile": {"type": "image", "height": 16, "width": 16, "channels": 3},
                    "stain": {"type": "categorical", "categories": ["red", "blue"]}}}


run = run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """40 tiles of 16×16×3 in two stains, trained for 5 DP-SGD steps (once for the module)."""
    ws = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(0)
    labels = np.array(["red", "blue"] * 20)
    tiles = rng.integers(0, 60, (40, 16, 16, 3)).astype(np.uint8)
    tiles[labels == "red", :, :, 0] += 180
    tiles[labels == "blue", :, :, 2] += 180
    np.savez(ws / "tiles.npz", images=tiles, labels=labels)
    (ws / "meta.yaml").write_text(yaml.safe_dump(META, sort_keys=False))
    res = run("train", str(ws / "tiles.npz"), "--metadata", str(ws / "meta.yaml"), "--epsilon", "2", "--steps", "5",
              "--ledger", str(ws / "l.sqlite3"), "-o", str(ws / "model.pt"))
    assert res.exit_code == 0, res.output
    assert "epsilon spent" in res.output
    return ws


def test_train_writes_an_image_model_file_charged_to_the_ledger(trained):
    payload = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)
    assert payload["format"] == "synthrelease-image-model/1"
    assert not any("discriminator" in k or "projection" in k for k in payload["generator"])
    from synthrelease.modalities.model_files import load_model

    model = load_model(trained / "model.pt")
    assert model.metadata.image_column == "tile" and model.inner.size == 16 and model.inner.channels == 3
    assert model.inner.condition_probs.shape == (2,) and 0 < model.privacy.epsilon <= 2.0
    entries = Ledger(trained / "l.sqlite3").entries("tiles")
    assert len(entries) == 1 and entries[0].status == "spent" and entries[0].epsilon == pytest.approx(
        model.privacy.epsilon)


def test_sample_streams_tiles_to_an_npz_in_chunks(trained, tmp_path):
    out = tmp_path / "x.npz"
    res = run("sample", str(trained / "model.pt"), "-n", "1200", "--chunk-rows", "500", "-o", str(out))
    assert res.exit_code == 0, res.output
    with np.load(out, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (1200, 16, 16, 3) and images.dtype == np.uint8
    assert labels.shape == (1200,) and labels.dtype.kind == "U" and set(labels) == {"red", "blue"}
    assert run("sample", str(trained / "model.pt"), "-n", "1200", "--chunk-rows", "500",
               "-o", str(tmp_path / "y.npz")).exit_code == 0
    with np.load(tmp_path / "y.npz", allow_pickle=False) as z:  # same seed, same tiles
        assert np.array_equal(z["images"], images) and np.array_equal(z["labels"], labels)
    # the table path's overwrite rule: refused without --force, replaced with it
    assert "--force" in one_line_error(run("sample", str(trained / "model.pt"), "-n", "5", "-o", str(out)))
    assert run("sample", str(trained / "model.pt"), "-n", "5", "-o", str(out), "--force").exit_code == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["images"].shape == (5, 16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz", "y.npz"]  # no temporary file left


def test_sample_writes_a_folder_of_png_tiles_and_labels(trained, tmp_path):
    out = tmp_path / "tiles"
    res = run("sample", str(trained / "model.pt"), "-n", "30", "--chunk-rows", "7", "-o", f"{out}/",
              "--condition", "stain=red")
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("*.png"))) == 30
    table = pd.read_csv(out / "labels.csv", dtype={"image_id": str})
    assert list(table.columns) == ["image_id", "stain"] and len(table) == 30 and (table["stain"] == "red").all()
    assert sorted(table["image_id"]) == sorted(p.stem for p in out.glob("*.png"))
    from PIL import Image

    with Image.open(out / f"{table['image_id'][0]}.png") as im:
        assert im.mode == "RGB" and im.size == (16, 16)
    # a folder is never written over, even with --force
    assert "not an empty folder" in one_line_error(run("sample", str(trained / "model.pt"), "-n", "3", "-o",
                                                       str(out), "--force"))
    assert len(list(out.glob("*.png"))) == 30


def test_condition_picks_one_label_and_bad_conditions_are_one_line(trained, tmp_path):
    out = tmp_path / "c.npz"
    assert run("sample", str(trained / "model.pt"), "-n", "600", "--chunk-rows", "256", "-o", str(out),
               "--condition", "stain=blue").exit_code == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["images"].shape == (600, 16, 16, 3) and set(z["labels"]) == {"blue"}
    for cond, words in (("stain=green", "not a declared category"), ("colour=red", "conditioned on 'stain'")):
        res = run("sample", str(trained / "model.pt"), "-n", "5", "-o", str(tmp_path / "bad.npz"), "--condition", cond)
        assert words in one_line_error(res) and not (tmp_path / "bad.npz").exists()
    res = run("sample", str(trained / "model.pt"), "-n", "5", "-o", str(tmp_path / "rows.csv"))
    assert ".npz" in one_line_error(res) and not (tmp_path / "rows.csv").exists()


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_a_failure_mid_stream_leaves_no_output(trained, tmp_path, monkeypatch, kind):
    from synthrelease.modalities.image import streaming

    real = streaming.tile_chunks

    def failing(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise OSError("disk full")

    monkeypatch.setattr(streaming, "tile_chunks", failing)
    out = tmp_path / ("x.npz" if kind == "npz" else "tiles")
    res = run("sample", str(trained / "model.pt"), "-n", "100", "--chunk-rows", "10", "-o", str(out))
    assert res.exit_code != 0 and "disk full" in res.output
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file or folder


def test_corrupt_image_model_files_are_refused_in_one_line(trained, tmp_path):
    good = (trained / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    assert "not a readable synthrelease model" in one_line_error(
        run("sample", str(tmp_path / "cut.pt"), "-n", "5", "-o", str(tmp_path / "a.npz")))
    payload = torch.load(trained / "model.pt", weights_only=True)
    first = next(iter(payload["generator"]))
    payload["generator"][first] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "shape.pt")
    assert "corrupt synthrelease image model" in one_line_error(
        run("sample", str(tmp_path / "shape.pt"), "-n", "5", "-o", str(tmp_path / "a.npz")))
    payload = torch.load(trained / "model.pt", weights_only=True)
    payload["generator"][first] = torch.full_like(payload["generator"][first], float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    assert "NaN" in one_line_error(run("sample", str(tmp_path / "nan.pt"), "-n", "5", "-o", str(tmp_path / "a.npz")))
    payload = torch.load(trained / "model.pt", weights_only=True)
    payload["condition_probs"] = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    torch.save(payload, tmp_path / "probs.pt")
    assert "label frequencies" in one_line_error(
        run("sample", str(tmp_path / "probs.pt"), "-n", "5", "-o", str(tmp_path / "a.npz")))
    assert not (tmp_path / "a.npz").exists()


def test_train_refuses_a_condition_other_than_the_target(trained, tmp_path):
    res = run("train", str(trained / "tiles.npz"), "--metadata", str(trained / "meta.yaml"), "--epsilon", "2",
              "--steps", "5", "--ledger", str(tmp_path / "l.sqlite3"), "--condition-column", "tile_id",
              "-o", str(tmp_path / "m.pt"))
    assert "--condition-column" in one_line_error(res) and not (tmp_path / "m.pt").exists()
    assert not (tmp_path / "l.sqlite3").exists() or not Ledger(tmp_path / "l.sqlite3").entries("tiles")
