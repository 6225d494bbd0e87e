"""Rollout storage: GAE against a forward-sum reference with terminations and truncations, the runner
bootstraps from info["final_observation"], minibatches cover each sample once per epoch."""

from __future__ import annotations

import pytest
import torch

from robo.rl.on_policy_runner import OnPolicyConfig, OnPolicyRunner
from robo.rl.ppo import PPOConfig
from robo.rl.rollout_storage import RolloutStorage
from sim.pendulum import PendulumConfig, PendulumEnv

torch.set_num_threads(1)


def random_rollout(t: int = 40, n: int = 6, seed: int = 0) -> tuple[RolloutStorage, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    storage = RolloutStorage(t, n, obs_size=3, act_size=2)
    for _ in range(t):
        ended = torch.rand(n, generator=g) < 0.15
        terminated = ended & (torch.rand(n, generator=g) < 0.5)
        truncated = ended & ~terminated
        final_values = torch.where(truncated, torch.randn(n, generator=g) * 5, 0.0)
        obs, actions = torch.randn(n, 3, generator=g), torch.randn(n, 2, generator=g)
        log_probs, values, rewards = torch.randn(3, n, generator=g)
        storage.add(obs, actions, log_probs, values, rewards, terminated, truncated, final_values)
    return storage, torch.randn(n, generator=g)


def reference_advantages(s: RolloutStorage, last_values: torch.Tensor, gamma: float, lam: float
                         ) -> torch.Tensor:
    """A_t = sum_k (gamma lam)^k delta_{t+k} up to the end of t's episode, summed forwards per env."""
    t_max, n = s.rewards.shape
    out = torch.zeros(t_max, n, dtype=torch.float64)
    for env in range(n):
        for t in range(t_max):
            total, weight = 0.0, 1.0
            for k in range(t, t_max):
                if s.terminated[k, env]:
                    next_value = 0.0
                elif s.truncated[k, env]:
                    next_value = float(s.final_values[k, env])
                elif k + 1 < t_max:
                    next_value = float(s.values[k + 1, env])
                else:
                    next_value = float(last_values[env])
                delta = float(s.rewards[k, env]) + gamma * next_value - float(s.values[k, env])
                total += weight * delta
                if s.terminated[k, env] or s.truncated[k, env]:
                    break
                weight *= gamma * lam
            out[t, env] = total
    return out


def test_gae_matches_a_forward_sum_over_episodes() -> None:
    storage, last_values = random_rollout()
    assert bool(storage.terminated.any()) and bool(storage.truncated.any())
    storage.compute_returns(last_values, gamma=0.97, lam=0.9)
    expected = reference_advantages(storage, last_values, 0.97, 0.9)
    torch.testing.assert_close(storage.advantages.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(storage.returns, storage.advantages + storage.values)


def test_truncation_bootstraps_from_the_final_value_and_termination_does_not() -> None:
    one = torch.ones(2)
    storage = RolloutStorage(1, 2, obs_size=1, act_size=1)
    # env 0 truncated with V(final observation) = 10; env 1 terminated with the same (ignored) value
    storage.add(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2), torch.zeros(2), one,
                torch.tensor([False, True]), torch.tensor([True, False]), torch.tensor([10.0, 10.0]))
    storage.compute_returns(last_values=torch.full((2,), 100.0), gamma=0.9, lam=0.95)
    assert storage.advantages[0].tolist() == pytest.approx([1 + 0.9 * 10, 1.0])


class FinalObservationSpy:
    """A real pendulum that remembers what each step put in info["final_observation"]."""

    def __init__(self, env: PendulumEnv):
        self.env = env
        self.num_envs, self.observation_size, self.action_size = env.num_envs, 3, 1
        self.finals: list[torch.Tensor | None] = []
        self.returned: list[torch.Tensor] = []

    def reset(self, seed: int | None = None):
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.finals.append(info.get("final_observation"))
        self.returned.append(obs)
        return obs, reward, terminated, truncated, info


def test_runner_bootstraps_a_truncated_episode_from_its_final_observation() -> None:
    env = FinalObservationSpy(PendulumEnv([1.0, 1.2], [1.0, 0.9], PendulumConfig(episode_steps=5), seed=3))
    runner = OnPolicyRunner(env, PPOConfig(), OnPolicyConfig(num_steps=12))
    runner.collect()
    s = runner.storage
    truncated_steps = s.truncated.any(1).nonzero()[:, 0].tolist()
    assert truncated_steps == [4, 9]
    with torch.no_grad():
        for t in truncated_steps:
            expected = runner.model.value(env.finals[t])
            reset_value = runner.model.value(env.returned[t])
            torch.testing.assert_close(s.final_values[t], expected)
            assert not torch.allclose(s.final_values[t], reset_value)
    assert float(s.final_values[~s.truncated].abs().max()) == 0.0


def test_minibatches_cover_every_sample_once_per_epoch() -> None:
    t, n = 8, 5
    storage = RolloutStorage(t, n, obs_size=1, act_size=1)
    for step in range(t):
        ids = torch.arange(step * n, step * n + n, dtype=torch.float32)
        zero = torch.zeros(n)
        storage.add(ids[:, None], zero[:, None], zero, zero, zero, zero.bool(), zero.bool(), zero)
    storage.compute_returns(torch.zeros(n), 0.99, 0.95)

    def epochs(seed: int) -> list[list[int]]:
        batches = list(storage.minibatches(3, 2, torch.Generator().manual_seed(seed)))
        assert len(batches) == 6 and {len(b["obs"]) for b in batches} <= {13, 14}
        ids = [b["obs"][:, 0].long() for b in batches]
        return [torch.cat(ids[:3]).tolist(), torch.cat(ids[3:]).tolist()]

    first, second = epochs(0)
    assert sorted(first) == sorted(second) == list(range(t * n))
    assert first != second  # each epoch is a fresh shuffle
    assert epochs(0) == [first, second]  # the generator decides the order
    assert epochs(1) != [first, second]


def test_storage_refuses_misuse() -> None:
    storage, last_values = random_rollout(t=2, n=1)
    names = ("obs", "actions", "log_probs", "values", "rewards", "terminated", "truncated", "final_values")
    with pytest.raises(RuntimeError, match="full"):
        storage.add(*(getattr(storage, name)[0] for name in names))
    storage.clear()
    with pytest.raises(RuntimeError, match="needs a full rollout"):
        storage.compute_returns(last_values, 0.99, 0.95)
    with pytest.raises(ValueError, match="cannot split 2 samples into 3 minibatches"):
        next(storage.minibatches(3, 1, torch.Generator()))
