"""Dynamics models: they turn barrier values into linear constraints A u >= b on the command u.

Single integrator  p' = u (u a velocity):  h' + alpha1 h >= 0             ->  grad.u >= -alpha1 h
Double integrator  p'' = u (u an acceleration), relative degree 2, so a higher-order CBF:
    psi1 = h' + alpha1 h,   psi1' + alpha2 psi1 >= 0
    ->  grad.u >= -(v'Hv + (alpha1 + alpha2) h' + alpha1 alpha2 h)
A pairwise row is multiplied by its share (0.5): each agent takes half of the margin.

The gains are the class-K functions (linear here), given per call so a learned policy can tune them
online (the online-CBF task), as scalars or one value per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo.safety.barriers import BarrierValues


def check_gain(name: str, value: float | np.ndarray, rows: int) -> np.ndarray:
    arr = np.asarray(value, float)
    if arr.ndim == 0:
        arr = np.full(rows, float(arr))
    if arr.shape != (rows,):
        raise ValueError(f"{name}: expected a scalar or {rows} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: class-K gains must be finite and positive, got {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class SingleIntegrator:
    """State p (3), command u = velocity (3). Safe output on a fault: stop (hover in place)."""

    state_size: int = 3
    relative_degree: int = 1

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return x[:3], None

    def rows(self, bv: BarrierValues, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A u >= b; a1, a2 are per-row gains already checked by :func:`check_gain`."""
        h = np.where(bv.active, bv.h, 0.0)
        b = np.where(bv.active, -bv.share * a1 * h, -1.0)
        return bv.grad, b

    def safe_command(self, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     brake_gain: float) -> np.ndarray:
        return np.clip(np.zeros(3), lower, upper)


@dataclass(frozen=True)
class DoubleIntegrator:
    """State (p, v) (6), command u = acceleration (3). Safe output on a fault: brake, a = -k v."""

    state_size: int = 6
    relative_degree: int = 2

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return x[:3], x[3:6]

    def rows(self, bv: BarrierValues, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A u >= b; a1, a2 are per-row gains already checked by :func:`check_gain`."""
        h = np.where(bv.active, bv.h, 0.0)
        rhs = -(bv.curv + (a1 + a2) * bv.hdot + a1 * a2 * h)
        b = np.where(bv.active, bv.share * rhs, -1.0)
        return bv.grad, b

    def safe_command(self, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     brake_gain: float) -> np.ndarray:
        v = np.asarray(x[3:6], float)
        if not np.all(np.isfinite(v)):
            return np.clip(np.zeros(3), lower, upper)
        return np.clip(-brake_gain * v, lower, upper)


def make_model(name: str) -> SingleIntegrator | DoubleIntegrator:
    if name == "single_integrator":
        return SingleIntegrator()
    if name == "double_integrator":
        return DoubleIntegrator()
    raise ValueError(f"model: unknown {name!r} (known: single_integrator, double_integrator)")
