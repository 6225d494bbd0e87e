"""Grasp episodes and their measures: success rate, median time to lift, drop rate.

One deterministic episode per environment from one seed, so any two controllers (a trained policy, the
scripted demonstrator) run on the same objects in the same poses. An episode ends in success (object
10 cm up, terminated), a drop (terminated otherwise) or a timeout; time to lift is the time to success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sim.hand.demonstrator import Demonstrator
from sim.hand.env import LAYOUT, HandEnv, HandEnvConfig
from sim.hand.scene import SUBSTEPS, TIMESTEP

CONTROL_DT = TIMESTEP * SUBSTEPS  # s per environment step (40 Hz)
Act = Callable[[torch.Tensor], torch.Tensor]  # observations [N, obs] -> actions [N, act]


@dataclass
class GraspOutcomes:
    """Per episode: ``success`` and ``dropped`` (bool), ``length`` (steps)."""

    success: np.ndarray
    dropped: np.ndarray
    length: np.ndarray

    def summary(self) -> dict[str, float]:
        lift = self.length[self.success] * CONTROL_DT
        return {"episodes": int(self.success.size), "success": float(self.success.mean()),
                "time_to_lift_s": float(np.median(lift)) if lift.size else float("nan"),
                "drop_rate": float(self.dropped.mean())}


def start_height(env_config: HandEnvConfig) -> float:
    """Where the object's centre starts (m): on the table, whatever its pose there."""
    env = HandEnv(1, env_config)
    env.reset(seed=0)
    return float(env.start_z[0])


def outcomes_from_final(terminated: np.ndarray, final_obs: np.ndarray, length: np.ndarray,
                        start_z: float) -> GraspOutcomes:
    """Outcomes from how episodes ended (the runner's deterministic episodes): a terminated episode whose
    object ended more than 5 cm above its start was a success (success is at 10 cm, a drop below 1 cm)."""
    rise = final_obs[..., LAYOUT.slice("object")][..., 2] - start_z
    success = terminated & (rise > 0.05)
    return GraspOutcomes(success, terminated & ~success, length)


@torch.no_grad()
def grasp_episodes(env_config: HandEnvConfig, episodes: int, seed: int,
                   act: Act | None = None) -> GraspOutcomes:
    """One episode per environment under ``act`` (None: the scripted demonstrator)."""
    env = HandEnv(episodes, env_config, seed=seed)
    demonstrator = Demonstrator(env) if act is None else None
    obs = env.reset(seed=seed)[0]
    running = np.ones(episodes, bool)
    success, dropped = np.zeros(episodes, bool), np.zeros(episodes, bool)
    length = np.zeros(episodes, np.int64)
    for _ in range(env_config.episode_steps):
        action = demonstrator.act() if demonstrator is not None else act(obs)
        obs, _, terminated, truncated, info = env.step(action)
        ended_ok = info["success"].numpy()
        terminated = terminated.numpy()
        length += running
        success |= running & ended_ok
        dropped |= running & terminated & ~ended_ok
        running &= ~(terminated | truncated.numpy())
        if not running.any():
            break
    return GraspOutcomes(success, dropped, length)
