"""The vehicle state the runtime sees, and the 22-value student observation built from it.

Must match ``sim.quadrotor.env.observe`` exactly (tests compare the two):
p - p_ref (world), R row-major (body to world), v - v_ref (world), omega (body), previous action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBSERVATION_SIZE = 22


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


@dataclass(frozen=True)
class Setpoint:
    """Where the vehicle should be and how fast it should move there (world frame)."""

    position: np.ndarray
    velocity: np.ndarray

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.position)) and np.all(np.isfinite(self.velocity)))


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """R(q) [3, 3], body to world, for a unit quaternion (w, x, y, z); the simulator's formula."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def normalized(q: np.ndarray) -> np.ndarray:
    """A quaternion scaled to unit length (raises on a zero or non-finite one)."""
    q = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-6:
        raise ValueError(f"quaternion {q.tolist()} cannot be normalised")
    return q / n


def build_observation(state: VehicleState, setpoint: Setpoint, prev_action: np.ndarray) -> np.ndarray:
    """The student observation (float32, 22 values) exactly as the simulator computes it in training."""
    rot = rotation_matrix(state.quaternion).reshape(-1)
    obs = np.concatenate([
        state.position - setpoint.position, rot, state.velocity - setpoint.velocity,
        state.angular_velocity, np.asarray(prev_action, dtype=np.float64),
    ])
    return obs.astype(np.float32)
