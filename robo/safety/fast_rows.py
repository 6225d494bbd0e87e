"""The filter's QP rows in plain Python floats: the real-time twin of BarrierSet.evaluate + model.rows.

For one vehicle with a handful of barriers, building the rows with numpy costs some thirty array
operations of about a microsecond each, more than the arithmetic. This precomputes the barrier
set once as flat Python tuples (round obstacles, axis-aligned fence planes, neighbour slots) and
evaluates a state with scalar math. The rows are the same as :meth:`SafetyFilter.rows` (tested to
round-off), in the same order: spheres, cylinders, fence planes, neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robo.safety.barriers import _TINY, BarrierSet

Row = tuple[float, float, float]
# An unused neighbour slot: 0 . u >= -1 always holds and never becomes active.
_PADDING_ROW: Row = (0.0, 0.0, 0.0)


class RowProgram:
    """Rows A u >= b for a fixed barrier set and model; gains are per row (length num_rows)."""

    def __init__(self, barriers: BarrierSet, double_integrator: bool) -> None:
        self.double = double_integrator
        # Round obstacles: (cx, cy, cz, uses_z, radius); a cylinder ignores z.
        self.round = [(*s.center, True, s.radius) for s in barriers.spheres]
        self.round += [(*c.center, 0.0, False, c.radius) for c in barriers.cylinders]
        # Fence planes sign * p[axis] >= offset, in BarrierSet's order (lower x, y, z, upper x, y, z).
        self.planes: list[tuple[int, float, float]] = []
        if barriers.geofence:
            lo, hi = barriers.geofence.lower, barriers.geofence.upper
            self.planes = [(a, 1.0, lo[a]) for a in range(3)] + [(a, -1.0, -hi[a]) for a in range(3)]
        self.max_neighbours = barriers.num_neighbours
        self.separation = barriers.separation.distance if barriers.separation else 0.0
        self.num_rows = barriers.num_rows

    def _round_row(self, d0: float, d1: float, d2: float, w0: float, w1: float, w2: float,
                   radius: float, k1: float, k0: float, share: float) -> tuple[Row, float, float]:
        """Row for h = |d| - radius, d = p - centre, w = relative velocity (already masked)."""
        dist = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        safe = dist if dist > _TINY else _TINY
        n = (d0 / safe, d1 / safe, d2 / safe)
        h = dist - radius
        if not self.double:
            return n, -share * k0 * h, h
        vn = n[0] * w0 + n[1] * w1 + n[2] * w2
        # v' H v of a Euclidean distance: squared velocity across the normal, over the distance.
        curv = max(w0 * w0 + w1 * w1 + w2 * w2 - vn * vn, 0.0) / safe
        return n, -share * (curv + k1 * vn + k0 * h), h

    def rows(self, x: Sequence[float], a1: Sequence[float], a2: Sequence[float],
             neighbours: Sequence[Sequence[float]] = ()) -> tuple[list[Row], list[float], float]:
        """(normals, rhs, h_min) at state ``x`` ((p, v) or p); neighbours: rows of 3 or 6 floats."""
        px, py, pz = x[0], x[1], x[2]
        vx, vy, vz = (x[3], x[4], x[5]) if self.double else (0.0, 0.0, 0.0)
        normals: list[Row] = []
        rhs: list[float] = []
        h_min = math.inf
        i = 0
        # Class-K gains folded per row: single integrator b = -a1 h; double (HOCBF)
        # b = -(v'Hv + (a1 + a2) h' + a1 a2 h).
        for cx, cy, cz, uses_z, radius in self.round:
            k0 = a1[i] * a2[i] if self.double else a1[i]
            dz, wz = (pz - cz, vz) if uses_z else (0.0, 0.0)
            n, b, h = self._round_row(px - cx, py - cy, dz, vx, vy, wz, radius, a1[i] + a2[i], k0, 1.0)
            normals.append(n)
            rhs.append(b)
            h_min = min(h_min, h)
            i += 1
        p, v = (px, py, pz), (vx, vy, vz)
        for axis, sign, offset in self.planes:
            h = sign * p[axis] - offset
            n = [0.0, 0.0, 0.0]
            n[axis] = sign
            normals.append((n[0], n[1], n[2]))
            if self.double:
                rhs.append(-((a1[i] + a2[i]) * sign * v[axis] + a1[i] * a2[i] * h))
            else:
                rhs.append(-a1[i] * h)
            h_min = min(h_min, h)
            i += 1
        for k in range(self.max_neighbours):
            if k >= len(neighbours):
                normals.append(_PADDING_ROW)
                rhs.append(-1.0)
                i += 1
                continue
            q = neighbours[k]
            wx, wy, wz = (vx - q[3], vy - q[4], vz - q[5]) if len(q) == 6 else (vx, vy, vz)
            k0 = a1[i] * a2[i] if self.double else a1[i]
            # Decentralised: this agent takes half of the pairwise constraint.
            n, b, h = self._round_row(px - q[0], py - q[1], pz - q[2], wx, wy, wz, self.separation,
                                      a1[i] + a2[i], k0, 0.5)
            normals.append(n)
            rhs.append(b)
            h_min = min(h_min, h)
            i += 1
        return normals, rhs, h_min
