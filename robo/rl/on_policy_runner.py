"""The on-policy loop (rsl_rl's ``OnPolicyRunner``): collect, GAE, PPO epochs, log, checkpoint.

One iteration::

    for t in range(T):                               # every environment steps together
        a ~ pi(normalize(obs)); env.step(clip(a, -1, 1))
        store (obs, a, log pi(a), V(obs), r, terminated, truncated, V(final_observation) if truncated)
    GAE(gamma, lambda) from V(obs after step T)
    num_epochs x num_minibatches PPO steps on the T x N samples

The environment follows :mod:`robo.rl.vec_env` (same-step autoreset: a truncated episode is
bootstrapped from ``info["final_observation"]``). The sampled action is stored unclipped, so PPO
scores exactly what was drawn; the environment gets it clipped to [-1, 1].

A checkpoint holds everything the next iteration reads: the model (with the observation statistics),
Adam and the adapted learning rate, the iteration, the random generator, the current observations and
unfinished episodes, the environment's ``state_dict`` when it has one, and the logged history. A
resumed run then repeats the uninterrupted one exactly (same device and library versions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from robo.config import to_dict
from robo.files import save_torch
from robo.nets.actor_critic import ActorCritic
from robo.rl.checkpoint import NonFiniteLoss, load_checkpoint
from robo.rl.ppo import PPO, PPOConfig
from robo.rl.rollout_storage import RolloutStorage
from robo.rl.vec_env import VecEnv, final_observation

FORMAT = "robo-ppo-runner/1"
# Keys a resumed run may change: how long it runs and how often it saves.
RESUMABLE_CHANGES = ("iterations", "checkpoint_interval")


@dataclass
class OnPolicyConfig:
    iterations: int = 1500
    num_steps: int = 24  # environment steps per iteration (rsl_rl's num_steps_per_env)
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    activation: Literal["tanh", "relu"] = "tanh"
    init_std: float = 1.0
    learn_std: bool = True  # False: the exploration noise stays at init_std
    actor_head_gain: float = 0.01  # of the policy's last layer; 0: every mean action starts at exactly 0
    normalize_observations: bool = False
    episode_window: int = 100  # completed episodes the logged mean return and length cover
    checkpoint_interval: int = 50  # iterations

    def __post_init__(self) -> None:
        for name in ("iterations", "num_steps", "init_std", "episode_window", "checkpoint_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"runner.{name} must be > 0, got {getattr(self, name)}")
        if not self.actor_head_gain >= 0:
            raise ValueError(f"runner.actor_head_gain must be >= 0, got {self.actor_head_gain}")
        if any(h <= 0 for h in (*self.actor_hidden, *self.critic_hidden)):
            raise ValueError("runner.actor_hidden and runner.critic_hidden sizes must be > 0")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"runner.activation must be 'tanh' or 'relu', got {self.activation!r}")


class OnPolicyRunner:
    """Train one :class:`ActorCritic` with PPO on ``env`` (all ``env.num_envs`` rows are one agent).

    ``on_log(stats)`` is called after every iteration with that iteration's numbers (also appended to
    :attr:`history`); ``checkpoint`` is written every ``checkpoint_interval`` iterations and at the end.
    ``model()`` builds another :class:`ActorCritic` (a graph network, say) instead of the MLP one that
    ``config``'s sizes describe; it is called under the run's seed.
    """

    def __init__(self, env: VecEnv, ppo: PPOConfig, config: OnPolicyConfig, *,
                 device: torch.device | str = "cpu", seed: int = 0, checkpoint: str | Path | None = None,
                 on_log: Callable[[dict[str, float]], None] | None = None,
                 model: Callable[[], ActorCritic] | None = None):
        self.env, self.config, self.seed = env, config, seed
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.on_log = on_log
        # The initial weights depend on the seed only, not on whatever used the global generator before.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            built = model() if model is not None else ActorCritic(
                env.observation_size, env.action_size, config.actor_hidden, config.critic_hidden,
                config.activation, config.init_std, config.normalize_observations, config.actor_head_gain,
                config.learn_std)
            self.model = built.to(self.device)
        self.ppo = PPO(self.model, ppo)
        self.storage = RolloutStorage(config.num_steps, env.num_envs, env.observation_size, env.action_size,
                                      device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.iteration = 0
        self.obs = env.reset(seed=seed)[0].to(self.device)
        self.episode_return = torch.zeros(env.num_envs, device=self.device)
        self.episode_length = torch.zeros(env.num_envs, device=self.device)
        self.recent_returns: list[float] = []  # the last `episode_window` completed episodes
        self.recent_lengths: list[float] = []
        self.history: list[dict[str, float]] = []

    # ----- the loop ------------------------------------------------------------------------
    def run(self, until: int | None = None, progress: Callable[[int], None] | None = None
            ) -> list[dict[str, float]]:
        """Train to iteration ``until`` (default ``config.iterations``); ``progress(n)`` gets the
        number of environment steps (transitions, all environments) each iteration added."""
        stop = self.config.iterations if until is None else min(until, self.config.iterations)
        while self.iteration < stop:
            episodes = self.collect()
            try:
                losses = self.ppo.update(self.storage.minibatches(
                    self.ppo.config.num_minibatches, self.ppo.config.num_epochs, self.generator))
            except NonFiniteLoss as exc:
                where = f"; last good checkpoint: {self.checkpoint}" if self.checkpoint is not None else ""
                raise NonFiniteLoss(f"{exc} in iteration {self.iteration + 1}, stopping{where}") from None
            self.iteration += 1
            self.log(episodes, losses)
            if self.checkpoint is not None and self.iteration % self.config.checkpoint_interval == 0:
                self.save(self.checkpoint)
            if progress is not None:
                progress(self.config.num_steps * self.env.num_envs)
        if self.checkpoint is not None:
            self.save(self.checkpoint)
        return self.history

    @torch.no_grad()
    def collect(self) -> int:
        """Fill the rollout storage and compute its returns; the number of episodes that ended."""
        model, storage = self.model, self.storage
        storage.clear()
        ended = 0
        for _ in range(self.config.num_steps):
            obs = model.normalize(self.obs, update=True)
            action, log_prob, value = model.act(obs, self.generator)
            next_obs, reward, terminated, truncated, info = self.env.step(action.clamp(-1.0, 1.0))
            final_value = torch.zeros_like(value)
            if bool(truncated.any()):
                last = final_observation(next_obs, terminated | truncated, info).to(self.device)
                final_value = torch.where(truncated.to(self.device), model.value(model.normalize(last)), 0.0)
            next_obs, reward = next_obs.to(self.device), reward.to(self.device)
            terminated, truncated = terminated.to(self.device), truncated.to(self.device)
            done = terminated | truncated
            storage.add(obs, action, log_prob, value, reward, terminated, truncated, final_value)
            self.obs = next_obs
            ended += self._count_episodes(reward, done)
        last_value = model.value(model.normalize(self.obs))
        storage.compute_returns(last_value, self.ppo.config.gamma, self.ppo.config.lam)
        return ended

    def _count_episodes(self, reward: torch.Tensor, done: torch.Tensor) -> int:
        self.episode_return += reward
        self.episode_length += 1
        if not bool(done.any()):
            return 0
        window = self.config.episode_window
        self.recent_returns = (self.recent_returns + self.episode_return[done].tolist())[-window:]
        self.recent_lengths = (self.recent_lengths + self.episode_length[done].tolist())[-window:]
        self.episode_return = torch.where(done, 0.0, self.episode_return)
        self.episode_length = torch.where(done, 0.0, self.episode_length)
        return int(done.sum())

    def log(self, episodes: int, losses: dict[str, float]) -> None:
        n = len(self.recent_returns)
        stats = {"iteration": self.iteration,
                 "env_steps": self.iteration * self.config.num_steps * self.env.num_envs,
                 "mean_return": sum(self.recent_returns) / n if n else float("nan"),
                 "mean_length": sum(self.recent_lengths) / n if n else float("nan"),
                 "episodes": episodes, **losses,
                 "action_std": float(self.model.log_std.detach().exp().mean())}
        self.history.append(stats)
        if self.on_log is not None:
            self.on_log(stats)

    # ----- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "iteration": self.iteration, "num_envs": self.env.num_envs,
                "ppo_config": to_dict(self.ppo.config), "runner_config": to_dict(self.config),
                "model": self.model.state_dict(), "ppo": self.ppo.state_dict(),
                "generator": self.generator.get_state(), "obs": self.obs,
                "episode_return": self.episode_return, "episode_length": self.episode_length,
                "recent_returns": list(self.recent_returns), "recent_lengths": list(self.recent_lengths),
                "history": list(self.history),
                "env": self.env.state_dict() if hasattr(self.env, "state_dict") else None}

    def save(self, path: str | Path) -> Path:
        """The whole training state, written atomically (temporary file + rename)."""
        return save_torch(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Continue from :meth:`save`'s file; refuses one written for other settings, naming them."""
        state = load_checkpoint(path, format=FORMAT)
        if state["num_envs"] != self.env.num_envs:
            raise ValueError(f"{path}: checkpoint ran {state['num_envs']} environments, this run has "
                             f"{self.env.num_envs}")
        changed = [f"ppo.{k}" for k, v in to_dict(self.ppo.config).items() if state["ppo_config"].get(k) != v]
        changed += [f"runner.{k}" for k, v in to_dict(self.config).items()
                    if k not in RESUMABLE_CHANGES and state["runner_config"].get(k) != v]
        if changed:
            raise ValueError(f"{path}: checkpoint was trained with other settings: {', '.join(changed)}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: model weights do not match this run ({exc})") from None
        self.ppo.load_state_dict(state["ppo"])
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self.recent_returns = list(state["recent_returns"])
        self.recent_lengths = list(state["recent_lengths"])
        self.history = list(state["history"])
        if state["env"] is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
            self.obs = state["obs"].to(self.device)
            self.episode_return = state["episode_return"].to(self.device)
            self.episode_length = state["episode_length"].to(self.device)
        else:  # the environment cannot be restored: start fresh episodes
            self.obs = self.env.reset(seed=self.seed + self.iteration)[0].to(self.device)
            self.episode_return.zero_()
            self.episode_length.zero_()

