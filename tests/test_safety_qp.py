"""The filter QP: the cvxpy reference is DPP, and the fast and enumeration paths solve the same
problem (within 1e-6 of cvxpy) and report infeasibility the same way.

The suite runs a few hundred random problems; ``robo bench safety`` runs the full 10,000.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robo.safety.problems import random_qp
from robo.safety.qp import CvxpyQP, EnumerationQP, FastQP

ROWS = 8
_cache: dict = {}


def solvers():
    # Built once: the cvxpy problem is canonicalised a single time, as in real use.
    if not _cache:
        _cache["cvxpy"] = CvxpyQP(ROWS)
        _cache["fast"] = FastQP(ROWS)
        _cache["enum"] = EnumerationQP(ROWS)
    return _cache["cvxpy"], _cache["fast"], _cache["enum"]


def test_reference_problem_is_dpp_and_built_once():
    ref, _, _ = solvers()
    assert ref.problem.is_dpp()
    # Parameters, not constants: changing the data must not need a new problem.
    names = {p.name() for p in ref.problem.parameters()}
    assert {"A", "b", "u_nom", "lower", "upper", "slack_weight"} <= names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_fast_and_enumeration_equal_cvxpy_on_feasible_problems(seed):
    ref, fast, enum = solvers()
    problem = random_qp(np.random.default_rng(seed), ROWS)
    a, b, c = ref.solve(*problem), fast.solve(*problem), enum.solve(*problem)
    assert a.status == b.status == c.status, (a.reason, b.reason, c.reason)
    if a.ok:
        np.testing.assert_allclose(b.u, a.u, atol=1e-6, rtol=0)
        np.testing.assert_allclose(c.u, a.u, atol=1e-6, rtol=0)
        A, bb, lo, hi, _ = problem
        assert np.all(A @ b.u - bb >= -1e-8) and np.all(b.u >= lo - 1e-9) and np.all(b.u <= hi + 1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_all_paths_report_infeasible_problems(seed):
    ref, fast, enum = solvers()
    problem = random_qp(np.random.default_rng(seed), ROWS, feasible=False)
    for solver in (ref, fast, enum):
        sol = solver.solve(*problem)
        assert sol.status == "infeasible", (type(solver).__name__, sol)
        assert sol.reason


@settings(max_examples=1000, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 8))
def test_fast_equals_enumeration_on_many_problems(seed, rows):
    # Both are exact active-set methods, so they agree to round-off, and cheaply: many more cases.
    rng = np.random.default_rng(seed)
    problem = random_qp(rng, rows, feasible=bool(rng.random() < 0.8))
    a = FastQP(rows).solve(*problem)
    b = EnumerationQP(rows).solve(*problem)
    assert a.status == b.status
    if a.ok:
        np.testing.assert_allclose(a.u, b.u, atol=1e-9)


def test_nominal_returned_unchanged_when_safe():
    ref, fast, enum = solvers()
    A = np.eye(ROWS, 3)
    b = -np.ones(ROWS)
    u_nom = np.array([0.5, -0.2, 0.1])
    for solver in (ref, fast, enum):
        sol = solver.solve(A, b, -np.ones(3), np.ones(3), u_nom)
        assert sol.ok
        np.testing.assert_allclose(sol.u, u_nom, atol=1e-7)


def test_single_active_row_is_the_projection():
    _, fast, _ = solvers()
    A = np.zeros((ROWS, 3))
    A[0] = [1.0, 0.0, 0.0]
    b = np.full(ROWS, -1.0)
    b[0] = 0.5
    sol = fast.solve(A, b, -5 * np.ones(3), 5 * np.ones(3), np.array([-1.0, 2.0, 3.0]))
    np.testing.assert_allclose(sol.u, [0.5, 2.0, 3.0])


def test_multiplier_above_slack_weight_is_a_fault_on_every_path():
    # Feasible for the hard problem, but only with a multiplier of 2*3 = 6 > rho = 1: the
    # penalised (cvxpy) problem then prefers slack, and the fast paths must say the same.
    A = np.zeros((ROWS, 3))
    A[0] = [1.0, 0.0, 0.0]
    b = np.full(ROWS, -1.0)
    b[0] = 3.0
    problem = (A, b, -5 * np.ones(3), 5 * np.ones(3), np.zeros(3))
    for solver in (CvxpyQP(ROWS, slack_weight=1.0), FastQP(ROWS, slack_weight=1.0),
                   EnumerationQP(ROWS, slack_weight=1.0)):
        sol = solver.solve(*problem)
        assert sol.status == "infeasible", type(solver).__name__
    for solver in (CvxpyQP(ROWS, slack_weight=10.0), FastQP(ROWS, slack_weight=10.0)):
        sol = solver.solve(*problem)
        assert sol.ok
        np.testing.assert_allclose(sol.u, [3.0, 0.0, 0.0], atol=1e-7)


def test_osqp_reference_solves_too():
    problem = random_qp(np.random.default_rng(3), ROWS)
    a = CvxpyQP(ROWS, solver="osqp").solve(*problem)
    b = FastQP(ROWS).solve(*problem)
    assert a.ok and b.ok
    np.testing.assert_allclose(a.u, b.u, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(slack_weight=0.0), dict(slack_weight=float("nan")),
                                 dict(solver="ecos")])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        CvxpyQP(ROWS, **bad)
