"""Image audits: copies are caught, fresh draws look like a second real sample, labels give TSTR."""

from __future__ import annotations

import numpy as np
import pytest

from synthrelease.modalities.image.audits import MEANINGS, run_image_audits

SIZE = 12


def _draw(rng: np.random.Generator, n: int, *, shift: float = 0.0, colour: tuple[int, int, int] | None = None):
    """Tiles of a random base colour plus pixel noise and a random bright blob (one distribution per setting)."""
    base = rng.integers(60, 190, (n, 1, 1, 3)).astype(float) if colour is None else np.array(colour, float)
    tiles = base + rng.normal(0, 25, (n, SIZE, SIZE, 3)) + shift
    yy, xx = np.indices((SIZE, SIZE))
    for t in tiles:
        cy, cx = rng.integers(0, SIZE, 2)
        t[(yy - cy) ** 2 + (xx - cx) ** 2 < 6] += 60
    return np.clip(tiles, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(3)
    return _draw(rng, 40), _draw(rng, 40), rng


def test_copies_are_flagged(real):
    train, holdout, _ = real
    result = run_image_audits(train, holdout, train.copy(), seed=0)
    m = result.metrics
    assert result.name == "image" and result.internal_only
    assert m["exact_copy_share"] == 1.0 and m["near_copy_share_train"] == 1.0
    assert m["near_copy_share_holdout"] == 0.0
    assert m["nn_pixel_train_median"] == 0.0 < m["nn_pixel_holdout_median"]
    assert m["nn_mia_auc"] > 0.9 and m["nn_tpr_at_fpr_1pct"] > 0.5
    assert m["diversity_synthetic"] == pytest.approx(1.0)
    assert m["prdc_precision"] == 1.0 and m["prdc_coverage"] == 1.0
    assert set(result.details["meanings"]) == set(m) and all(result.details["meanings"].values())
    assert "tstr_auc" not in m  # no labels: no utility figures
    assert result.details["plots"]["roc"]["nn_feature"]["fpr"][0] == 0.0


def test_fresh_draws_look_like_a_second_real_sample(real):
    train, holdout, _ = real
    fresh = _draw(np.random.default_rng(11), 40)
    m = run_image_audits(train, holdout, fresh, seed=0).metrics
    assert m["exact_copy_share"] == 0.0 and m["near_copy_share_train"] == 0.0
    assert abs(m["kid"] - m["kid_holdout_vs_train"]) < 0.5  # sampling noise at 40 tiles: about ±0.2
    assert 0.3 < m["nn_mia_auc"] < 0.75
    assert 0.7 < m["diversity_synthetic"] < 1.3
    assert m["prdc_precision"] > 0.6 and m["prdc_coverage"] > 0.6
    # a shifted generator is far from the real tiles by the same figures (the checks can fail)
    shifted = _draw(np.random.default_rng(12), 40, shift=70)
    s = run_image_audits(train, holdout, shifted, seed=0).metrics
    assert s["kid"] > m["kid_holdout_vs_train"] + 1.0
    assert s["prdc_precision"] < m["prdc_precision"]
    assert abs(m["kid_scattering"] - m["kid_scattering_holdout_vs_train"]) < 0.5
    # the same colours in coarser blocks: the scattering KID sees the texture change
    coarse = np.repeat(np.repeat(fresh[:, ::2, ::2], 2, axis=1), 2, axis=2)
    c = run_image_audits(train, holdout, coarse, seed=0).metrics
    assert c["kid_scattering"] > m["kid_scattering"] + 1.0


def test_seeded_and_deterministic(real):
    train, holdout, _ = real
    fresh = _draw(np.random.default_rng(5), 40)
    a = run_image_audits(train, holdout, fresh, seed=4)
    b = run_image_audits(train, holdout, fresh, seed=4)
    assert a.metrics == b.metrics


def test_tstr_on_red_vs_blue_tiles():
    rng = np.random.default_rng(9)

    def labelled(n):
        red, blue = _draw(rng, n, colour=(180, 60, 60)), _draw(rng, n, colour=(60, 60, 180))
        return np.concatenate([red, blue]), ["red"] * n + ["blue"] * n

    (tr, ytr), (ho, yho), (sy, ysy) = labelled(20), labelled(20), labelled(20)
    result = run_image_audits(tr, ho, sy, train_labels=ytr, holdout_labels=yho, synthetic_labels=ysy, seed=0)
    assert result.metrics["tstr_auc"] > 0.9 and result.metrics["trtr_auc"] > 0.9
    # labels that carry no signal give a chance-level TSTR (the figure can fail)
    shuffled = list(np.random.default_rng(1).permutation(ysy))
    one_class = run_image_audits(tr, ho, sy, train_labels=ytr, holdout_labels=yho,
                                 synthetic_labels=["red"] * len(sy), seed=0)
    assert one_class.metrics["tstr_auc"] is None and "tstr_auc_skipped" in one_class.details["utility"]
    noise = run_image_audits(tr, ho, sy, train_labels=ytr, holdout_labels=yho, synthetic_labels=shuffled, seed=0)
    assert noise.metrics["tstr_auc"] < result.metrics["tstr_auc"]


def test_three_classes_use_macro_one_vs_rest():
    rng = np.random.default_rng(2)
    colours = {"r": (180, 60, 60), "g": (60, 180, 60), "b": (60, 60, 180)}

    def labelled(n):
        return (np.concatenate([_draw(rng, n, colour=c) for c in colours.values()]),
                [k for k in colours for _ in range(n)])

    (tr, ytr), (ho, yho), (sy, ysy) = labelled(8), labelled(8), labelled(8)
    m = run_image_audits(tr, ho, sy, train_labels=ytr, holdout_labels=yho, synthetic_labels=ysy, seed=0).metrics
    assert m["tstr_auc"] > 0.9 and m["trtr_auc"] > 0.9


def test_bad_shapes_are_refused(real):
    train, holdout, _ = real
    with pytest.raises(ValueError):
        run_image_audits(train, holdout, train[:, :8, :8], seed=0)
    with pytest.raises(ValueError):
        run_image_audits(train, holdout, train[:3], seed=0)
    assert set(MEANINGS) >= {"kid", "prdc_recall", "nn_tpr_at_fpr_1pct", "tstr_auc"}


def test_separable_synthetic_labels_do_not_stop_the_audit():
    """A logistic regression that cannot converge on perfectly separable synthetic features is recorded, not raised
    (pytest turns warnings into errors here, as a strict deployment would)."""
    rng = np.random.default_rng(0)
    red = np.zeros((30, 16, 16, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((30, 16, 16, 3), np.uint8)
    blue[..., 2] = 255
    tiles = np.concatenate([red, blue])
    labels = np.array(["r"] * 30 + ["b"] * 30)
    noisy = np.clip(tiles.astype(int) + rng.integers(-40, 40, tiles.shape), 0, 255).astype(np.uint8)
    res = run_image_audits(noisy, noisy, tiles, train_labels=labels, holdout_labels=labels, synthetic_labels=labels,
                           seed=0)
    assert res.metrics["tstr_auc"] is not None and "tstr_auc_converged" in repr(res.details)


def test_report_figures_show_nearest_neighbour_pairs(monkeypatch):
    """The internal report's NN-pairs figure: the closest synthetic tiles, each above its nearest training tile."""
    import base64
    import io

    from PIL import Image

    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.image import modality

    meta = Metadata.model_validate({"name": "t", "target": "stain", "columns": {
        "tile": {"type": "image", "height": 16, "width": 16, "channels": 3},
        "stain": {"type": "categorical", "categories": ["a", "b"]}}})
    rng = np.random.default_rng(9)
    train, fresh = (rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for n in (40, 30))
    synthetic = np.concatenate([fresh[:20], train[5:6], fresh[20:]])  # one exact copy, at index 20
    frame = lambda t: modality.frame_of(t, ["a"] * len(t), meta)  # noqa: E731
    figures = modality.report_figures(frame(train), frame(synthetic), meta)
    pairs = [f for f in figures if f["alt"].startswith("nearest-neighbour pairs")]
    assert len(pairs) == 1 and pairs[0]["src"].startswith("data:image/png;base64,")
    caption = pairs[0]["caption"]
    assert "PRIVATE" in caption and "pixel L2" in caption and "[0, 1]" in caption and "min 0," in caption
    assert "first 31 of 31" in caption
    grid = np.asarray(Image.open(io.BytesIO(base64.b64decode(pairs[0]["src"].split(",", 1)[1]))))
    size, step = 16, 18
    assert grid.shape == (4 * step + 2, 8 * step + 2, 3)  # 16 pairs: 8 synthetic above 8 real, twice
    np.testing.assert_array_equal(grid[2:2 + size, 2:2 + size], train[5])  # closest synthetic tile: the copy
    np.testing.assert_array_equal(grid[2 + step:2 + step + size, 2:2 + size], train[5])  # its real neighbour
    monkeypatch.setattr(modality, "NN_PAIRS_MAX_SYNTHETIC", 10)  # the cap: the copy is no longer searched
    capped = modality.report_figures(frame(train), frame(synthetic), meta)[-1]["caption"]
    assert "first 10 of 31" in capped and "min 0," not in capped
