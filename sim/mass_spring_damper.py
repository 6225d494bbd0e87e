"""Mass-spring-damper with a hardening spring: the plant of the nn4mc seed paper's benchmark.

    m x'' = u - c x' - k x - k3 x^3

State (x, v) in m and m/s, force u in N. Arrays of states are batched over leading axes.
Integration: RK4 with ``substeps`` per control period, the force held constant (zero-order hold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MSDParams:
    mass: float = 1.0  # kg
    damping: float = 0.8  # N s/m
    stiffness: float = 20.0  # N/m
    cubic: float = 400.0  # N/m^3, hardening
    force_limit: float = 15.0  # N, actuator saturation
    dt: float = 0.01  # s, control period
    substeps: int = 4


def derivatives(state: np.ndarray, u: np.ndarray, p: MSDParams) -> np.ndarray:
    x, v = state[..., 0], state[..., 1]
    acc = (u - p.damping * v - p.stiffness * x - p.cubic * x**3) / p.mass
    return np.stack([v, acc], axis=-1)


def step(state: np.ndarray, u: np.ndarray | float, p: MSDParams) -> np.ndarray:
    """One control period with the force clipped to the actuator limit."""
    u = np.clip(np.asarray(u, dtype=np.float64), -p.force_limit, p.force_limit)
    h = p.dt / p.substeps
    s = np.asarray(state, dtype=np.float64)
    for _ in range(p.substeps):
        k1 = derivatives(s, u, p)
        k2 = derivatives(s + 0.5 * h * k1, u, p)
        k3 = derivatives(s + 0.5 * h * k2, u, p)
        k4 = derivatives(s + h * k3, u, p)
        s = s + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return s


def rollout_hold(state: np.ndarray, u: np.ndarray, steps: int, p: MSDParams) -> np.ndarray:
    """The state after holding force ``u`` for ``steps`` control periods (what the learned model predicts)."""
    for _ in range(steps):
        state = step(state, u, p)
    return state


def reference_path(t: np.ndarray) -> np.ndarray:
    """A smooth path (m) with two frequencies, reaching into the stiff part of the spring."""
    t = np.asarray(t, dtype=np.float64)
    return 0.08 * np.sin(2 * np.pi * 0.4 * t) + 0.04 * np.sin(2 * np.pi * 1.1 * t + 0.5)


def sample_states(
    n: int, rng: np.random.Generator, x_max: float = 0.25, v_max: float = 1.5, p: MSDParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random states and forces covering the operating range (training data for the model)."""
    p = p or MSDParams()
    states = np.stack([rng.uniform(-x_max, x_max, n), rng.uniform(-v_max, v_max, n)], axis=-1)
    forces = rng.uniform(-p.force_limit, p.force_limit, n)
    return states, forces
