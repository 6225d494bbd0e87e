"""The filter QP, stated once and solved two ways.

    minimize    |u - u_nom|^2 + rho * sum(s)
    subject to  A u + s >= b,   s >= 0,   lower <= u <= upper

Rows of A have unit length (the barriers are signed distances). The slack s is an exact (L1)
penalty: whenever the hard problem (s = 0) is feasible and its multipliers are below rho, the
solution has s = 0 exactly, so the slack is a diagnostic, not a softening. A slack above tolerance
means the barriers cannot all be met within the input bounds: that is a fault, never a solution.

* :class:`CvxpyQP` is the reference: a DPP cvxpy problem built once with Parameters.
* :class:`FastQP` is the real-time path: a dual active-set method (Goldfarb-Idnani) in plain
  Python floats, see :mod:`robo.safety.active_set`; the emitted C runs the same algorithm.
* :class:`EnumerationQP` solves it exactly by enumerating active sets with a fixed worst case; it
  is the algorithm of the batched torch path (no data-dependent iteration count), kept here in
  numpy as its double-precision twin.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from robo.safety.active_set import INFEASIBLE as AS_INFEASIBLE
from robo.safety.active_set import OPTIMAL as AS_OPTIMAL
from robo.safety.active_set import solve_projection

STATUS_OPTIMAL = "optimal"
STATUS_INFEASIBLE = "infeasible"
STATUS_SOLVER = "solver_failed"


@dataclass(frozen=True)
class QPSolution:
    """u is meaningful only when status is 'optimal'; reason says why not otherwise."""

    u: np.ndarray
    status: str
    reason: str = ""
    slack: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OPTIMAL


def check_bounds(lower: np.ndarray, upper: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    lower = np.asarray(lower, float).reshape(-1)
    upper = np.asarray(upper, float).reshape(-1)
    if lower.shape != (size,) or upper.shape != (size,):
        raise ValueError(f"input bounds: expected {size} values each, got {lower.shape} and {upper.shape}")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError(f"input bounds: must be finite, got lower {lower.tolist()} upper {upper.tolist()}")
    if np.any(lower >= upper):
        raise ValueError(
            f"input bounds: lower must be below upper, got {lower.tolist()} and {upper.tolist()}")
    return lower, upper


def _check_weight(slack_weight: float) -> float:
    if not np.isfinite(slack_weight) or slack_weight <= 0:
        raise ValueError(f"slack_weight: must be finite and positive, got {slack_weight}")
    return float(slack_weight)


_CLARABEL_REFINEMENT = {"static_regularization_constant": 1e-12, "iterative_refinement_reltol": 1e-16,
                        "iterative_refinement_abstol": 1e-16}


class CvxpyQP:
    """The reference formulation. Parameters only enter affinely (DPP), so cvxpy canonicalises once
    and each solve only refills numbers; gains are folded into b by the caller for the same reason
    (alpha * h with both as Parameters would break DPP)."""

    def __init__(self, rows: int, size: int = 3, *, slack_weight: float = 1e4, slack_tol: float = 1e-6,
                 solver: str = "clarabel") -> None:
        import cvxpy as cp

        self.rows, self.size = rows, size
        self.slack_tol = slack_tol
        self.u = cp.Variable(size, name="u")
        self.s = cp.Variable(rows, nonneg=True, name="slack")
        self.A = cp.Parameter((rows, size), name="A")
        self.b = cp.Parameter(rows, name="b")
        self.u_nom = cp.Parameter(size, name="u_nom")
        self.lower = cp.Parameter(size, name="lower")
        self.upper = cp.Parameter(size, name="upper")
        self.rho = cp.Parameter(nonneg=True, name="slack_weight")
        self.rho.value = _check_weight(slack_weight)
        objective = cp.Minimize(cp.sum_squares(self.u - self.u_nom) + self.rho * cp.sum(self.s))
        constraints = [self.A @ self.u + self.s >= self.b, self.u >= self.lower, self.u <= self.upper]
        self.problem = cp.Problem(objective, constraints)
        solver = solver.upper()
        if solver == "CLARABEL":
            # An interior-point method is accurate in u only to about sqrt(duality gap) (the
            # objective is a squared distance), so the gap must be far below the defaults. Measured
            # on 10,000 random problems (robo bench safety): with the gap at 1e-13 alone the worst
            # was 4e-7 and a retried "almost solved" case 9e-6 off the exact active-set optimum;
            # the error then came from Clarabel's linear solves, not its stopping rule. Iterative
            # refinement to machine precision and a 1e-12 static regularisation (default 1e-8,
            # which perturbs the KKT system itself) bring the worst to 8e-9 at the same time/solve.
            self.options = {"tol_gap_abs": 1e-13, "tol_gap_rel": 1e-13, "tol_feas": 1e-12,
                            **_CLARABEL_REFINEMENT}
        elif solver == "OSQP":
            self.options = {"eps_abs": 1e-10, "eps_rel": 1e-10, "polishing": True, "max_iter": 20000}
        else:
            raise ValueError(f"solver: unknown {solver.lower()!r} (known: clarabel, osqp)")
        self.solver = solver

    def solve(self, A: np.ndarray, b: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              u_nom: np.ndarray) -> QPSolution:
        import cvxpy as cp

        self.A.value, self.b.value = A, b
        self.lower.value, self.upper.value, self.u_nom.value = lower, upper, u_nom
        loose = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, **_CLARABEL_REFINEMENT}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # an inaccurate solve is handled below
                self.problem.solve(solver=self.solver, warm_start=True, **self.options)
                if self.problem.status == cp.OPTIMAL_INACCURATE and self.solver == "CLARABEL":
                    # At 1e-13 Clarabel now and then (3 in 10,000) stops at "almost solved" although
                    # its answer is within 1e-10 of the exact optimum: it cannot certify the gap.
                    # One retry at 1e-10 (still status-checked) certifies those cases instead of
                    # reporting a spurious fault.
                    self.problem.solve(solver=self.solver, warm_start=True, **loose)
        except cp.error.SolverError as exc:
            return QPSolution(np.full(self.size, np.nan), STATUS_SOLVER, f"solver error: {exc}")
        status = self.problem.status
        u = self.u.value
        if status != cp.OPTIMAL or u is None or not np.all(np.isfinite(u)):
            return QPSolution(np.full(self.size, np.nan), STATUS_SOLVER, f"solver status {status}")
        s = np.asarray(self.s.value)
        worst = int(np.argmax(s))
        if s[worst] > self.slack_tol:
            return QPSolution(np.asarray(u), STATUS_INFEASIBLE,
                              f"row {worst} needs slack {s[worst]:.3g} > {self.slack_tol:g}", float(s[worst]))
        return QPSolution(np.asarray(u), STATUS_OPTIMAL, slack=float(s.max(initial=0.0)))


class EnumerationQP:
    """Exact solver for small dense problems by active-set enumeration.

    The objective is a squared distance, so the solution is the projection of u_nom onto a
    polyhedron. At the optimum some set S of at most ``size`` linearly independent rows is active,
    u = u_nom + G_S' mu with G_S G_S' mu = g_S - G_S u_nom, mu >= 0 (the KKT multipliers are 2 mu),
    and every other row holds. Any candidate S meeting those conditions is the (unique) optimum,
    so trying |S| = 0, 1, 2, 3 in turn and stopping at the first that satisfies them is exact, with
    a fixed worst-case amount of work. S must contain a row that u_nom violates (otherwise
    u = u_nom), which prunes most candidates. If no S qualifies the hard problem is infeasible.
    A barrier multiplier above rho means the L1-penalised problem would use slack: the same
    fault the cvxpy path reports.
    """

    def __init__(self, rows: int, size: int = 3, *, slack_weight: float = 1e4, tol: float = 1e-9) -> None:
        self.rows, self.size = rows, size
        self.rho = _check_weight(slack_weight)
        self.tol = tol
        total = rows + 2 * size
        self.levels: list[np.ndarray] = []
        for k in range(1, size + 1):
            combos = [c for c in combinations(range(total), k) if not self._opposite_bounds(c)]
            self.levels.append(np.array(combos, dtype=np.intp).reshape(-1, k))
        self._eye = np.eye(size)

    def _opposite_bounds(self, combo: tuple[int, ...]) -> bool:
        # lower_i and upper_i are parallel rows: never both active (lower < upper).
        axes = [i - self.rows for i in combo if i >= self.rows]
        axes = [a % self.size for a in axes]
        return len(axes) != len(set(axes))

    def solve(self, A: np.ndarray, b: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              u_nom: np.ndarray) -> QPSolution:
        G = np.concatenate([A, self._eye, -self._eye])
        g = np.concatenate([b, lower, -upper])
        tol = self.tol
        r = G @ u_nom - g
        violated = r < -tol
        if not violated.any():
            return QPSolution(u_nom.copy(), STATUS_OPTIMAL)
        for k, combos in enumerate(self.levels, start=1):
            combos = combos[violated[combos].any(axis=1)]
            if not len(combos):
                continue
            Gs = G[combos]                      # (K, k, n)
            rhs = -r[combos]                    # (K, k): g_S - G_S u_nom
            if k == 1:
                gram = np.einsum("kin,kin->ki", Gs, Gs)
                ok = gram[:, 0] > 1e-12
                mu = rhs / np.where(ok, gram[:, 0], 1.0)[:, None]
            else:
                gram = Gs @ Gs.transpose(0, 2, 1)
                # Unit rows: the Gram determinant is in [0, 1] and measures their independence.
                ok = np.linalg.det(gram) > 1e-12
                gram[~ok] = np.eye(k)
                mu = np.linalg.solve(gram, rhs[..., None])[..., 0]
            ok &= (mu >= -tol).all(axis=1)
            if not ok.any():
                continue
            U = u_nom + np.einsum("kin,ki->kn", Gs[ok], mu[ok])
            feasible = (U @ G.T - g >= -tol).all(axis=1)
            if not feasible.any():
                continue
            cand = np.flatnonzero(feasible)
            best = cand[np.argmin(((U[cand] - u_nom) ** 2).sum(axis=1))]
            u = U[best]
            lam = 2.0 * mu[ok][best]
            rows_s = combos[ok][best]
            barrier = rows_s < self.rows
            if barrier.any() and lam[barrier].max() > self.rho:
                j = int(np.argmax(np.where(barrier, lam, -np.inf)))
                reason = f"row {rows_s[j]} needs multiplier {lam[j]:.3g} > slack weight {self.rho:g}"
                return QPSolution(u, STATUS_INFEASIBLE, reason, float(lam[j] - self.rho))
            return QPSolution(u, STATUS_OPTIMAL)
        worst = int(np.argmin(r))
        reason = f"no input within bounds satisfies the barriers (row {worst} violated by {-r[worst]:.3g})"
        return QPSolution(np.full(self.size, np.nan), STATUS_INFEASIBLE, reason, float(-r[worst]))


class FastQP:
    """The real-time path for one vehicle: the dual active-set method of :mod:`robo.safety.active_set`
    on plain Python floats (exact in finitely many steps, no numpy overhead on 3-vectors).

    The slack test is the same as the cvxpy path's: a barrier multiplier above rho means the
    penalised problem would use slack, which is a fault; a row no step can satisfy proves the hard
    problem infeasible.
    """

    def __init__(self, rows: int, size: int = 3, *, slack_weight: float = 1e4, tol: float = 1e-9) -> None:
        if size != 3:
            raise ValueError(f"FastQP: solves 3 inputs, got size {size}")
        self.rows, self.size = rows, size
        self.rho = _check_weight(slack_weight)
        self.tol = tol
        # Bound rows u_i >= lower_i and -u_i >= -upper_i follow the barrier rows.
        self._bound_rows = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0),
                            (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)]

    def solve(self, A: np.ndarray, b: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              u_nom: np.ndarray) -> QPSolution:
        lo, hi = lower.tolist(), upper.tolist()
        normals = A.tolist() + self._bound_rows
        rhs = b.tolist() + lo + [-hi[0], -hi[1], -hi[2]]
        return solve_rows(normals, rhs, u_nom.tolist(), self.rows, self.rho, self.tol)


def solve_rows(normals: list, rhs: list[float], u_nom: list[float], barrier_rows: int, rho: float,
               tol: float) -> QPSolution:
    """Run the active-set solver on plain rows (barriers first, then bounds) and apply the fault
    rules shared by every path: unsatisfiable row or multiplier above rho -> infeasible."""
    res = solve_projection(normals, rhs, u_nom, tol=tol)
    if res.status == AS_INFEASIBLE:
        return QPSolution(np.full(3, np.nan), STATUS_INFEASIBLE,
                          f"no input within bounds satisfies the barriers (row {res.row} violated by "
                          f"{res.violation:.3g})", res.violation)
    if res.status != AS_OPTIMAL:
        return QPSolution(np.full(3, np.nan), STATUS_SOLVER,
                          f"active set: no solution within {res.iterations} steps")
    u = np.array(res.u)
    worst, j = 0.0, -1
    for row, lam in zip(res.active, res.multipliers, strict=True):
        if row < barrier_rows and lam > worst:
            worst, j = lam, row
    if worst > rho:
        return QPSolution(u, STATUS_INFEASIBLE,
                          f"row {j} needs multiplier {worst:.3g} > slack weight {rho:g}", worst - rho)
    return QPSolution(u, STATUS_OPTIMAL)
