"""Barriers, models and the filter: validation, faults with a defined safe output, closed loop."""

import math

import numpy as np
import pytest

from robo.safety import BarrierSet, Cylinder, Geofence, SafetyFilter, Separation, Sphere
from robo.safety.closed_loop import ACCEL_LOWER, ACCEL_UPPER, run_closed_loop

LO, HI = -np.full(3, 5.0), np.full(3, 5.0)


@pytest.mark.parametrize("make, field", [
    (lambda: Sphere((0, 0, 0), -1.0), "sphere.radius"),
    (lambda: Sphere((0, 0, math.nan), 1.0), "sphere.center"),
    (lambda: Cylinder((0, 0), 0.0), "cylinder.radius"),
    (lambda: Cylinder((0, math.inf), 1.0), "cylinder.center"),
    (lambda: Geofence((0, 0, 0), (1, 1, 0)), "geofence: empty along z"),
    (lambda: Geofence((0, 2, 0), (1, 1, 1)), "geofence: empty along y"),
    (lambda: Separation(-0.5, 2), "separation.distance"),
    (lambda: Separation(0.5, 0), "separation.max_neighbours"),
    (lambda: BarrierSet(), "barrier set: empty"),
])
def test_bad_barrier_parameters_raise_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


@pytest.mark.parametrize("kwargs, field", [
    (dict(alpha1=-1.0), "alpha1"), (dict(alpha2=math.nan), "alpha2"),
    (dict(lower=HI, upper=LO), "input bounds"), (dict(slack_weight=-1.0), "slack_weight"),
    (dict(brake_gain=math.inf), "brake_gain"), (dict(backend="magic"), "backend"),
    (dict(model="triple_integrator"), "model"),
])
def test_bad_filter_settings_raise(kwargs, field):
    args = dict(lower=LO, upper=HI) | kwargs
    with pytest.raises(ValueError, match=field):
        SafetyFilter(BarrierSet(spheres=[Sphere((0, 0, 0), 1.0)]), **args)


def test_barrier_values_and_gradients_match_finite_differences():
    bs = BarrierSet(spheres=[Sphere((1, 2, 3), 0.5)], cylinders=[Cylinder((-1, 0), 0.3)],
                    geofence=Geofence((-5, -5, 0), (5, 5, 4)), separation=Separation(0.4, 2))
    rng = np.random.default_rng(0)
    p, v = rng.normal(size=3), rng.normal(size=3)
    nb = np.array([[0.5, 0.5, 0.5, 0.1, 0.0, -0.2]])
    bv = bs.evaluate(p, v, nb)
    assert bv.h.shape == (bs.num_rows,) and list(bv.active) == [True] * 9 + [False]
    np.testing.assert_allclose(bv.h[0], np.linalg.norm(p - [1, 2, 3]) - 0.5)
    np.testing.assert_allclose(bv.h[1], np.linalg.norm(p[:2] - [-1, 0]) - 0.3)
    np.testing.assert_allclose(bv.h[2:8], np.concatenate([p - [-5, -5, 0], [5, 5, 4] - p]))
    # h along the trajectory p + v t, relative to the neighbour's motion: h' and h'' by differences.
    eps = 1e-4

    def h_at(t):
        return bs.evaluate(p + v * t, v, nb + np.r_[nb[0, 3:] * t, 0, 0, 0]).h[:-1]

    hdot = (h_at(eps) - h_at(-eps)) / (2 * eps)
    hddot = (h_at(eps) - 2 * h_at(0) + h_at(-eps)) / eps**2
    np.testing.assert_allclose(bv.hdot[:-1], hdot, atol=1e-6)
    np.testing.assert_allclose(bv.curv[:-1], hddot, atol=1e-4)
    assert bv.share[-2] == 0.5 and bv.share[0] == 1.0


@pytest.mark.parametrize("backend", ["fast", "cvxpy", "enumeration"])
def test_filter_keeps_a_safe_command_and_modifies_an_unsafe_one(backend):
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)], geofence=Geofence((-5, -5, 0), (5, 5, 4)))
    f = SafetyFilter(bs, lower=LO, upper=HI, alpha1=2.0, backend=backend)
    x = np.array([0.0, 0, 1, 0, 0, 0])
    safe = f(x, [-1.0, 0, 0])
    assert safe.status == "pass" and np.allclose(safe.u, [-1, 0, 0])
    x_fast = np.array([1.0, 0, 1, 1.5, 0, 0])  # 0.5 m from the sphere, closing at 1.5 m/s
    res = f(x_fast, [5.0, 0, 0])
    assert res.status == "modified" and res.u[0] < 0  # it brakes
    A, b, _ = f.rows(x_fast)
    assert np.all(A @ res.u - b >= -1e-7)
    assert f.stats.calls == 2 and f.stats.interventions == 1 and f.stats.faults == 0


@pytest.mark.parametrize("backend", ["fast", "cvxpy", "enumeration"])
def test_infeasible_is_a_fault_with_the_brake_command_never_the_nominal(backend):
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)])
    f = SafetyFilter(bs, lower=-np.ones(3), upper=np.ones(3), alpha1=2.0, brake_gain=0.5, backend=backend)
    x = np.array([1.3, 0, 1, 8.0, 0, 0])  # far too fast to stop with 1 m/s^2
    u_nom = np.array([1.0, 0.0, 0.0])
    res = f(x, u_nom)
    assert res.fault and res.reason.startswith("infeasible")
    np.testing.assert_allclose(res.u, [-1.0, 0.0, 0.0])  # brake: clip(-0.5 * v) to the bounds
    assert f.stats.faults == 1 and f.stats.as_dict()["fault_reasons"] == {"infeasible": 1}


@pytest.mark.parametrize("x, u, reason", [
    ([0, 0, math.nan, 0, 0, 0], [0, 0, 0], "non-finite state: x[2]"),
    ([0, 0, 1, 0, 0, 0], [math.inf, 0, 0], "non-finite command: u_nom[0]"),
    ([0, 0, 1, 0, 0], [0, 0, 0], "bad input: state has 5 values"),
])
def test_non_finite_or_malformed_inputs_are_faults_without_nan(x, u, reason):
    f = SafetyFilter(BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)]), lower=LO, upper=HI)
    res = f(x, u)
    assert res.fault and res.reason.startswith(reason)
    assert np.all(np.isfinite(res.u))


def test_bad_online_gains_are_a_fault():
    f = SafetyFilter(BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)]), lower=LO, upper=HI)
    res = f([0, 0, 1, 0, 0, 0], [1, 0, 0], alpha1=np.array([-1.0]))
    assert res.fault and "alpha1" in res.reason


def test_single_integrator_stops_at_the_boundary():
    bs = BarrierSet(geofence=Geofence((-1, -1, 0), (1, 1, 2)))
    f = SafetyFilter(bs, "single_integrator", lower=-np.ones(3), upper=np.ones(3), alpha1=1.0)
    res = f([0.9, 0, 1], [1.0, 0, 0])  # allowed speed toward the wall: alpha * h = 0.1
    np.testing.assert_allclose(res.u, [0.1, 0, 0], atol=1e-9)


def test_pairwise_separation_takes_half_the_margin():
    bs = BarrierSet(separation=Separation(1.0, 1))
    f = SafetyFilter(bs, "single_integrator", lower=-np.full(3, 5), upper=np.full(3, 5), alpha1=1.0)
    res = f([0, 0, 0], [3.0, 0, 0], neighbours=[[3.0, 0, 0]])  # h = 2: alone it may close at 2 m/s
    np.testing.assert_allclose(res.u, [1.0, 0, 0], atol=1e-9)  # its half: 1 m/s
    free = f([0, 0, 0], [3.0, 0, 0])  # no neighbour present: the padding row is inactive
    assert free.status == "pass"


def test_closed_loop_stays_safe_short_run():
    def make(bs):
        return SafetyFilter(bs, lower=ACCEL_LOWER, upper=ACCEL_UPPER, alpha1=2.0, alpha2=2.0)

    result = run_closed_loop(make, steps=1200, seed=7, alpha1=2.0)
    assert result.steps == 1200
    assert result.min_barrier >= -1e-6
    assert result.interventions > 100  # the nominal controller really drives into obstacles
    assert result.faults == 0


def test_safety_package_stays_torch_free():
    # robo.runtime imports robo.safety and must not pull in torch (the batched path is separate).
    import subprocess
    import sys

    code = ("import sys, robo.safety, robo.safety.config, robo.safety.setpoint, robo.safety.mcu, "
            "robo.safety.c_emitter; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
