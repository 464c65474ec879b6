"""The DP marginals' exact counts by integer bincount equal the float one-hot einsum they replace."""
from __future__ import annotations

import torch

from synthrelease.transforms.dp_marginals import (
    NumericLayout,
    _class_cell_counts,
    numeric_cell_index,
    numeric_cell_probs,
)


def test_bincount_counts_equal_the_one_hot_einsum():
    g = torch.Generator().manual_seed(0)
    n, n_bins = 500, 6
    # columns: 0 plain, 1 nullable (present at 3), 2 zero-inflated (non-zero at 4), 3 both (5, 6)
    x = torch.rand(n, 8, generator=g, dtype=torch.float64) * 2 - 1
    x[:, [3, 4, 5, 6]] = (torch.rand(n, 4, generator=g) < 0.7).double()
    x[:, 0] = torch.where(torch.rand(n, generator=g) < 0.1, torch.tensor(1.0, dtype=torch.float64), x[:, 0])  # edge
    layout = NumericLayout(("a", "b", "c", "d"), torch.tensor([0, 1, 2, 7]), torch.tensor([-1, 3, -1, 5]),
                           torch.tensor([-1, -1, 4, 6]))
    cond = torch.nn.functional.one_hot(torch.randint(0, 3, (n,), generator=g), 3).double()
    cond[::17] = 0  # rows without a condition class count nowhere
    expected = torch.einsum("nk,ncb->kcb", cond, numeric_cell_probs(x, layout, n_bins, smoothing=None))
    got = _class_cell_counts(cond, x, layout, n_bins)
    assert got.dtype == torch.float64 and torch.equal(got, expected)
    index = numeric_cell_index(x, layout, n_bins)
    one_hot = numeric_cell_probs(x, layout, n_bins, smoothing=None)
    assert torch.equal(one_hot.argmax(dim=2), index) and torch.equal(one_hot.sum(dim=2), torch.ones(n, 4,
                                                                                                  dtype=torch.float64))
