"""The insertion scene, composed with ``mujoco.MjSpec`` from robosuite's Panda arm and Panda gripper.

A table whose top is z = 0, the arm's base 0.56 m behind the hole's nominal place, a square peg fixed
between the gripper's fingers, and a hole of four boxes on a mocap body (so every environment's hole
pose lives in its own ``MjData``). Contact bits keep the peg and the walls to themselves (2) and the
robot to the table (1); the table (3) meets both.

In ``pick_insert`` the peg is a free body standing on the table instead (bits 3: it meets the fingers,
the table and the walls), and the hand carries only the site ``peg_tip``: where the tip of a peg held
``GRIP_DEPTH`` deep would be, so the controlled point and the actions mean the same in both tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.assembly.assets import panda_arm_xml, panda_gripper_xml
from sim.assembly.config import AssemblyConfig

ARM_BASE = (-0.56, 0.0, 0.0)
HOME_QPOS = np.array([0.0, np.pi / 16, 0.0, -np.pi / 2 - np.pi / 3, 0.0, np.pi - 0.2, np.pi / 4])
# Joint position servos (Nm/rad), critically damped about the joint's inertia in the reference posture;
# torque limits from robosuite's motor ranges.
SERVO_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
GRIP_DEPTH = 0.02  # how much of the peg sits between the fingers
WALL = 0.02  # thickness of the hole's walls


@dataclass(frozen=True)
class SceneIds:
    """Indices into the compiled model that the environment reads every step."""

    arm_qpos: np.ndarray  # the 7 arm joints' qpos addresses
    arm_dof: np.ndarray
    finger_qpos: np.ndarray
    tip_site: int
    hole_mocap: int
    peg_geom: int
    part_qpos: int  # pick_insert: qpos address of the free peg's joint (position, then quaternion); else -1
    part_tip: int  # pick_insert: site at the free peg's foot, the end that goes in; else -1


def build_spec(config: AssemblyConfig) -> mujoco.MjSpec:
    spec = mujoco.MjSpec()
    spec.option.timestep = config.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    world = spec.worldbody
    world.add_light(pos=[0, 0, 2], dir=[0, 0, -1])
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.8, 0.6, 0.02], pos=[-0.2, 0, -0.02],
                   contype=3, conaffinity=3, rgba=[0.55, 0.45, 0.35, 1])

    arm = mujoco.MjSpec.from_file(str(panda_arm_xml()))
    for body in arm.bodies:
        body.gravcomp = 1.0
    for act, kp in zip(arm.actuators, SERVO_KP, strict=True):
        act.set_to_position(kp=kp, dampratio=1.0)
        force = act.ctrlrange[1]  # the motor's torque limit becomes the servo's
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-force, force]
        joint = arm.joint(act.target)
        act.ctrlrange = joint.range
    spec.attach(arm, prefix="arm/", frame=world.add_frame(pos=list(ARM_BASE)))

    gripper = mujoco.MjSpec.from_file(str(panda_gripper_xml()))
    for body in gripper.bodies:
        body.gravcomp = 1.0
    spec.attach(gripper, prefix="gripper/", frame=spec.body("arm/right_hand").add_frame())

    eef = spec.body("gripper/eef")
    side, length = config.peg_side, config.peg_length
    peg = {"name": "peg", "type": mujoco.mjtGeom.mjGEOM_BOX, "size": [side / 2, side / 2, length / 2],
           "rgba": [0.2, 0.4, 0.9, 1]}
    if config.task == "pick_insert":
        part = world.add_body(name="part")
        part.add_freejoint(name="part")
        part.add_geom(**peg, pos=[0, 0, length / 2], contype=3, conaffinity=3, mass=config.part_mass,
                      condim=4, friction=[1.0, 0.005, 0.0001])
        part.add_site(name="part_tip", pos=[0, 0, 0], size=[0.003] * 3)
    else:
        eef.add_geom(**peg, pos=[0, 0, length / 2 - GRIP_DEPTH], contype=2, conaffinity=2)
    eef.add_site(name="peg_tip", pos=[0, 0, length - GRIP_DEPTH], size=[0.003] * 3)

    hole = world.add_body(name="hole", mocap=True)
    inner = (side + config.clearance) / 2
    depth = config.hole_depth
    walls = {"px": ([inner + WALL / 2, 0], [WALL / 2, inner + WALL]),
             "nx": ([-inner - WALL / 2, 0], [WALL / 2, inner + WALL]),
             "py": ([0, inner + WALL / 2], [inner, WALL / 2]),
             "ny": ([0, -inner - WALL / 2], [inner, WALL / 2])}
    for name, (xy, half) in walls.items():
        hole.add_geom(name=f"wall_{name}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[*half, depth / 2],
                      pos=[*xy, depth / 2], contype=2, conaffinity=2, rgba=[0.8, 0.3, 0.2, 1])
    hole.add_site(name="hole_top", pos=[0, 0, depth], size=[0.003] * 3)
    return spec


def compile_scene(config: AssemblyConfig) -> tuple[mujoco.MjModel, SceneIds]:
    model = build_spec(config).compile()
    joints = [model.joint(f"arm/joint{i}") for i in range(1, 8)]
    fingers = [model.joint(f"gripper/finger_joint{i}") for i in (1, 2)]
    ids = SceneIds(
        arm_qpos=np.array([j.qposadr[0] for j in joints]),
        arm_dof=np.array([j.dofadr[0] for j in joints]),
        finger_qpos=np.array([j.qposadr[0] for j in fingers]),
        tip_site=model.site("peg_tip").id,
        hole_mocap=model.body("hole").mocapid[0],
        peg_geom=model.geom("peg").id,
        part_qpos=model.joint("part").qposadr[0] if config.task == "pick_insert" else -1,
        part_tip=model.site("part_tip").id if config.task == "pick_insert" else -1,
    )
    return model, ids
