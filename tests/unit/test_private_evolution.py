"""Sim-PE: Private Evolution over the public tissue simulator (issue 28).

The vote histogram has L2 sensitivity ≤ 1 per person, the whole run is accounted in one
accountant with the release's reserved entries, the noise is secret, and the model file
holds only tensors and JSON.
"""

from __future__ import annotations

import numpy as np
import pytest

from synthrelease.errors import ModelFileError
from synthrelease.modalities.image.model import ImageTrainingConfig
from synthrelease.modalities.image.private_evolution import (
    EvolvedTiles,
    evolve_tiles,
    plan_evolution,
    prior_scale,
    sample_evolved,
    scaled_features,
    vote_histogram,
)
from synthrelease.privacy.accounting import MechanismEntry, epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness

simulator = pytest.importorskip("synthrelease.modalities.image.simulator")


def _config(**kw) -> ImageTrainingConfig:
    return ImageTrainingConfig(**{"target_epsilon": 10.0, "target_delta": 1e-5, "generator": "sim_pe",
                                  "evolution_iterations": 3, "evolution_population": 64, **kw})


def _private_tiles(n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return simulator.render_tiles(simulator.random_parameters(n, rng), rng.integers(0, 2**31, n), size=16,
                                  stain="he")


def test_the_plan_spends_exactly_the_budget_left_by_the_reserved_entries():
    reserved = (MechanismEntry("count release", 20.0, 1.0, 1), MechanismEntry("gate", 8.0, 1.0, 1))
    plan = plan_evolution(500, 2, _config(evolution_iterations=5), reserved)
    total = epsilon_for([plan.votes, *reserved], delta=1e-5)
    assert plan.votes.steps == 5 and plan.votes.sample_rate == 1.0
    assert 10.0 * 0.99 <= total <= 10.0
    assert plan.per_class >= 8 and len(plan.variation) == 5 and plan.variation[0] > plan.variation[-1]


def test_a_smaller_budget_means_more_noise_and_a_smaller_population():
    loose, tight = plan_evolution(500, 1, _config()), plan_evolution(500, 1, _config(target_epsilon=1.0))
    assert tight.votes.noise_multiplier > loose.votes.noise_multiplier
    assert tight.per_class <= loose.per_class


def test_one_person_moves_the_vote_histogram_by_at_most_one():
    """Adding one person (m tiles, each voting 1/m) changes the exact histogram by ≤ 1 in L2."""
    rng = np.random.default_rng(1)
    private = rng.random((40, 6)).astype(np.float32)
    candidates = rng.random((12, 6)).astype(np.float32)
    classes = np.zeros(40, dtype=np.int64)
    cand_classes = np.repeat([0, 1], 6)
    for m in (1, 3):
        base = vote_histogram(private, classes, candidates, cand_classes, 1.0 / m)
        added = vote_histogram(np.concatenate([private, rng.random((m, 6)).astype(np.float32)]),
                               np.zeros(40 + m, dtype=np.int64), candidates, cand_classes, 1.0 / m)
        assert np.linalg.norm(added - base) <= 1.0 + 1e-12
        assert base.sum() == pytest.approx(40 / m)
        assert base[cand_classes == 1].sum() == 0  # a tile only votes within its class


def test_scaled_features_use_declared_bounds_only():
    tiles = _private_tiles(8)
    a = scaled_features(tiles)
    b = scaled_features(np.concatenate([tiles, np.zeros_like(tiles)]))[:8]  # other rows change nothing
    np.testing.assert_allclose(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_the_vote_distance_is_scaled_by_the_public_prior_never_by_private_tiles(monkeypatch):
    """The feature scaling comes from generation 0 (random prior draws from the public seed): two
    different private sets get the same scale, and it is computed from the candidates only."""
    import synthrelease.modalities.image.private_evolution as pe

    seen = []
    monkeypatch.setattr(pe, "prior_scale", lambda f: (seen.append(f.copy()), prior_scale(f))[1])
    for seed in (0, 1):
        evolve_tiles(_private_tiles(40, seed), None, 0, _config(evolution_iterations=1), stain="he",
                     public_units=40, tiles_per_unit=1, randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert len(seen) == 2 and len(seen[0]) != 40
    np.testing.assert_array_equal(seen[0], seen[1])
    centre, spread = prior_scale(seen[0])
    assert centre.shape == spread.shape == (seen[0].shape[1],) and spread.min() >= 0.01


def test_a_tissue_the_simulator_does_not_know_still_comes_out_closer_than_the_prior():
    """Issue 28: green tiles (no H&E stain renders them) with stain "he" declared: the evolved
    tiles are still nearer the private tiles, in the scaled view, than the simulator's prior is."""
    from sklearn.neighbors import NearestNeighbors

    private = _private_tiles(80, seed=5)[..., [1, 0, 2]]  # red and green swapped: a stain outside the family
    model = evolve_tiles(private, None, 0, _config(target_epsilon=30.0, evolution_iterations=4), stain="he",
                         public_units=80, tiles_per_unit=1,
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    evolved, _ = sample_evolved(model, 80, seed=1)
    rng = np.random.default_rng(9)
    prior = simulator.render_tiles(simulator.random_parameters(80, rng), rng.integers(0, 2**31, 80), size=16,
                                   stain="he")

    def distance(tiles):
        nn = NearestNeighbors(n_neighbors=1).fit(scaled_features(tiles))
        return float(nn.kneighbors(scaled_features(private))[0].mean())

    assert distance(evolved) < distance(prior)  # measured: 0.80 against 0.88


def test_evolution_is_accounted_and_samples_tiles_of_the_declared_shape():
    tiles = _private_tiles()
    labels = np.repeat([0, 1], 30)
    model = evolve_tiles(tiles, labels, 2, _config(), stain="he", public_units=60, tiles_per_unit=1,
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert isinstance(model, EvolvedTiles) and model.privacy.epsilon <= 10.0
    assert [e.label for e in model.privacy.entries] == ["Sim-PE vote histograms (Gaussian, sensitivity 1)"]
    assert model.condition_probs is not None and model.condition_probs.sum() == pytest.approx(1.0)
    out, idx = sample_evolved(model, 50, seed=3)
    assert out.shape == (50, 16, 16, 3) and out.dtype == np.uint8 and set(np.unique(idx)) <= {0, 1}
    again, _ = sample_evolved(model, 50, seed=3)
    np.testing.assert_array_equal(out, again)  # sampling is post-processing from a public seed


def test_the_vote_noise_is_secret_randomness():
    tiles = _private_tiles(40)
    runs = [evolve_tiles(tiles, None, 0, _config(), stain="he", public_units=40, tiles_per_unit=1,
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(s)).weights for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_a_sim_pe_model_file_round_trips_and_refuses_tampering(tmp_path):
    import torch

    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.model_files import load_model, save_model

    meta = Metadata.model_validate({"version": 1, "name": "t", "reviewed": True, "columns": {
        "tile_id": {"type": "identifier"}, "tile": {"type": "image", "height": 16, "width": 16, "channels": 3,
                                                    "stain": "he"}}})
    inner = evolve_tiles(_private_tiles(30), None, 0, _config(), stain="he", public_units=30, tiles_per_unit=1)
    path = save_model(ModalityModel(inner, meta), tmp_path / "m.pt")
    back = load_model(path)
    np.testing.assert_array_equal(back.inner.parameters, inner.parameters)
    np.testing.assert_array_equal(sample_evolved(back.inner, 5, seed=0)[0], sample_evolved(inner, 5, seed=0)[0])
    payload = torch.load(path, weights_only=True)
    payload["generator"]["parameters"] += 5.0
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=r"bad\.pt"):
        load_model(tmp_path / "bad.pt")


def test_a_test_only_randomness_model_is_never_saved(tmp_path):
    from synthrelease.errors import InternalError
    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.base import ModalityModel
    from synthrelease.modalities.model_files import save_model

    meta = Metadata.model_validate({"version": 1, "name": "t", "reviewed": True, "columns": {
        "tile_id": {"type": "identifier"}, "tile": {"type": "image", "height": 16, "width": 16, "channels": 3,
                                                    "stain": "he"}}})
    inner = evolve_tiles(_private_tiles(30), None, 0, _config(), stain="he", public_units=30, tiles_per_unit=1,
                         randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    with pytest.raises(InternalError, match="reproducible"):
        save_model(ModalityModel(inner, meta), tmp_path / "m.pt")


def test_a_stain_is_declared_on_image_columns_only():
    from pydantic import ValidationError

    from synthrelease.metadata.schema import ColumnSpec

    with pytest.raises(ValidationError, match="stain apply to image columns"):
        ColumnSpec(type="float", min=0, max=1, stain="he")
    with pytest.raises(ValidationError):
        ColumnSpec(type="image", height=16, width=16, channels=3, stain="giemsa")


def test_without_a_declared_stain_the_modality_keeps_its_dcgan():
    """A tissue the simulator does not know is not forced through it: no stain, no Sim-PE."""
    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.image.modality import default_config

    columns = {"tile_id": {"type": "identifier"}, "tile": {"type": "image", "height": 16, "width": 16, "channels": 3}}
    plain = Metadata.model_validate({"version": 1, "name": "t", "reviewed": True, "columns": columns})
    stained = Metadata.model_validate({"version": 1, "name": "t", "reviewed": True, "columns": {
        **columns, "tile": {**columns["tile"], "stain": "ihc_dab"}}})
    assert default_config(300, epsilon=3, delta=1e-6, seed=0, metadata=plain).generator == "dcgan"
    assert default_config(300, epsilon=3, delta=1e-6, seed=0, metadata=stained).generator == "sim_pe"


def test_the_reach_check_sends_tiles_beyond_the_simulator_to_the_fallback_in_one_accountant():
    """Issue 28: one DP count of the tiles within the prior's public radius decides between Sim-PE
    and the fallback (the DCGAN); the check's entry is reserved in whichever runs, so the total
    stays within the target."""
    from synthrelease.modalities.image.private_evolution import REACH_LABEL, evolve_within_reach

    calls = []

    def fallback(reserved):
        calls.append(reserved)
        return EvolvedTiles(np.zeros((1, simulator.N_PARAMETERS)), np.ones(1), np.zeros(1, dtype=np.int64), None,
                            "he", 16, 3, 0.0, _config(), None)

    known = _private_tiles(60, seed=3)
    unknown = known[..., [1, 0, 2]]  # red and green swapped: no H&E stain draws these
    for tiles, expect_sim_pe in ((known, True), (unknown, False)):
        model = evolve_within_reach(tiles, None, 0, _config(target_epsilon=30.0), stain="he", public_units=60,
                                    tiles_per_unit=1, fallback=fallback,
                                    randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
        reach = model.history[0]
        assert reach["simulator_in_reach"] == float(expect_sim_pe), reach
        if expect_sim_pe:
            labels = [e.label for e in model.privacy.entries]
            assert labels == ["Sim-PE vote histograms (Gaussian, sensitivity 1)", REACH_LABEL]
            assert model.privacy.epsilon <= 30.0
    assert len(calls) == 1 and [e.label for e in calls[0]] == [REACH_LABEL]
    assert epsilon_for(calls[0], delta=1e-5) == pytest.approx(0.05 * 30.0, rel=0.01)  # the check's own share


def test_a_reach_check_too_noisy_to_decide_spends_nothing_and_keeps_sim_pe():
    """60 tiles at ε = 1: the check's σ is about 1.6 times the tile count, it could not decide."""
    from synthrelease.modalities.image.private_evolution import evolve_within_reach

    model = evolve_within_reach(_private_tiles(60)[..., [1, 0, 2]], None, 0, _config(target_epsilon=1.0),
                                stain="he", public_units=60, tiles_per_unit=1, fallback=None,
                                randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert model.history[0] == {"simulator_reach_check_skipped_too_noisy": 1.0}
    assert [e.label for e in model.privacy.entries] == ["Sim-PE vote histograms (Gaussian, sensitivity 1)"]


def test_the_reach_check_can_be_switched_off():
    from synthrelease.modalities.image.private_evolution import evolve_within_reach

    model = evolve_within_reach(_private_tiles(40)[..., [1, 0, 2]], None, 0, _config(reach_epsilon_share=0.0),
                                stain="he", public_units=40, tiles_per_unit=1, fallback=None,
                                randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert isinstance(model, EvolvedTiles) and "simulator_in_reach" not in model.history[0]
