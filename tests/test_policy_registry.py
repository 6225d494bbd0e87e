"""One policy registry and one checkpoint format: any registered kind saves, loads and exports."""

import json

import pytest
import torch
from torch import nn

from robo.export.card import load_card
from robo.export.onnx_export import export_checkpoint
from robo.nets.ensemble import EnsembleMLP
from robo.nets.policy import (
    POLICIES,
    MLPPolicy,
    build_policy,
    generic_meta,
    load_policy,
    register_policy,
    save_policy,
)
from robo.rl.sac import deterministic_policy, save_actor

torch.set_num_threads(1)


@register_policy("test-residual")
class ResidualPolicy(nn.Module):
    """A kind only this test knows: action = tanh(W obs) + b."""

    recurrent = False

    def __init__(self, obs_dim: int, act_dim: int, scale: float = 1.0):
        super().__init__()
        self.arch = {"kind": "test-residual", "obs_dim": obs_dim, "act_dim": act_dim, "scale": scale}
        self.linear = nn.Linear(obs_dim, act_dim)
        self.scale = scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(self.linear(obs))


def test_a_new_kind_saves_loads_and_exports_through_the_one_format(tmp_path):
    torch.manual_seed(0)
    net = ResidualPolicy(5, 2, scale=0.5)
    save_policy(tmp_path / "policy.pt", net, generic_meta(5, 2, run="test"))
    again, meta = load_policy(tmp_path / "policy.pt")
    assert isinstance(again, ResidualPolicy) and again.scale == 0.5 and meta["run"] == "test"
    x = torch.randn(3, 5)
    torch.testing.assert_close(again(x), net(x))
    card = export_checkpoint(tmp_path, tmp_path / "out" / "policy.onnx", steps=20)
    assert card["training"]["arch"]["kind"] == "test-residual"
    assert load_card(tmp_path / "out" / "policy.onnx")["onnx"]["sha256"] == card["onnx"]["sha256"]


def test_unknown_kind_and_unregistered_class_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown policy kind 'nope' \(known: .*mlp.*recurrent"):
        build_policy({"kind": "nope", "obs_dim": 1, "act_dim": 1})

    class Stray(nn.Module):
        def __init__(self):
            super().__init__()
            self.arch = {"kind": "stray"}

    with pytest.raises(ValueError, match="Stray is not a registered policy"):
        save_policy(tmp_path / "p.pt", Stray(), {})
    assert POLICIES["mlp"] is MLPPolicy


def sac_actor(obs: int, act: int) -> nn.Sequential:
    """One member of a SAC actor ensemble: a ReLU MLP giving (mean, raw log-std)."""
    torch.manual_seed(0)
    return EnsembleMLP(2, obs, (16, 16), 2 * act).member(1)


def test_sac_actor_is_an_mlp_policy_with_tanh_and_exports(tmp_path):
    actor = sac_actor(6, 3)
    policy = deterministic_policy(actor, 3)
    assert isinstance(policy, MLPPolicy) and policy.arch["output_activation"] == "tanh"
    obs = torch.randn(4, 6)
    torch.testing.assert_close(policy(obs), torch.tanh(actor(obs)[:, :3]))
    save_actor(tmp_path / "actor.pt", actor, 3, generic_meta(6, 3, origin={"teacher": "q1"}))
    card = export_checkpoint(tmp_path / "actor.pt", tmp_path / "policy.onnx", steps=20)
    assert card["training"]["origin"] == {"teacher": "q1"}
    written = json.loads((tmp_path / "policy.json").read_text())
    assert written["training"]["arch"]["output_activation"] == "tanh"


def test_an_old_sac_actor_file_loads_converted(tmp_path):
    actor = sac_actor(4, 2)
    linears = [m for m in actor if isinstance(m, nn.Linear)]
    old = {"format": "robo-sac-actor/1", "obs_size": 4, "act_size": 2,
           "hidden": [m.out_features for m in linears[:-1]], "state_dict": actor.state_dict(),
           "meta": {"teacher": "q0"}}
    torch.save(old, tmp_path / "actor.pt")
    policy, meta = load_policy(tmp_path / "actor.pt")
    assert meta == {"origin": {"teacher": "q0"}}
    obs = torch.randn(3, 4)
    torch.testing.assert_close(policy(obs), deterministic_policy(actor, 2)(obs))
