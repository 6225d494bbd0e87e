"""The geometric baseline flies every preset back to its target."""

import pytest
import torch

from robo.control.geometric import GeometricController, thrust_to_action
from sim.quadrotor import PRESETS, BatchedParams, QuadrotorEnv, QuadrotorEnvConfig
from sim.quadrotor.dynamics import hover_state, rotor_thrusts


def test_baseline_returns_every_preset_to_target_from_half_a_metre():
    names = list(PRESETS)
    cfg = QuadrotorEnvConfig(reference="hold", terminate=False, auto_reset=False, disturbance=False)
    env = QuadrotorEnv([PRESETS[n] for n in names], cfg, dtype=torch.float64)
    start = hover_state(env.params)
    start[:, 0] = 0.5
    env.set_state(start)
    controller = GeometricController(env.params)
    for _ in range(500):  # 5 s at 100 Hz
        env.step(controller(env.state, *env.reference()))
    error = env.state[:, 0:3].norm(dim=-1)
    assert (error < 0.01).all(), dict(zip(names, error.tolist(), strict=True))


@pytest.mark.parametrize("name", list(PRESETS))
def test_thrust_inversion_recovers_the_motor_command(name):
    params = BatchedParams.stack([PRESETS[name]], dtype=torch.float64)
    u = torch.tensor([[0.2, 0.5, 0.7, 0.95]], dtype=torch.float64)
    action = thrust_to_action(rotor_thrusts(u, params), params)
    assert torch.allclose((action + 1) / 2, u, atol=1e-9)
