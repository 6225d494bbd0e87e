"""The quadrotor's runtime adapter: vehicle state + setpoint + previous action -> the observation
the card names, action -> motor setpoints, and the ROS topics of a quadrotor policy node.

The observation is assembled field by field in the order of the card's layout (which the simulator's
``sim.quadrotor.observation`` wrote), so it matches ``sim.quadrotor.env.observe`` exactly (tests
compare the two): p - p_ref (world), R row-major (body to world), v - v_ref (world), omega (body),
previous action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robo.runtime.adapter import TaskAdapter, card_fields, register_adapter
from robo.safety.setpoint import Setpoint

MOTORS = 4
TOPICS = {
    "state": ("odom", "nav_msgs/msg/Odometry"),
    "setpoint_pose": ("setpoint/pose", "geometry_msgs/msg/PoseStamped"),
    "setpoint_twist": ("setpoint/twist", "geometry_msgs/msg/TwistStamped"),
    "command": ("motor_command", "std_msgs/msg/Float32MultiArray"),  # FR, BR, BL, FL in [0, 1]
}


@dataclass(frozen=True)
class VehicleState:
    """Position (world), quaternion (w, x, y, z; body to world), velocity (world), body rates."""

    position: np.ndarray
    quaternion: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray

    @classmethod
    def from_vector(cls, x: np.ndarray) -> VehicleState:
        """From the simulator's layout: p (3), q (4), v (3), omega (3)[, motors]."""
        x = np.asarray(x, dtype=np.float64)
        return cls(x[0:3], x[3:7], x[7:10], x[10:13])

    def finite(self) -> bool:
        return bool(all(np.all(np.isfinite(a)) for a in
                        (self.position, self.quaternion, self.velocity, self.angular_velocity)))


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """R(q) [3, 3], body to world, for a unit quaternion (w, x, y, z); the simulator's formula."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def field_values(state: VehicleState, setpoint: Setpoint, prev_action: np.ndarray) -> dict[str, np.ndarray]:
    """Every observation field this adapter can build, by the layout's field names."""
    return {
        "p_err": state.position - setpoint.position,
        "R": rotation_matrix(state.quaternion).reshape(-1),
        "v_err": state.velocity - setpoint.velocity,
        "omega": state.angular_velocity,
        "prev_action": np.asarray(prev_action, dtype=np.float64),
    }


def build_observation(state: VehicleState, setpoint: Setpoint, prev_action: np.ndarray,
                      fields: Sequence[str] | None = None) -> np.ndarray:
    """The observation (float32) in the order of ``fields`` (default: the student's 22 values)."""
    values = field_values(state, setpoint, prev_action)
    return np.concatenate([values[f] for f in (fields or values)]).astype(np.float32)


def action_to_motors(action: np.ndarray) -> np.ndarray:
    """Action in [-1, 1] -> motor setpoint in [0, 1] (the card's mapping u = (a + 1) / 2)."""
    return (np.clip(action, -1.0, 1.0) + 1.0) * 0.5


@register_adapter("quadrotor")
def quadrotor_adapter(card: dict[str, Any]) -> TaskAdapter:
    if int(card["action"]["size"]) != MOTORS:
        raise ValueError(f"card: a quadrotor policy gives {MOTORS} motor actions, this one "
                         f"{card['action']['size']}")
    zero = Setpoint(np.zeros(3), np.zeros(3))
    rest = VehicleState(np.zeros(3), np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(3))
    sizes = {k: v.size for k, v in field_values(rest, zero, np.zeros(MOTORS)).items()}
    fields = card_fields(card, sizes, "quadrotor")

    def observe(state: VehicleState, setpoint: Setpoint, prev_action: np.ndarray) -> np.ndarray:
        return build_observation(state, setpoint, prev_action, fields)

    return TaskAdapter("quadrotor", observe, action_to_motors, VehicleState.finite, dict(TOPICS))
