"""Grasp poses from an object's geometry: a bounding box fitted to its geoms, top and side grasps,
and pre-grasp poses 10 and 5 cm back along the approach direction.

A wrist pose is (x, y, z, yaw, pitch, roll), the wrist joints' order (``scene.WRIST_JOINTS``): the
hand's rotation is Rz(yaw) Ry(pitch) Rx(roll); at zero rotation the palm faces down, fingers along +x.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

# Where the object's centre sits in the wrist frame when grasped: along the fingers, below the palm.
GRASP_OFFSET = np.array([0.10, 0.01, -0.04])
PRE_GRASP_BACK = (0.10, 0.05)  # m
GRASP_KINDS = ("auto", "top", "side")
# Horizontal sides within this ratio count as a square (or round) top: any face will do for a top grasp.
SQUARE_TOLERANCE = 1.1


@dataclass(frozen=True)
class BoundingBox:
    centre: np.ndarray  # in the object body's frame
    half: np.ndarray  # half-extents along the body's axes


@dataclass(frozen=True)
class Grasp:
    kind: str  # "top" or "side"
    pose: np.ndarray  # wrist pose at the grasp
    pre_grasp: tuple[np.ndarray, ...]  # wrist poses 10 and 5 cm back


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(yaw) Ry(pitch) Rx(roll), the wrist hinges' order."""
    (cy, cp, cr), (sy, sp, sr) = np.cos([yaw, pitch, roll]), np.sin([yaw, pitch, roll])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


def fit_box(model: mujoco.MjModel, body: int) -> BoundingBox:
    """The axis-aligned (in the body frame) box around every colliding geom of ``body``: each geom's
    own bounding box (``geom_aabb``, meshes included) is carried into the body frame by its pose."""
    corners = []
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    for g in range(model.ngeom):
        if model.geom_bodyid[g] != body or not (model.geom_contype[g] or model.geom_conaffinity[g]):
            continue
        centre, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, model.geom_quat[g])
        local = centre + signs * half
        corners.append(local @ rot.reshape(3, 3).T + model.geom_pos[g])
    if not corners:
        raise ValueError(f"body {model.body(body).name!r} has no colliding geoms to grasp")
    pts = np.concatenate(corners)
    lo, hi = pts.min(0), pts.max(0)
    return BoundingBox((lo + hi) / 2, (hi - lo) / 2)


def _pose(centre: np.ndarray, yaw: float, roll: float) -> tuple[np.ndarray, np.ndarray]:
    rot = rotation(yaw, 0.0, roll)
    wrist = centre - rot @ GRASP_OFFSET
    approach = rot @ np.array([0.0, 0.0, -1.0])  # the palm's normal
    return np.concatenate([wrist, [yaw, 0.0, roll]]), approach


def grasps(box: BoundingBox, position: np.ndarray, yaw: float) -> list[Grasp]:
    """Top and side grasps of an object at ``position`` (its body origin, world) turned by ``yaw``.
    The palm faces one of the box's faces: the side grasp comes from -y, the top grasp from above with
    the fingers along the box's shorter horizontal side (closing across it)."""
    rot = rotation(yaw, 0.0, 0.0)
    centre = position + rot @ box.centre
    # Box faces repeat every 90 deg: the face yaw closest to the world axes.
    face_yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
    top_yaw = face_yaw if box.half[0] >= box.half[1] else face_yaw + np.pi / 2
    short, long = sorted(box.half[:2])
    if long > SQUARE_TOLERANCE * short:
        # An oblong top repeats only every 180 deg, so the face yaw no longer says which side is the
        # short one: the fingers run along the body's shorter horizontal axis (they close across the
        # narrow width; along the long side the thumb and fingers barely reach round the object).
        top_yaw = yaw if box.half[0] <= box.half[1] else yaw + np.pi / 2
    top_yaw = (top_yaw + np.pi / 2) % np.pi - np.pi / 2
    out = []
    for kind, grasp_yaw, roll in (("side", face_yaw, np.pi / 2), ("top", top_yaw, 0.0)):
        pose, approach = _pose(centre, grasp_yaw, roll)
        pre = tuple(np.concatenate([pose[:3] - back * approach, pose[3:]]) for back in PRE_GRASP_BACK)
        out.append(Grasp(kind, pose, pre))
    return out


def plan_grasp(box: BoundingBox, position: np.ndarray, yaw: float, kind: str = "auto") -> Grasp:
    """The grasp of ``kind``; ``auto`` holds a tall object from the side and a flat or round one from
    above."""
    if kind not in GRASP_KINDS:
        raise ValueError(f"unknown grasp kind {kind!r} (choices: {', '.join(GRASP_KINDS)})")
    if kind == "auto":
        kind = "side" if box.half[2] > 1.2 * box.half[:2].max() else "top"
    return next(g for g in grasps(box, position, yaw) if g.kind == kind)
