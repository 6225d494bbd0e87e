"""Barrier functions on a 3-D position: obstacles, a geofence and separation from other agents.

Every barrier here is a signed distance in metres, h(p) >= 0 on the safe side, so the class-K
gains have units of 1/s and every gradient has unit length. That keeps the QP rows normalised
(the slack weight and the solver tolerances then mean the same thing for every barrier) and the
gains comparable between obstacles, fences and neighbours.

What a barrier contributes to the filter is, per row: its value h, its gradient dh/dp, and the
curvature term v' H v that a relative-degree-2 (double-integrator) constraint needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Below this distance to an obstacle's centre (or a neighbour) the gradient is undefined; the row
# then becomes 0 * u >= positive, which the QP reports as infeasible (a fault), never a NaN.
_TINY = 1e-9


def _finite_vector(name: str, value: Sequence[float], size: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.shape != (size,):
        raise ValueError(f"{name}: expected {size} numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {arr.tolist()}")
    return arr


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if value <= 0.0:
        raise ValueError(f"{name}: must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Sphere:
    """Ball obstacle: keep |p - center| >= radius."""

    center: tuple[float, float, float]
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", tuple(_finite_vector("sphere.center", self.center, 3)))
        object.__setattr__(self, "radius", _positive("sphere.radius", self.radius))


@dataclass(frozen=True)
class Cylinder:
    """Vertical pillar, unbounded in z: keep the horizontal distance to its axis >= radius."""

    center: tuple[float, float]
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", tuple(_finite_vector("cylinder.center", self.center, 2)))
        object.__setattr__(self, "radius", _positive("cylinder.radius", self.radius))


@dataclass(frozen=True)
class Geofence:
    """Axis-aligned box; lower[2] is the altitude floor and upper[2] the ceiling."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]

    def __post_init__(self) -> None:
        lo = _finite_vector("geofence.lower", self.lower, 3)
        hi = _finite_vector("geofence.upper", self.upper, 3)
        for axis, name in enumerate("xyz"):
            if hi[axis] <= lo[axis]:
                raise ValueError(
                    f"geofence: empty along {name} (lower {lo[axis]} >= upper {hi[axis]})"
                )
        object.__setattr__(self, "lower", tuple(lo))
        object.__setattr__(self, "upper", tuple(hi))


@dataclass(frozen=True)
class Separation:
    """Keep at least ``distance`` to each of up to ``max_neighbours`` other agents.

    Decentralised: each agent takes half of the pairwise constraint (its neighbour, running the same
    filter, takes the other half), as in the Robotarium and gcbf+ filters.
    """

    distance: float
    max_neighbours: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance", _positive("separation.distance", self.distance))
        if int(self.max_neighbours) != self.max_neighbours or self.max_neighbours < 1:
            raise ValueError(
                f"separation.max_neighbours: must be a positive integer, got {self.max_neighbours}")


@dataclass(frozen=True)
class BarrierValues:
    """Per-row data the dynamics models turn into QP rows.

    h: (m,) barrier values; grad: (m, 3) dh/dp; hdot: (m,) grad . v_rel; curv: (m,) v_rel' H v_rel;
    share: (m,) fraction of the constraint this agent is responsible for; active: (m,) False for padding.
    """

    h: np.ndarray
    grad: np.ndarray
    hdot: np.ndarray
    curv: np.ndarray
    share: np.ndarray
    active: np.ndarray


@dataclass(frozen=True)
class BarrierSet:
    """A fixed collection of barriers; the number of QP rows is fixed at construction."""

    spheres: tuple[Sphere, ...] = ()
    cylinders: tuple[Cylinder, ...] = ()
    geofence: Geofence | None = None
    separation: Separation | None = None
    # Packed arrays, built once so that evaluate() is a handful of vectorised numpy calls: round
    # obstacles as (centre, axis mask, radius) -- a cylinder is a sphere that ignores z -- and the
    # fence as six planes N p >= o.
    _centers: np.ndarray = field(init=False, repr=False, compare=False)
    _masks: np.ndarray = field(init=False, repr=False, compare=False)
    _radii: np.ndarray = field(init=False, repr=False, compare=False)
    _planes: np.ndarray = field(init=False, repr=False, compare=False)
    _offsets: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spheres", tuple(self.spheres))
        object.__setattr__(self, "cylinders", tuple(self.cylinders))
        for kind, items, cls in (("spheres", self.spheres, Sphere), ("cylinders", self.cylinders, Cylinder)):
            for i, item in enumerate(items):
                if not isinstance(item, cls):
                    raise ValueError(f"{kind}[{i}]: expected a {cls.__name__}, got {type(item).__name__}")
        if self.geofence is not None and not isinstance(self.geofence, Geofence):
            raise ValueError(f"geofence: expected a Geofence, got {type(self.geofence).__name__}")
        if self.separation is not None and not isinstance(self.separation, Separation):
            raise ValueError(f"separation: expected a Separation, got {type(self.separation).__name__}")
        if self.num_rows == 0:
            raise ValueError("barrier set: empty (give at least one obstacle, a geofence or a separation)")
        centers = [s.center for s in self.spheres] + [(*c.center, 0.0) for c in self.cylinders]
        masks = [(1.0, 1.0, 1.0)] * len(self.spheres) + [(1.0, 1.0, 0.0)] * len(self.cylinders)
        radii = [s.radius for s in self.spheres] + [c.radius for c in self.cylinders]
        object.__setattr__(self, "_centers", np.array(centers, float).reshape(-1, 3))
        object.__setattr__(self, "_masks", np.array(masks, float).reshape(-1, 3))
        object.__setattr__(self, "_radii", np.array(radii, float))
        if self.geofence:
            planes = np.concatenate([np.eye(3), -np.eye(3)])
            offsets = np.concatenate([self.geofence.lower, -np.asarray(self.geofence.upper)])
        else:
            planes, offsets = np.zeros((0, 3)), np.zeros(0)
        object.__setattr__(self, "_planes", planes)
        object.__setattr__(self, "_offsets", offsets)

    @property
    def num_neighbours(self) -> int:
        return self.separation.max_neighbours if self.separation else 0

    @property
    def num_rows(self) -> int:
        return (len(self.spheres) + len(self.cylinders) + (6 if self.geofence else 0)
                + self.num_neighbours)

    def evaluate(self, p: np.ndarray, v: np.ndarray | None = None,
                 neighbours: np.ndarray | None = None) -> BarrierValues:
        """Barrier rows at position ``p`` moving with ``v``.

        ``neighbours`` is (k, 3) positions or (k, 6) positions and velocities, k <= max_neighbours;
        missing velocities count as zero. Unused neighbour rows are padding (active False).
        """
        p = np.asarray(p, float)
        v = np.zeros(3) if v is None else np.asarray(v, float)
        k_max = self.num_neighbours
        centers, masks, radii, vrel = self._centers, self._masks, self._radii, v * self._masks
        pad = 0
        if k_max:
            nb = np.zeros((0, 6)) if neighbours is None else np.asarray(neighbours, float)
            if nb.ndim != 2 or nb.shape[1] not in (3, 6) or len(nb) > k_max:
                raise ValueError(f"neighbours: expected (k<={k_max}, 3 or 6), got shape {nb.shape}")
            if nb.shape[1] == 3:
                nb = np.concatenate([nb, np.zeros_like(nb)], axis=1)
            pad = k_max - len(nb)
            # Padding rows are computed like the others (far away), then flagged inactive.
            nb = np.concatenate([nb, np.tile([1e6, 1e6, 1e6, 0.0, 0.0, 0.0], (pad, 1))])
            centers = np.concatenate([centers, nb[:, :3]])
            masks = np.concatenate([masks, np.ones((k_max, 3))])
            radii = np.concatenate([radii, np.full(k_max, self.separation.distance)])
            vrel = np.concatenate([vrel, v - nb[:, 3:]])

        # Round obstacles and neighbours: distance to a centre (a cylinder's mask drops z).
        d = (p - centers) * masks
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        safe = np.maximum(dist, _TINY)
        n = d / safe[:, None]
        vn = np.einsum("ij,ij->i", n, vrel)
        # v' H v for a Euclidean distance: the squared velocity across the normal, over the distance.
        curv = np.maximum(np.einsum("ij,ij->i", vrel, vrel) - vn * vn, 0.0) / safe
        h_round = dist - radii
        n_obs = len(self._radii)

        h = np.concatenate([h_round[:n_obs], self._planes @ p - self._offsets, h_round[n_obs:]])
        grad = np.concatenate([n[:n_obs], self._planes, n[n_obs:]])
        hdot = np.concatenate([vn[:n_obs], self._planes @ v, vn[n_obs:]])
        curv = np.concatenate([curv[:n_obs], np.zeros(len(self._offsets)), curv[n_obs:]])
        share = np.ones(self.num_rows)
        active = np.ones(self.num_rows, bool)
        if k_max:
            share[-k_max:] = 0.5
        if pad:
            active[-pad:] = False
            h[-pad:] = np.inf
            grad[-pad:] = 0.0
            hdot[-pad:] = 0.0
            curv[-pad:] = 0.0
        return BarrierValues(h=h, grad=grad, hdot=hdot, curv=curv, share=share, active=active)
