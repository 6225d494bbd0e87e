"""Batched hand-grasping environment (the ``robo.rl.vec_env.VecEnv`` contract) with G-PAYN's action,
observation, reward and termination.

N ``MjData`` of one ``MjModel`` are stepped in a loop (5 substeps of 5 ms per 40 Hz control step).
Action in [-1, 1]: wrist target deltas (xyz 2 mm, yaw/pitch/roll 0.01 rad per step) and finger
actuator target deltas (0.2 rad), the authors' scales. Reward per step (the authors'): the change in
the number of fingertips touching; 1000 x the object's rise in the step, counted when at least 2
fingertips touch and scaled by touches/5; before the first touch, 10 x the decrease of the
palm-to-object distance (our approach term); +1 on success (object 10 cm above its start, terminates),
-1 on a drop (object back on the table after being lifted 2 cm, or off the table; terminates) or on
the timeout (truncates). An episode starts with the hand at ``HOME`` or, with ``start: pre_grasp`` (as
in the paper, where the arm first reaches the planner's pre-grasp), at the 5 cm pre-grasp of the
planned grasp (``grasp``). Non-finite state or a MuJoCo warning resets that environment, counted in
``unstable_resets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from sim.hand.grasp import GRASP_KINDS, BoundingBox, Grasp, fit_box, plan_grasp
from sim.hand.scene import (
    FINGERTIPS,
    HAND_PREFIX,
    SUBSTEPS,
    TABLE_TOP,
    WRIST_JOINTS,
    build_model,
    object_spec,
)
from sim.layout import Field, ObservationLayout

if TYPE_CHECKING:
    import torch

WRIST_STEP = np.array([0.002, 0.002, 0.002, 0.01, 0.01, 0.01])
FINGER_STEP = 0.2
HOME = np.array([0.0, -0.2, TABLE_TOP + 0.25, 0.0, 0.0, 0.0])
SUCCESS_HEIGHT, LIFTED_HEIGHT, DROP_HEIGHT = 0.10, 0.02, 0.01
FINGERS = 12


def observation_layout() -> ObservationLayout:
    return ObservationLayout((
        Field("finger_pos", "rad", tuple(f"a{i}" for i in range(FINGERS))),
        Field("touch", "1", tuple(f.split("_")[1] for f in FINGERTIPS), (0.0, 1.0)),
        Field("wrist", "m,rad", ("x", "y", "z", "yaw", "pitch", "roll")),
        Field("object", "m", ("x", "y", "z")),
    ))


LAYOUT = observation_layout()
START_POSES = ("home", "pre_grasp")


@dataclass
class HandEnvConfig:
    object: str = "box_tall"
    episode_steps: int = 2000
    position_range: float = 0.05  # m, object start x and y uniform in +-range
    yaw_range: float = float(np.pi)
    start: str = "home"  # "home" or "pre_grasp" (the planned grasp's 5 cm pre-grasp)
    grasp: str = "auto"  # the planned grasp's kind: auto, top or side
    # Every reward is multiplied by this: the paper's 1000 x lift makes returns of about 70 a grasp, so
    # Q targets near 100 that a small critic fits slowly next to the entropy bonus.
    reward_scale: float = 1.0

    def __post_init__(self) -> None:
        object_spec(self.object)  # an unknown object: one line with the choices
        if self.start not in START_POSES:
            raise ValueError(f"unknown start {self.start!r} (choices: {', '.join(START_POSES)})")
        if self.grasp not in GRASP_KINDS:
            raise ValueError(f"unknown grasp {self.grasp!r} (choices: {', '.join(GRASP_KINDS)})")
        if self.episode_steps <= 0:
            raise ValueError(f"episode_steps must be > 0, got {self.episode_steps}")
        if not self.reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {self.reward_scale}")
        for key in ("position_range", "yaw_range"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be finite and >= 0, got {value}")


class HandEnv:
    observation_size = LAYOUT.size
    action_size = 6 + FINGERS

    def __init__(self, num_envs: int, config: HandEnvConfig | None = None, seed: int = 0) -> None:
        self.config = config or HandEnvConfig()
        self.num_envs = num_envs
        self.model = build_model(self.config.object)
        m = self.model
        self.data = [mujoco.MjData(m) for _ in range(num_envs)]
        self.rng = np.random.default_rng(seed)
        self.object_body = m.body("object/object").id
        self.box: BoundingBox = fit_box(m, self.object_body)
        self.object_qpos = m.jnt_qposadr[m.joint("object/free").id]
        self.wrist_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in WRIST_JOINTS])
        self.finger_qpos = m.jnt_qposadr[m.actuator_trnid[6:, 0]]
        self.finger_range = m.actuator_ctrlrange[6:].copy()
        self.wrist_range = np.array([m.jnt_range[m.joint(j).id] for j in WRIST_JOINTS])
        self.is_object_geom = m.geom_bodyid == self.object_body
        self.tip_bodies = [m.body(HAND_PREFIX + f).id for f in FINGERTIPS]
        # Per geom: the fingertip (index into FINGERTIPS) its body is, -1 for every other geom.
        tip_of_body = np.full(m.nbody, -1)
        tip_of_body[self.tip_bodies] = np.arange(len(FINGERTIPS))
        self.tip_of_geom = tip_of_body[m.geom_bodyid]
        self.palm_body = m.body(HAND_PREFIX + "r_palm").id
        n = num_envs
        self.target = np.zeros((n, m.nu))
        self.grasp: list[Grasp | None] = [None] * n  # each episode's planned grasp
        self.steps = np.zeros(n, dtype=np.int64)
        self.start_z = np.zeros(n)
        self.lifted = np.zeros(n, dtype=bool)
        self.touched = np.zeros(n, dtype=bool)
        self.touch = np.zeros((n, len(FINGERTIPS)))
        self.distance = np.zeros(n)
        self.unstable_resets = 0

    # --- state ---------------------------------------------------------------------------------------
    def object_pose(self, i: int) -> tuple[np.ndarray, float]:
        """Body origin (world) and yaw of environment ``i``'s object."""
        q = self.data[i].qpos[self.object_qpos:self.object_qpos + 7]
        w, x, y, z = q[3:]
        return q[:3].copy(), float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    def object_centre(self, i: int) -> np.ndarray:
        d = self.data[i]
        return d.xpos[self.object_body] + d.xmat[self.object_body].reshape(3, 3) @ self.box.centre

    def _touch(self, i: int) -> np.ndarray:
        d = self.data[i]
        flags = np.zeros(len(FINGERTIPS))
        if d.ncon == 0:
            return flags
        geoms = d.contact.geom[: d.ncon]
        on_object = self.is_object_geom[geoms]
        # The tip on the other side of each contact whose one side is the object.
        tips = np.concatenate([self.tip_of_geom[geoms[on_object[:, 0], 1]],
                               self.tip_of_geom[geoms[on_object[:, 1], 0]]])
        flags[tips[tips >= 0]] = 1.0
        return flags

    def _palm_distance(self, i: int) -> float:
        return float(np.linalg.norm(self.data[i].xpos[self.palm_body] - self.object_centre(i)))

    def _observe(self, i: int) -> np.ndarray:
        d = self.data[i]
        return np.concatenate([d.qpos[self.finger_qpos], self.touch[i], d.qpos[self.wrist_qpos],
                               self.object_centre(i)])

    def _reset_one(self, i: int) -> None:
        m, d, c = self.model, self.data[i], self.config
        mujoco.mj_resetData(m, d)
        xy = self.rng.uniform(-c.position_range, c.position_range, 2)
        yaw = self.rng.uniform(-c.yaw_range, c.yaw_range)
        z = TABLE_TOP + self.box.half[2] - self.box.centre[2] + 0.001
        d.qpos[self.object_qpos:self.object_qpos + 7] = [*xy, z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.grasp[i] = plan_grasp(self.box, *self.object_pose(i), c.grasp)
        wrist = self.grasp[i].pre_grasp[1] if c.start == "pre_grasp" else HOME
        d.qpos[self.wrist_qpos] = wrist
        self.target[i] = 0.0
        self.target[i, :6] = wrist
        self.target[i, 6:] = self.finger_range[:, 0]
        d.ctrl[:] = self.target[i]
        mujoco.mj_forward(m, d)
        self.steps[i] = 0
        self.start_z[i] = self.object_centre(i)[2]
        self.lifted[i] = self.touched[i] = False
        self.touch[i] = 0.0
        self.distance[i] = self._palm_distance(i)

    # --- VecEnv --------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._obs_tensor(), {}

    def _obs_tensor(self) -> torch.Tensor:
        import torch  # here, not at the top: a torch-free process (the ROS hand simulator) steps one env

        obs = np.stack([self._observe(i) for i in range(self.num_envs)])
        return torch.as_tensor(obs, dtype=torch.float32)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                   dict[str, Any]]:
        import torch

        act = np.clip(np.asarray(action, dtype=np.float64).reshape(self.num_envs, self.action_size), -1, 1)
        n = self.num_envs
        reward, terminated, truncated = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
        success, unstable = np.zeros(n, bool), np.zeros(n, bool)
        obs, final = np.zeros((n, self.observation_size)), np.zeros((n, self.observation_size))
        for i in range(n):
            reward[i], terminated[i], truncated[i], success[i], unstable[i] = self._step_one(i, act[i])
            final[i] = self._observe(i)
            if terminated[i] or truncated[i] or unstable[i]:
                self._reset_one(i)
            obs[i] = self._observe(i)
        self.unstable_resets += int(unstable.sum())
        info = {"final_observation": torch.as_tensor(final, dtype=torch.float32),
                "success": torch.as_tensor(success), "unstable": torch.as_tensor(unstable)}
        f32 = torch.float32
        # An unstable environment's episode is cut off (truncated), not failed.
        return (torch.as_tensor(obs, dtype=f32), torch.as_tensor(reward, dtype=f32),
                torch.as_tensor(terminated), torch.as_tensor(truncated | unstable), info)

    def _step_one(self, i: int, act: np.ndarray) -> tuple[float, bool, bool, bool, bool]:
        m, d = self.model, self.data[i]
        t = self.target[i]
        t[:6] = np.clip(t[:6] + act[:6] * WRIST_STEP, self.wrist_range[:, 0], self.wrist_range[:, 1])
        t[6:] = np.clip(t[6:] + act[6:] * FINGER_STEP, self.finger_range[:, 0], self.finger_range[:, 1])
        d.ctrl[:] = t
        warnings = d.warning.number.sum()
        z_before = self.object_centre(i)[2]
        mujoco.mj_step(m, d, nstep=SUBSTEPS)
        if d.warning.number.sum() != warnings or not (
                np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()):
            return 0.0, False, False, False, True
        self.steps[i] += 1
        touch = self._touch(i)
        n_touch, n_before = touch.sum(), self.touch[i].sum()
        self.touch[i] = touch
        z = self.object_centre(i)[2]
        reward = float(n_touch - n_before)
        if n_touch >= 2:
            reward += 1000.0 * (z - z_before) * n_touch / len(FINGERTIPS)
        distance = self._palm_distance(i)
        if not self.touched[i]:
            reward += 10.0 * (self.distance[i] - distance)
        self.distance[i] = distance
        self.touched[i] |= bool(n_touch > 0)
        height = z - self.start_z[i]
        self.lifted[i] |= bool(height > LIFTED_HEIGHT)
        success = height > SUCCESS_HEIGHT
        dropped = (self.lifted[i] and height < DROP_HEIGHT) or z < TABLE_TOP - 0.05
        timeout = self.steps[i] >= self.config.episode_steps and not (success or dropped)
        reward += 1.0 if success else -1.0 if (dropped or timeout) else 0.0
        reward *= self.config.reward_scale
        return reward, bool(success or dropped), bool(timeout), bool(success), False
