"""The torch dynamics and the MuJoCo twin agree over a 2 s open-loop rollout.

Tolerance: both integrate the same ODE with RK4 at 10 ms, in float64. The one intended difference is
the attitude update (MuJoCo integrates the quaternion on the manifold with an exponential map; ours
integrates q' = 0.5 q (x) omega and renormalises), which is a higher-order term per step: measured
about 1.5e-6 in the quaternion and 1e-5 m in position after 2 s in which the open-loop vehicle
tumbles off by about 15 m. Body rates and motor states, which do not depend on that update, agree
to round-off. The bounds below leave a factor of about 10 over those measurements, and a wrong sign,
lever arm, frame or coefficient anywhere gives errors of centimetres or more.
"""

import math

import numpy as np
import pytest
import torch

from sim.quadrotor import PRESETS, BatchedParams, sample_fleet
from sim.quadrotor.dynamics import rk4_step
from sim.quadrotor.mujoco_twin import make_mjcf, rollout

VEHICLES = [PRESETS["crazyflie"], PRESETS["x500"], PRESETS["arpl"], sample_fleet(1, seed=3)[0]]


def torch_rollout(params, state, setpoints, force):
    bp = BatchedParams.stack([params], dtype=torch.float64)
    s = torch.tensor(state)[None]
    out = [state]
    for sp in setpoints:
        s = rk4_step(s, torch.tensor(sp)[None], bp, torch.tensor(force)[None], 0.01)
        out.append(s[0].numpy())
    return np.stack(out)


@pytest.mark.parametrize("params", VEHICLES, ids=lambda p: p.name)
def test_torch_dynamics_match_mujoco_over_two_seconds(params):
    hover = params.hover_throttle()
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    state = np.zeros(17)
    state[3:7] = [math.cos(0.1), *(math.sin(0.1) * axis)]
    state[7:10] = [0.3, -0.2, 0.1]
    state[10:13] = [0.5, -0.3, 0.2]
    state[13:17] = hover
    t = np.arange(200) * 0.01
    # Different sinusoids per motor: thrust, roll, pitch and yaw all vary, rising and falling.
    wave = np.sin(2 * np.pi * np.outer(t, [1.0, 1.3, 0.7, 1.1]) + np.arange(4))
    setpoints = np.clip(hover + 0.05 * wave, 0, 1)
    force = np.array([0.01, -0.02, 0.0]) * params.mass
    ours = torch_rollout(params, state, setpoints, force)
    theirs = rollout(params, state, setpoints, force)
    assert np.abs(ours[-1, 0:3] - ours[0, 0:3]).max() > 1.0  # a real excursion, not a vehicle at rest
    assert np.abs(ours[:, 0:3] - theirs[:, 0:3]).max() < 1e-4
    assert np.abs(ours[:, 3:7] - theirs[:, 3:7]).max() < 2e-5
    assert np.abs(ours[:, 7:10] - theirs[:, 7:10]).max() < 1e-4
    assert np.abs(ours[:, 10:13] - theirs[:, 10:13]).max() < 1e-9
    assert np.abs(ours[:, 13:17] - theirs[:, 13:17]).max() < 1e-12


def test_mjcf_is_rejected_for_non_physical_parameters():
    from dataclasses import replace

    from sim.quadrotor import InvalidParameters

    with pytest.raises(InvalidParameters, match="mass"):
        make_mjcf(replace(PRESETS["crazyflie"], mass=0.0))
