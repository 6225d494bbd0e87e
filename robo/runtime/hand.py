"""The dexterous hand's runtime adapter (task ``gpayn``, the layout of ``sim.hand.env``): hand state ->
the observation the card names, action -> the command, and the hand's ROS topics.

The observation fields, in the card's order: ``finger_pos`` (finger actuator joint positions, rad, the
hand's actuator order), ``touch`` (fingertip touch flags, thumb first), ``wrist`` (x, y, z, yaw, pitch,
roll; the wrist's rotation is Rz(yaw) Ry(pitch) Rx(roll)) and ``object`` (the object's centre, world).
A card without one of them gets no subscription for it.

The command is the action itself (std_msgs/Float32MultiArray, the card's action layout, in [-1, 1]):
wrist target deltas (2 mm, 0.01 rad per step at full scale) and finger target deltas (0.2 rad). The
hand's driver (``hand_sim``, or a real hand's bridge) integrates them into actuator targets and clamps
them to the actuators' ranges, as the environment the policy was trained in does; the runtime does not
know those ranges. The safe command is therefore all zeros: every target held where it is (a hand
that opens on a fault would drop what it holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from robo.runtime.adapter import TaskAdapter, card_fields, register_adapter

FINGERS = 12
TOUCH = 5
# Observation field -> the ROS role that carries it, with the default topic and message type.
FIELD_ROLES = {
    "finger_pos": ("joints", "hand/joint_states", "sensor_msgs/msg/JointState"),
    "touch": ("touch", "hand/touch", "std_msgs/msg/Float32MultiArray"),
    "wrist": ("wrist", "hand/wrist_pose", "geometry_msgs/msg/PoseStamped"),
    "object": ("object", "object/pose", "geometry_msgs/msg/PoseStamped"),
}
COMMAND = ("hand/command", "std_msgs/msg/Float32MultiArray")
SIZES = {"finger_pos": FINGERS, "touch": TOUCH, "wrist": 6, "object": 3}


@dataclass(frozen=True)
class HandState:
    """One control step's measurements by observation field (``finger_pos``, ``touch``, ``wrist``,
    ``object``); a field the card does not use may be missing."""

    fields: dict[str, np.ndarray]

    def finite(self) -> bool:
        return all(np.all(np.isfinite(v)) for v in self.fields.values())


def ypr_to_quaternion(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(w, x, y, z) of Rz(yaw) Ry(pitch) Rx(roll)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])


def quaternion_to_ypr(q: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) of a unit quaternion (w, x, y, z): angles in (-pi, pi], pitch in [-pi/2, pi/2]
    (a wrist turned further is reported by the equivalent angles in these ranges)."""
    w, x, y, z = (float(v) for v in q)
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    return np.array([yaw, pitch, roll])


def hand_command(action: np.ndarray) -> np.ndarray:
    """The action, clamped to [-1, 1]: target deltas the hand's driver integrates."""
    return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


def safe_command(size: int) -> np.ndarray:
    """Every actuator target held where it is."""
    return np.zeros(size)


@register_adapter("gpayn")
def hand_adapter(card: dict[str, Any]) -> TaskAdapter:
    fields = card_fields(card, SIZES, "hand")

    def observe(state: HandState, setpoint: Any, prev_action: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(state.fields[f], np.float64) for f in fields]).astype(np.float32)

    topics = {FIELD_ROLES[f][0]: FIELD_ROLES[f][1:] for f in fields}
    topics["command"] = COMMAND
    return TaskAdapter("gpayn", observe, hand_command, HandState.finite, topics)


def role_field(role: str) -> str:
    """The observation field a ROS role carries (``joints`` -> ``finger_pos``)."""
    return next(f for f, (r, _, _) in FIELD_ROLES.items() if r == role)
