"""Quadrotor use: filter the setpoint a policy sends to the vehicle's position/velocity tracker.

The tracker closes the loop  a = kp (p_sp - p) + kv (v_sp - v) + a_ff  fast enough that the
vehicle's translational motion is a double integrator driven by that acceleration. So the
commanded acceleration is what the filter acts on: it is filtered, and the position setpoint is
shifted so that the tracker produces exactly the filtered acceleration (velocity setpoint and
feed-forward are passed on unchanged). Works on a plain state (p, v); wire it to any simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo.safety.filter import FilterResult, SafetyFilter
from robo.safety.models import DoubleIntegrator


@dataclass(frozen=True)
class Setpoint:
    position: np.ndarray
    velocity: np.ndarray
    accel_ff: np.ndarray


@dataclass(frozen=True)
class SetpointResult:
    setpoint: Setpoint
    accel: np.ndarray       # the acceleration the tracker will now command
    filter: FilterResult    # status, reason, h_min of the underlying filter call


class SetpointFilter:
    """Wrap a double-integrator :class:`SafetyFilter` around a PD position tracker with gains kp, kv."""

    def __init__(self, safety: SafetyFilter, kp: float, kv: float) -> None:
        if not isinstance(safety.model, DoubleIntegrator):
            raise ValueError("setpoint filter: needs a double_integrator SafetyFilter")
        for name, value in (("kp", kp), ("kv", kv)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"tracker.{name}: must be finite and positive, got {value}")
        self.safety, self.kp, self.kv = safety, float(kp), float(kv)

    def tracker_accel(self, p: np.ndarray, v: np.ndarray, sp: Setpoint) -> np.ndarray:
        return self.kp * (sp.position - p) + self.kv * (sp.velocity - v) + sp.accel_ff

    def __call__(self, p: np.ndarray, v: np.ndarray, position_sp: np.ndarray,
                 velocity_sp: np.ndarray | None = None, accel_ff: np.ndarray | None = None,
                 neighbours: np.ndarray | None = None) -> SetpointResult:
        p, v = np.asarray(p, float), np.asarray(v, float)
        sp = Setpoint(np.asarray(position_sp, float),
                      np.zeros(3) if velocity_sp is None else np.asarray(velocity_sp, float),
                      np.zeros(3) if accel_ff is None else np.asarray(accel_ff, float))
        a_nom = self.tracker_accel(p, v, sp)
        result = self.safety(np.concatenate([p, v]), a_nom, neighbours)
        a = result.u
        if result.fault:
            # Brake: hold the current position, zero velocity and feed-forward; the tracker then
            # decelerates like the filter's brake command (up to its own gains).
            safe_p = p if np.all(np.isfinite(p)) else np.zeros(3)
            return SetpointResult(Setpoint(safe_p, np.zeros(3), np.zeros(3)), a, result)
        shifted = p + (a - self.kv * (sp.velocity - v) - sp.accel_ff) / self.kp
        return SetpointResult(Setpoint(shifted, sp.velocity, sp.accel_ff), a, result)
