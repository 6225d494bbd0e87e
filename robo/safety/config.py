"""User-facing settings of the safety filter: a dataclass schema loaded through robo.config.

Defaults live in configs/safety.yaml; ``load_config(SafetyConfig, path, overrides)`` checks keys and
types, and :func:`build_filter` turns the result into a :class:`SafetyFilter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from robo.config import load_config
from robo.safety.barriers import BarrierSet, Cylinder, Geofence, Separation, Sphere
from robo.safety.filter import SafetyFilter


@dataclass
class SphereConfig:
    center: tuple[float, float, float] = (0.0, 0.0, 1.0)
    radius: float = 0.5


@dataclass
class CylinderConfig:
    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.3


@dataclass
class GeofenceConfig:
    lower: tuple[float, float, float] = (-5.0, -5.0, 0.3)  # lower[2] is the altitude floor
    upper: tuple[float, float, float] = (5.0, 5.0, 3.0)    # upper[2] is the ceiling


@dataclass
class SafetyConfig:
    model: Literal["double_integrator", "single_integrator"] = "double_integrator"
    backend: Literal["fast", "cvxpy", "enumeration"] = "fast"
    solver: Literal["clarabel", "osqp"] = "clarabel"
    alpha1: float = 2.0            # class-K gain on h (1/s)
    alpha2: float = 2.0            # class-K gain on psi1 = h' + alpha1 h (double integrator only)
    input_lower: tuple[float, float, float] = (-8.0, -8.0, -8.0)
    input_upper: tuple[float, float, float] = (8.0, 8.0, 8.0)
    slack_weight: float = 1.0e4    # exact-penalty weight: needing slack is a fault
    slack_tol: float = 1.0e-6      # cvxpy path: slack above this is a fault
    brake_gain: float = 2.0        # safe output on a fault: a = -brake_gain * v (or stop)
    spheres: list[SphereConfig] = field(default_factory=list)
    cylinders: list[CylinderConfig] = field(default_factory=list)
    geofence: GeofenceConfig | None = field(default_factory=GeofenceConfig)
    separation: float = 0.0        # minimum distance to other agents; 0 disables
    max_neighbours: int = 0


def load_safety_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SafetyConfig:
    """configs/safety.yaml-style file (None: the schema defaults) plus ``key=value`` overrides."""
    return load_config(SafetyConfig, path, list(overrides))


def build_barriers(cfg: SafetyConfig) -> BarrierSet:
    separation = None
    if cfg.separation > 0 or cfg.max_neighbours > 0:
        separation = Separation(cfg.separation, cfg.max_neighbours)
    fence = Geofence(cfg.geofence.lower, cfg.geofence.upper) if cfg.geofence else None
    return BarrierSet(spheres=[Sphere(s.center, s.radius) for s in cfg.spheres],
                      cylinders=[Cylinder(c.center, c.radius) for c in cfg.cylinders],
                      geofence=fence, separation=separation)


def build_filter(cfg: SafetyConfig) -> SafetyFilter:
    return SafetyFilter(build_barriers(cfg), cfg.model, lower=cfg.input_lower, upper=cfg.input_upper,
                        alpha1=cfg.alpha1, alpha2=cfg.alpha2, slack_weight=cfg.slack_weight,
                        slack_tol=cfg.slack_tol, brake_gain=cfg.brake_gain, backend=cfg.backend,
                        solver=cfg.solver)
