"""clipped_backward gives exactly Opacus' ghost-clipped gradient, with one backward pass fewer."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from synthrelease.errors import InternalError
from synthrelease.gan.clipping import LinearChainClipper, clipped_backward
from synthrelease.gan.models import Discriminator, SequenceDiscriminator

# the rows carry no gradient: Opacus' hooks fire on the modules' outputs (as in the trainer)
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")


def _private(make, rows: torch.Tensor, clip: float):
    torch.manual_seed(0)
    net = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = PrivacyEngine(accountant="rdp").make_private(
            module=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
            data_loader=DataLoader(TensorDataset(rows), batch_size=len(rows)), criterion=nn.BCEWithLogitsLoss(),
            noise_multiplier=0.0, max_grad_norm=clip, poisson_sampling=False, grad_sample_mode="ghost")
    return made[0], made[1]


def _loss(module, rows: torch.Tensor, target: float, reduction: str) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(module(rows).reshape(-1), torch.full((len(rows),), target),
                                              reduction=reduction)


MODELS = {
    "mlp": (lambda: Discriminator(12, 16), 12),
    "projected mlp": (lambda: Discriminator(12, 16, projection=5, generator=torch.Generator().manual_seed(1)), 12),
    "conv1d": (lambda: SequenceDiscriminator(3 + 6 * 4, start=3, length=6, tokens=4, channels=8, hidden=8), 27),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("clip", [0.01, 1e6])  # every row clipped; none clipped
def test_the_clipped_sum_equals_opacus_two_pass_ghost_clipping(name, clip):
    make, width = MODELS[name]
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(40, width, generator=gen), torch.randn(30, width, generator=gen)
    grads, norms = [], []
    for ours in (False, True):
        module, opt = _private(make, real, clip)
        opt.zero_grad(set_to_none=True)
        per_row = _loss(module, real, 1.0, "none")
        module.disable_hooks()
        extra = _loss(module, fake, 0.0, "sum")
        module.enable_hooks()
        if ours:
            clipped_backward(module, per_row, extra)
        else:
            DPTensorFastGradientClipping(module, opt, per_row, "mean").backward()
            module.disable_hooks()
            extra.backward()
            module.enable_hooks()
        grads.append([p.grad.clone() for p in module.parameters() if p.requires_grad])
        norms.append(module.per_sample_gradient_norms.clone())
    assert torch.allclose(norms[0], norms[1], rtol=1e-6, atol=0)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    if clip < 1:
        assert norms[0].min() > clip  # the clipping was active


class _Branched(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 1), nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_a_layer_off_the_first_parameters_path_is_an_error_never_a_stale_norm():
    rows = torch.randn(8, 4)
    module, _ = _private(_Branched, rows, 1.0)
    with pytest.raises(InternalError, match="chain"):
        clipped_backward(module, _loss(module, rows, 1.0, "none"))


@pytest.mark.parametrize("name", ["mlp", "projected mlp"])
@pytest.mark.parametrize("clip", [0.01, 0.5, 1e6])  # every row clipped; some; none
@pytest.mark.parametrize("n_real", [40, 0])  # an empty Poisson batch: the public rows alone
def test_book_keeping_gives_the_ghost_clipped_sum_in_one_backward(name, clip, n_real):
    make, width = MODELS[name]
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(n_real, width, generator=gen) * 3, torch.randn(30, width, generator=gen)
    grads, norms = [], []
    for ours in (False, True):
        module, opt = _private(make, torch.randn(8, width), clip)
        opt.zero_grad(set_to_none=True)
        if ours:
            clipper = LinearChainClipper(module, clip)
            module.disable_hooks()  # Opacus' hooks stay off for the forward and the backward pass
            with clipper.recording():
                logits = module(torch.cat([real, fake]))
            labels = torch.cat([torch.ones(n_real), torch.zeros(len(fake))])
            per_row = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            norms.append(clipper.backward(per_row, n_real, public_weight=clip))
            module.enable_hooks()
        else:
            module.disable_hooks()
            extra = _loss(module, fake, 0.0, "sum") * clip
            module.enable_hooks()
            if n_real:
                clipped_backward(module, _loss(module, real, 1.0, "none"), extra)
                norms.append(module.per_sample_gradient_norms.clone())
            else:
                module.disable_hooks()
                extra.backward()
                module.enable_hooks()
                norms.append(torch.zeros(0))
        grads.append([p.grad.clone() for p in module.parameters() if p.requires_grad])
    assert torch.allclose(norms[0], norms[1], rtol=1e-5, atol=1e-7)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    if n_real and clip == 0.01:
        assert norms[0].min() > clip  # the clipping was active


def test_book_keeping_refuses_a_module_with_other_trainable_layers():
    make, _ = MODELS["conv1d"]
    assert not LinearChainClipper.supports(make())
    with pytest.raises(InternalError, match=r"nn\.Linear"):
        LinearChainClipper(make(), 1.0)
