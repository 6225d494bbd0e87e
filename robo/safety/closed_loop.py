"""Randomised closed-loop check: a double integrator whose aggressive nominal controller drives
straight at obstacles and out of the geofence, with the filter in between.

Used by the benchmark (10,000 steps) and by a short test. The plant integrates exactly for a
command held over each step (zero-order hold), like a setpoint sent at the control rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robo.safety.barriers import BarrierSet, Cylinder, Geofence, Separation, Sphere

FENCE = Geofence((-4.0, -4.0, 0.3), (4.0, 4.0, 3.0))
ACCEL_LOWER = np.array([-8.0, -8.0, -8.0])
ACCEL_UPPER = np.array([8.0, 8.0, 8.0])


def random_barriers(rng: np.random.Generator, spheres: int = 3, cylinders: int = 2,
                    separation: Separation | None = None) -> BarrierSet:
    """Obstacles scattered inside the fence: 6 fence rows + up to 5 obstacles <= 11 rows (plus a row per
    neighbour with ``separation``)."""
    lo, hi = np.array(FENCE.lower), np.array(FENCE.upper)
    sph = [Sphere(tuple(rng.uniform(lo + 0.5, hi - 0.5)), float(rng.uniform(0.3, 0.8)))
           for _ in range(spheres)]
    cyl = [Cylinder(tuple(rng.uniform(lo[:2] + 0.5, hi[:2] - 0.5)), float(rng.uniform(0.2, 0.5)))
           for _ in range(cylinders)]
    return BarrierSet(spheres=sph, cylinders=cyl, geofence=FENCE, separation=separation)


def random_safe_state(rng: np.random.Generator, barriers: BarrierSet, alpha1: float,
                      margin: float = 0.2) -> np.ndarray:
    """A state with h >= margin and h' + alpha1 h >= 0 on every row (inside the HOCBF safe set)."""
    lo, hi = np.array(FENCE.lower), np.array(FENCE.upper)
    for _ in range(10_000):
        p = rng.uniform(lo, hi)
        v = rng.normal(size=3) * 1.5
        bv = barriers.evaluate(p, v)
        if bv.h.min() >= margin and np.all(bv.hdot + alpha1 * bv.h >= 0):
            return np.concatenate([p, v])
    raise RuntimeError("could not sample a safe initial state; the obstacles fill the fence")


def aggressive_nominal(goal: np.ndarray, kp: float = 6.0,
                       kd: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Under-damped PD toward ``goal`` (placed in an obstacle or outside the fence), saturated."""

    def controller(x: np.ndarray) -> np.ndarray:
        return np.clip(kp * (goal - x[:3]) - kd * x[3:], ACCEL_LOWER, ACCEL_UPPER)

    return controller


def random_goal(rng: np.random.Generator, barriers: BarrierSet) -> np.ndarray:
    targets = [np.array(s.center) for s in barriers.spheres]
    targets += [np.array([*c.center, rng.uniform(0.5, 2.5)]) for c in barriers.cylinders]
    targets.append(rng.uniform(np.array(FENCE.lower) - 3.0, np.array(FENCE.upper) + 3.0))
    return targets[rng.integers(len(targets))]


def step(x: np.ndarray, a: np.ndarray, dt: float) -> np.ndarray:
    p, v = x[:3], x[3:]
    return np.concatenate([p + v * dt + 0.5 * a * dt * dt, v + a * dt])


@dataclass
class ClosedLoopResult:
    steps: int
    min_barrier: float
    interventions: int
    faults: int
    episodes: int

    def as_dict(self) -> dict[str, float | int]:
        return {"steps": self.steps, "episodes": self.episodes, "min_barrier": self.min_barrier,
                "interventions": self.interventions, "faults": self.faults}


def run_closed_loop(make_filter: Callable[[BarrierSet], Callable], *, steps: int, seed: int = 0,
                    episode_steps: int = 400, dt: float = 0.01, alpha1: float = 2.0,
                    progress: Callable[[int], None] | None = None) -> ClosedLoopResult:
    """Run ``steps`` filtered steps over random scenes; the goal changes every 100 steps."""
    rng = np.random.default_rng(seed)
    done = interventions = faults = episodes = 0
    min_h = np.inf
    while done < steps:
        barriers = random_barriers(rng)
        safety = make_filter(barriers)
        x = random_safe_state(rng, barriers, alpha1)
        episodes += 1
        for k in range(min(episode_steps, steps - done)):
            if k % 100 == 0:
                nominal = aggressive_nominal(random_goal(rng, barriers))
            result = safety(x, nominal(x))
            interventions += int(result.intervened)
            faults += int(result.fault)
            x = step(x, result.u, dt)
            min_h = min(min_h, float(barriers.evaluate(x[:3]).h.min()))
            done += 1
            if progress:
                progress(1)
    return ClosedLoopResult(done, float(min_h), interventions, faults, episodes)
