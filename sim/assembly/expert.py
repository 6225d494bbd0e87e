"""Scripted insertion expert with human-like variation, commanding absolute tip poses.

It moves its own commanded pose (as a teleoperator moves a handle) towards a hover point above the
hole, turns to the hole's yaw, lines up, then descends; if the peg jams (the tip lags the command) it
lifts back to the hover height and aims again. Human-like variation, drawn from its own seeded
generator: each attempt's aim point is off by ``aim_noise`` (metres, standard deviation per axis;
each correction halves it, as a person looks closer after a miss), the hand trembles by ``tremor`` in
free space and holds still near the hole, it pauses now and then on the way, and its speed differs
per episode. Reads only the observation (through the layout), so the same expert drives any batch.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from sim.assembly import ik
from sim.assembly.config import AssemblyConfig
from sim.assembly.env import OBSERVATION_LAYOUT as L
from sim.assembly.env import wrap_quarter

HOVER = 0.02  # metres above the opening to line up at
XY_TOLERANCE = 0.0005  # to start descending (at most a quarter of the clearance)
DESCENT = 0.001  # metres per step while inserting
DESCENT_RAMP = 8  # steps to reach it: a sudden start swings the tip sideways by a millimetre
JAM_LAG = 0.004  # the tip this far above the command while descending: jammed
GAIN = 0.5  # of the remaining error closed per step
SPEED = (0.004, 0.008)  # metres per step in free space, drawn per episode
PAUSE = (0.03, 3, 10)  # chance per step in free space, shortest and longest pause (steps)
APPROACH, DESCEND, RETREAT = 0, 1, 2


def tip_yaw(obs: np.ndarray) -> np.ndarray:
    """Heading of the tool's x axis from the observed quaternion (w, x, y, z)."""
    w, x, y, z = obs[:, L.slice("tip_quat")].T
    return np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))


class ScriptedExpert:
    def __init__(self, num_envs: int, config: AssemblyConfig, aim_noise: float = 0.0, tremor: float = 0.0,
                 pauses: bool = False, seed: int = 0) -> None:
        for name, value in (("aim_noise", aim_noise), ("tremor", tremor)):
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        self.config = config
        self.aim_noise, self.tremor, self.pauses = aim_noise, tremor, pauses
        self.rng = np.random.default_rng(seed)
        self.fresh = np.ones(num_envs, dtype=bool)  # the command is read from the next observation
        self.pos = np.zeros((num_envs, 3))
        self.yaw = np.zeros(num_envs)
        self.phase = np.zeros(num_envs, dtype=np.int64)
        self.offset = np.zeros((num_envs, 2))
        self.noise = np.zeros(num_envs)
        self.speed = np.zeros(num_envs)
        self.descent = np.zeros(num_envs)  # current descent speed, ramped up
        self.pause_left = np.zeros(num_envs, dtype=np.int64)
        self.corrections = 0
        self.reset(np.arange(num_envs))

    def reset(self, rows: np.ndarray) -> None:
        """The rows whose episodes start now: a new command, aim error and speed."""
        rows = np.asarray(rows, dtype=np.int64)
        self.fresh[rows] = True
        self.phase[rows] = APPROACH
        self.pause_left[rows] = 0
        self.noise[rows] = self.aim_noise
        self.speed[rows] = self.rng.uniform(*SPEED, len(rows))
        self._aim(rows)

    def _aim(self, rows: np.ndarray) -> None:
        self.offset[rows] = self.rng.normal(0.0, 1.0, (len(rows), 2)) * self.noise[rows, None]

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        o = obs.double().numpy()
        cfg, n = self.config, len(o)
        tip, yaw = o[:, L.slice("tip_pos")], tip_yaw(o)
        self.pos[self.fresh], self.yaw[self.fresh] = tip[self.fresh], yaw[self.fresh]
        self.fresh[:] = False
        hole = o[:, L.slice("hole_pos")]
        cos4, sin4 = o[:, L.slice("hole_yaw")].T
        goal_yaw = self.yaw + wrap_quarter(np.arctan2(sin4, cos4) / 4 - self.yaw)
        aim = hole[:, :2] + self.offset
        height = o[:, L.slice("tip_in_hole")][:, 2]
        off = np.abs(aim - tip[:, :2]).max(axis=1)
        yaw_tol = min(0.01, 0.5 * cfg.clearance / cfg.peg_side)

        # Phase changes: in line at the hover height -> down; jammed -> up and aim again; up -> line up.
        lined_up = (off < min(XY_TOLERANCE, cfg.clearance / 4)) & (np.abs(yaw - goal_yaw) < yaw_tol) \
            & (np.abs(height - HOVER) < 0.002)
        jammed = (self.phase == DESCEND) & (tip[:, 2] - self.pos[:, 2] > JAM_LAG)
        risen = (self.phase == RETREAT) & (height > 0.8 * HOVER)
        self.phase[(self.phase == APPROACH) & lined_up] = DESCEND
        if jammed.any():
            self.corrections += int(jammed.sum())
            self.noise[jammed] /= 2
            self._aim(np.flatnonzero(jammed))
            self.phase[jammed] = RETREAT
        self.phase[risen] = APPROACH

        free = (self.phase == APPROACH) & (height > 1.5 * HOVER)
        paused = self.pause_left > 0
        self.pause_left[paused] -= 1
        if self.pauses:
            start = free & ~paused & (self.rng.random(n) < PAUSE[0])
            self.pause_left[start] = self.rng.integers(PAUSE[1], PAUSE[2] + 1, int(start.sum()))
        moving = ~paused

        step = np.zeros((n, 3))
        step[:, :2] = GAIN * (aim - self.pos[:, :2])
        step[:, 2] = GAIN * (hole[:, 2] + HOVER - self.pos[:, 2])
        down = self.phase == DESCEND
        self.descent = np.where(down, np.minimum(self.descent + DESCENT / DESCENT_RAMP, DESCENT), 0.0)
        step[down, 2] = -self.descent[down]
        retreat = self.phase == RETREAT
        step[retreat, :2] = 0.0  # straight up first: dragging sideways would catch the walls
        step[retreat, 2] = np.maximum(step[retreat, 2], DESCENT)
        # Above the hover height move down only once over the hole, so the peg never clips a wall.
        far = (self.phase == APPROACH) & (off > 0.005)
        step[far, 2] = np.maximum(step[far, 2], 0.0)
        length = np.linalg.norm(step, axis=1, keepdims=True)
        step *= np.minimum(1.0, self.speed[:, None] / np.maximum(length, 1e-12))
        self.pos[moving] += step[moving]
        self.yaw[moving] += GAIN * (goal_yaw - self.yaw)[moving]

        command = self.pos.copy()
        if self.tremor:
            command[free] += self.rng.normal(0.0, self.tremor, (int(free.sum()), 3))
        action = np.zeros((n, 10))
        action[:, :3] = command
        action[:, 3:9] = [ik.rotation_to_6d(ik.down_at_yaw(y)) for y in self.yaw]
        action[:, 9] = -1.0  # gripper closed
        return torch.from_numpy(np.clip(action, -1.0, 1.0).astype(np.float32))


def human_like(num_envs: int, config: AssemblyConfig, seed: int = 0) -> ScriptedExpert | PickInsertExpert:
    """The expert that records the datasets: aim error half the clearance, 1 mm tremor, pauses (and in
    ``pick_insert`` the two-stage expert with the same variation)."""
    kind = PickInsertExpert if config.task == "pick_insert" else ScriptedExpert
    return kind(num_envs, config, aim_noise=config.clearance / 2, tremor=0.001, pauses=True, seed=seed)


# ---- pick_insert: grasp the standing peg, lift it, then the insertion expert above --------------------
PICK_HOVER = 0.05  # metres of the controlled point above the peg's foot while lining up the grasp
GRASP_HEIGHT = 0.002  # ... when closing: the peg is then held GRIP_DEPTH deep
CLOSE_STEPS = 12  # holding still while the fingers close
CARRY_HEIGHT = 0.10  # of the controlled point while carrying (the hole's walls are 0.04 high)
GRASP_NOISE = 0.001  # metres, standard deviation per axis of where along the peg's face it is taken
REACH, LOWER, CLOSE, LIFT, INSERT = range(5)


class PickInsertExpert:
    """The two-stage expert: reach over the standing peg turned to its faces, lower, close, lift, then
    hand over to a :class:`ScriptedExpert` that sees the *peg's foot* as its tip (the view of a held
    peg), whose commands are shifted back by the foot's measured offset from the hand's controlled point
    (a peg taken off-centre, or one that slipped, is still aimed by its foot)."""

    def __init__(self, num_envs: int, config: AssemblyConfig, aim_noise: float = 0.0, tremor: float = 0.0,
                 pauses: bool = False, seed: int = 0) -> None:
        from sim.assembly.env import PICK_LAYOUT

        self.layout = PICK_LAYOUT
        self.insert = ScriptedExpert(num_envs, config, aim_noise, tremor, pauses, seed)
        self.aim_noise, self.tremor, self.pauses = aim_noise, tremor, pauses
        self.rng = np.random.default_rng([seed, 1])
        self.stage = np.zeros(num_envs, dtype=np.int64)
        self.fresh = np.ones(num_envs, dtype=bool)
        self.pos = np.zeros((num_envs, 3))
        self.yaw = np.zeros(num_envs)
        self.grasp_offset = np.zeros((num_envs, 2))
        self.speed = np.zeros(num_envs)
        self.wait = np.zeros(num_envs, dtype=np.int64)
        self.reset(np.arange(num_envs))

    @property
    def corrections(self) -> int:
        return self.insert.corrections

    def reset(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.stage[rows] = REACH
        self.fresh[rows] = True
        self.grasp_offset[rows] = self.rng.normal(0.0, GRASP_NOISE, (len(rows), 2))
        self.speed[rows] = self.rng.uniform(*SPEED, len(rows))

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        P, o = self.layout, obs.double().numpy()
        n = len(o)
        tip, yaw = o[:, P.slice("tip_pos")], tip_yaw(o)
        self.pos[self.fresh], self.yaw[self.fresh] = tip[self.fresh], yaw[self.fresh]
        self.fresh[:] = False
        foot = o[:, P.slice("peg_pos")]
        cos4, sin4 = o[:, P.slice("peg_yaw")].T
        peg_yaw = yaw + wrap_quarter(np.arctan2(sin4, cos4) / 4 - yaw)  # the peg's heading nearest the hand's

        # Stage changes, on what the hand and the peg do (each row moves at most one stage a step).
        stage = self.stage.copy()
        target = np.zeros((n, 3))
        target[:, :2] = foot[:, :2] + self.grasp_offset
        target[:, 2] = foot[:, 2] + np.where(stage == REACH, PICK_HOVER, GRASP_HEIGHT)
        goal_yaw = self.yaw + wrap_quarter(peg_yaw - self.yaw)
        over = (np.abs(self.pos - target).max(axis=1) < 0.001) & (np.abs(yaw - goal_yaw) < 0.02)
        reached = over & (np.abs(tip - target).max(axis=1) < 0.002)
        self.stage[(stage == REACH) & over] = LOWER
        closing = (stage == LOWER) & reached
        self.stage[closing], self.wait[closing] = CLOSE, CLOSE_STEPS
        self.wait[stage == CLOSE] -= 1
        self.stage[(stage == CLOSE) & (self.wait <= 0)] = LIFT
        up = (stage == LIFT) & (tip[:, 2] > CARRY_HEIGHT - 0.005)
        held = foot[:, 2] > tip[:, 2] - 0.02  # the foot hangs a few millimetres below the hand's point
        self.stage[up & ~held] = REACH  # the grasp missed: open, and take it again
        carried = up & held
        if carried.any():
            self.stage[carried] = INSERT
            self.insert.reset(np.flatnonzero(carried))

        picking = self.stage <= LOWER
        lift = self.stage == LIFT
        hold = self.stage == CLOSE
        target[lift] = self.pos[lift]
        target[lift, 2] = CARRY_HEIGHT
        step = GAIN * (target - self.pos)
        step[hold] = 0.0
        length = np.linalg.norm(step, axis=1, keepdims=True)
        step *= np.minimum(1.0, self.speed[:, None] / np.maximum(length, 1e-12))
        self.pos += step
        self.yaw[picking] += GAIN * (goal_yaw - self.yaw)[picking]
        command = self.pos.copy()
        free = (self.stage == REACH) | lift
        if self.tremor:
            command[free] += self.rng.normal(0.0, self.tremor, (int(free.sum()), 3))

        action = np.zeros((n, 10))
        action[:, :3] = command
        action[:, 3:9] = [ik.rotation_to_6d(ik.down_at_yaw(y)) for y in self.yaw]
        action[:, 9] = np.where(picking, 1.0, -1.0)

        # The second stage: the insertion expert aims the held peg's foot; the hand follows it shifted.
        view = o[:, :L.size].copy()
        view[:, L.slice("tip_pos")] = foot
        view[:, L.slice("tip_in_hole")] = o[:, P.slice("peg_in_hole")]
        view[:, L.slice("tip_quat")] = [_down_quat(y) for y in peg_yaw]
        inserting = self.stage == INSERT
        # One batched call for every row, also the rows still picking (a row's insertion state is reset
        # when it is handed over): calling it for the inserting rows alone would change the expert's
        # random draws, and with them the recorded demonstrations the measured bases learnt from.
        placed = self.insert.act(torch.from_numpy(view)).double().numpy()
        turn = self.insert.yaw - (peg_yaw - yaw)  # the hand's heading that gives the peg the aimed one
        if inserting.any():
            action[inserting, :3] = placed[inserting, :3] - (foot - tip)[inserting]
            action[inserting, 3:9] = [ik.rotation_to_6d(ik.down_at_yaw(y)) for y in turn[inserting]]
        return torch.from_numpy(np.clip(action, -1.0, 1.0).astype(np.float32))


def _down_quat(yaw: float) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, ik.down_at_yaw(yaw).ravel())
    return quat * (1.0 if quat[0] >= 0 else -1.0)
