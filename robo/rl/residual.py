"""Residual RL on a frozen base policy (ResiP, Ankile et al. 2024): the environment the residual sees.

:class:`ResidualEnv` wraps a :mod:`robo.rl.vec_env` environment and a frozen base so that any on-policy
runner trains the residual alone::

    residual obs  = [normalize_obs(obs), normalize_action(base(obs))]
    env action    = unnormalize_action(normalize_action(base(obs)) + scale * residual)

Everything happens in the base's normalised action space ([-1, 1] per channel), so ``scale = 0.1``
bounds the correction to a tenth of each channel's demonstrated range whatever its unit (metres, 6D
rotation, gripper). The base is any callable ``obs -> action`` with ``reset(rows)`` that forgets the
rows whose episodes ended (a chunk queue); it is queried once per step, for the observation the
residual is about to act on. A truncated episode's ``final_observation`` is paired with the base action
just executed (the queue's next one belongs to the reset episode). :attr:`episodes` and
:attr:`successes` count the episodes that ended and those that ended terminated (the sparse task's
success), so a trainer can log what fraction of its exploring rollouts succeed.

``channels`` (default all) are the action channels the residual corrects: its action has one entry per
listed channel and the others are the base's alone, so neither exploration noise nor policy-gradient
noise reaches channels the task does not need corrected.

``hold_steps=k`` (default 1) holds each residual action for ``k`` environment steps: one ``step`` of the
wrapper is one residual *decision* applied on top of ``k`` fresh base actions (the base is still queried
every step), its reward the sum over them. Exploration noise sampled once per decision is then held
too, so it displaces the end effector's target for ``k`` steps instead of jittering it every step, and
PPO's likelihood stays exact: the held sample IS the one action the policy chose (no per-step
log-probabilities of correlated noise). A row whose episode ends inside a block runs its next
episode's first steps on the base alone (residual 0) until the block ends; those steps belong to no
decision (their rewards are dropped, their episodes still counted), and the ended row reports its end
(reward, terminated or truncated, ``final_observation``) at the block's end.

``bootstrap_truncated=False`` reports a truncated episode (time limit, unstable physics) as terminated:
a runner then gives it no bootstrap value, so an episode that ran out of time is worth 0 (a failure of
the finite-horizon task) instead of the critic's estimate of finishing later. With bootstrapping, a
critic that learns "eventually succeeds" makes failed and successful episodes' returns nearly equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from robo.rl.vec_env import StepResult, VecEnv


class BaseActor(Protocol):
    def __call__(self, obs: torch.Tensor) -> torch.Tensor: ...

    def reset(self, rows: torch.Tensor | np.ndarray | None = None) -> None: ...


Transform = Callable[[torch.Tensor], torch.Tensor]


class ResidualEnv:
    """``env`` seen by a residual policy on top of ``base`` (see the module docstring)."""

    def __init__(self, env: VecEnv, base: BaseActor, normalize_obs: Transform, normalize_action: Transform,
                 unnormalize_action: Transform, scale: float = 0.1, bootstrap_truncated: bool = True,
                 hold_steps: int = 1, channels: Sequence[int] | None = None):
        if not scale > 0:
            raise ValueError(f"residual scale must be > 0, got {scale}")
        if hold_steps < 1:
            raise ValueError(f"residual hold_steps must be >= 1, got {hold_steps}")
        channels = list(range(env.action_size)) if channels is None else list(channels)
        if not channels or len(set(channels)) != len(channels) or not all(
                0 <= c < env.action_size for c in channels):
            raise ValueError(f"residual channels must be distinct indices of the {env.action_size} action "
                             f"channels, got {channels}")
        self.env, self.base, self.scale, self.hold_steps = env, base, scale, hold_steps
        self.channels = channels
        self.bootstrap_truncated = bootstrap_truncated
        self.normalize_obs, self.normalize_action = normalize_obs, normalize_action
        self.unnormalize_action = unnormalize_action
        self.num_envs = env.num_envs
        self.action_size = len(channels)
        self.observation_size = env.observation_size + env.action_size
        self.base_action = torch.zeros(env.num_envs, env.action_size)  # normalised, for the current obs
        self.episodes = self.successes = 0

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.base_action = self.normalize_action(self.base(obs))
            return torch.cat([self.normalize_obs(obs), self.base_action], dim=-1)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        self.base.reset()
        return self.observe(obs), info

    def combined_action(self, residual: torch.Tensor) -> torch.Tensor:
        """The environment action for the current observations: base plus the scaled residual."""
        correction = torch.zeros_like(self.base_action)
        correction[:, self.channels] = residual  # the channels the residual does not correct stay 0
        return self.unnormalize_action(self.base_action + self.scale * correction)

    def step(self, residual: torch.Tensor) -> StepResult:
        residual = residual.detach()
        obs, reward, terminated, truncated, info = self._step_once(residual)
        final = info.get("final_observation")
        for _ in range(self.hold_steps - 1):
            ended = terminated | truncated
            held = torch.where(ended[:, None], 0.0, residual) if bool(ended.any()) else residual
            obs, r, term, trunc, info = self._step_once(held)
            reward = reward + torch.where(ended, 0.0, r)
            fresh = (term | trunc) & ~ended
            if bool(fresh.any()):
                final = final.clone()
                final[fresh] = info["final_observation"][fresh]
                terminated, truncated = terminated | (term & fresh), truncated | (trunc & fresh)
        if final is not None:
            info = {**info, "final_observation": final}
        if not self.bootstrap_truncated:
            terminated, truncated = terminated | truncated, torch.zeros_like(truncated)
        return obs, reward, terminated, truncated, info

    def _step_once(self, residual: torch.Tensor) -> StepResult:
        """One environment step of base + ``residual``; the residual's view of what it returns."""
        executed = self.base_action
        obs, reward, terminated, truncated, info = self.env.step(self.combined_action(residual))
        done = terminated | truncated
        self.episodes += int(done.sum())
        self.successes += int(terminated.sum())
        self.base.reset(torch.nonzero(done).flatten())
        if "final_observation" in info:
            info = {**info, "final_observation": torch.cat(
                [self.normalize_obs(info["final_observation"]), executed], dim=-1)}
        return self.observe(obs), reward, terminated, truncated, info
