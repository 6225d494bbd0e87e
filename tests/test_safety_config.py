"""Config loading and the quadrotor setpoint filter."""

import numpy as np
import pytest

from robo.config import ConfigError, load_config
from robo.safety import BarrierSet, Geofence, SafetyFilter, Sphere
from robo.safety.config import SafetyConfig, build_filter
from robo.safety.setpoint import SetpointFilter

YAML = "configs/safety.yaml"


def test_default_yaml_loads_and_builds_a_filter():
    cfg = load_config(SafetyConfig, YAML)
    assert cfg.spheres[0].radius == 0.4 and cfg.geofence.upper[2] == 3.0
    f = build_filter(cfg)
    assert f.barriers.num_rows == 1 + 1 + 6
    res = f([0, 0, 1, 0, 0, 0], [0, 0, 0])
    assert res.status == "pass"


def test_overrides_and_bad_values_name_the_key():
    cfg = load_config(SafetyConfig, YAML, ["alpha1=3.5", "backend=cvxpy"])
    assert cfg.alpha1 == 3.5 and build_filter(cfg).backend == "cvxpy"
    with pytest.raises(ConfigError, match="alfa"):
        load_config(SafetyConfig, YAML, ["alfa=1"])
    with pytest.raises(ConfigError, match="backend"):
        load_config(SafetyConfig, YAML, ["backend=magic"])
    bad = load_config(SafetyConfig, YAML, ["geofence.lower=[0, 0, 5]"])
    with pytest.raises(ValueError, match="geofence: empty along z"):
        build_filter(bad)


def test_setpoint_filter_shifts_the_setpoint_to_the_filtered_acceleration():
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)], geofence=Geofence((-5, -5, 0), (5, 5, 4)))
    safety = SafetyFilter(bs, lower=-np.full(3, 8), upper=np.full(3, 8), alpha1=2.0)
    sp = SetpointFilter(safety, kp=4.0, kv=3.0)
    p, v = np.array([1.0, 0, 1]), np.array([1.0, 0, 0])
    out = sp(p, v, position_sp=[2.0, 0, 1])  # the policy asks to fly into the sphere
    assert out.filter.status == "modified"
    np.testing.assert_allclose(sp.tracker_accel(p, v, out.setpoint), out.accel, atol=1e-12)
    assert out.setpoint.position[0] < 2.0
    free = sp(p, v, position_sp=[0.0, 1.0, 1.0])
    assert free.filter.status == "pass"
    np.testing.assert_allclose(free.setpoint.position, [0, 1, 1])
    bad = sp(p, v, position_sp=[np.nan, 0, 1])
    assert bad.filter.fault and np.all(np.isfinite(bad.setpoint.position))
    with pytest.raises(ValueError, match=r"tracker\.kp"):
        SetpointFilter(safety, kp=0.0, kv=1.0)


def test_setpoint_filter_from_config_and_shortcuts():
    sp = SetpointFilter.from_config(YAML, kp=4.0, kv=3.0, overrides=["alpha1=3.0"])
    assert sp.safety.alpha1[0] == 3.0 and sp.safety.backend == "fast"
    assert SetpointFilter.from_config(None, kp=4.0, kv=3.0).safety.barriers.geofence is not None
    sphere = load_config(SafetyConfig, YAML).spheres[0]
    p = np.array(sphere.center) - [sphere.radius + 0.3, 0, 0]
    out = sp(p, [1.0, 0, 0], position_sp=sphere.center)  # straight into the sphere at 1 m/s
    assert out.status == "modified" and not out.fault and out.reason == ""
    assert out.h_min == pytest.approx(0.3)
    assert sp.stats.calls == 1 and sp.stats.interventions == 1
    bad = sp(p, [2.0, 0, 0], position_sp=[np.inf, 0, 1])
    assert bad.fault and bad.reason.startswith("non-finite command")
    np.testing.assert_allclose(bad.setpoint.position, p)  # hold here
    np.testing.assert_allclose(bad.setpoint.velocity, 0.0)
    assert sp.stats.faults == 1
    with pytest.raises(ValueError, match="position_sp needs 3 values"):
        sp(p, [0, 0, 0], position_sp=[1.0, 2.0])
    with pytest.raises(ConfigError, match="alfa"):
        SetpointFilter.from_config(YAML, 4.0, 3.0, overrides=["alfa=1"])


def test_setpoint_filter_keeps_the_vehicle_out_of_an_obstacle_in_closed_loop():
    # The PD tracker flies the double integrator; the policy's setpoint is inside the sphere.
    bs = BarrierSet(spheres=[Sphere((2, 0, 1), 0.5)], geofence=Geofence((-5, -5, 0), (5, 5, 4)))
    safety = SafetyFilter(bs, lower=-np.full(3, 8), upper=np.full(3, 8), alpha1=2.0)
    sp = SetpointFilter(safety, kp=4.0, kv=3.0)
    p, v, dt = np.array([0.0, 0.0, 1.0]), np.zeros(3), 0.01
    h_min = np.inf
    for _ in range(600):
        out = sp(p, v, position_sp=[2.0, 0.0, 1.0])
        a = sp.tracker_accel(p, v, out.setpoint)
        p, v = p + v * dt + 0.5 * a * dt * dt, v + a * dt
        h_min = min(h_min, np.linalg.norm(p - [2, 0, 1]) - 0.5)
    assert -1e-3 <= h_min < 0.05  # it gets close, but never in (up to the discrete-time step)
    assert sp.stats.faults == 0
