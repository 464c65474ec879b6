"""The autoregressive DP sequence model (issue 29): causal, per-record DP-SGD in one accountant,
secret noise, lengths and labels within the public metadata."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synthrelease.modalities.sequence.autoregressive import (
    EOS,
    HEADER_LABEL,
    LAG_LABEL,
    ORDER1_FRACTION,
    POSITION_LABEL,
    SGD_LABEL,
    TRANSITION_LABELS,
    AutoregressiveModel,
    CausalConvLM,
    Vocabulary,
    _draw,
    _draw_headers,
    generate,
    train_autoregressive,
)
from synthrelease.modalities.sequence.config import SequenceTrainingConfig
from synthrelease.privacy.accounting import MechanismEntry, calibrate_noise_multiplier, epsilon_for
from synthrelease.privacy.randomness import PrivateRandomness

VOCAB = Vocabulary("ACDEFGHIKLMNPQRSTVWY", ("amp", "other"), 12, 3)


def _data(n: int = 80, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = list(rng.choice(["amp", "other"], n))
    # amp: K/L repeats (order matters), other: random letters
    seqs = ["KL" * int(rng.integers(2, 6)) if lab == "amp" else
            "".join(rng.choice(list(VOCAB.letters), int(rng.integers(3, 13)))) for lab in labels]
    return seqs, labels


def _config(**kw) -> SequenceTrainingConfig:
    return SequenceTrainingConfig(**{"target_epsilon": 3.0, "target_delta": 1e-5, "batch_size": 16, "n_steps": 8,
                                     "ar_hidden": 16, **kw})


def test_tokens_round_trip_within_the_public_layout():
    seqs, labels = _data(10)
    rows = VOCAB.encode(seqs, labels)
    assert rows.shape == (10, VOCAB.width) and int(rows.max()) < VOCAB.size
    assert (rows == EOS).sum() == 10
    back, back_labels = VOCAB.decode(rows.numpy())
    assert back == seqs and back_labels == labels


@pytest.mark.parametrize(("lags", "prior_order"), [(0, 0), (4, 0), (0, 1), (0, 2)])
def test_a_position_sees_only_the_tokens_before_it_and_the_label_and_length_once_read(lags, prior_order):
    torch.manual_seed(0)
    net = CausalConvLM(VOCAB, 16, lags, prior_order > 0, max(1, prior_order)).eval()
    for p in net.parameters():  # the direct terms start at zero: make them matter here
        torch.nn.init.normal_(p)
    if prior_order:
        torch.nn.init.normal_(net.transition)
    rows = VOCAB.encode(*_data(4))
    changed = rows.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB.size
    with torch.no_grad():
        a, b = net(rows), net(changed)
    assert torch.allclose(a[:, :7], b[:, :7]) and not torch.allclose(a[:, 7:], b[:, 7:])
    for slot in (1, 2):  # the label is seen from position 1 on, the length from 2 on, never before
        other = rows.clone()
        other[:, slot] = rows[:, slot].flip(0) if slot == 1 else VOCAB.first_length
        with torch.no_grad():
            c = net(other)
        assert torch.allclose(a[:, :slot], c[:, :slot])


def test_training_is_one_accountant_with_the_reserved_entries_and_its_noise_is_secret():
    seqs, labels = _data()
    reserved = (MechanismEntry("count release", 20.0, 1.0, 1),)
    runs = [train_autoregressive(seqs, labels, VOCAB, _config(), reserved_entries=reserved,
                                 randomness=PrivateRandomness.unsafe_reproducible_for_tests(s)) for s in (0, 0, 1)]
    model = runs[0]
    assert [e.label for e in model.privacy.entries] == [SGD_LABEL, TRANSITION_LABELS[1], TRANSITION_LABELS[2],
                                                        LAG_LABEL, HEADER_LABEL, "count release"]
    # σ₀ spends what the reserved entries leave of ε = 3; each release gets σ₀ / √(its budget share)
    whole = calibrate_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=1.0, steps=1,
                                       prior=reserved).noise_multiplier
    shares = [0.55 * ORDER1_FRACTION, 0.55 * (1 - ORDER1_FRACTION), 0.15, 0.2]
    assert [e.noise_multiplier for e in model.privacy.entries[1:5]] == pytest.approx(
        [whole / np.sqrt(w) for w in shares], rel=1e-9)
    releases = epsilon_for(model.privacy.entries[1:], delta=1e-5)  # with the reserved count release
    assert releases == pytest.approx(epsilon_for([MechanismEntry("x", whole / np.sqrt(0.9), 1.0, 1), *reserved],
                                                 delta=1e-5))
    assert epsilon_for(reserved, delta=1e-5) < releases < 3.0
    assert model.privacy.entries[0].steps == 8 and model.privacy.epsilon <= 3.0 * (1 + 1e-9)
    weights = [next(iter(r.network.state_dict().values())) for r in runs]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_each_record_gets_its_own_clipped_gradient():
    """Opacus sees one gradient row per record for every parameter (position embedding and the
    direct lag / composition terms included)."""
    from opacus import GradSampleModule

    from synthrelease.modalities.sequence.autoregressive import _record_loss

    net = GradSampleModule(CausalConvLM(VOCAB, 16, lags=3))
    rows = VOCAB.encode(*_data(5))
    with pytest.warns(UserWarning, match="Full backward hook"):  # token ids carry no gradient
        _record_loss(net, rows, VOCAB.first_letter).mean().backward()
    assert all(p.grad_sample.shape[0] == 5 for p in net.parameters())


def test_generated_sequences_respect_lengths_and_labels():
    seqs, labels = _data()
    model = train_autoregressive(seqs, labels, VOCAB, _config(n_steps=4))
    out, out_labels = generate(model, 200, seed=1)
    assert len(out) == 200 and all(3 <= len(s) <= 12 for s in out)
    assert len({len(s) for s in out}) > 3  # lengths are drawn, not fixed
    assert set("".join(out)) <= set(VOCAB.letters) and set(out_labels) <= {"amp", "other"}
    again, _ = generate(model, 200, seed=1)
    assert again == out  # post-processing from a public seed
    _, fixed_labels = generate(model, 20, seed=2, fixed_class=1)
    assert set(fixed_labels) == {"other"}


def test_bad_settings_are_refused():
    from synthrelease.errors import PrivacyParameterError

    with pytest.raises(PrivacyParameterError, match="generator"):
        _config(generator="lstm")
    with pytest.raises(PrivacyParameterError, match="ar_hidden"):
        _config(ar_hidden=4)
    with pytest.raises(PrivacyParameterError, match="ar_lags"):
        _config(ar_lags=-1)
    with pytest.raises(PrivacyParameterError, match="ar_ema"):
        _config(ar_ema=1.0)
    with pytest.raises(PrivacyParameterError, match=r"at most 0\.98"):
        _config(ar_prior_budget_share=0.5, ar_header_budget_share=0.49)
    with pytest.raises(PrivacyParameterError, match="ar_prior_order"):
        _config(ar_prior_order=3)


def test_an_empty_poisson_batch_is_still_a_noisy_counted_step():
    seqs, labels = _data(3)
    model = train_autoregressive(seqs, labels, VOCAB, _config(batch_size=1, n_steps=12),
                                 randomness=PrivateRandomness.unsafe_reproducible_for_tests(3))
    assert model.privacy.entries[0].steps == 12
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_the_direct_terms_start_at_zero_and_learn_order_the_letters_alone_cannot_show():
    """Lag tables + per-label prefix shares: zero at initialisation (the model starts as the
    convolutions alone); trained without noise on K/L alternation they predict the next letter."""
    from synthrelease.modalities.sequence.autoregressive import _record_loss

    torch.manual_seed(0)
    net = CausalConvLM(VOCAB, 8, lags=2)
    rows = VOCAB.encode(*_data(64))
    assert net._direct(rows).abs().max() == 0
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        _record_loss(net, rows, VOCAB.first_letter).mean().backward()
        opt.step()
    amp = VOCAB.encode(["KLKLKL"], ["amp"])
    with torch.no_grad():
        nxt = net(amp)[0, 2 + 3].argmax()  # after BOS, label, length, K, L, K: next is L
    assert int(nxt) == VOCAB.first_letter + VOCAB.letters.index("L")
    assert net._direct(rows).abs().max() > 0


def test_the_weight_average_is_post_processing_of_the_iterates():
    from synthrelease.modalities.sequence.autoregressive import _WeightAverage

    net = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    average = _WeightAverage(net, 0.5)
    for value in (2.0, 4.0):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update(net)
    average.copy_to(net)
    assert torch.allclose(net.weight, torch.full((1, 2), 2.5))  # 0.5·(0.5·0 + 0.5·2) + 0.5·4
    last = _WeightAverage(net, 0.0)  # decay 0 keeps the last iterate
    last.update(net)
    last.copy_to(net)
    assert torch.allclose(net.weight, torch.full((1, 2), 2.5))


def test_lags_and_averaging_train_under_dp():
    seqs, labels = _data()
    model = train_autoregressive(seqs, labels, VOCAB, _config(ar_lags=3, ar_ema=0.9, n_steps=4),
                                 randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert model.privacy.entries[0].steps == 4 and model.privacy.epsilon <= 3.0 * (1 + 1e-9)
    out, _ = generate(model, 50, seed=1)
    assert all(3 <= len(s) <= 12 for s in out)


def test_the_dp_transition_prior_is_one_accounted_release_the_letters_start_from():
    """With the prior, the untrained network's letter distribution IS the DP transition table; at
    a large ε that table shows the K → L → K alternation of the amp class."""
    seqs, labels = _data(200)
    config = _config(target_epsilon=50.0, ar_prior_budget_share=0.3, ar_prior_order=1, n_steps=1, ar_lr=1e-9,
                     ar_lag_budget_share=0.0)  # the transition prior alone
    model = train_autoregressive(seqs, labels, VOCAB, config,
                                 randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert [e.label for e in model.privacy.entries] == [SGD_LABEL, TRANSITION_LABELS[1], HEADER_LABEL]
    assert model.privacy.epsilon <= 50 * (1 + 1e-9)
    k, ell = VOCAB.letters.index("K"), VOCAB.letters.index("L")
    amp = model.network.transition[0].exp()
    assert amp[1 + k, ell] > 0.9 and amp[1 + ell, k] > 0.9 and amp[0, k] > 0.7  # start → K → L → K
    out, _ = generate(model, 100, seed=3, fixed_class=0)
    assert sum(s.startswith("KLKL") for s in out if len(s) >= 4) >= 0.5 * sum(len(s) >= 4 for s in out)


@pytest.mark.parametrize("order", [1, 2])
def test_a_record_moves_the_transition_counts_by_at_most_one_in_l2(order):
    from synthrelease.modalities.sequence.autoregressive import transition_counts

    seqs, labels = _data(30)
    seqs[0] = "K" * 12  # the heaviest record: one transition repeated
    full = transition_counts(VOCAB.encode(seqs, labels), VOCAB, order)
    assert full.shape == (2, 21 ** order * 20)
    for i in range(len(seqs)):
        without = transition_counts(VOCAB.encode(seqs[:i] + seqs[i + 1:], labels[:i] + labels[i + 1:]), VOCAB,
                                    order)
        assert float((full - without).norm()) <= 1 + 1e-9
    assert float((full - transition_counts(VOCAB.encode(seqs[1:], labels[1:]), VOCAB, order)).norm()) == \
        pytest.approx(1.0)


def test_order_two_counts_read_the_two_letters_before():
    """"KKL": start,start → K; start,K → K; K,K → L (rows: earlier·21 + later, letter + 1, 0 = start)."""
    from synthrelease.modalities.sequence.autoregressive import transition_counts

    k, ell = VOCAB.letters.index("K"), VOCAB.letters.index("L")
    counts = transition_counts(VOCAB.encode(["KKL"], ["amp"]), VOCAB, 2).view(2, 21 * 21, 20)
    expected = torch.zeros_like(counts)
    for row, nxt in ((0, k), (1 + k, k), ((1 + k) * 21 + 1 + k, ell)):
        expected[0, row, nxt] = 1 / 3 ** 0.5
    assert torch.allclose(counts, expected.double())


def test_the_order_two_prior_learns_what_order_one_cannot():
    """"KKL" repeated: after K the next letter is K or L (order 1 cannot tell), after K, K it is L
    and after K, L it is K; at a large ε the order-2 prior the letters start from shows it."""
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["amp", "other"], 300))
    seqs = ["KKL" * int(rng.integers(1, 5)) if lab == "amp" else
            "".join(rng.choice(list(VOCAB.letters), int(rng.integers(3, 13)))) for lab in labels]
    config = _config(target_epsilon=200.0, ar_prior_budget_share=0.6, n_steps=1, ar_lr=1e-9, ar_lag_budget_share=0.0)
    model = train_autoregressive(seqs, labels, VOCAB, config,
                                 randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
    assert [e.label for e in model.privacy.entries] == [SGD_LABEL, TRANSITION_LABELS[1], TRANSITION_LABELS[2],
                                                        HEADER_LABEL]
    k, ell = VOCAB.letters.index("K"), VOCAB.letters.index("L")
    amp = model.network.transition[0].exp()
    assert amp[(1 + k) * 21 + 1 + k, ell] > 0.8 and amp[(1 + k) * 21 + 1 + ell, k] > 0.8
    out, _ = generate(model, 100, seed=3, fixed_class=0)
    assert sum("KKL" in s or s == "KK" for s in out) >= 0.8 * len(out)


def test_a_record_moves_the_position_counts_by_at_most_one_in_l2():
    from synthrelease.modalities.sequence.autoregressive import position_counts

    seqs, labels = _data(30)
    full = position_counts(VOCAB.encode(seqs, labels), VOCAB)
    assert full.shape == (2, 12, 20)
    for i in range(len(seqs)):
        without = position_counts(VOCAB.encode(seqs[:i] + seqs[i + 1:], labels[:i] + labels[i + 1:]), VOCAB)
        assert float((full - without).norm()) == pytest.approx(1.0)  # every record: L letters of weight 1/√L
    one = position_counts(VOCAB.encode(["KLK"], ["other"]), VOCAB)
    k, ell = VOCAB.letters.index("K"), VOCAB.letters.index("L")
    expected = torch.zeros_like(one)
    expected[1, 0, k] = expected[1, 1, ell] = expected[1, 2, k] = 1 / 3 ** 0.5
    assert torch.equal(one, expected)


def test_the_dp_position_prior_is_one_accounted_release_that_places_a_motif():
    """Fixed-length windows with G at position 5 in one class: the position prior (one more Gaussian
    release in the same accountant) puts G there; without it, the chains alone do not."""
    vocab = Vocabulary("ACGT", ("site", "none"), 10, 10)
    rng = np.random.default_rng(1)
    labels = list(rng.choice(["site", "none"], 400))
    seqs = ["".join(rng.choice(list("ACGT"), 10)) for _ in labels]
    seqs = [s[:5] + "G" + s[6:] if lab == "site" else s for s, lab in zip(seqs, labels, strict=True)]
    rates = _with_and_without_prior(seqs, labels, vocab, "ar_position_budget_share", POSITION_LABEL,
                                    lambda out: np.mean([s[5] == "G" for s in out]))
    assert rates[0.4] > 0.9 and rates[0.0] < 0.6, rates


def _with_and_without_prior(seqs, labels, vocab, share_key: str, label: str, rate) -> dict[float, float]:
    """``rate`` of 300 sequences of class 0 from a model with the prior ``share_key`` at 0 and at 0.4
    (ε = 50, no training: the letters are the priors'); each release in the accountant iff on."""
    rates = {}
    for share in (0.0, 0.4):
        config = SequenceTrainingConfig(**{**_config(target_epsilon=50.0, n_steps=1, ar_lr=1e-9).__dict__,
                                           "ar_header_budget_share": 0.05, "ar_prior_budget_share": 0.45,
                                           "ar_lag_budget_share": 0.0, share_key: share})
        model = train_autoregressive(seqs, labels, vocab, config,
                                     randomness=PrivateRandomness.unsafe_reproducible_for_tests(0))
        assert model.privacy.epsilon <= 50.0 and (label in [e.label for e in model.privacy.entries]) == (share > 0)
        out, _ = generate(model, 300, seed=2, fixed_class=0)
        rates[share] = rate(out)
    return rates


def test_one_declared_length_gives_the_position_prior_a_budget_share():
    from synthrelease.metadata.schema import Metadata
    from synthrelease.modalities.sequence.config import FIXED_LENGTH_SHARES
    from synthrelease.modalities.sequence.modality import default_config

    def meta(low: int, high: int) -> Metadata:
        return Metadata.model_validate({"version": 1, "name": "w", "reviewed": True, "columns": {
            "seq": {"type": "sequence", "alphabet": "dna", "min_length": low, "max_length": high}}})

    fixed = default_config(500, epsilon=3.0, delta=1e-5, seed=0, metadata=meta(60, 60))
    assert {k: getattr(fixed, k) for k in FIXED_LENGTH_SHARES} == FIXED_LENGTH_SHARES
    assert default_config(500, epsilon=3.0, delta=1e-5, seed=0, metadata=meta(5, 60)).ar_position_budget_share == 0


def test_the_loss_scores_each_letter_among_the_letters_only():
    """Sampling draws letters among letters (label, length and the end come from the DP header): the
    loss is that, so it never trains the shared letter logits to predict the end."""
    from synthrelease.modalities.sequence.autoregressive import _record_loss

    torch.manual_seed(0)
    net = CausalConvLM(VOCAB, 8)
    rows = VOCAB.encode(*_data(6))
    loss = _record_loss(net, rows, VOCAB.first_letter)
    loss.sum().backward()
    assert net.head.bias.grad[:VOCAB.first_letter].abs().max() == 0
    with torch.no_grad():
        logp = net(rows[:, :-1])[..., VOCAB.first_letter:].log_softmax(-1)
    target = rows[:, 1:] - VOCAB.first_letter
    manual = torch.stack([-sum(logp[i, t, target[i, t]] for t in range(target.shape[1]) if target[i, t] >= 0)
                          for i in range(len(rows))]) / rows.shape[1]
    assert torch.allclose(loss.detach(), manual)


@pytest.mark.parametrize("fixed_class", [None, 1])
def test_headers_follow_the_released_histogram_to_one_record_per_cell(fixed_class):
    freq = np.array([[0.1, 0.0, 0.25, 0.05], [0.3, 0.2, 0.0, 0.1]])
    model = SimpleNamespace(label_length=freq)
    n = 997
    label, length = _draw_headers(model, n, torch.Generator().manual_seed(0), fixed_class)
    counts = np.zeros_like(freq)
    np.add.at(counts, (label.numpy(), length.numpy()), 1)
    if fixed_class is None:
        expected = n * freq / freq.sum()
    else:
        expected = np.zeros_like(freq)
        expected[fixed_class] = n * freq[fixed_class] / freq[fixed_class].sum()
    assert np.all(np.abs(counts - expected) < 1)  # ⌊n·p⌋ or ⌈n·p⌉, never a multinomial's spread
    if fixed_class is None:
        assert np.any(np.diff(label.numpy()) < 0)  # shuffled, not in cell order


def test_a_record_moves_the_lag_pair_counts_by_at_most_one_in_l2():
    from synthrelease.modalities.sequence.autoregressive import PRIOR_LAGS, lag_pair_counts

    seqs, labels = _data(30)
    full = lag_pair_counts(VOCAB.encode(seqs, labels), VOCAB)
    assert full.shape == (2, len(PRIOR_LAGS), 20, 20)
    for i in range(len(seqs)):
        without = lag_pair_counts(VOCAB.encode(seqs[:i] + seqs[i + 1:], labels[:i] + labels[i + 1:]), VOCAB)
        assert float((full - without).norm()) <= 1.0 + 1e-9
    one = lag_pair_counts(VOCAB.encode(["KLAAK"], ["amp"]), VOCAB, (3, 4))  # lag 3: (K, A) (L, K); lag 4: (K, K)
    k, ell, a = (VOCAB.letters.index(x) for x in "KLA")
    expected = torch.zeros_like(one)
    expected[0, 0, k, a] = expected[0, 0, ell, k] = expected[0, 1, k, k] = 1 / 3 ** 0.5
    assert torch.allclose(one, expected)


def test_the_dp_lag_prior_is_one_accounted_release_that_repeats_a_letter_three_places_on():
    """Records whose letter at i + 3 repeats the letter at i (an order-2 chain cannot see it):
    the lag-pair prior puts the repeat in place; without it the chains alone do not."""
    vocab = Vocabulary("ACGT", ("rep", "none"), 12, 12)
    rng = np.random.default_rng(4)
    labels = list(rng.choice(["rep", "none"], 400))
    seqs = []
    for lab in labels:
        s = list(rng.choice(list("ACGT"), 12))
        if lab == "rep":
            for i in range(3, 12):
                s[i] = s[i - 3]
        seqs.append("".join(s))
    rates = _with_and_without_prior(seqs, labels, vocab, "ar_lag_budget_share", LAG_LABEL,
                                    lambda out: np.mean([s[i] == s[i - 3] for s in out for i in range(3, 12)]))
    assert rates[0.4] > 0.6 and rates[0.0] < 0.4, rates


def test_letters_are_drawn_stratified_each_row_from_its_own_distribution():
    """Rows sharing one next-letter distribution get each letter ⌊n·p⌋ or ⌈n·p⌉ times (not a
    multinomial's spread); a row whose distribution is one letter always gets that letter."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    sure = torch.tensor([1e-30, 1e-30, 1.0, 1e-30])

    class _Fixed(torch.nn.Module):
        def __init__(self, sure_from: int) -> None:
            super().__init__()
            self.sure_from = sure_from

        def forward(self, rows):  # the last position's logits: rows from ``sure_from`` on are sure
            out = torch.where((torch.arange(len(rows)) < self.sure_from).unsqueeze(1), probs.log(), sure.log())
            return out.unsqueeze(1).expand(len(rows), rows.shape[1], 4)

    gen = torch.Generator().manual_seed(0)
    rows = torch.zeros(500, 3, dtype=torch.int64)
    drawn = _draw(AutoregressiveModel(_Fixed(500), VOCAB, None, None), rows, 3, 0, 4, gen, None)
    counts = torch.bincount(drawn, minlength=4).double()
    assert torch.all((counts - 500 * probs).abs() <= 1 + 1e-9), counts
    mixed = _draw(AutoregressiveModel(_Fixed(300), VOCAB, None, None), rows, 3, 0, 4, gen, None)
    assert torch.all(mixed[300:] == 2) and set(mixed[:300].tolist()) == {0, 1, 2, 3}


def test_prior_lags_must_be_distinct_whole_numbers():
    from synthrelease.errors import PrivacyParameterError

    assert _config(ar_prior_lags=[3, 4]).ar_prior_lags == (3, 4)
    assert _config(ar_prior_lags="2, 3,4").ar_prior_lags == (2, 3, 4) and _config(ar_prior_lags=3).ar_prior_lags == (3,)
    for bad in ((), (2, 2), (0,), (65,), (2.5,), "2;3", True):
        with pytest.raises(PrivacyParameterError, match="ar_prior_lags"):
            _config(ar_prior_lags=bad)


def test_a_lag_the_order2_context_covers_gets_half_weight_and_the_others_full():
    from synthrelease.modalities.sequence.autoregressive import COVERED_LAG_WEIGHT, _dp_lag_pairs

    seqs, labels = _data(60)
    tokens = VOCAB.encode(seqs, labels)

    def ratios(order: int) -> torch.Tensor:
        cfg = _config(ar_prior_order=order, ar_prior_lags=(2, 3, 4))
        return _dp_lag_pairs(tokens, VOCAB, cfg, PrivateRandomness.unsafe_reproducible_for_tests(5), ())[1]

    two, one = ratios(2), ratios(1)
    assert COVERED_LAG_WEIGHT == 0.5 and float(one[:, 0].abs().max()) > 0
    assert torch.allclose(two[:, 0], 0.5 * one[:, 0]) and torch.equal(two[:, 1:], one[:, 1:])
