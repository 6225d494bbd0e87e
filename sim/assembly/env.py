"""Batched peg insertion: N copies of the scene, stepped by absolute end-effector poses, VecEnv contract.

Action (as in ResiP): the commanded peg-tip position (3, metres, world frame), its orientation as a 6D
rotation (6: the tool's x then y axis in the world frame; any vector is projected to a rotation) and
``gripper`` (-1 closed, 1 open; the peg is fixed to the hand in this task, the channel keeps the layout
of the grasping tasks). Differential IK tracks the pose into joint position servos, solved from the
previous joint *command* (:func:`sim.assembly.ik.track`), so the tip does not swing while the servos
lag. The target is held within ``max_lead`` of the measured tip, so a jammed peg is pressed by a
bounded servo error. Reward is sparse: 1 on the step the tip reaches ``success_depth`` inside the
hole, which ends the episode. Same-step autoreset; a non-finite state resets its environment
(counted in ``unstable_resets``) and ends the episode as truncated. ``info`` of a step: ``success``,
``unstable`` (rows whose physics diverged), ``final_observation`` and ``final_arrival``: per row, where
the part first came down to the opening in the episode that just ended (x, y in the hole's frame, m;
yaw error, rad; NaN if it never did), the aim error before contact pushed it anywhere
(:mod:`sim.assembly.failures` reads both).

``pick_insert`` (the free peg stands on the table, the gripper starts open): the same action and the
same fields, ``tip`` being the hand's controlled point (where a held peg's tip would be), plus the free
peg's foot, its yaw, its foot in the hole's frame and relative to the hand (:data:`PICK_LAYOUT`);
success is that foot inside the hole at ``success_depth``.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import torch

from sim.assembly import ik
from sim.assembly.config import PART_AT, AssemblyConfig
from sim.assembly.scene import HOME_QPOS, compile_scene
from sim.layout import Field, ObservationLayout

_XYZ = ("x", "y", "z")
_WXYZ = ("w", "x", "y", "z")
OBSERVATION_LAYOUT = ObservationLayout((
    Field("tip_pos", "m", _XYZ),  # the peg tip: the controlled point of the end effector
    Field("tip_quat", "1", _WXYZ),  # the end effector's (and fixed peg's) orientation, w >= 0
    Field("hole_pos", "m", _XYZ),  # centre of the hole's opening
    Field("hole_yaw", "1", ("cos4", "sin4")),  # of 4 x yaw: a square hole looks the same every 90 degrees
    Field("tip_in_hole", "m", _XYZ),  # peg tip in the hole's frame (z: height above the opening)
    Field("yaw_error", "rad"),  # peg yaw minus hole yaw, wrapped to [-pi/4, pi/4)
    Field("gripper", "m"),  # finger opening
))
PICK_LAYOUT = ObservationLayout((
    *OBSERVATION_LAYOUT.fields,
    Field("peg_pos", "m", _XYZ),  # the free peg's foot, the end that goes in
    Field("peg_yaw", "1", ("cos4", "sin4")),  # of 4 x its yaw
    Field("peg_in_hole", "m", _XYZ),  # its foot in the hole's frame
    Field("peg_from_tip", "m", _XYZ),  # its foot minus the hand's controlled point: where to reach
    Field("peg_yaw_error", "rad"),  # the hand's yaw minus the peg's, wrapped to [-pi/4, pi/4)
))
LAYOUTS = {"peg_insertion": OBSERVATION_LAYOUT, "pick_insert": PICK_LAYOUT}
ACTION_NAMES = ("pos.x", "pos.y", "pos.z", "rot6d.xx", "rot6d.xy", "rot6d.xz", "rot6d.yx", "rot6d.yy",
                "rot6d.yz", "gripper")
START_YAW = np.pi / 2  # the gripper's natural heading at the home posture (joint 7 mid-range)
GRIPPER_OPEN = 0.04
ARRIVAL_HEIGHT = 0.003  # m above the opening: the part has come down to the hole (info["final_arrival"])


def wrap_quarter(angle: np.ndarray | float) -> np.ndarray | float:
    """An angle modulo the square's 90-degree symmetry, in [-pi/4, pi/4)."""
    return (angle + np.pi / 4) % (np.pi / 2) - np.pi / 4


class AssemblyEnv:
    """``num_envs`` insertion environments. Row ``i`` draws its episodes from the seed ``(seed,
    row_offset + i)``, so rows of a batch and single environments with matching offsets agree."""

    action_size = len(ACTION_NAMES)
    layout = OBSERVATION_LAYOUT  # of the default task; an instance has its task's (LAYOUTS)
    observation_size = OBSERVATION_LAYOUT.size

    def __init__(self, num_envs: int, config: AssemblyConfig | None = None, seed: int = 0,
                 row_offset: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs: must be >= 1, got {num_envs}")
        self.config = config or AssemblyConfig()
        self.layout = LAYOUTS[self.config.task]
        self.observation_size = self.layout.size
        self.pick = self.config.task == "pick_insert"
        self.num_envs = num_envs
        self.row_offset = row_offset
        self.model, self.ids = compile_scene(self.config)
        self.data = [mujoco.MjData(self.model) for _ in range(num_envs)]
        self._scratch = mujoco.MjData(self.model)  # kinematics of the commanded configuration
        self.q_command = np.zeros((num_envs, 7))
        self._servo_lag = self.model.actuator_biasprm[:7, 2] / self.model.actuator_biasprm[:7, 1]  # kv / kp
        self.hole_pos = np.zeros((num_envs, 3))
        self.hole_yaw = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.arrival = np.full((num_envs, 3), np.nan)  # see _note_arrival
        self.unstable_resets = 0
        self._seed(seed)

    def _seed(self, seed: int) -> None:
        self.rngs = [np.random.default_rng([seed, self.row_offset + i]) for i in range(self.num_envs)]

    # --- episodes -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is not None:
            self._seed(seed)
        for i in range(self.num_envs):
            self._reset_row(i)
        return self._observe(), {"unstable_resets": self.unstable_resets}

    def _reset_row(self, i: int) -> None:
        cfg, rng, ids, data = self.config, self.rngs[i], self.ids, self.data[i]
        mujoco.mj_resetData(self.model, data)
        hole_xy, hole_yaw, start_xy, start_yaw = cfg.ranges
        xy = rng.uniform(-hole_xy, hole_xy, 2)
        yaw = rng.uniform(-hole_yaw, hole_yaw)
        self.hole_pos[i] = [xy[0], xy[1], cfg.hole_depth]
        self.hole_yaw[i] = yaw
        data.mocap_pos[ids.hole_mocap] = [xy[0], xy[1], 0.0]
        data.mocap_quat[ids.hole_mocap] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        start = np.array([*rng.uniform(-start_xy, start_xy, 2), cfg.start_height])
        heading = START_YAW + rng.uniform(-start_yaw, start_yaw)
        data.qpos[ids.arm_qpos] = HOME_QPOS
        fingers = 0.0  # closed on the held peg
        if self.pick:  # the peg stands on its foot, spread as the hole is; the fingers start open
            foot = np.array(PART_AT) + rng.uniform(-hole_xy, hole_xy, 2)
            part_yaw = rng.uniform(-hole_yaw, hole_yaw)
            data.qpos[ids.part_qpos:ids.part_qpos + 7] = [*foot, 0.0, np.cos(part_yaw / 2), 0.0, 0.0,
                                                          np.sin(part_yaw / 2)]
            fingers = GRIPPER_OPEN
            data.qpos[ids.finger_qpos] = [fingers, -fingers]
        ik.solve(self.model, data, ids.tip_site, ids.arm_qpos, ids.arm_dof, start, ik.down_at_yaw(heading))
        self.q_command[i] = data.ctrl[:7] = data.qpos[ids.arm_qpos]
        data.ctrl[7:9] = [fingers, -fingers]
        self.steps[i] = 0
        self.arrival[i] = np.nan

    # --- stepping -------------------------------------------------------------------------------
    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  dict[str, Any]]:
        act = np.clip(np.asarray(action, dtype=np.float64).reshape(self.num_envs, self.action_size), -1, 1)
        previous = self._last_obs
        stable = np.array([self._step_row(i, act[i]) for i in range(self.num_envs)])
        self.steps += 1
        obs = self._observe()
        self._note_arrival()
        success = self.success() & stable
        terminated = success
        truncated = ~terminated & ((self.steps >= self.config.episode_steps) | ~stable)
        done = terminated | truncated
        final = obs.clone()
        for i in np.flatnonzero(~stable):  # its state is not finite: its last good observation ends it
            final[i] = previous[i]
        self.unstable_resets += int((~stable).sum())
        arrival = torch.from_numpy(self.arrival.copy())
        for i in np.flatnonzero(done):
            self._reset_row(i)
        if done.any():
            obs = self._observe()
        info = {"final_observation": final, "success": torch.from_numpy(success),
                "unstable": torch.from_numpy(~stable), "unstable_resets": self.unstable_resets,
                "final_arrival": arrival}
        return (obs, torch.from_numpy(success.astype(np.float32)), torch.from_numpy(terminated),
                torch.from_numpy(truncated), info)

    def _step_row(self, i: int, act: np.ndarray) -> bool:
        cfg, ids, data = self.config, self.ids, self.data[i]
        tip = data.site_xpos[ids.tip_site]
        target = tip + np.clip(act[:3] - tip, -cfg.max_lead, cfg.max_lead)
        before = self.q_command[i].copy()
        after = self.q_command[i] = ik.track(self.model, self._scratch, ids.tip_site, ids.arm_qpos,
                                             ids.arm_dof, before, target, ik.rotation_from_6d(act[3:9]))
        data.ctrl[7:9] = (act[9] + 1) / 2 * GRIPPER_OPEN * np.array([1.0, -1.0])
        # The servos follow the command ramped over the control period, led by (kv / kp) x its velocity:
        # kp (q_cmd + kv/kp v - q) - kv qdot = kp (q_cmd - q) + kv (v - qdot), so a moving command is
        # tracked without the lag that, differing per joint, bent the tip off its straight path.
        lead = self._servo_lag * (after - before) / cfg.control_dt
        for k in range(1, cfg.control_substeps + 1):
            data.ctrl[:7] = before + (after - before) * (k / cfg.control_substeps) + lead
            mujoco.mj_step(self.model, data)
        # MuJoCo resets a diverged state itself (warning, zeros); either way the episode is over.
        w = mujoco.mjtWarning
        diverged = any(data.warning[k].number for k in (w.mjWARN_BADQPOS, w.mjWARN_BADQVEL, w.mjWARN_BADQACC))
        return bool(np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all() and not diverged)

    # --- reading the state ----------------------------------------------------------------------
    def _note_arrival(self) -> None:
        """Keep where the part (the held peg's tip, the free peg's foot) was on its first arrival at the
        opening this episode: down to :data:`ARRIVAL_HEIGHT` above it, over the hole's footprint."""
        x, y, z, yaw = self._part_pose.T
        first = np.isnan(self.arrival[:, 0]) & (z <= ARRIVAL_HEIGHT) & (
            np.maximum(np.abs(x), np.abs(y)) < self.config.peg_side)
        self.arrival[first] = np.column_stack([x, y, yaw])[first]

    def hold_action(self) -> torch.Tensor:
        """``[N, 10]``: the action that commands every tip to stay where it is, gripper closed."""
        act = np.zeros((self.num_envs, self.action_size), dtype=np.float32)
        for i, data in enumerate(self.data):
            act[i, :3] = data.site_xpos[self.ids.tip_site]
            act[i, 3:9] = ik.rotation_to_6d(data.site_xmat[self.ids.tip_site].reshape(3, 3))
        act[:, 9] = -1.0
        return torch.from_numpy(act)

    def tip_in_hole(self, site: int | None = None) -> np.ndarray:
        """Peg tip (or another ``site``) in each hole's frame, ``[N, 3]`` (z is height above the opening)."""
        site = self.ids.tip_site if site is None else site
        return self._in_hole_frame(np.array([d.site_xpos[site] for d in self.data]))

    def _in_hole_frame(self, points: np.ndarray) -> np.ndarray:
        rel = points - self.hole_pos
        c, s = np.cos(self.hole_yaw), np.sin(self.hole_yaw)
        return np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], axis=1)

    def success(self) -> np.ndarray:
        rel = self.tip_in_hole(self.ids.part_tip if self.pick else None)
        inside = np.abs(rel[:, :2]).max(axis=1) < (self.config.peg_side + self.config.clearance) / 2
        return inside & (rel[:, 2] <= -self.config.success_depth)

    def _observe(self) -> torch.Tensor:
        ids = self.ids
        quat = np.zeros((self.num_envs, 4))
        tips = np.zeros((self.num_envs, 3))
        yaw = np.zeros(self.num_envs)
        grip = np.zeros((self.num_envs, 1))
        for i, data in enumerate(self.data):
            mujoco.mju_mat2Quat(quat[i], data.site_xmat[ids.tip_site])
            tips[i] = data.site_xpos[ids.tip_site]
            yaw[i] = ik.yaw_of(data.site_xmat[ids.tip_site].reshape(3, 3))
            grip[i, 0] = data.qpos[ids.finger_qpos[0]] - data.qpos[ids.finger_qpos[1]]
        quat *= np.where(quat[:, :1] < 0, -1.0, 1.0)
        hole_yaw = np.stack([np.cos(4 * self.hole_yaw), np.sin(4 * self.hole_yaw)], axis=1)
        yaw_err = wrap_quarter(yaw - self.hole_yaw)[:, None]
        tip_rel = self._in_hole_frame(tips)
        parts = [tips, quat, self.hole_pos, hole_yaw, tip_rel, yaw_err, grip]
        self._part_pose = np.column_stack([tip_rel, yaw_err])  # what goes in, in the hole's frame
        if self.pick:
            foot = np.array([d.site_xpos[ids.part_tip] for d in self.data])
            part_yaw = np.array([ik.yaw_of(d.site_xmat[ids.part_tip].reshape(3, 3)) for d in self.data])
            foot_rel = self._in_hole_frame(foot)
            parts += [foot, np.stack([np.cos(4 * part_yaw), np.sin(4 * part_yaw)], axis=1),
                      foot_rel, foot - tips, wrap_quarter(yaw - part_yaw)[:, None]]
            self._part_pose = np.column_stack([foot_rel, wrap_quarter(part_yaw - self.hole_yaw)])
        obs = np.concatenate(parts, axis=1)
        self._last_obs = torch.from_numpy(obs.astype(np.float32))
        return self._last_obs
