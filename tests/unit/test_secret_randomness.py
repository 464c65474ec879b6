"""Secret randomness: DP noise, Poisson masks and the split never come from a user seed.

Each test here fails on the seeded design it replaced (one seeded PRNG drove the noise,
the batches and a stratified split, so a release was a replayable function of the data).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from synthrelease.api import split_train_holdout, synthetic_row_count
from synthrelease.errors import InternalError
from synthrelease.gan.config import TrainingConfig
from synthrelease.gan.trainer import train_dp_gan
from synthrelease.modalities.model_files import load_model, save_model
from synthrelease.privacy.randomness import PrivateRandomness, SeedTree, gaussian_noise
from synthrelease.transforms.encoders import TableEncoder
from tests.conftest import make_tiny_table


def _config(**kw: object) -> TrainingConfig:
    base: dict[str, object] = dict(target_epsilon=3.0, target_delta=1e-4, batch_size=64, n_steps=30, seed=0)
    base.update(kw)
    return TrainingConfig(**base)  # type: ignore[arg-type]


def _weights(model) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.cat([p.detach().flatten() for p in model.generator.parameters()])


def test_private_streams_are_fresh_each_time() -> None:
    secret = PrivateRandomness()
    a = torch.randn(8, generator=secret.torch("dp-noise"))
    b = torch.randn(8, generator=PrivateRandomness().torch("dp-noise"))
    assert not torch.equal(a, b)
    assert not np.array_equal(secret.numpy("split").random(8), secret.numpy("split").random(8))
    assert not secret.reproducible


def test_test_only_hook_is_reproducible_and_labelled() -> None:
    a = PrivateRandomness.unsafe_reproducible_for_tests(3)
    b = PrivateRandomness.unsafe_reproducible_for_tests(3)
    assert a.reproducible
    assert torch.equal(torch.randn(5, generator=a.torch("x")), torch.randn(5, generator=b.torch("x")))
    # private streams never coincide with the public stream of the same seed and name
    assert not torch.equal(torch.randn(5, generator=a.torch("x")), torch.randn(5, generator=SeedTree(3).torch("x")))
    with pytest.raises(InternalError, match="test-only"):
        a.require_secret("release")


def test_same_seed_twice_gives_different_generators_and_rows(tiny_table, tiny_metadata) -> None:
    enc = TableEncoder(tiny_metadata)
    first = train_dp_gan(tiny_table, enc, _config(), condition_column="outcome")
    second = train_dp_gan(tiny_table, enc, _config(), condition_column="outcome")
    assert not torch.equal(_weights(first), _weights(second))
    from synthrelease.gan.sampling import sample_frame

    assert not sample_frame(first, 50, seed=1).equals(sample_frame(second, 50, seed=1))


def test_replay_attack_no_longer_reproduces_a_release(tiny_table, tiny_metadata) -> None:
    """The attacker knows D, the row x, the public seed and every setting, and replays training
    on D and on D − x: neither replay reproduces the released generator bit for bit."""
    enc = TableEncoder(tiny_metadata)
    released = _weights(train_dp_gan(tiny_table, enc, _config(), condition_column="outcome"))
    with_x = _weights(train_dp_gan(tiny_table, enc, _config(), condition_column="outcome"))
    without_x = _weights(train_dp_gan(tiny_table.iloc[1:], enc, _config(), condition_column="outcome"))
    assert not torch.equal(released, with_x)
    assert not torch.equal(released, without_x)
    # the test-only hook really is what made replays work: with it, training is a function of D
    hook = PrivateRandomness.unsafe_reproducible_for_tests
    r1 = train_dp_gan(tiny_table, enc, _config(), condition_column="outcome", randomness=hook(5))
    r2 = train_dp_gan(tiny_table, enc, _config(), condition_column="outcome", randomness=hook(5))
    assert torch.equal(_weights(r1), _weights(r2))
    assert r1.reproducible_private_randomness


def test_model_file_holds_nothing_that_replays_the_noise(tmp_path, tiny_table, tiny_metadata) -> None:
    enc = TableEncoder(tiny_metadata)
    model = train_dp_gan(tiny_table, enc, _config(), condition_column="outcome")
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    # retraining with everything the file records (config, public seed) gives another generator
    again = train_dp_gan(tiny_table, enc, loaded.config, condition_column="outcome")
    assert not torch.equal(_weights(again), _weights(loaded))
    info = json.loads(torch.load(path, weights_only=True)["info_json"])
    assert "seed_salt" not in json.dumps(info) and "private" not in json.dumps(info["config"])


def test_a_reproducible_model_is_never_saved(tmp_path, tiny_table, tiny_metadata) -> None:
    model = train_dp_gan(tiny_table, TableEncoder(tiny_metadata), _config(), condition_column="outcome",
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(1))
    with pytest.raises(InternalError, match="reproducible"):
        save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_empty_poisson_batches_train(tiny_metadata) -> None:
    """n = 12, batch 2: q = 1/6, so many Poisson batches are empty (crashed ghost clipping)."""
    model = train_dp_gan(make_tiny_table(12, 1), TableEncoder(tiny_metadata),
                         _config(target_delta=1e-3, batch_size=2, n_steps=60), condition_column="outcome")
    assert model.privacy.epsilon <= 3.0


def test_history_reports_no_real_row_loss(tiny_table, tiny_metadata) -> None:
    model = train_dp_gan(tiny_table, TableEncoder(tiny_metadata), _config(), condition_column="outcome")
    assert model.history and all("d_loss" not in h for h in model.history)
    assert all("d_loss_fake" in h for h in model.history)


def test_split_is_one_independent_coin_per_row() -> None:
    df = make_tiny_table(400, 3)
    hook = PrivateRandomness.unsafe_reproducible_for_tests
    train, hold = split_train_holdout(df, holdout_fraction=0.2, randomness=hook(9))
    bigger = pd.concat([df, make_tiny_table(1, 4)], ignore_index=True)
    train2, hold2 = split_train_holdout(bigger, holdout_fraction=0.2, randomness=hook(9))
    # adding a row moves no other row (the fixed-size stratified split moved 4-107 rows)
    assert set(train["patient_id"]) <= set(train2["patient_id"])
    assert set(hold["patient_id"]) <= set(hold2["patient_id"])
    assert len(train2) + len(hold2) == len(bigger)
    # fresh coins: two release splits of the same table differ, and sizes are random
    fresh = [split_train_holdout(df, holdout_fraction=0.2, randomness=PrivateRandomness()) for _ in range(5)]
    assert len({tuple(sorted(h["patient_id"])) for _, h in fresh}) == 5
    assert synthetic_row_count(400, 0.2) == 320  # public: never the coin count


def test_split_copies_the_rows_once() -> None:
    """The two parts are one copy of the table in all (no second copy to renumber them; at
    100,000 × 20,000 float16 that copy was 3.8 GiB of a release's peak), fresh 0..n-1
    indexes, and the parts do not share memory with the table."""
    import tracemalloc

    df = pd.DataFrame(np.random.default_rng(0).random((4000, 300)), columns=[f"g{i}" for i in range(300)])
    df.insert(0, "kind", np.array(["a", "b"] * 2000, dtype=object))
    df.index = pd.RangeIndex(10, 4010)  # the parts are renumbered whatever the table's index
    size = df.memory_usage(deep=True).sum()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        train, hold = split_train_holdout(df, holdout_fraction=0.2, randomness=PrivateRandomness())
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak < 1.3 * size  # two copies (the old reset_index path) measure 2.0
    assert list(train.index) == list(range(len(train))) and list(hold.index) == list(range(len(hold)))
    assert len(train) + len(hold) == len(df)
    assert not np.shares_memory(train["g0"].to_numpy(), df["g0"].to_numpy())


@pytest.mark.parametrize("with_extension_column", [False, True])
def test_a_consuming_split_gives_the_same_parts_in_the_tables_own_memory(with_extension_column) -> None:
    """``consume=True`` (the release) reorders the table in place and returns views: the same parts
    as the copying split for the same coins; a frame with an extension column is copied instead."""
    from synthrelease.pipeline import stages

    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.random((500, 40)).astype(np.float16), columns=[f"g{i}" for i in range(40)])
    df.insert(0, "kind", rng.choice(["a", "b", "c"], 500).astype(object))
    df["age"] = rng.integers(0, 90, 500)
    if with_extension_column:
        df["stage"] = pd.Categorical(rng.choice(["1", "2"], 500))
    df.index = pd.RangeIndex(7, 507)
    hook = PrivateRandomness.unsafe_reproducible_for_tests
    expected = stages.split(df, holdout_fraction=0.3, randomness=hook(3))
    base = df["g0"].to_numpy()
    while base.base is not None:
        base = base.base
    stages.PARTITION_CHUNK_CELLS, chunk = 40 * 9, stages.PARTITION_CHUNK_CELLS  # 9 rows moved at a time
    try:
        got = stages.split(df, holdout_fraction=0.3, randomness=hook(3), consume=True)
    finally:
        stages.PARTITION_CHUNK_CELLS = chunk
    pd.testing.assert_frame_equal(got.train, expected.train)
    pd.testing.assert_frame_equal(got.holdout, expected.holdout)
    shared = np.shares_memory(got.train["g0"].to_numpy(), base)
    assert shared is not with_extension_column  # views of the table's memory, unless it was copied


def test_hardened_gaussian_noise_has_the_right_scale() -> None:
    g = SeedTree(0).torch("noise-test")
    x = gaussian_noise((200_000,), 3.0, g)
    assert x.dtype == torch.float64
    assert abs(float(x.std()) - 3.0) < 0.03 and abs(float(x.mean())) < 0.03
    assert torch.equal(gaussian_noise((4,), 0.0, g), torch.zeros(4, dtype=torch.float64))


def test_a_release_refuses_the_test_only_randomness(monkeypatch, tmp_path):
    """Even if the reproducible kind were slipped into a release, it stops before any ε is reserved."""
    from synthrelease.pipeline import release as pipeline
    from tests.conftest import release_workspace

    ws = release_workspace(tmp_path)
    monkeypatch.setattr(pipeline, "PrivateRandomness", lambda: PrivateRandomness.unsafe_reproducible_for_tests(0))
    with pytest.raises(InternalError, match="test-only"):
        pipeline.release(ws / "private.csv", metadata=ws / "meta.yaml", policy=ws / "policy.yaml",
                         epsilon=3.0, out_dir=ws / "b", signing_key=ws / "k.pem", ledger_path=ws / "l.sqlite3")
    assert not (ws / "b").exists() and not (ws / "l.sqlite3").exists()
