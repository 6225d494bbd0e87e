"""Dual active-set solver (Goldfarb-Idnani) for the filter's projection QP, in plain Python.

    minimize |u - u_nom|^2   subject to   n_i . u >= g_i   (i < M),   u in R^3

The filter QP is a projection onto a polyhedron in three dimensions, so the dual method of
Goldfarb and Idnani is small and exact: start at the unconstrained optimum u_nom, add the most
violated row, step along its direction projected onto the null space of the active rows (or drop
an active row whose multiplier would turn negative), repeat. At most three rows are ever active
and each step solves a Gram system of size <= 3 in closed form. It ends in finitely many steps
with the exact optimum and its KKT multipliers, or with a row that no step can satisfy, which
proves the hard problem infeasible.

Why plain Python floats: for 3 variables and ~14 rows, numpy spends more time creating tiny arrays
(about a microsecond per call) than on arithmetic, and this is the per-step cost of a real-time
loop. The emitted C (:mod:`robo.safety.c_emitter`) is the same algorithm, line for line, in
single precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Vec = tuple[float, float, float]

OPTIMAL, INFEASIBLE, ITERATION_LIMIT = "optimal", "infeasible", "iteration_limit"
# |z|^2 below this means the new row is (numerically) a combination of the active rows. Rows have
# unit length, so this compares squared sines of angles: 1e-20 keeps rows 1e-10 rad apart distinct.
DEPENDENT = 1e-20


@dataclass(frozen=True)
class ActiveSetResult:
    """u: the optimum (optimal), else the last iterate. active/multipliers: active rows and their
    KKT multipliers for the |u - u_nom|^2 objective (2 x those of the 1/2 |.|^2 form).
    row: the row proven unsatisfiable (infeasible), violation: by how much it was violated."""

    u: Vec
    status: str
    active: tuple[int, ...] = ()
    multipliers: tuple[float, ...] = ()
    row: int = -1
    violation: float = 0.0
    iterations: int = 0


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _gram_solve(normals: list[Sequence[float]], rhs: list[float]) -> list[float] | None:
    """Solve (N N') y = rhs for k <= 3 rows by the adjugate; None when the rows are dependent."""
    k = len(normals)
    if k == 0:
        return []
    if k == 1:
        q = _dot(normals[0], normals[0])
        return [rhs[0] / q] if q > DEPENDENT else None
    if k == 2:
        a, b, d = (_dot(normals[0], normals[0]), _dot(normals[0], normals[1]),
                   _dot(normals[1], normals[1]))
        det = a * d - b * b
        if det <= DEPENDENT:
            return None
        return [(d * rhs[0] - b * rhs[1]) / det, (a * rhs[1] - b * rhs[0]) / det]
    n0, n1, n2 = normals
    a, b, c = _dot(n0, n0), _dot(n0, n1), _dot(n0, n2)
    d, e, f = _dot(n1, n1), _dot(n1, n2), _dot(n2, n2)
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    if det <= DEPENDENT:
        return None
    r0, r1, r2 = rhs
    return [(c00 * r0 + c01 * r1 + c02 * r2) / det, (c01 * r0 + c11 * r1 + c12 * r2) / det,
            (c02 * r0 + c12 * r1 + c22 * r2) / det]


def solve_projection(normals: Sequence[Sequence[float]], rhs: Sequence[float], u_nom: Sequence[float],
                     *, tol: float = 1e-9, max_iter: int = 0) -> ActiveSetResult:
    """Project ``u_nom`` onto {u : normals[i] . u >= rhs[i] for all i}.

    ``tol`` is the accepted violation of a row (rows have unit length, so it is in the units of
    u). ``max_iter`` bounds the number of steps (0: 4 * rows + 8); Goldfarb-Idnani ends far
    earlier, the bound only turns an unforeseen cycle from round-off into a reported failure.
    """
    m = len(rhs)
    max_iter = max_iter or 4 * m + 8
    u0, u1, u2 = float(u_nom[0]), float(u_nom[1]), float(u_nom[2])
    active: list[int] = []
    mu: list[float] = []          # multipliers of the active rows, 1/2 |.|^2 form
    it = 0
    while True:
        # Most violated row at the current iterate.
        worst, p = -tol, -1
        for i in range(m):
            n = normals[i]
            s = n[0] * u0 + n[1] * u1 + n[2] * u2 - rhs[i]
            if s < worst:
                worst, p = s, i
        if p < 0:
            break
        n_p = normals[p]
        s_p = worst
        mu_p = 0.0
        while True:                # add row p, dropping active rows as needed
            it += 1
            if it > max_iter:
                return ActiveSetResult((u0, u1, u2), ITERATION_LIMIT, tuple(active), tuple(mu), p,
                                       -s_p, it)
            act_n = [normals[j] for j in active]
            r = _gram_solve(act_n, [_dot(nj, n_p) for nj in act_n])
            if r is None:          # cannot happen: only independent rows are ever added
                return ActiveSetResult((u0, u1, u2), ITERATION_LIMIT, tuple(active), tuple(mu), p,
                                       -s_p, it)
            if len(active) == 3:
                z0 = z1 = z2 = 0.0  # three independent rows span R^3: no primal direction left
            else:
                z0, z1, z2 = n_p[0], n_p[1], n_p[2]
                for rj, nj in zip(r, act_n, strict=True):
                    z0 -= rj * nj[0]
                    z1 -= rj * nj[1]
                    z2 -= rj * nj[2]
            zz = z0 * z0 + z1 * z1 + z2 * z2
            # Partial step: the largest step before an active multiplier reaches zero.
            t_drop, drop = math.inf, -1
            for j, rj in enumerate(r):
                if rj > 0.0 and mu[j] / rj < t_drop:
                    t_drop, drop = mu[j] / rj, j
            t_full = -s_p / zz if zz > DEPENDENT else math.inf
            t = min(t_drop, t_full)
            if t == math.inf:      # row p cannot be reached by any feasible multiplier change
                return ActiveSetResult((u0, u1, u2), INFEASIBLE, tuple(active), tuple(mu), p, -s_p, it)
            for j, rj in enumerate(r):
                mu[j] -= t * rj
            mu_p += t
            if t_full < math.inf:
                u0, u1, u2 = u0 + t * z0, u1 + t * z1, u2 + t * z2
                s_p += t * zz
            if t_full <= t_drop:
                active.append(p)
                mu.append(mu_p)
                break
            del active[drop], mu[drop]
    # Polish: recompute the projection onto the final active set from u_nom in one solve, so the
    # result does not carry the round-off of the steps (it is the exact KKT point of that set).
    if active:
        act_n = [normals[j] for j in active]
        base = (float(u_nom[0]), float(u_nom[1]), float(u_nom[2]))
        y = _gram_solve(act_n, [rhs[j] - _dot(nj, base) for j, nj in zip(active, act_n, strict=True)])
        if y is not None:
            u0, u1, u2 = base
            for yj, nj in zip(y, act_n, strict=True):
                u0 += yj * nj[0]
                u1 += yj * nj[1]
                u2 += yj * nj[2]
            mu = y
    return ActiveSetResult((u0, u1, u2), OPTIMAL, tuple(active), tuple(2.0 * v for v in mu), iterations=it)
