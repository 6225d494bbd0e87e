"""Stacked MLPs: same numbers as K separate nn.Sequential MLPs, nn.Linear's initialisation, isolation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robo.nets.ensemble import EnsembleLinear, EnsembleMLP, select_members

torch.set_num_threads(1)


def test_forward_matches_each_member_as_plain_mlp() -> None:
    torch.manual_seed(0)
    ens = EnsembleMLP(5, 7, (16, 12), 3)
    x = torch.randn(5, 11, 7)
    y = ens(x)
    assert y.shape == (5, 11, 3)
    for k in range(5):
        single = ens.member(k)
        assert isinstance(single, nn.Sequential)
        torch.testing.assert_close(single(x[k]), y[k], atol=1e-6, rtol=1e-6)


def test_from_members_round_trip_and_load_member() -> None:
    torch.manual_seed(1)
    mlps = [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)) for _ in range(3)]
    ens = EnsembleMLP.from_members(mlps)
    x = torch.randn(3, 6, 4)
    for k, mlp in enumerate(mlps):
        torch.testing.assert_close(ens(x)[k], mlp(x[k]), atol=1e-6, rtol=1e-6)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    ens.load_member(1, other)
    torch.testing.assert_close(ens(x)[1], other(x[1]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ens(x)[0], mlps[0](x[0]), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="layer 0"):
        ens.load_member(0, nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)))


def test_initialisation_matches_nn_linear_distribution() -> None:
    torch.manual_seed(2)
    fan_in = 200
    layer = EnsembleLinear(64, fan_in, 100)
    bound = 1 / math.sqrt(fan_in)
    reference = torch.cat([nn.Linear(fan_in, 100).weight.flatten() for _ in range(64)])
    for values in (layer.weight, layer.bias):
        assert values.abs().max() <= bound
        # Uniform(-b, b): std b / sqrt(3); compare with nn.Linear's own draws.
        assert abs(values.std().item() - reference.std().item()) < 0.03 * bound
    assert reference.abs().max() <= bound
    # Members are independent draws, not copies.
    assert not torch.equal(layer.weight[0], layer.weight[1])


def test_members_do_not_share_gradients() -> None:
    torch.manual_seed(3)
    ens = EnsembleMLP(4, 3, (8,), 2)
    y = ens(torch.randn(4, 5, 3))
    y[2].pow(2).sum().backward()
    for layer in ens.layers:
        for k in (0, 1, 3):
            assert torch.count_nonzero(layer.weight.grad[k]) == 0
            assert torch.count_nonzero(layer.bias.grad[k]) == 0
        assert torch.count_nonzero(layer.weight.grad[2]) > 0


def test_select_members_keeps_the_chosen_rows_in_order() -> None:
    torch.manual_seed(4)
    ens = EnsembleMLP(5, 3, (8,), 2)
    x = torch.randn(5, 4, 3)
    before = ens(x).detach()
    select_members(ens, torch.tensor([4, 1]))
    assert ens.members == 2
    torch.testing.assert_close(ens(x[[4, 1]]), before[[4, 1]])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="activation"):
        EnsembleMLP(2, 3, (4,), 1, activation="gelu")
    with pytest.raises(ValueError, match="members"):
        EnsembleMLP(0, 3, (4,), 1)
    with pytest.raises(IndexError):
        EnsembleMLP(2, 3, (4,), 1).member(2)
