"""Damped least-squares inverse kinematics for the peg tip: position and orientation errors to a joint
step, ``dq = J^T (J J^T + damping^2 I)^-1 e``; the gripper-down orientation at a yaw; the 6D rotation
of the action (the tool's x and y axes in the world frame, Zhou et al. 2019) and back."""

from __future__ import annotations

import mujoco
import numpy as np

DAMPING = 0.05
MAX_JOINT_STEP = 0.2  # radians per solve: a far target is approached, not jumped to


def down_at_yaw(yaw: float) -> np.ndarray:
    """Rotation of a tool pointing straight down (z to -z world) whose x axis points at ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def rotation_to_6d(rotation: np.ndarray) -> np.ndarray:
    """``[..., 3, 3]`` -> ``[..., 6]``: the first two columns (the tool's x and y axes)."""
    return np.concatenate([rotation[..., :, 0], rotation[..., :, 1]], axis=-1)


def rotation_from_6d(six: np.ndarray) -> np.ndarray:
    """``[6]`` -> the nearest rotation (Gram-Schmidt), so any network output is a valid target."""
    x = six[:3] / max(np.linalg.norm(six[:3]), 1e-9)
    y = six[3:] - x * (x @ six[3:])
    y = y / max(np.linalg.norm(y), 1e-9)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def rotation_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Small-angle axis-angle vector (world frame) that turns ``current`` towards ``target``."""
    return 0.5 * np.sum(np.cross(current.T, target.T), axis=0)


def yaw_of(rotation: np.ndarray) -> float:
    """Heading of a tool's x axis in the world xy plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def joint_step(model: mujoco.MjModel, data: mujoco.MjData, site: int, dofs: np.ndarray,
               target_pos: np.ndarray, target_rot: np.ndarray) -> np.ndarray:
    """Joint increment on ``dofs`` moving ``site`` towards the target pose (kinematics must be current)."""
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    mujoco.mj_jacSite(model, data, jacp, jacr, site)
    jac = np.vstack([jacp[:, dofs], jacr[:, dofs]])
    rot = data.site_xmat[site].reshape(3, 3)
    err = np.concatenate([target_pos - data.site_xpos[site], rotation_error(rot, target_rot)])
    dq = jac.T @ np.linalg.solve(jac @ jac.T + DAMPING**2 * np.eye(6), err)
    return np.clip(dq, -MAX_JOINT_STEP, MAX_JOINT_STEP)


def track(model: mujoco.MjModel, scratch: mujoco.MjData, site: int, qpos_adr: np.ndarray, dofs: np.ndarray,
          q_command: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray, iterations: int = 3
          ) -> np.ndarray:
    """The joint command that puts ``site`` at the target, solved from the previous *command*.

    Solving from the measured joints (which lag the servos) made the tip swing about a millimetre while
    descending; the commanded configuration moves only with the target, so a still target gives a
    still command. ``scratch`` is a kinematics-only MjData (any state; its qpos is overwritten)."""
    lo, hi = model.jnt_range[model.dof_jntid[dofs]].T
    q = q_command.copy()
    for _ in range(iterations):
        scratch.qpos[qpos_adr] = q
        mujoco.mj_kinematics(model, scratch)
        mujoco.mj_comPos(model, scratch)
        q = np.clip(q + joint_step(model, scratch, site, dofs, target_pos, target_rot), lo, hi)
    return q


def solve(model: mujoco.MjModel, data: mujoco.MjData, site: int, qpos_adr: np.ndarray, dofs: np.ndarray,
          target_pos: np.ndarray, target_rot: np.ndarray, iterations: int = 100) -> None:
    """Place the arm at the target pose kinematically (reset time: no dynamics)."""
    lo, hi = model.jnt_range[model.dof_jntid[dofs]].T
    for _ in range(iterations):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        data.qpos[qpos_adr] = np.clip(data.qpos[qpos_adr] + joint_step(model, data, site, dofs, target_pos,
                                                                        target_rot), lo, hi)
    mujoco.mj_forward(model, data)
