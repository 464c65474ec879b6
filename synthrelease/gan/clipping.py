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

import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping

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
