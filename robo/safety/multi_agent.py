"""The reference statement of one agent's decentralised CBF-QP, in numpy and cvxpy.

The batched torch filter (:mod:`robo.safety.batched_multi_agent`, where the barrier is derived) must
solve exactly this problem; the tests compare the two on random instances. Here every condition is
written as the HOCBF inequality itself, divided by the length of its gradient in a_i, with its own
slack (so slack is in m/s^2, as the batched rows are):

    (2 dp.a_i + share * c) / |2 dp| + s_j >= 0,   c = 2 |dv|^2 + (k1 + k2) h' + k1 k2 h,

share 1/2 for another agent, 1 for an obstacle. A neighbour j whose acceleration is known (``fixed``:
it faulted and brakes) is taken whole, ``(2 dp.(a_i - a_j) + c) / |2 dp| + s_j >= 0``. Imports cvxpy
only when called.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

SLACK_TOL = 1e-6  # m/s^2: a slack above this is a fault (the batched filter's multiplier test)


@dataclass(frozen=True)
class AgentQPResult:
    u: np.ndarray     # the acceleration (meaningful unless status is "solver_failed")
    status: str       # "optimal", "infeasible" (slack above SLACK_TOL) or "solver_failed"
    slack: float      # the largest slack


def reference_agent_qp(i: int, p: np.ndarray, v: np.ndarray, u_nom: np.ndarray, obstacle_p: np.ndarray,
                       obstacle_r: np.ndarray, k1: float, k2: float, *, agent_radius: float,
                       sensing_radius: float, max_accel: float, margin: float,
                       slack_weight: float, fixed: dict[int, np.ndarray] | None = None) -> AgentQPResult:
    """Agent ``i``'s QP in one environment: p, v [N, D], u_nom [D] (agent i's), obstacles [O, D], [O];
    ``fixed`` maps a neighbour's index to its known (brake) acceleration."""
    import cvxpy as cp

    a = cp.Variable(p.shape[1], name="a")
    terms = []
    fixed = fixed or {}
    zero = np.zeros_like(v[i])
    others = [(p[j], v[j], 2 * agent_radius, 1.0 if j in fixed else 0.5, fixed.get(j, zero))
              for j in range(len(p)) if j != i]
    others += [(c, zero, agent_radius + r, 1.0, zero) for c, r in zip(obstacle_p, obstacle_r, strict=True)]
    for q, w, reach, share, a_other in others:
        dp, dv = p[i] - q, v[i] - w
        dist = float(np.linalg.norm(dp))
        if dist > sensing_radius:
            continue
        h = dist**2 - (reach + margin) ** 2
        h_dot = 2 * dp @ dv
        c = 2 * dv @ dv + (k1 + k2) * h_dot + k1 * k2 * h
        terms.append((2 * dp @ (a - a_other) + share * c) / (2 * dist))
    s = cp.Variable(len(terms), nonneg=True, name="slack") if terms else None
    constraints = [a >= -max_accel, a <= max_accel]
    objective = cp.sum_squares(a - u_nom)
    if terms:
        constraints.append(cp.hstack(terms) + s >= 0)
        objective = objective + slack_weight * cp.sum(s)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12,
                          static_regularization_constant=1e-12, iterative_refinement_reltol=1e-16,
                          iterative_refinement_abstol=1e-16)
    except cp.error.SolverError:
        return AgentQPResult(np.full(p.shape[1], np.nan), "solver_failed", np.nan)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or a.value is None:
        return AgentQPResult(np.full(p.shape[1], np.nan), "solver_failed", np.nan)
    slack = float(np.max(s.value)) if s is not None else 0.0
    return AgentQPResult(np.asarray(a.value), "infeasible" if slack > SLACK_TOL else "optimal", slack)
