"""An environment whose action is a whole chunk of actions (PPO on an action-chunking policy).

:class:`ChunkEnv` wraps a :mod:`robo.rl.vec_env` environment: one action of the wrapper is a flat,
normalised chunk of ``predicted`` environment actions, decoded against the observation it was chosen
on, whose first ``executed`` actions run open loop; the wrapper's reward is the sum over them, so a
policy that predicts chunks (ResiP's MLP-BC baseline) is fine-tuned by any on-policy runner with its
chunks as the actions, as ResiP's authors do.

Rows of a batch end at different steps of a chunk. A row whose episode ends inside a chunk has been
reset by the environment (same-step autoreset); its remaining steps of that chunk hold the new
episode's start (``hold()``, e.g. the tip where it is) rather than replaying the old episode's plan
there, and their rewards belong to no decision. The ended row reports the end (reward, terminated or
truncated, ``final_observation``) at the chunk's end. ``bootstrap_truncated=False`` reports a truncated
episode as terminated, as :class:`robo.rl.residual.ResidualEnv` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from robo.rl.vec_env import StepResult, VecEnv


class ChunkEnv:
    """``env`` seen by a chunk policy (see the module docstring). ``normalize_obs(raw obs)`` is what the
    policy sees; ``decode(chunk [N, predicted, act] normalised, raw obs)`` gives the raw actions;
    ``hold()`` the ``[N, act]`` actions that keep every row where it is. ``executed`` defaults to the
    whole chunk."""

    def __init__(self, env: VecEnv, predicted: int, normalize_obs: Callable[[torch.Tensor], torch.Tensor],
                 decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 hold: Callable[[], torch.Tensor], executed: int | None = None,
                 bootstrap_truncated: bool = True):
        executed = predicted if executed is None else executed
        if not 1 <= executed <= predicted:
            raise ValueError(f"chunks: executed actions {executed} must be in [1, predicted {predicted}]")
        self.env, self.predicted, self.executed = env, predicted, executed
        self.normalize_obs, self.decode, self.hold = normalize_obs, decode, hold
        self.bootstrap_truncated = bootstrap_truncated
        self.num_envs = env.num_envs
        self.observation_size = env.observation_size
        self.action_size = predicted * env.action_size
        self.raw = torch.zeros(env.num_envs, env.observation_size)  # the observation the next chunk acts on
        self.episodes = self.successes = 0

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        self.raw, info = self.env.reset(seed=seed)
        return self.normalize_obs(self.raw), info

    def step(self, action: torch.Tensor) -> StepResult:
        n = self.num_envs
        chunk = self.decode(action.detach().reshape(n, self.predicted, self.env.action_size), self.raw)
        reward = torch.zeros(n)
        terminated = torch.zeros(n, dtype=torch.bool)
        truncated = torch.zeros(n, dtype=torch.bool)
        final = torch.zeros(n, self.observation_size)
        obs = self.raw
        for k in range(self.executed):
            ended = terminated | truncated
            act = torch.where(ended[:, None], self.hold(), chunk[:, k]) if ended.any() else chunk[:, k]
            obs, r, term, trunc, info = self.env.step(act)
            reward += torch.where(ended, 0.0, r)
            fresh = (term | trunc) & ~ended
            if fresh.any():
                final[fresh] = info["final_observation"][fresh]
                terminated |= term & fresh
                truncated |= trunc & fresh
        self.raw = obs
        self.episodes += int((terminated | truncated).sum())
        self.successes += int(terminated.sum())
        info = {"final_observation": self.normalize_obs(final)}
        if not self.bootstrap_truncated:
            terminated, truncated = terminated | truncated, torch.zeros_like(truncated)
        return self.normalize_obs(obs), reward, terminated, truncated, info
