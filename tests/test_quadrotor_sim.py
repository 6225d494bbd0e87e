"""The quadrotor model against physics we can work out by hand, the sampler, observations, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sim.quadrotor import (
    PRESETS,
    STUDENT_OBSERVATION,
    TEACHER_OBSERVATION,
    BatchedParams,
    InvalidParameters,
    QuadrotorEnv,
    QuadrotorEnvConfig,
    load_fleet,
    preset,
    sample_fleet,
    save_fleet,
)
from sim.quadrotor.dynamics import GRAVITY, P, U, V, W, hover_state, rk4_step
from sim.quadrotor.params import CRAZYFLIE
from sim.quadrotor.references import LangevinSettings
from sim.quadrotor.sampler import coverage_order

D = torch.float64


def batched(name: str) -> BatchedParams:
    return BatchedParams.stack([PRESETS[name]], dtype=D)


@pytest.mark.parametrize("name", list(PRESETS))
def test_hover_at_the_analytic_throttle_stays_put(name):
    params = batched(name)
    state = hover_state(params)
    u = params.hover_throttle[:, None].expand(1, 4)
    for _ in range(200):
        state = rk4_step(state, u, params, torch.zeros(1, 3, dtype=D), 0.01)
    assert state[0, P].abs().max() < 1e-9
    assert state[0, V].abs().max() < 1e-9
    assert state[0, W].abs().max() < 1e-9


def test_free_fall_with_motors_off():
    params = batched("x500")  # c0 = 0, so motors at zero give no thrust at all
    state = hover_state(params)
    state[:, U] = 0.0
    off = torch.zeros(1, 4, dtype=D)
    for _ in range(100):
        state = rk4_step(state, off, params, torch.zeros(1, 3, dtype=D), 0.01)
    assert state[0, 9].item() == pytest.approx(-GRAVITY * 1.0, rel=1e-9)
    assert state[0, 2].item() == pytest.approx(-0.5 * GRAVITY * 1.0, rel=1e-9)


@pytest.mark.parametrize(
    "motor, roll_sign, pitch_sign, yaw_sign",
    # FR, BR, BL, FL in FLU: right motors roll the vehicle negative about x, front motors pitch it
    # nose-up negative about y, and the yaw directions are -1, +1, -1, +1.
    [(0, -1, -1, -1), (1, -1, 1, 1), (2, 1, 1, -1), (3, 1, -1, 1)],
)
def test_each_motor_produces_the_expected_torque_signs(motor, roll_sign, pitch_sign, yaw_sign):
    params = batched("crazyflie")
    state = hover_state(params)
    state[:, U] = params.hover_throttle
    state[0, 13 + motor] += 0.1
    sp = state[:, U].clone()
    nxt = rk4_step(state, sp, params, torch.zeros(1, 3, dtype=D), 0.01)
    omega = nxt[0, W]
    assert math.copysign(1, omega[0].item()) == roll_sign
    assert math.copysign(1, omega[1].item()) == pitch_sign
    assert math.copysign(1, omega[2].item()) == yaw_sign


def test_angular_momentum_is_conserved_without_torque():
    params = batched("fs-base")
    state = hover_state(params)
    state[:, U] = 0.0
    # Zero thrust needs u with c0 + c1 u + c2 u^2 = 0; fs-base has c0 > 0, so use x500-like zero curve.
    params.thrust_coefficients = torch.zeros_like(params.thrust_coefficients)
    state[0, W] = torch.tensor([3.0, -2.0, 5.0], dtype=D)
    inertia = params.inertia[0]

    def world_momentum(s):
        from sim.quadrotor.dynamics import rotation_matrix

        return rotation_matrix(s[:, 3:7])[0] @ (inertia * s[0, W])

    start = world_momentum(state)
    for _ in range(300):
        state = rk4_step(state, torch.zeros(1, 4, dtype=D), params, torch.zeros(1, 3, dtype=D), 0.01)
    assert torch.allclose(world_momentum(state), start, atol=1e-6 * start.norm())
    # and the spin is genuinely tumbling, not trivially constant
    assert (state[0, W] - torch.tensor([3.0, -2.0, 5.0], dtype=D)).abs().max() > 0.1


def test_sampler_reproduces_raptor_ranges_and_is_seeded():
    fleet = sample_fleet(300, seed=7)
    assert [p.to_dict() for p in fleet] == [p.to_dict() for p in sample_fleet(300, seed=7)]
    assert fleet[0].to_dict() != sample_fleet(1, seed=8)[0].to_dict()
    for p in fleet:
        assert 0.02 <= p.mass <= 5.0
        assert 1.5 - 1e-9 <= p.thrust_to_weight() <= 5.0 + 1e-9
        ratio = p.max_rotor_thrust() * p.arm_length / p.inertia[0]
        assert 40 - 1e-6 <= ratio <= 1200 + 1e-6
        assert 0.005 <= p.yaw_moment_constant <= 0.05
        assert 0.03 <= p.motor_time_constant_rise <= 0.10
        assert 0.03 <= p.motor_time_constant_fall <= 0.30
        arm_nominal = CRAZYFLIE.arm_length * (p.mass / CRAZYFLIE.mass) ** (1 / 3)
        assert 0.9 - 1e-9 <= p.arm_length / arm_nominal <= 1.1 + 1e-9
        assert 0 <= p.hover_throttle() <= 1
    masses = sorted(p.mass for p in fleet)
    assert masses[0] < 0.2 and masses[-1] > 3.0  # both ends of the range are visited


def test_coverage_order_spreads_the_first_vehicles_over_mass_and_thrust_to_weight():
    fleet = sample_fleet(1000, seed=0)
    ordered = coverage_order(fleet)
    assert sorted(p.name for p in ordered) == sorted(p.name for p in fleet)  # a permutation
    assert ordered[0].thrust_to_weight() == min(p.thrust_to_weight() for p in fleet)

    def cells(vehicles):  # occupied cells of a 4 x 4 grid over log mass and thrust-to-weight
        return {(min(int((math.log(p.mass) - math.log(0.02)) / (math.log(250) / 4)), 3),
                 min(int((p.thrust_to_weight() - 1.5) / (3.5 / 4)), 3)) for p in vehicles}

    assert len(cells(ordered[:16])) >= 12
    assert len(cells(ordered[:16])) > len(cells(fleet[:16]))


def test_varied_thrust_curves_reach_low_hover_throttles_and_keep_the_papers_draws():
    paper = sample_fleet(300, seed=7)
    varied = sample_fleet(300, seed=7, thrust_curves="varied")
    # The blend is drawn after the paper's draws: the first vehicle differs in its curve only.
    first = {k: v for k, v in varied[0].to_dict().items() if k != "thrust_coefficients"}
    assert first == {k: v for k, v in paper[0].to_dict().items() if k != "thrust_coefficients"}
    assert varied[0].max_rotor_thrust() == pytest.approx(paper[0].max_rotor_thrust(), rel=1e-12)
    for p in varied:
        assert 1.5 - 1e-9 <= p.thrust_to_weight() <= 5.0 + 1e-9
        assert min(p.thrust_coefficients) >= 0  # thrust grows with u from zero throttle
    # Rescaled Crazyflie curves never hover below u = 0.37; the arpl preset hovers at 0.28.
    assert min(p.hover_throttle() for p in paper) > 0.37
    assert min(p.hover_throttle() for p in varied) < 0.25
    assert preset("arpl").hover_throttle() < 0.3
    with pytest.raises(ValueError, match="thrust_curves must be one of crazyflie, varied"):
        sample_fleet(2, seed=0, thrust_curves="linear")


def test_coverage_order_of_a_paper_fleet_ignores_the_curve_shape_and_spreads_a_varied_one_over_it():
    paper = sample_fleet(1000, seed=0)
    ordered = [p.name for p in coverage_order(paper)[:16]]
    # The raptor_small teachers (fleet seed 0, coverage order), as they were before curves could vary.
    assert ordered[:6] == ["q226", "q972", "q428", "q462", "q338", "q994"]
    varied = coverage_order(sample_fleet(1000, seed=0, thrust_curves="varied"))[:16]
    throttles = sorted(p.hover_throttle() for p in varied)
    assert throttles[0] < 0.25 and throttles[-1] > 0.7


def test_fleet_round_trips_through_json(tmp_path):
    fleet = sample_fleet(5, seed=1)
    path = save_fleet(fleet, tmp_path / "fleet.json", meta={"seed": 1})
    loaded, meta = load_fleet(path)
    assert meta == {"seed": 1}
    assert [p.to_dict() for p in loaded] == [p.to_dict() for p in fleet]


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda q: q.update(mass=-1.0), "mass"),
        (lambda q: q.update(mass=float("nan")), "mass"),
        (lambda q: q.update(thrust_coefficients=[0.0, 0.001, 0.0]), "thrust_coefficients"),
        (lambda q: q.update(inertia=[1e-5, 0.0, 1e-5]), "inertia[1]"),
        (lambda q: q.update(colour="red"), "colour"),
        (lambda q: q.pop("mass"), "mass"),
    ],
)
def test_malformed_fleet_is_rejected_naming_the_field(tmp_path, edit, field):
    doc = json.loads(save_fleet(sample_fleet(2, seed=1), tmp_path / "f.json").read_text())
    edit(doc["quadrotors"][1])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InvalidParameters, match=r"quadrotors\[1\].*" + re_escape(field)):
        load_fleet(bad)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_unknown_preset_and_broken_json_are_clear_errors(tmp_path):
    with pytest.raises(InvalidParameters, match="unknown preset 'hummingbird'"):
        preset("hummingbird")
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidParameters, match="not valid JSON"):
        load_fleet(bad)


def test_observation_layouts_match_raptor():
    assert len(STUDENT_OBSERVATION) == 22 and len(TEACHER_OBSERVATION) == 26
    params = [PRESETS["crazyflie"], PRESETS["x500"]]
    cfg = QuadrotorEnvConfig(observation="teacher", reference="hold")
    env = QuadrotorEnv(params, cfg, dtype=D)
    state = hover_state(BatchedParams.stack(params, dtype=D), torch.tensor([[0.1, -0.2, 0.3]] * 2, dtype=D))
    angle = 0.3  # yaw by 0.3 rad
    state[:, 3:7] = torch.tensor([math.cos(angle / 2), 0, 0, math.sin(angle / 2)], dtype=D)
    state[:, V] = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    state[:, W] = torch.tensor([0.4, 0.5, 0.6], dtype=D)
    env.set_state(state)
    obs = env.observe()
    assert obs.shape == (2, 26)
    assert torch.allclose(obs[0, 0:3], torch.tensor([0.1, -0.2, 0.3], dtype=D))
    c, s = math.cos(angle), math.sin(angle)
    assert torch.allclose(obs[0, 3:12], torch.tensor([c, -s, 0, s, c, 0, 0, 0, 1], dtype=D))
    assert torch.allclose(obs[0, 12:15], torch.tensor([1.0, 2.0, 3.0], dtype=D))
    assert torch.allclose(obs[0, 15:18], torch.tensor([0.4, 0.5, 0.6], dtype=D))
    hover = env.params.hover_throttle * 2 - 1
    assert torch.allclose(obs[:, 18:22], hover[:, None].expand(2, 4))
    assert torch.allclose(obs[:, 22:26], hover[:, None].expand(2, 4))
    student = QuadrotorEnv(params, QuadrotorEnvConfig(reference="hold"), dtype=D)
    student.set_state(state)
    assert torch.equal(student.observe(), obs[:, :22])


def test_non_finite_state_ends_only_that_environment():
    env = QuadrotorEnv([PRESETS["crazyflie"]] * 3, QuadrotorEnvConfig(reference="hold"), seed=0)
    env.reset()
    action = torch.zeros(3, 4)
    action[1, 2] = float("nan")
    obs, reward, terminated, _, info = env.step(action)
    assert terminated[1] and info["termination_reason"][[0, 2]].ne(4).all()
    assert info["termination_reason"][1].item() == 4  # "non_finite"
    assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    assert reward[1].item() == -100.0
    assert torch.isfinite(info["final_observation"]).all()


def test_episode_truncates_and_resets_in_the_same_step():
    cfg = QuadrotorEnvConfig(reference="hold", episode_steps=5, init_at_target_probability=1.0,
                             disturbance=False)
    env = QuadrotorEnv([PRESETS["x500"]] * 2, cfg, seed=3)
    env.reset()
    hover = (env.params.hover_throttle * 2 - 1)[:, None].expand(2, 4)
    for i in range(5):
        _, reward, terminated, truncated, _ = env.step(hover)
        assert not terminated.any()
        assert truncated.all() == (i == 4)
        assert (reward > 1.4).all()  # at the target: almost the full survival bonus
    assert (env.s.steps == 0).all()


def test_action_shape_is_checked():
    env = QuadrotorEnv([PRESETS["crazyflie"]], QuadrotorEnvConfig())
    with pytest.raises(ValueError, match=r"action must have shape \(1, 4\)"):
        env.step(torch.zeros(4))


def walk_speeds(walk: LangevinSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of 64 walk episodes' mean reference speed over 100 steps, and its sigma."""
    cfg = QuadrotorEnvConfig(reference="langevin", terminate=False, disturbance=False, langevin=walk)
    env = QuadrotorEnv([PRESETS["crazyflie"]] * 64, cfg, seed=5)
    env.reset()
    hover = (env.params.hover_throttle * 2 - 1)[:, None].expand(64, 4)
    speeds = []
    for _ in range(100):
        env.step(hover)
        speeds.append(env.reference()[1].norm(dim=-1))
    return torch.stack(speeds).mean(0), walk.episode_sigma(env.s.noise_key, torch.float64)


def test_langevin_walk_settings_set_the_reference_speed():
    slow = float(walk_speeds(LangevinSettings(sigma=0.5))[0].mean())
    fast = float(walk_speeds(LangevinSettings(sigma=2.0))[0].mean())
    # The walk is linear in its noise: the same episodes' noise, four times the sigma, four times the speed.
    assert fast == pytest.approx(4 * slow, rel=1e-3)
    assert slow > 0.05


def test_a_walk_speed_range_gives_each_episode_its_own_sigma():
    fixed, _ = walk_speeds(LangevinSettings(sigma=0.5))
    ranged, sigma = walk_speeds(LangevinSettings(sigma=0.5, sigma_max=2.0))
    # Same episodes (same keys), each walk scaled by its own sigma / 0.5, spread over the range.
    assert torch.allclose(ranged, fixed * (sigma / 0.5).float(), rtol=1e-3)
    assert float(sigma.min()) >= 0.5 and float(sigma.max()) <= 2.0
    assert float(sigma.max() - sigma.min()) > 1.0
    # The draw is the key's: a second environment with the same keys draws the same sigmas.
    assert torch.equal(ranged, walk_speeds(LangevinSettings(sigma=0.5, sigma_max=2.0))[0])


def test_a_walk_speed_range_below_sigma_is_refused():
    with pytest.raises(ValueError, match=r"langevin\.sigma_max must be >= langevin\.sigma"):
        QuadrotorEnvConfig(langevin=LangevinSettings(sigma=1.0, sigma_max=0.5))


@pytest.mark.parametrize("bad", [dict(sigma=-1.0), dict(alpha=0.0), dict(alpha=1.5)])
def test_bad_langevin_settings_are_refused(bad):
    with pytest.raises(ValueError, match="langevin"):
        QuadrotorEnvConfig(langevin=LangevinSettings(**bad))
