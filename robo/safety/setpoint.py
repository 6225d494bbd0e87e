"""Quadrotor use: filter the setpoint a policy sends to the vehicle's position/velocity tracker.

The tracker closes the loop  a = kp (p_sp - p) + kv (v_sp - v) + a_ff  fast enough that the
vehicle's translational motion is a double integrator driven by that acceleration. So the
commanded acceleration is what the filter acts on: it is filtered, and the position setpoint is
shifted so that the tracker produces exactly the filtered acceleration (velocity setpoint and
feed-forward are passed on unchanged). Works on a plain state (p, v); wire it to any simulator.

Typical use (a runtime loop or a ROS node; numpy only, no torch)::

    sp_filter = SetpointFilter.from_config("configs/safety.yaml", kp=4.0, kv=3.0)
    out = sp_filter(p, v, position_sp, velocity_sp)   # every control cycle
    send(out.setpoint.position, out.setpoint.velocity)
    if out.fault: log(out.reason)                     # the setpoint is then "hold here, stop"
    sp_filter.stats.as_dict()                         # calls, interventions, faults by reason
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robo.safety.filter import FilterResult, FilterStats, SafetyFilter
from robo.safety.models import DoubleIntegrator

if TYPE_CHECKING:
    from robo.safety.config import SafetyConfig


@dataclass(frozen=True)
class Setpoint:
    """Where the vehicle should be and how fast it should move there (world frame); the one definition."""

    position: np.ndarray
    velocity: np.ndarray
    accel_ff: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass(frozen=True)
class SetpointResult:
    setpoint: Setpoint
    accel: np.ndarray       # the acceleration the tracker will now command
    filter: FilterResult    # status, reason, h_min of the underlying filter call

    # Shortcuts to the filter result, so a caller rarely needs to reach into .filter.
    @property
    def status(self) -> str:
        return self.filter.status

    @property
    def fault(self) -> bool:
        return self.filter.fault

    @property
    def reason(self) -> str:
        return self.filter.reason

    @property
    def h_min(self) -> float:
        return self.filter.h_min


class SetpointFilter:
    """Wrap a double-integrator :class:`SafetyFilter` around a PD position tracker with gains kp, kv."""

    def __init__(self, safety: SafetyFilter, kp: float, kv: float) -> None:
        if not isinstance(safety.model, DoubleIntegrator):
            raise ValueError("setpoint filter: needs a double_integrator SafetyFilter")
        for name, value in (("kp", kp), ("kv", kv)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"tracker.{name}: must be finite and positive, got {value}")
        self.safety, self.kp, self.kv = safety, float(kp), float(kv)

    @classmethod
    def from_config(cls, config: SafetyConfig | str | Path | None, kp: float, kv: float,
                    overrides: Sequence[str] = ()) -> SetpointFilter:
        """Build from a :class:`SafetyConfig`, or a YAML path (None: the defaults) plus ``key=value``
        overrides; unknown keys and wrong types raise ConfigError naming the key."""
        from robo.safety.config import SafetyConfig, build_filter, load_safety_config

        cfg = config if isinstance(config, SafetyConfig) else load_safety_config(config, overrides)
        if isinstance(config, SafetyConfig) and overrides:
            raise ValueError("overrides: only with a config path (apply them to the SafetyConfig yourself)")
        return cls(build_filter(cfg), kp, kv)

    @property
    def stats(self) -> FilterStats:
        """Calls, interventions and faults (by reason) of the underlying filter."""
        return self.safety.stats

    def tracker_accel(self, p: np.ndarray, v: np.ndarray, sp: Setpoint) -> np.ndarray:
        return self.kp * (sp.position - p) + self.kv * (sp.velocity - v) + sp.accel_ff

    def __call__(self, p: np.ndarray, v: np.ndarray, position_sp: np.ndarray,
                 velocity_sp: np.ndarray | None = None, accel_ff: np.ndarray | None = None,
                 neighbours: np.ndarray | None = None) -> SetpointResult:
        """Filter one setpoint. p, v: the vehicle's position and velocity; the rest as sent to the
        tracker. Non-finite values are a fault (hold position, zero velocity), never a NaN
        setpoint; a wrong number of values is a ValueError."""
        p, v = _vec3("p", p), _vec3("v", v)
        sp = Setpoint(_vec3("position_sp", position_sp),
                      np.zeros(3) if velocity_sp is None else _vec3("velocity_sp", velocity_sp),
                      np.zeros(3) if accel_ff is None else _vec3("accel_ff", accel_ff))
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


def _vec3(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value, float).reshape(-1)
    if arr.shape != (3,):
        raise ValueError(f"setpoint filter: {name} needs 3 values, got {arr.size}")
    return arr
