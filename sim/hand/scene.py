"""The hand scene, built with ``mujoco.MjSpec``: robosuite's Inspire right hand on a floating 6-DoF
position-servo wrist, a table, and one graspable object.

The hand's MJCF and meshes are read from the installed ``robosuite`` package (the ``hand`` extra);
robosuite itself is never imported (its import pulls opencv, numba and more), only its files located.
The Inspire hand has 12 position actuators on 12 finger joints, the closest registry hand to iCub's 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from sim.assets import robosuite_asset

TIMESTEP = 0.005  # the authors' 5 ms, 5 substeps per control step (40 Hz)
SUBSTEPS = 5
TABLE_TOP = 0.4  # m, height of the table surface
# Slides along world x, y, z, then hinges yaw (z), pitch (y), roll (x): R = Rz(yaw) Ry(pitch) Rx(roll).
WRIST_JOINTS = ("wrist_x", "wrist_y", "wrist_z", "wrist_yaw", "wrist_pitch", "wrist_roll")
# Fingertip bodies whose contacts with the object count as touch, thumb first.
FINGERTIPS = ("r_thumb_distal", "r_index_distal", "r_middle_distal", "r_ring_distal", "r_pinky_distal")
HAND_PREFIX = "hand/"
# Turns the hand (fingers down, palm towards -x as robosuite mounts it) palm down with fingers along +x.
HAND_MOUNT_QUAT = [np.sqrt(0.5), 0.0, -np.sqrt(0.5), 0.0]


@dataclass(frozen=True)
class ObjectSpec:
    """A graspable object: a primitive (``box`` half-sizes, ``cylinder`` radius and half-height) or a
    mesh object robosuite ships (``mesh`` is its MJCF file under ``models/assets/objects``)."""

    kind: str
    size: tuple[float, ...] = ()
    mesh: str = ""
    mass: float = 0.1


OBJECTS: dict[str, ObjectSpec] = {
    "box_tall": ObjectSpec("box", (0.02, 0.02, 0.05)),
    "box_wide": ObjectSpec("box", (0.025, 0.035, 0.04)),
    "cylinder_thin": ObjectSpec("cylinder", (0.02, 0.05)),
    "cylinder_wide": ObjectSpec("cylinder", (0.03, 0.045)),
    "can": ObjectSpec("mesh", mesh="can.xml"),
    "bottle": ObjectSpec("mesh", mesh="bottle.xml"),
    "lemon": ObjectSpec("mesh", mesh="lemon.xml"),
}


def object_spec(name: str) -> ObjectSpec:
    if name not in OBJECTS:
        raise ValueError(f"unknown object {name!r} (choices: {', '.join(OBJECTS)})")
    return OBJECTS[name]


def _load_spec(path: Path) -> mujoco.MjSpec:
    try:
        return mujoco.MjSpec.from_file(str(path))
    except Exception as err:  # MuJoCo raises ValueError with its own parser message
        raise OSError(f"cannot load {path}: {err}") from err


def _add_object(spec: mujoco.MjSpec, name: str) -> None:
    obj = object_spec(name)
    frame = spec.worldbody.add_frame(pos=[0.0, 0.0, TABLE_TOP + 0.1])
    if obj.kind == "mesh":
        child = _load_spec(robosuite_asset(f"objects/{obj.mesh}"))
        body = frame.attach_body(child.worldbody.first_body().first_body(), "object/", "")
        for geom in body.geoms:
            geom.solref = [0.02, 1.0]  # robosuite's 1 ms solref is stiffer than a 5 ms step resolves
            geom.solimp = [0.9, 0.95, 0.001, 0.5, 2.0]
            geom.condim = 4
    else:
        body = frame.add_body(name="object/object")
        gtype = mujoco.mjtGeom.mjGEOM_BOX if obj.kind == "box" else mujoco.mjtGeom.mjGEOM_CYLINDER
        size = list(obj.size) + [0.0] * (3 - len(obj.size))
        body.add_geom(type=gtype, size=size, mass=obj.mass, rgba=[0.8, 0.3, 0.2, 1.0],
                      friction=[1.0, 0.01, 0.001], condim=4)
    body.name = "object/object"
    body.add_freejoint(name="object/free")


def _add_hand(spec: mujoco.MjSpec) -> None:
    """A floating mount on three slides and three hinges, each driven by a stiff position servo; the
    hand is attached below it so that at zero rotation the palm faces down and the fingers point +x."""
    mount = spec.worldbody.add_body(name="wrist", pos=[0.0, 0.0, 0.0], gravcomp=1.0)
    axes = np.eye(3)
    for i, joint in enumerate(WRIST_JOINTS):
        slide = i < 3
        kind = mujoco.mjtJoint.mjJNT_SLIDE if slide else mujoco.mjtJoint.mjJNT_HINGE
        mount.add_joint(name=joint, type=kind, axis=axes[(0, 1, 2, 2, 1, 0)[i]], armature=0.01,
                        range=[-1.0, 1.5] if slide else [-3.2, 3.2], damping=5.0 if slide else 1.0)
        kp = 2000.0 if slide else 300.0
        spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT).set_to_position(
            kp=kp, kv=2 * np.sqrt(kp * 0.5))
    mount.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE,
                   size=[0.01, 0, 0], mass=0.2, contype=0, conaffinity=0, rgba=[0.5, 0.5, 0.5, 0.3])
    hand = _load_spec(robosuite_asset("grippers/inspire_right_hand.xml"))
    # The hand's root body is rotated +90 deg about x; this frame turns it palm down, fingers along +x.
    frame = mount.add_frame(quat=HAND_MOUNT_QUAT)
    spec.attach(hand, prefix=HAND_PREFIX, frame=frame)
    for body in spec.bodies:
        if body.name.startswith(HAND_PREFIX):
            body.gravcomp = 1.0


def build_model(object_name: str) -> mujoco.MjModel:
    """The compiled scene for ``object_name`` (one of ``OBJECTS``)."""
    object_spec(object_name)
    spec = mujoco.MjSpec()
    spec.compiler.degree = False
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    spec.worldbody.add_light(pos=[0, 0, 2.0], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8])
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.1],
                            rgba=[0.3, 0.3, 0.35, 1])
    spec.worldbody.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.4, 0.4, TABLE_TOP / 2],
                            pos=[0, 0, TABLE_TOP / 2], rgba=[0.6, 0.5, 0.4, 1], friction=[1.0, 0.01, 0.001])
    _add_hand(spec)
    _add_object(spec, object_name)
    return spec.compile()
