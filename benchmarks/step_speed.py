"""Discriminator step time: DP-SGD through Opacus (ghost clipping, and per-sample hooks) vs non-private.

The shipped discriminator (Linear-LeakyReLU MLP, hidden 256) on a batch of B real + B fake
rows, one optimizer step each, exactly as in the trainer. Writes
benchmarks/results/step_speed.{json,md}.

    python benchmarks/step_speed.py [--width 160] [--batch 1000] [--seconds 8]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from synthrelease.gan.clipping import LinearChainClipper, clipped_backward
from synthrelease.gan.models import Discriminator

RESULTS = Path(__file__).parent / "results"


def _rate(step, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def _interleaved(steps: dict, rounds: int, seconds: float) -> dict[str, float]:
    """Median steps/s of each step over ``rounds`` rounds, each round timing every step for
    ``seconds`` in turn: drifts of the machine's speed hit every variant alike."""
    for step in steps.values():
        for _ in range(5):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            rates[name].append(_rate(step, seconds))
    return {name: statistics.median(r) for name, r in rates.items()}


def make_step(width: int, batch: int, mode: str | None, shipped: bool | str = False):
    torch.manual_seed(0)  # benchmark only: weights' values do not matter for speed
    d = Discriminator(width, 256)
    opt = torch.optim.Adam(d.parameters(), lr=2e-4)
    real, fake = torch.randn(batch, width), torch.randn(batch, width)
    rows = torch.cat([real, fake])
    labels = torch.cat([torch.ones(batch), torch.zeros(batch)])
    if mode is None:
        def step() -> None:
            loss = F.binary_cross_entropy_with_logits(d(rows), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        loader = DataLoader(TensorDataset(real), batch_size=batch)
        made = engine.make_private(module=d, optimizer=opt, data_loader=loader, criterion=nn.BCEWithLogitsLoss(),
                                   noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=False,
                                   grad_sample_mode=mode)
    dm, dopt = made[0], made[1]
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    def dp_step() -> None:
        per_row = F.binary_cross_entropy_with_logits(dm(rows), labels, reduction="none")
        dopt.zero_grad(set_to_none=True)
        if mode == "ghost":
            DPTensorFastGradientClipping(dm, dopt, per_row, "mean").backward()
        else:
            per_row.mean().backward()
        dopt.step()

    def two_pass_step() -> None:  # the trainer's step until this turn: Opacus' two full backward passes
        per_row = F.binary_cross_entropy_with_logits(dm(real), ones, reduction="none")
        dopt.zero_grad(set_to_none=True)
        DPTensorFastGradientClipping(dm, dopt, per_row, "mean").backward()
        dm.disable_hooks()
        F.binary_cross_entropy_with_logits(dm(fake), zeros, reduction="sum").backward()
        dm.enable_hooks()
        dopt.step()

    def one_backward_step() -> None:  # the trainer's step before book-keeping: ghost norms, then one backward
        dopt.zero_grad(set_to_none=True)
        dm.disable_hooks()
        fake_loss = F.binary_cross_entropy_with_logits(dm(fake), zeros, reduction="sum")
        dm.enable_hooks()
        per_row = F.binary_cross_entropy_with_logits(dm(real), ones, reduction="none")
        clipped_backward(dm, per_row, fake_loss)
        dopt.step()

    clipper = LinearChainClipper(d, 1.0) if shipped in (True, "plain_noise") else None

    def book_keeping_step() -> None:  # as in trainer.py: one forward, one backward (LinearChainClipper)
        dopt.zero_grad(set_to_none=True)
        dm.disable_hooks()
        with clipper.recording():
            logits = dm(rows)
        clipper.backward(F.binary_cross_entropy_with_logits(logits, labels, reduction="none"), batch, 1.0)
        dm.enable_hooks()
        dopt.step()

    if shipped == "two_pass":
        dp_step = two_pass_step
    elif shipped == "one_backward":
        dp_step = one_backward_step
    elif shipped == "plain_noise":
        dp_step = book_keeping_step
    elif shipped:
        dopt.secure_mode = True  # as the trainer: Opacus' floating-point-hardened noise
        dp_step = book_keeping_step

    return dp_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=0.6, help="per step and round")
    a = ap.parse_args()
    res = {"width": a.width, "batch_real": a.batch, "batch_fake": a.batch, "hidden": 256,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine()}
    modes = (("non_private", None, False), ("dp_shipped", "ghost", True),
             ("dp_shipped_plain_noise", "ghost", "plain_noise"),
             ("dp_ghost_one_backward", "ghost", "one_backward"), ("dp_two_pass", "ghost", "two_pass"),
             ("dp_ghost_all_rows", "ghost", False),
             ("dp_hooks_all_rows", "hooks", False))
    warnings.simplefilter("ignore")  # Opacus' full-backward-hook notice, on every step
    steps = {name: make_step(a.width, a.batch, mode, shipped) for name, mode, shipped in modes}
    res["rounds"], res["seconds_per_round"] = a.rounds, a.seconds
    res["steps_per_s"] = {name: round(v, 2) for name, v in _interleaved(steps, a.rounds, a.seconds).items()}
    sps = res["steps_per_s"]
    res["slowdown"] = {k: round(sps["non_private"] / v, 2) for k, v in sps.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "step_speed.json").write_text(json.dumps(res, indent=2) + "\n")
    md = ["# Discriminator step speed (DP-SGD vs non-private)", "",
          f"MLP {a.width}→256→256→1, {a.batch} real + {a.batch} fake rows per step, Adam, "
          f"{res['threads']} torch threads, torch {res['torch']}. Command: `OMP_NUM_THREADS=2 python "
          f"benchmarks/step_speed.py`, run alone. Median over {a.rounds} rounds; each round times every "
          f"step for {a.seconds} s in turn, so drifts of the machine's speed hit all alike.", "",
          "| step | steps/s | slowdown vs non-private |", "|---|---|---|",
          *[f"| {k} | {v} | {res['slowdown'][k]} |" for k, v in sps.items()], "",
          "non_private: plain BCE step on all rows. dp_shipped: the trainer's step — "
          "synthrelease.gan.clipping.LinearChainClipper (book-keeping, Bu et al. 2023): one forward and one "
          "backward pass to the Linear layers' outputs over real + fake rows, each real row's norm "
          "‖g‖·‖a‖ per layer (Opacus' ghost norm), the clipped weight gradients Gᵀ·diag(c)·A from the same "
          "tensors, then Opacus adds its secure-mode noise (four Gaussian draws per parameter, hardened against "
          "floating-point attacks) and steps. dp_shipped_plain_noise: the same step with Opacus' plain noise "
          "(one draw per parameter; not what the trainer ships): the noise sampler's share of the cost. "
          "dp_ghost_one_backward: the trainer's step before (clipped_backward): Opacus' ghost-clipping norms "
          "and coefficients on the real rows, the norm pass propagating without weight gradients, and the "
          "clipped real rows' and the fake rows' gradients in one backward pass. "
          "dp_two_pass: the same with Opacus' DPTensorFastGradientClipping (two full backward passes) and a "
          "separate fake-row pass — the trainer's step before. "
          "dp_ghost_all_rows: every row clipped in one ghost-clipping pass. dp_hooks_all_rows: Opacus' "
          "default per-sample-gradient hooks.", ""]
    (RESULTS / "step_speed.md").write_text("\n".join(md))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
