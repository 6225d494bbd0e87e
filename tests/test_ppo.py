"""PPO: learns the batched pendulum swing-up, config errors name the key, resume == uninterrupted run,
a non-finite loss stops training before it reaches the weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robo.config import ConfigError, load_config
from robo.rl.checkpoint import NonFiniteLoss
from robo.rl.on_policy_runner import OnPolicyConfig, OnPolicyRunner
from robo.rl.ppo import PPOConfig
from sim.pendulum import PendulumConfig, PendulumEnv

torch.set_num_threads(1)

# Pendulum settings, measured over seeds 0-3 (80 iterations of 64 x 64 steps, 328k transitions, 20-50 s
# on a loaded 2-core machine): training mean return -357, -207, -209, -240; deterministic policy -387,
# -230, -253, -235. The reward is in raw units (returns of hundreds), so a shorter horizon (gamma 0.9,
# as RL Zoo's Pendulum PPO) keeps the values small, value clipping at 0.2 would slow the critic to a
# crawl at this scale, and a one-dimensional action needs no entropy bonus. With rsl_rl's desired_kl
# of 0.01 the learning rate swings to its ceiling and some seeds collapse late (-669 at 80 iterations).
PENDULUM_PPO = PPOConfig(gamma=0.9, clip_value=False, entropy_coef=0.0, desired_kl=0.005)
PENDULUM_RUN = OnPolicyConfig(iterations=80, num_steps=64, normalize_observations=True)
RANDOM_POLICY_RETURN = -1200.0  # about, per 200-step episode; Gymnasium's Pendulum-v1 "solved" is about -200


def pendulums(n: int, seed: int, mixed: bool = False, episode_steps: int = 200) -> PendulumEnv:
    config = PendulumConfig(episode_steps=episode_steps)
    if mixed:  # one policy for pendulums of different mass and length
        return PendulumEnv(torch.linspace(0.8, 1.2, n), torch.linspace(1.1, 0.9, n), config, seed=seed)
    return PendulumEnv([1.0] * n, [1.0] * n, config, seed=seed)


@torch.no_grad()
def deterministic_return(runner: OnPolicyRunner, env: PendulumEnv, seed: int = 123) -> float:
    """Mean return of one 200-step episode per environment with the exportable mean policy."""
    actor = runner.model.deterministic_actor()
    obs = env.reset(seed=seed)[0]
    total = torch.zeros(env.num_envs)
    for _ in range(env.config.episode_steps):
        obs, reward, *_ = env.step(actor(obs).clamp(-1.0, 1.0))
        total += reward
    return float(total.mean())


def test_ppo_learns_the_pendulum_swing_up() -> None:
    runner = OnPolicyRunner(pendulums(64, seed=0, mixed=True), PENDULUM_PPO, PENDULUM_RUN, seed=0)
    logged: list[dict[str, float]] = []
    runner.on_log = logged.append
    steps: list[int] = []
    history = runner.run(progress=steps.append)
    assert logged == history and len(history) == 80
    assert sum(steps) == history[-1]["env_steps"] == 80 * 64 * 64
    first = next(h["mean_return"] for h in history if h["episodes"] > 0)
    assert first < -900  # the untrained policy is near the random one
    assert history[-1]["mean_return"] > -500, history[-1]
    assert deterministic_return(runner, pendulums(32, seed=5, mixed=True)) > -500
    for key in ("policy_loss", "value_loss", "entropy", "kl", "clip_fraction", "learning_rate", "action_std"):
        assert key in history[-1]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"^ppo.clip must be > 0, got -1$"):
        PPOConfig(clip=-1)
    with pytest.raises(ValueError, match=r"ppo.gamma must be in \[0, 1\], got 1.5"):
        PPOConfig(gamma=1.5)
    with pytest.raises(ValueError, match=r"ppo\.entropy_coef must be >= 0"):
        PPOConfig(entropy_coef=-0.1)
    with pytest.raises(ValueError, match=r"runner\.num_steps must be > 0, got 0"):
        OnPolicyConfig(num_steps=0)
    with pytest.raises(ConfigError, match=r"ppo\.num_minibatches must be > 0"):
        load_config(PPOConfig, overrides=["num_minibatches=0"])
    with pytest.raises(ConfigError, match="'adaptive'"):
        load_config(PPOConfig, overrides=["schedule=cosine"])
    with pytest.raises(ConfigError, match="clip_valu"):
        load_config(PPOConfig, overrides=["clip_valu=false"])
    assert load_config(PPOConfig) == PPOConfig()


SMALL_RUN = OnPolicyConfig(iterations=4, num_steps=16, actor_hidden=(16,), critic_hidden=(16,),
                           normalize_observations=True, checkpoint_interval=2)
SMALL_PPO = PPOConfig(num_minibatches=2, num_epochs=2)


def small_runner(tmp_path, name: str) -> OnPolicyRunner:
    # 20-step episodes and 16-step rollouts: checkpoints fall inside episodes, and both halves of the
    # interrupted run see episodes end.
    env = pendulums(8, seed=3, mixed=True, episode_steps=20)
    return OnPolicyRunner(env, SMALL_PPO, SMALL_RUN, seed=1,
                          checkpoint=tmp_path / name / "ckpt.pt")


def comparable(history: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """NaN (no episode finished yet) as None, which equals itself."""
    return [{k: None if v != v else v for k, v in row.items()} for row in history]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path) -> None:
    straight = small_runner(tmp_path, "straight")
    straight.run()

    interrupted = small_runner(tmp_path, "resumed")
    interrupted.run(until=2)  # the runner saves at the end of run() and every 2 iterations
    resumed = small_runner(tmp_path, "resumed")
    resumed.load(tmp_path / "resumed" / "ckpt.pt")
    assert resumed.iteration == 2
    resumed.run()

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert resumed.model.obs_norm.count > 0  # the observation statistics were saved and restored too
    assert comparable(resumed.history) == comparable(straight.history)
    assert resumed.ppo.learning_rate == straight.ppo.learning_rate
    assert torch.equal(resumed.obs, straight.obs)
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == ["ckpt.pt"]  # no temporary files left


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path) -> None:
    runner = small_runner(tmp_path, "a")
    runner.save(tmp_path / "a.pt")
    other = OnPolicyRunner(pendulums(8, seed=3), dataclasses.replace(SMALL_PPO, clip=0.1, lam=0.9), SMALL_RUN)
    with pytest.raises(ValueError, match=r"other settings: ppo.clip, ppo.lam$"):
        other.load(tmp_path / "a.pt")
    fewer = OnPolicyRunner(pendulums(4, seed=3), SMALL_PPO, SMALL_RUN)
    with pytest.raises(ValueError, match="checkpoint ran 8 environments, this run has 4"):
        fewer.load(tmp_path / "a.pt")
    with pytest.raises(OSError, match="checkpoint not found"):
        fewer.load(tmp_path / "missing.pt")
    longer = OnPolicyRunner(pendulums(8, seed=3), SMALL_PPO, dataclasses.replace(SMALL_RUN, iterations=10))
    longer.load(tmp_path / "a.pt")  # running longer is the point of resuming


class NaNRewardAfter:
    """A real pendulum whose rewards turn NaN from step ``bad_step`` on (a diverging simulator)."""

    def __init__(self, env: PendulumEnv, bad_step: int):
        self.env, self.bad_step, self.steps = env, bad_step, 0
        self.num_envs, self.observation_size, self.action_size = env.num_envs, 3, 1

    def reset(self, seed: int | None = None):
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.bad_step:
            reward = torch.full_like(reward, float("nan"))
        return obs, reward, terminated, truncated, info


def test_a_non_finite_loss_stops_training_before_the_weights_change(tmp_path) -> None:
    runner = OnPolicyRunner(NaNRewardAfter(pendulums(8, seed=0), bad_step=40), PPOConfig(), SMALL_RUN,
                            checkpoint=tmp_path / "ckpt.pt")
    runner.run(until=2)
    good = {name: value.clone() for name, value in runner.model.named_parameters()}
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss .* in iteration 3, stopping; last good "
                                            r"checkpoint: .*ckpt.pt"):
        runner.run()
    for name, value in runner.model.named_parameters():
        assert torch.equal(value, good[name]), name
    assert runner.iteration == 2


def test_the_deterministic_actor_is_the_policy_mean_of_normalised_observations() -> None:
    runner = OnPolicyRunner(pendulums(8, seed=0), PPOConfig(), SMALL_RUN)
    runner.run(until=1)
    obs = torch.randn(5, 3)
    actor = runner.model.deterministic_actor()
    with torch.no_grad():
        expected = runner.model.actor(runner.model.normalize(obs))
        torch.testing.assert_close(actor(obs), expected)
    runner.run(until=2)  # a copy: training on does not move the exported policy
    with torch.no_grad():
        torch.testing.assert_close(actor(obs), expected)
        assert not torch.allclose(runner.model.deterministic_actor()(obs), expected)
