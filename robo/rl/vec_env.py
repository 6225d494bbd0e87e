"""The environment contract every runner in ``robo.rl`` accepts.

A ``VecEnv`` is ``num_envs`` environments stepped as one call, in Gymnasium's vector style on torch
tensors (``sim.pendulum.PendulumEnv`` and ``sim.quadrotor.QuadrotorEnv`` are the examples):

* ``reset(seed=None) -> (obs [N, obs], info)``;
* ``step(action [N, act]) -> (obs, reward [N], terminated [N] bool, truncated [N] bool, info)``, with
  actions in [-1, 1];
* **same-step autoreset**: an environment whose episode ends is reset inside ``step``; the returned
  ``obs`` row is already the first observation of the next episode, and the last observation of the
  ended one is in ``info["final_observation"]`` (all rows; only the ended rows are meaningful). A
  runner bootstraps a truncated episode from that row and never from the reset one;
* optional ``state_dict()`` / ``load_state_dict()``: everything a resumed run needs to continue bit for
  bit. A runner that checkpoints saves them when the environment has them.

Runners that train K independent agents (``robo.rl.off_policy_runner``) take a factory
``make_env(ids) -> VecEnv`` that builds one environment of ``len(ids) * E`` rows, member-major (agent k
owns rows ``k * E .. k * E + E - 1``), so agent k's rows never mix with agent l's. The factory is called
again with fewer ids when finished agents leave the batch, and for deterministic evaluation episodes.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]


@runtime_checkable
class VecEnv(Protocol):
    num_envs: int
    observation_size: int
    action_size: int

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]: ...

    def step(self, action: torch.Tensor) -> StepResult: ...


def final_observation(obs: torch.Tensor, done: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    """The observation each environment ended its step in: ``obs`` where the episode goes on, the
    pre-reset ``info["final_observation"]`` where it ended (the value target of a truncated step)."""
    final = info.get("final_observation")
    if final is None:
        return obs
    return torch.where(done[:, None], final, obs)
