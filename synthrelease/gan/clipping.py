"""One DP-SGD backward with Opacus' ghost clipping, without the weight gradients it throws away.

Opacus' :class:`~opacus.utils.fast_gradient_clipping_utils.DPTensorFastGradientClipping` runs
two full backward passes: the first only to let the module's hooks record each row's gradient
norm (its parameter gradients are zeroed right after), the second on the rows' losses scaled
by their clipping coefficients. :func:`clipped_backward` computes exactly the same clipped sum
with the same Opacus hooks and coefficients (``get_clipping_coef``), but:

* the first pass is ``torch.autograd.grad`` towards the first trainable parameter only, so
  autograd propagates through every layer (the hooks fire on every one) without computing the
  other layers' weight gradients. Every trainable layer must lie on that path (a chain, as the
  discriminators are); a norm not recorded this pass is an error, never a stale norm reused;
* the second pass also carries ``extra`` — a loss on data-independent rows computed with the
  hooks off (e.g. the discriminator's fake rows) — so both backward passes run as one.

Privacy: unchanged. Each private row's gradient is clipped to the module's ``max_grad_norm``
by Opacus' own per-row norms; ``extra`` must not depend on private rows (its gradient is added
before the optimizer adds noise, as before). Verified equal to Opacus' path in
``tests/unit/test_clipping.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from torch import nn

from synthrelease.errors import InternalError


def clipped_backward(module: GradSampleModuleFastGradientClipping, per_row: torch.Tensor,
                     extra: torch.Tensor | None = None) -> None:
    """Accumulate into ``.grad`` Σᵢ clip(∇ per_row[i]) (+ ∇ ``extra``), as Opacus' ghost clipping does
    with ``loss_reduction="mean"``.

    ``per_row``: one loss per private row, computed with the module's hooks on; ``extra``: a scalar
    loss on public rows computed with the hooks off (or None).
    """
    params = module.trainable_parameters
    for p in params:  # a norm this pass did not record must not be read from an earlier step
        p._norm_sample = None
    torch.autograd.grad(per_row.mean(), [params[0]], retain_graph=True)  # the hooks record the per-row norms
    if any(p._norm_sample is None for p in params):
        raise InternalError("clipped_backward needs every trainable layer on the path from the loss to the first "
                            "parameter (a chain); use Opacus' DPTensorFastGradientClipping for this module")
    coeff = module.get_clipping_coef().to(per_row.device)
    loss = (coeff * per_row).sum()
    module.disable_hooks()
    try:
        (loss if extra is None else loss + extra).backward()
    finally:
        module.enable_hooks()


class LinearChainClipper:
    """Book-keeping DP clipping (Bu et al. 2023, "Differentially Private Optimization on Large
    Model at Small Cost") for modules whose trainable layers are all ``nn.Linear`` on 2-D rows.

    For such a layer a row's weight gradient is the outer product gᵢaᵢᵀ (gᵢ: the loss's gradient
    at the layer's output, aᵢ: its input), whose norm is ‖gᵢ‖·‖aᵢ‖ — Opacus' ghost norm. So ONE
    backward pass to the layers' outputs gives every row's norm, and the clipped weight gradient
    is Gᵀ·diag(c)·A from the same tensors: no second backward (Opacus' ghost clipping runs two).

    Privacy: the same clipped sum as :func:`clipped_backward` — each private row's gradient scaled
    by Opacus' coefficient min(1, C / (‖∇ℓᵢ‖ + 1e-6)), the public rows' gradients added unclipped —
    before the Opacus optimizer adds the noise. Verified equal in ``tests/unit/test_clipping.py``.

    Use: run the forward pass (Opacus' hooks off) inside ``with clipper.recording():``, then
    :meth:`backward`.
    """

    def __init__(self, module: nn.Module, max_grad_norm: float) -> None:
        if not self.supports(module):
            raise InternalError("LinearChainClipper needs a module whose trainable layers are all nn.Linear")
        self.layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
        self.max_grad_norm = float(max_grad_norm)
        self._records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] | None = None
        self._last: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        for layer in self.layers:
            layer.register_forward_hook(self._record)

    @classmethod
    def supports(cls, module: nn.Module) -> bool:
        """Whether every trainable parameter of ``module`` belongs to an ``nn.Linear``."""
        in_layers = {id(p) for m in module.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
        trainable = [p for p in module.parameters() if p.requires_grad]
        return bool(trainable) and all(id(p) in in_layers for p in trainable)

    def _record(self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._records is not None:
            self._records.append((layer, inputs[0], output))

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record every Linear layer's input and output during the forward pass inside."""
        self._records = []
        try:
            yield
        finally:
            self._last, self._records = self._records or [], None

    def backward(self, per_row: torch.Tensor, n_private: int, public_weight: float = 1.0) -> torch.Tensor:
        """Accumulate into ``.grad`` Σᵢ₍private₎ clip(∇ per_row[i]) + public_weight · Σⱼ₍public₎ ∇ per_row[j].

        ``per_row``: one loss per row of the recorded forward pass, the first ``n_private`` rows
        private. Returns the private rows' gradient norms (before clipping).
        """
        records = self._last
        if sorted(id(r[0]) for r in records) != sorted(id(m) for m in self.layers) \
                or any(r[1].dim() != 2 for r in records):
            raise InternalError("LinearChainClipper: the forward pass must call each Linear layer once on 2-D rows")
        weights = torch.ones_like(per_row)
        weights[n_private:] = public_weight
        outputs = [r[2] for r in records]
        grads = torch.autograd.grad((per_row * weights).sum(), outputs)
        sq_norm = torch.zeros(n_private, dtype=per_row.dtype)
        for (layer, a, _), g in zip(records, grads, strict=True):
            g_sq = torch.linalg.vector_norm(g[:n_private], dim=1).square()
            a_sq = torch.linalg.vector_norm(a[:n_private], dim=1).square()
            sq_norm += g_sq * (a_sq + 1.0) if layer.bias is not None else g_sq * a_sq
        norms = sq_norm.sqrt()
        scale = torch.ones(len(per_row), dtype=per_row.dtype)
        scale[:n_private] = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for (layer, a, _), g in zip(records, grads, strict=True):
            a = a.detach()
            if g.shape[1] <= a.shape[1]:  # scale the narrower factor: (G·diag(c))ᵀA = Gᵀ(diag(c)·A)
                g = g * scale[:, None]
                _accumulate(layer.weight, g.T @ a)
                bias_grad = g.sum(0)
            else:
                _accumulate(layer.weight, g.T @ (a * scale[:, None]))
                bias_grad = g.T @ scale
            if layer.bias is not None:
                _accumulate(layer.bias, bias_grad)
        self._last = []
        return norms


def _accumulate(param: torch.Tensor, grad: torch.Tensor) -> None:
    if param.grad is None:
        param.grad = grad.detach()
    else:
        param.grad.add_(grad.detach())
