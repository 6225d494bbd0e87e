"""Setpoint trajectories as functions of time: hold, figure-eight, waypoints (numpy, no torch).

The figure-eight is the simulator's (``sim.quadrotor.references.figure8``: x = A sin(phi),
y = A/2 sin(2 phi), phase rate ramped from 0 over ``ramp`` seconds), shifted to ``center``, so a policy
flies here what it flew in training; tests compare the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robo.safety.setpoint import Setpoint

KINDS = ("hold", "figure8", "waypoints")


@dataclass
class TrajectoryConfig:
    kind: str = "figure8"                                # hold, figure8 or waypoints
    center: tuple[float, float, float] = (0.0, 0.0, 1.0)  # m, world; hold position and figure-eight centre
    period: float = 10.0                                 # s, one figure-eight
    scale: float = 1.0                                   # m, half the figure-eight's length
    ramp: float = 2.0                                    # s, phase-rate ramp at the start
    waypoints: list[tuple[float, float, float]] = field(default_factory=list)  # m, world
    dwell: float = 3.0                                   # s at each waypoint

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: unknown {self.kind!r} (known: {', '.join(KINDS)})")
        for name in ("period", "dwell"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value}")
        if not math.isfinite(self.ramp) or self.ramp < 0:
            raise ValueError(f"ramp: must be >= 0 s, got {self.ramp}")
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"scale: must be >= 0 m, got {self.scale}")
        if not all(math.isfinite(c) for c in self.center) or len(self.center) != 3:
            raise ValueError(f"center: must be 3 finite numbers, got {self.center}")
        if self.kind == "waypoints" and not self.waypoints:
            raise ValueError("waypoints: the waypoints kind needs at least one point")
        for w in self.waypoints:
            if len(w) != 3 or not all(math.isfinite(c) for c in w):
                raise ValueError(f"waypoints: each point must be 3 finite numbers, got {w}")


def figure8(t: float, period: float, scale: float, ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and velocity (relative to the centre) of the figure-eight at time ``t``."""
    rate = 2 * math.pi / period
    ramp = max(ramp, 1e-9)
    if t < ramp:
        phase, phase_rate = rate * t * t / (2 * ramp), rate * t / ramp
    else:
        phase, phase_rate = rate * (ramp / 2 + (t - ramp)), rate
    a = scale
    pos = np.array([a * math.sin(phase), 0.5 * a * math.sin(2 * phase), 0.0])
    vel = np.array([a * math.cos(phase) * phase_rate, a * math.cos(2 * phase) * phase_rate, 0.0])
    return pos, vel


class Trajectory:
    """``setpoint(t)`` for ``t`` seconds since the start."""

    def __init__(self, cfg: TrajectoryConfig) -> None:
        self.cfg = cfg
        self.center = np.asarray(cfg.center, dtype=np.float64)

    def setpoint(self, t: float) -> Setpoint:
        c = self.cfg
        t = max(0.0, float(t))
        if c.kind == "figure8":
            pos, vel = figure8(t, c.period, c.scale, c.ramp)
            return Setpoint(self.center + pos, vel)
        if c.kind == "waypoints":
            i = min(int(t // c.dwell), len(c.waypoints) - 1)
            return Setpoint(np.asarray(c.waypoints[i], dtype=np.float64), np.zeros(3))
        return Setpoint(self.center.copy(), np.zeros(3))
