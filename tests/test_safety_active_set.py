"""The real-time pieces: the plain-Python rows equal the numpy rows, and the dual active-set
solver is exact, also on the degenerate problems random sampling never produces."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robo.safety import BarrierSet, Cylinder, Geofence, SafetyFilter, Separation, Sphere
from robo.safety.active_set import INFEASIBLE, ITERATION_LIMIT, OPTIMAL, solve_projection
from robo.safety.fast_rows import RowProgram

BOX = [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), (-1.0, 0, 0), (0, -1.0, 0), (0, 0, -1.0)]


def box_rhs(lo=-1.0, hi=1.0):
    return [lo] * 3 + [-hi] * 3


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), double=st.booleans(), k=st.integers(0, 3))
def test_plain_rows_equal_numpy_rows(seed, double, k):
    rng = np.random.default_rng(seed)
    bs = BarrierSet(spheres=[Sphere(tuple(rng.normal(size=3)), 0.5)],
                    cylinders=[Cylinder(tuple(rng.normal(size=2)), 0.3)],
                    geofence=Geofence((-4, -4, 0), (4, 4, 3)), separation=Separation(0.4, 3))
    f = SafetyFilter(bs, "double_integrator" if double else "single_integrator",
                     lower=-np.full(3, 8), upper=np.full(3, 8))
    x = rng.normal(size=6 if double else 3) * 2
    nb = rng.normal(size=(k, int(rng.choice([3, 6])))) * 2
    a1, a2 = rng.uniform(0.5, 4, bs.num_rows), rng.uniform(0.5, 4, bs.num_rows)
    A, b, h = f.rows(x, nb, a1, a2)
    normals, rhs, h_min = RowProgram(bs, double).rows(x.tolist(), a1.tolist(), a2.tolist(), nb.tolist())
    np.testing.assert_allclose(np.array(normals), A, atol=1e-12)
    np.testing.assert_allclose(rhs, b, rtol=1e-12, atol=1e-12)
    assert h_min == pytest.approx(h.min(), abs=1e-12)


def test_inactive_is_unchanged_and_single_row_is_the_projection():
    res = solve_projection(BOX, box_rhs(), [0.2, -0.3, 0.4])
    assert res.status == OPTIMAL and res.u == (0.2, -0.3, 0.4) and res.active == ()
    n = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    res = solve_projection([tuple(n), *BOX], [0.5, *box_rhs(-5, 5)], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(res.u, 0.5 * n, atol=1e-15)
    assert res.active == (0,) and res.multipliers[0] == pytest.approx(1.0)  # 2 * |step|


def test_degenerate_vertex_with_four_active_rows():
    # Four rows through the same vertex (1, 1, 1): three of them already pin it, the fourth is
    # redundant there. The solver must end at the vertex with nonnegative multipliers, not cycle.
    rows = [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), tuple(np.ones(3) / np.sqrt(3))]
    rhs = [1.0, 1.0, 1.0, np.sqrt(3)]
    res = solve_projection(rows, rhs, [0.0, 0.0, 0.0])
    assert res.status == OPTIMAL
    np.testing.assert_allclose(res.u, [1, 1, 1], atol=1e-12)
    assert len(res.active) <= 3 and min(res.multipliers) >= -1e-12


def test_parallel_and_duplicate_rows():
    # A fence row parallel to an input bound, and a barrier row given twice.
    rows = [(1.0, 0, 0), (1.0, 0, 0), (1.0, 0, 0), *BOX]
    res = solve_projection(rows, [0.5, 0.5, 0.7, *box_rhs()], [0.0, 0.2, 0.0])
    assert res.status == OPTIMAL
    np.testing.assert_allclose(res.u, [0.7, 0.2, 0.0], atol=1e-15)


@pytest.mark.parametrize("rows, rhs", [
    ([(1.0, 0, 0), *BOX], [2.0, *box_rhs()]),                 # beyond the input bound
    ([(1.0, 0, 0), (-1.0, 0, 0)], [1.0, 0.0]),                # u_x >= 1 and u_x <= 0
    ([(0.0, 0.0, 0.0)], [0.5]),                               # at an obstacle's centre: 0 . u >= 0.5
    ([(1.0, 0, 0), (0, 1.0, 0), tuple(-np.ones(3) / np.sqrt(3)), *BOX],
     [0.6, 0.6, 0.0, *box_rhs()]),                            # z <= -1.2 < -1
])
def test_infeasible_problems_are_proven_infeasible(rows, rhs):
    res = solve_projection(rows, rhs, [0.0, 0.0, 0.0])
    assert res.status == INFEASIBLE and res.row >= 0 and res.violation > 0


def test_step_limit_is_reported_not_hidden():
    rows = [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)]
    res = solve_projection(rows, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], max_iter=2)
    assert res.status == ITERATION_LIMIT
    f = solve_projection(rows, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert f.status == OPTIMAL and f.iterations == 3
