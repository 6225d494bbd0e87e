"""The safety filter: barriers + dynamics model + QP, with faults that are counted, never hidden.

A call returns the command to apply. When the QP is infeasible, the solver fails, or the inputs are
not finite, the result is a *fault*: the command is the model's defined safe output (brake for a
double integrator, stop for a single integrator), the reason is recorded, and the nominal command
is never passed through.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robo.safety.barriers import BarrierSet
from robo.safety.fast_rows import RowProgram
from robo.safety.models import DoubleIntegrator, SingleIntegrator, check_gain, make_model
from robo.safety.qp import CvxpyQP, EnumerationQP, FastQP, QPSolution, check_bounds, solve_rows

PASS, MODIFIED, FAULT = "pass", "modified", "fault"


@dataclass(frozen=True)
class FilterResult:
    u: np.ndarray
    status: str
    reason: str = ""
    h_min: float = float("nan")
    slack: float = 0.0

    @property
    def fault(self) -> bool:
        return self.status == FAULT

    @property
    def intervened(self) -> bool:
        return self.status != PASS


@dataclass
class FilterStats:
    calls: int = 0
    interventions: int = 0
    faults: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "interventions": self.interventions, "faults": self.faults,
                "fault_reasons": dict(self.reasons)}


def _reason_kind(reason: str) -> str:
    # Group counts by the kind of fault, not by the numbers inside its message.
    return reason.split(":")[0].split(" (")[0]


class SafetyFilter:
    """Minimally change ``u_nom`` so every barrier's CBF condition holds within the input bounds.

    backend: 'fast' (plain-Python rows and dual active-set solver, for real-time loops), 'cvxpy'
    (the reference formulation) or 'enumeration' (the numpy twin of the batched torch path). All
    three solve the same QP on the same rows.
    """

    def __init__(self, barriers: BarrierSet,
                 model: str | SingleIntegrator | DoubleIntegrator = "double_integrator",
                 *, lower: Any, upper: Any, alpha1: float | np.ndarray = 1.0,
                 alpha2: float | np.ndarray | None = None, slack_weight: float = 1e4,
                 slack_tol: float = 1e-6, brake_gain: float = 2.0, backend: str = "fast",
                 solver: str = "clarabel", intervention_tol: float = 1e-9) -> None:
        if not isinstance(barriers, BarrierSet):
            raise ValueError(f"barriers: expected a BarrierSet, got {type(barriers).__name__}")
        self.barriers = barriers
        self.model = make_model(model) if isinstance(model, str) else model
        self.lower, self.upper = check_bounds(lower, upper, 3)
        m = barriers.num_rows
        self.alpha1 = check_gain("alpha1", alpha1, m)
        self.alpha2 = check_gain("alpha2", alpha1 if alpha2 is None else alpha2, m)
        if not np.isfinite(brake_gain) or brake_gain < 0:
            raise ValueError(f"brake_gain: must be finite and >= 0, got {brake_gain}")
        if not np.isfinite(slack_tol) or slack_tol <= 0:
            raise ValueError(f"slack_tol: must be finite and positive, got {slack_tol}")
        self.brake_gain = float(brake_gain)
        self.intervention_tol = intervention_tol
        if backend == "fast":
            self.qp = FastQP(m, slack_weight=slack_weight)
        elif backend == "cvxpy":
            self.qp = CvxpyQP(m, slack_weight=slack_weight, slack_tol=slack_tol, solver=solver)
        elif backend == "enumeration":
            self.qp = EnumerationQP(m, slack_weight=slack_weight)
        else:
            raise ValueError(f"backend: unknown {backend!r} (known: fast, cvxpy, enumeration)")
        self.backend = backend
        self.slack_weight = float(slack_weight)
        self.stats = FilterStats()
        # Fast backend: everything a call needs, precomputed as plain Python values.
        self._program = RowProgram(barriers, isinstance(self.model, DoubleIntegrator))
        self._a1, self._a2 = self.alpha1.tolist(), self.alpha2.tolist()
        lo, hi = self.lower.tolist(), self.upper.tolist()
        self._bound_normals = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0),
                               (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)]
        self._bound_rhs = [*lo, -hi[0], -hi[1], -hi[2]]
        self._lo, self._hi = lo, hi
        self._qp_tol = 1e-9

    def rows(self, x: np.ndarray, neighbours: np.ndarray | None = None,
             alpha1: float | np.ndarray | None = None,
             alpha2: float | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """QP rows (A, b) and barrier values h at state ``x``; the same rows every backend solves."""
        p, v = self.model.split(x)
        bv = self.barriers.evaluate(p, v, neighbours)
        m = self.barriers.num_rows
        a1 = self.alpha1 if alpha1 is None else check_gain("alpha1", alpha1, m)
        a2 = self.alpha2 if alpha2 is None else check_gain("alpha2", alpha2, m)
        A, b = self.model.rows(bv, a1, a2)
        return A, b, bv.h

    def safe_command(self, x: np.ndarray) -> np.ndarray:
        return self.model.safe_command(np.asarray(x, float), self.lower, self.upper, self.brake_gain)

    def __call__(self, x: Any, u_nom: Any, neighbours: Any = None, *,
                 alpha1: float | np.ndarray | None = None,
                 alpha2: float | np.ndarray | None = None) -> FilterResult:
        self.stats.calls += 1
        x = np.asarray(x, float).reshape(-1)
        u_nom = np.asarray(u_nom, float).reshape(-1)
        reason = self._check_inputs(x, u_nom, neighbours)
        if reason:
            return self._fault(x, reason)
        if self.backend == "fast":
            return self._call_fast(x, u_nom, neighbours, alpha1, alpha2)
        try:
            A, b, h = self.rows(x, neighbours, alpha1, alpha2)
        except ValueError as exc:
            return self._fault(x, f"bad input: {exc}")
        h_min = float(np.min(h, initial=np.inf))
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            return self._fault(x, "non-finite barrier rows", h_min)
        sol: QPSolution = self.qp.solve(A, b, self.lower, self.upper, u_nom)
        return self._result(x, sol, u_nom.tolist(), h_min)

    def _call_fast(self, x: np.ndarray, u_nom: np.ndarray, neighbours: Any,
                   alpha1: float | np.ndarray | None, alpha2: float | np.ndarray | None) -> FilterResult:
        """The same rows and QP as the other backends, on plain floats (see fast_rows, active_set)."""
        m = self._program.num_rows
        try:
            a1 = self._a1 if alpha1 is None else check_gain("alpha1", alpha1, m).tolist()
            a2 = self._a2 if alpha2 is None else check_gain("alpha2", alpha2, m).tolist()
            nb = self._neighbour_list(neighbours)
        except ValueError as exc:
            return self._fault(x, f"bad input: {exc}")
        us = u_nom.tolist()
        normals, rhs, h_min = self._program.rows(x.tolist(), a1, a2, nb)
        if not all(map(math.isfinite, rhs)):
            return self._fault(x, "non-finite barrier rows", h_min)
        sol = solve_rows(normals + self._bound_normals, rhs + self._bound_rhs, us, m,
                         self.slack_weight, self._qp_tol)
        return self._result(x, sol, us, h_min)

    def _neighbour_list(self, neighbours: Any) -> list[list[float]]:
        k_max = self._program.max_neighbours
        if not k_max or neighbours is None:
            return []  # like BarrierSet.evaluate: neighbours only matter with a separation barrier
        nb = np.asarray(neighbours, float)
        if nb.ndim != 2 or nb.shape[1] not in (3, 6) or len(nb) > k_max:
            raise ValueError(f"neighbours: expected (k<={k_max}, 3 or 6), got shape {nb.shape}")
        return nb.tolist()

    def _result(self, x: np.ndarray, sol: QPSolution, u_nom: list[float], h_min: float) -> FilterResult:
        if not sol.ok:
            return self._fault(x, f"{sol.status}: {sol.reason}", h_min, sol.slack)
        # Clipping removes solver round-off past the bounds only.
        u = [min(max(v, lo), hi) for v, lo, hi in zip(sol.u.tolist(), self._lo, self._hi, strict=True)]
        if max(abs(a - b) for a, b in zip(u, u_nom, strict=True)) > self.intervention_tol:
            self.stats.interventions += 1
            return FilterResult(np.array(u), MODIFIED, h_min=h_min, slack=sol.slack)
        return FilterResult(np.array(u), PASS, h_min=h_min, slack=sol.slack)

    def _check_inputs(self, x: np.ndarray, u_nom: np.ndarray, neighbours: Any) -> str:
        if x.shape != (self.model.state_size,):
            return f"bad input: state has {x.size} values, expected {self.model.state_size}"
        if u_nom.shape != (3,):
            return f"bad input: command has {u_nom.size} values, expected 3"
        # math.isfinite on plain floats: much cheaper than numpy reductions on 3- and 6-vectors.
        for name, values in (("state: x", x.tolist()), ("command: u_nom", u_nom.tolist())):
            if not all(map(math.isfinite, values)):
                bad = next(i for i, v in enumerate(values) if not math.isfinite(v))
                return f"non-finite {name}[{bad}]"
        if neighbours is not None and not np.all(np.isfinite(np.asarray(neighbours, float))):
            return "non-finite neighbour state"
        return ""

    def _fault(self, x: np.ndarray, reason: str, h_min: float = float("nan"),
               slack: float = 0.0) -> FilterResult:
        self.stats.faults += 1
        self.stats.interventions += 1
        self.stats.reasons[_reason_kind(reason)] += 1
        if x.shape == (self.model.state_size,):
            u = self.safe_command(x)
        else:
            u = np.clip(np.zeros(3), self.lower, self.upper)
        return FilterResult(u, FAULT, reason, h_min, slack)
