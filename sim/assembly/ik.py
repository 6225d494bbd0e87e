"""Damped least-squares inverse kinematics for the peg tip: position and orientation errors to a joint
step, ``dq = J^T (J J^T + damping^2 I)^-1 e``, and the gripper-down orientation at a yaw."""

from __future__ import annotations

import mujoco
import numpy as np

DAMPING = 0.05
MAX_JOINT_STEP = 0.2  # radians per solve: a far target is approached, not jumped to


def down_at_yaw(yaw: float) -> np.ndarray:
    """Rotation of a tool pointing straight down (z to -z world) whose x axis points at ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


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
