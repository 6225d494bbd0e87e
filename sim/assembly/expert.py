"""Scripted insertion expert: rise to a hover height, fly over the hole while turning to its yaw, then
descend; lift back out when the tip drifts off the aim above the opening.

Reads only the observation (through the layout), so the same expert drives any batch. ``aim_noise``
(metres, standard deviation per axis) displaces each episode's aim point in the world xy plane, drawn
when an episode starts: the sub-millimetre errors a residual policy is there to fix.
"""

from __future__ import annotations

import numpy as np
import torch

from sim.assembly.config import AssemblyConfig
from sim.assembly.env import OBSERVATION_LAYOUT as L

HOVER = 0.02  # metres above the opening to line up at
XY_TOLERANCE = 0.0005  # to start descending (at most a quarter of the clearance)
YAW_TOLERANCE = 0.01
DESCENT = 0.002  # metres per step while inserting
GAIN = 0.7  # of the remaining error closed per step


class ScriptedExpert:
    def __init__(self, num_envs: int, config: AssemblyConfig, aim_noise: float = 0.0, seed: int = 0) -> None:
        if aim_noise < 0:
            raise ValueError(f"aim_noise: must be >= 0, got {aim_noise}")
        self.config = config
        self.aim_noise = aim_noise
        self.rng = np.random.default_rng(seed)
        self.offset = np.zeros((num_envs, 2))
        self.reset(np.arange(num_envs))

    def reset(self, rows: np.ndarray) -> None:
        """New aim errors for the rows whose episodes start now."""
        self.offset[rows] = self.rng.normal(0.0, self.aim_noise, (len(rows), 2)) if self.aim_noise else 0.0

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        o = obs.double().numpy()
        cfg = self.config
        xy_err = o[:, L.slice("hole_pos")][:, :2] + self.offset - o[:, L.slice("tip_pos")][:, :2]
        yaw_err = -o[:, L.slice("yaw_error")][:, 0]
        height = o[:, L.slice("tip_in_hole")][:, 2]
        off = np.abs(xy_err).max(axis=1)
        # Start down when in line; once below the hover height keep going while the error would still
        # slide in (half the clearance), otherwise lift and line up again.
        start = (off < min(XY_TOLERANCE, cfg.clearance / 4)) & (np.abs(yaw_err) < YAW_TOLERANCE)
        descend = start | ((height < 0.9 * HOVER) & (off < cfg.clearance / 2))
        dz = np.where(descend, -DESCENT, GAIN * (HOVER - height))
        # Off the aim below the hover height, rise first rather than drag the peg over the walls.
        move_xy = descend | (height > HOVER / 2)
        dxy = np.where(move_xy[:, None], GAIN * xy_err, 0.0)
        action = np.zeros((len(o), 5))
        action[:, :2] = dxy / cfg.pos_step
        action[:, 2] = dz / cfg.pos_step
        action[:, 3] = GAIN * yaw_err / cfg.yaw_step
        action[:, 4] = -1.0  # gripper closed
        return torch.from_numpy(np.clip(action, -1.0, 1.0).astype(np.float32))
