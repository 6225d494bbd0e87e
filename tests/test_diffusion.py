"""robo.nets.diffusion (DP ConditionalUnet1D) and robo.rl.diffusion_bc (DDPM training, DDIM sampling,
the chunk queue): small networks, real diffusers schedulers."""

from __future__ import annotations

import pytest
import torch

from robo.nets.diffusion import DiffusionPolicy
from robo.nets.policy import load_policy, save_policy
from robo.rl.diffusion_bc import (
    ChunkedPolicy,
    DDIMSampler,
    DiffusionBC,
    DiffusionConfig,
    build_policy,
    windows,
)

SMALL = {"down_dims": [16, 32], "step_embed_dim": 16, "pred_horizon": 8, "batch_size": 64, "warmup_steps": 10,
         "gradient_steps": 200}


def small_policy(obs_dim: int = 3, act_dim: int = 2, **overrides) -> tuple[DiffusionPolicy, DiffusionConfig]:
    config = DiffusionConfig(**{**SMALL, **overrides})
    return build_policy(config, obs_dim, act_dim), config


def test_unet_shapes_and_paper_size():
    policy, _ = small_policy()
    out = policy(torch.randn(5, 8, 2), torch.tensor([3, 4, 5, 6, 7]), torch.randn(5, 3))
    assert out.shape == (5, 8, 2)
    paper = DiffusionPolicy(21, 10)  # down dims 256/512/1024, kernel 5, GroupNorm 8
    params = sum(p.numel() for p in paper.parameters())
    assert 60e6 < params < 70e6  # the paper's 66M-parameter base
    with pytest.raises(ValueError, match=r"^pred_horizon: 30 is not divisible by 4"):
        DiffusionPolicy(21, 10, pred_horizon=30)


def test_policy_round_trips_through_the_registry_with_its_bounds(tmp_path):
    policy, _ = small_policy()
    obs = torch.tensor([[0.0, 1.0, 2.0], [2.0, 3.0, 2.0]])
    policy.fit_normalizer(obs, torch.tensor([[[-1.0, 5.0]], [[3.0, 5.0]]]))
    # to [-1, 1]; a constant value (the closed gripper) maps to 0
    normalized = policy.normalize_obs(torch.tensor([[1.0, 3.0, 2.0]]))
    assert torch.allclose(normalized, torch.tensor([[0.0, 1.0, 0.0]]))
    acts = torch.tensor([[-1.0, 5.0], [1.0, 5.0]])
    assert torch.allclose(policy.unnormalize_actions(policy.normalize_actions(acts)), acts)
    save_policy(tmp_path / "p.pt", policy, {"task": "t"})
    back, meta = load_policy(tmp_path / "p.pt")
    assert isinstance(back, DiffusionPolicy) and meta["task"] == "t" and float(back.fitted) == 1.0
    assert torch.equal(back.act_max, policy.act_max)


def test_sampler_refuses_a_policy_without_normalisation():
    policy, _ = small_policy()
    with pytest.raises(ValueError, match="normalisation statistics are missing"):
        DDIMSampler(policy, 4)


def test_zero_start_noise_gives_one_chunk_per_observation():
    policy, _ = small_policy(obs_dim=3, act_dim=2)
    policy.fit_normalizer(torch.randn(10, 3), torch.randn(10, 1, 2))
    obs = torch.randn(2, 3)
    chunk = lambda scale, seed: DDIMSampler(policy, 4, noise_scale=scale)(  # noqa: E731
        obs, torch.Generator().manual_seed(seed))
    assert torch.equal(chunk(0.0, 1), chunk(0.0, 2))  # no noise left: the seed no longer matters
    assert not torch.equal(chunk(1.0, 1), chunk(1.0, 2))
    assert not torch.equal(chunk(0.5, 1), chunk(1.0, 1))
    with pytest.raises(ValueError, match=r"noise_scale: must be in \[0, 1\], got 1.5"):
        DDIMSampler(policy, 4, noise_scale=1.5)


def test_windows_repeat_the_last_action_past_the_end():
    obs, act = windows([(torch.zeros(3, 1).numpy(), torch.arange(3.0)[:, None].numpy())], pred_horizon=4)
    assert obs.shape == (3, 1) and act.shape == (3, 4, 1)
    assert act[1, :, 0].tolist() == [1, 2, 2, 2]


def test_ddpm_training_learns_an_observation_dependent_chunk():
    # Two observations, each with its own constant action chunk: after training, DDIM sampling returns
    # a chunk near the right one for each (an untrained network returns noise around zero).
    torch.manual_seed(0)
    policy, config = small_policy(obs_dim=1, act_dim=2, lr=3e-3, gradient_steps=300, batch_size=32)
    obs = torch.tensor([[-1.0], [1.0]]).repeat(16, 1)
    targets = {-1.0: torch.tensor([0.5, -0.5]), 1.0: torch.tensor([-0.5, 0.5])}
    actions = torch.stack([targets[float(o)].expand(8, 2) for o in obs[:, 0]])
    policy.fit_normalizer(obs, actions * 1.5)
    bc = DiffusionBC(policy, config)
    generator = torch.Generator().manual_seed(0)
    losses = [bc.train_step(obs, actions, generator) for _ in range(config.gradient_steps)]
    assert sum(losses[-20:]) / 20 < 0.3 * sum(losses[:20]) / 20
    sampler = DDIMSampler(policy, 16)
    chunks = sampler(torch.tensor([[-1.0], [1.0]]), torch.Generator().manual_seed(1))
    assert chunks.shape == (2, 8, 2)
    for chunk, sign in ((chunks[0], -1.0), (chunks[1], 1.0)):
        mean, right, wrong = chunk.mean(0), targets[sign], targets[-sign]
        assert (mean - right).norm() < 0.4 < (mean - wrong).norm()


def test_chunk_queue_executes_action_horizon_steps_and_is_seeded():
    policy, _ = small_policy(obs_dim=3, act_dim=2)
    policy.fit_normalizer(torch.randn(10, 3), torch.randn(10, 1, 2))
    obs = torch.randn(3, 3)

    def run(seed: int) -> tuple[torch.Tensor, int]:
        act = ChunkedPolicy(DDIMSampler(policy, 4), num_envs=3, action_horizon=4, seed=seed)
        out = [act(obs) for _ in range(5)]
        act.reset([1])
        out.append(act(obs))
        return torch.stack(out), act.chunks

    a, chunks = run(0)
    b, _ = run(0)
    assert torch.equal(a, b)  # deterministic from the seed
    assert chunks == 3 + 3 + 1  # a chunk per row at steps 0 and 4, one more for the row that was reset
    assert not torch.equal(a[0], a[1])  # steps within a chunk differ (a sampled trajectory)
    assert not torch.equal(run(1)[0], a)


def test_relative_chunks_round_trip_and_shrink_the_normalised_range():
    # Targets 1 cm ahead of a tool anywhere in a 1 m workspace: relative to the tool they span 2 cm.
    policy = DiffusionPolicy(3, 2, pred_horizon=4, down_dims=(16, 32), step_embed_dim=16, relative_obs=(0, 1))
    obs = torch.rand(64, 3)
    chunks = obs[:, None, :2] + 0.01 * torch.randn(64, 4, 2).clamp(-1, 1)
    policy.fit_normalizer(obs, chunks)
    encoded = policy.encode_chunk(chunks, obs)
    assert encoded.abs().max() <= 1 + 1e-5
    assert torch.allclose(policy.decode_chunk(encoded, obs), chunks, atol=1e-6)
    span = policy.chunk_max - policy.chunk_min
    assert float(span[0]) < 0.03 < float(policy.act_max[0] - policy.act_min[0])
    with pytest.raises(ValueError, match=r"^relative_obs: \[5\] must be"):
        DiffusionPolicy(3, 2, pred_horizon=4, down_dims=(16, 32), relative_obs=(5,))
