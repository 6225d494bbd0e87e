"""The gain GNN: translation invariance, permutation equivariance, bounded gains, save/load, ONNX."""

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from robo.export.onnx_export import export_onnx
from robo.nets.gnn import GainGNN, GNNActorCritic
from robo.nets.policy import load_policy, save_policy
from sim.swarm import SwarmConfig, flat_layout, flat_observation, make_scenario, reset

CONFIG = SwarmConfig()
K = 6


def _net() -> GainGNN:
    torch.manual_seed(0)
    net = GainGNN(node_size=4, edge_size=6, neighbours=K, hidden=16, k_min=0.25, k_max=4.0).double()
    for param in net.parameters():  # weights large enough that the outputs spread over the range
        param.data.normal_(0, 0.8)
    return net


def _moving_state(scenario="obstacles", agents=6):
    state = reset(make_scenario(scenario, agents, 2, seed=3), CONFIG)
    v = torch.randn(state.p.shape, generator=torch.Generator().manual_seed(1), dtype=state.p.dtype) * 0.5
    return dataclasses.replace(state, v=v)


def test_gains_are_translation_invariant_and_bounded():
    net, state = _net(), _moving_state()
    shift = torch.tensor([5.0, -3.0], dtype=state.p.dtype)
    moved = dataclasses.replace(state, p=state.p + shift, goal=state.goal + shift,
                                obstacle_p=state.obstacle_p + shift)
    gains = net(flat_observation(state, CONFIG, K).flatten(0, 1))
    assert torch.allclose(gains, net(flat_observation(moved, CONFIG, K).flatten(0, 1)), atol=1e-9)
    gains = gains.detach()
    assert float(gains.min()) >= 0.25 and float(gains.max()) <= 4.0
    assert float(gains.max() - gains.min()) > 0.5  # it is not a constant


def test_permuting_agents_permutes_the_gains_and_neighbour_order_does_not_matter():
    net, state = _net(), _moving_state("swap", agents=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted = dataclasses.replace(state, p=state.p[:, perm], v=state.v[:, perm], goal=state.goal[:, perm])
    obs = flat_observation(state, CONFIG, K)
    gains = net(obs.flatten(0, 1)).reshape(2, 6, 2)
    gains_p = net(flat_observation(permuted, CONFIG, K).flatten(0, 1)).reshape(2, 6, 2)
    assert torch.allclose(gains[:, perm], gains_p, atol=1e-9)
    # reversing the neighbour slots (edges and mask together) changes nothing
    n, e = 4, 6
    edges = obs[..., n:n + K * e].reshape(2, 6, K, e).flip(2).flatten(2)
    mask = obs[..., n + K * e:].flip(2)
    flipped = torch.cat([obs[..., :n], edges, mask], dim=-1)
    assert torch.allclose(gains, net(flipped.flatten(0, 1)).reshape(2, 6, 2), atol=1e-9)
    # masked-out slots are ignored whatever they hold
    junk = obs.clone()
    empty = junk[..., n + K * e:] == 0
    assert bool(empty.any())
    slots = junk[..., n:n + K * e].reshape(2, 6, K, e)
    slots[empty] = 7.0
    junk[..., n:n + K * e] = slots.flatten(2)
    assert torch.allclose(gains, net(junk.flatten(0, 1)).reshape(2, 6, 2), atol=1e-9)


def test_the_layout_names_every_entry():
    layout = flat_layout(2, K)
    assert layout.size == 4 + K * 7 == _net().arch["obs_dim"]
    assert layout.names[:5] == ["goal_offset.x", "goal_offset.y", "velocity.x", "velocity.y",
                                "edge0.offset.x"]
    assert layout.names[-1] == f"mask.{K - 1}" and len(set(layout.names)) == layout.size


def test_the_actor_critic_squashes_only_its_deterministic_actor():
    model = GNNActorCritic(4, 6, K, hidden=16)
    obs = flat_observation(_moving_state(), CONFIG, K).flatten(0, 1).float()
    raw = model.actor(obs)
    action, log_prob, value = model.act(obs)
    assert action.shape == raw.shape == (12, 2) and log_prob.shape == value.shape == (12,)
    gains = model.deterministic_actor()(obs)
    assert torch.allclose(gains, 0.25 + 3.75 * torch.sigmoid(4 * raw.clamp(-1, 1)))


def test_an_untrained_tuner_can_start_at_given_gains():
    # The head's small random weights (orthogonal, gain 0.01) move each gain by up to 0.08 (50 seeds).
    torch.manual_seed(0)
    obs = flat_observation(_moving_state(), CONFIG, K).flatten(0, 1).float()
    plain = GNNActorCritic(4, 6, K, hidden=16).deterministic_actor()(obs)
    assert torch.allclose(plain, torch.full_like(plain, 0.25 + 3.75 / 2), atol=0.15)  # mid-range
    started = GNNActorCritic(4, 6, K, hidden=16, init_out=[3.8, 1.0]).deterministic_actor()(obs)
    assert torch.allclose(started, torch.tensor([3.8, 1.0]).expand_as(started), atol=0.15)
    with pytest.raises(ValueError, match="outside"):  # a clipped action cannot reach the bound itself
        GNNActorCritic(4, 6, K, init_out=[4.0, 1.0])


def test_save_load_and_onnx_export_give_the_same_gains(tmp_path):
    net = _net().float().eval()
    meta = {"task": "online_cbf", "observation": flat_layout(2, K).card_entries(),
            "action": [{"name": "k1", "unit": "1/s"}, {"name": "k2", "unit": "1/s"}],
            "action_clip": [0.25, 4.0]}
    save_policy(tmp_path / "policy.pt", net, meta)
    loaded, _ = load_policy(tmp_path / "policy.pt")
    obs = flat_observation(_moving_state(), CONFIG, K).flatten(0, 1).float()
    assert torch.equal(loaded(obs), net(obs))
    card = export_onnx(loaded, meta, tmp_path / "policy.onnx", steps=50)
    assert card["onnx"]["opset"] <= 17 and card["export"]["equivalence"]["max_abs_error"] < 1e-5
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    ops = {node.op_type for node in __import__("onnx").load(str(tmp_path / "policy.onnx")).graph.node}
    assert not ops & {"ReduceSum", "ReduceMean", "ReduceMax", "Loop", "If"}, ops
    for row in obs[:4]:
        out = session.run(None, {"obs": row[None].numpy()})[0]
        assert np.abs(out - net(row[None]).detach().numpy()).max() < 1e-5


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="k_min < k_max"):
        GainGNN(4, 6, K, k_min=2.0, k_max=1.0)
