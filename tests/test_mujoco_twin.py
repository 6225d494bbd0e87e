"""The torch dynamics and the MuJoCo twin agree over a 2 s open-loop rollout.

Tolerance: both integrate the same ODE with RK4 at 10 ms, in float64. The one intended difference is
the attitude update (MuJoCo integrates the quaternion on the manifold with an exponential map; ours
integrates q' = 0.5 q (x) omega and renormalises), which is a higher-order term per step: measured
about 1.5e-6 in the quaternion and 1e-5 m in position after 2 s in which the open-loop vehicle
tumbles off by about 15 m. Body rates and motor states, which do not depend on that update, agree
to round-off. The bounds below leave a factor of about 10 over those measurements, and a wrong sign,
lever arm, frame or coefficient anywhere gives errors of centimetres or more.
"""

import pytest

from sim.quadrotor import PRESETS, sample_fleet
from sim.quadrotor.mujoco_twin import agreement, make_mjcf

VEHICLES = [PRESETS["crazyflie"], PRESETS["x500"], PRESETS["arpl"], sample_fleet(1, seed=3)[0]]


@pytest.mark.parametrize("params", VEHICLES, ids=lambda p: p.name)
def test_torch_dynamics_match_mujoco_over_two_seconds(params):
    err = agreement(params, seconds=2.0)
    assert err["excursion_m"] > 1.0  # a real excursion, not a vehicle at rest
    assert err["position_m"] < 1e-4
    assert err["quaternion"] < 2e-5
    assert err["velocity_m_s"] < 1e-4
    assert err["angular_velocity_rad_s"] < 1e-9
    assert err["motor_state"] < 1e-12


def test_mjcf_is_rejected_for_non_physical_parameters():
    from dataclasses import replace

    from sim.quadrotor import InvalidParameters

    with pytest.raises(InvalidParameters, match="mass"):
        make_mjcf(replace(PRESETS["crazyflie"], mass=0.0))
