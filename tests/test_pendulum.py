"""Batched pendulum: Gymnasium's Pendulum-v1 numbers per environment, autoreset, state round trip."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from sim.pendulum import PendulumConfig, PendulumEnv


def test_matches_gymnasium_pendulum_per_environment() -> None:
    masses, lengths = [1.0, 0.7, 1.4], [1.0, 1.3, 0.8]
    env = PendulumEnv(masses, lengths, dtype=torch.float64, seed=3)
    env.reset()
    refs = []
    for k in range(3):
        ref = gym.make("Pendulum-v1").unwrapped
        ref.reset(seed=0)
        ref.m, ref.l = masses[k], lengths[k]
        ref.state = np.array([env.angle[k].item(), env.omega[k].item()])
        refs.append(ref)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.uniform(-1.2, 1.2, size=(3, 1))  # beyond +-1 checks the clamp as well
        obs, reward, terminated, truncated, _ = env.step(torch.as_tensor(a))
        for k, ref in enumerate(refs):
            ref_obs, ref_reward, *_ = ref.step(np.clip(a[k], -1, 1) * 2.0)
            np.testing.assert_allclose(obs[k].numpy(), ref_obs, atol=1e-5)
            assert reward[k].item() == pytest.approx(float(ref_reward), abs=1e-5)
        assert not terminated.any() and not truncated.any()


def test_different_pendulums_respond_differently() -> None:
    env = PendulumEnv([1.0, 3.0], [1.0, 1.0], seed=0)
    env.reset()
    env.angle[:] = 0.5
    env.omega[:] = 0.0
    obs, *_ = env.step(torch.ones(2, 1))
    # The same torque accelerates the heavier pendulum less.
    assert obs[0, 2] > obs[1, 2] > 0


def test_same_step_autoreset_keeps_the_final_observation() -> None:
    env = PendulumEnv([1.0, 1.0], [1.0, 1.0], PendulumConfig(episode_steps=5), seed=1)
    env.reset()
    for t in range(5):
        obs, _, terminated, truncated, info = env.step(torch.zeros(2, 1))
        if t < 4:
            assert not truncated.any() and "final_observation" not in info
    assert truncated.all() and not terminated.any()
    assert info["episode_steps"].tolist() == [5, 5]
    assert env.steps.tolist() == [0, 0]
    torch.testing.assert_close(obs, env.observe())  # the new episode's first observation
    assert not torch.allclose(info["final_observation"], obs)


def test_state_dict_continues_identically() -> None:
    a = PendulumEnv([1.0, 0.5], [1.0, 2.0], PendulumConfig(episode_steps=7), seed=5)
    a.reset()
    for _ in range(3):
        a.step(torch.full((2, 1), 0.3))
    state = a.state_dict()
    b = PendulumEnv([1.0, 0.5], [1.0, 2.0], PendulumConfig(episode_steps=7), seed=99)
    b.load_state_dict(state)
    for _ in range(10):  # crosses an autoreset, so the random generator is compared too
        oa, ra, *_ = a.step(torch.full((2, 1), -0.2))
        ob, rb, *_ = b.step(torch.full((2, 1), -0.2))
        assert torch.equal(oa, ob) and torch.equal(ra, rb)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="lengths"):
        PendulumEnv([1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="> 0"):
        PendulumEnv([1.0, -1.0], [1.0, 1.0])
    env = PendulumEnv([1.0], [1.0])
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 1))
