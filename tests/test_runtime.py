"""robo.runtime: the ONNX policy (card, threads, rate, clamp), observation and trajectories against the
simulator's, the controller loop with the safety filter, and the watchdog's decisions."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from policy_standins import copy_default, write_standin

from robo.runtime import (
    DEFAULT_POLICY,
    Controller,
    OnnxPolicy,
    Setpoint,
    Trajectory,
    TrajectoryConfig,
    VehicleState,
    build_observation,
)
from sim.quadrotor.env import observe
from sim.quadrotor.references import Figure8Settings
from sim.quadrotor.references import figure8 as sim_figure8


def test_observation_matches_the_simulator_exactly():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        x = np.concatenate([rng.normal(size=3), q, rng.normal(size=(2, 3)).ravel(), rng.uniform(size=4)])
        ref_p, ref_v, prev = rng.normal(size=3), rng.normal(size=3), rng.uniform(-1, 1, 4)
        ours = build_observation(VehicleState.from_vector(x), Setpoint(ref_p, ref_v), prev)
        theirs = observe(torch.tensor(x)[None], torch.tensor(ref_p)[None], torch.tensor(ref_v)[None],
                         torch.tensor(prev)[None], "student")[0].numpy()
        assert ours.dtype == np.float32 and ours.shape == (22,)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_figure8_matches_the_simulator_reference():
    cfg = TrajectoryConfig(kind="figure8", center=(0.5, -1.0, 2.0), period=7.0, scale=1.3, ramp=1.5)
    traj = Trajectory(cfg)
    t = torch.linspace(0, 12, 97, dtype=torch.float64)
    pos, vel = sim_figure8(t, Figure8Settings(period=7.0, scale=1.3, ramp=1.5))
    for i, ti in enumerate(t.tolist()):
        sp = traj.setpoint(ti)
        np.testing.assert_allclose(sp.position, pos[i].numpy() + np.array([0.5, -1.0, 2.0]), atol=1e-12)
        np.testing.assert_allclose(sp.velocity, vel[i].numpy(), atol=1e-12)


def test_default_policy_loads_with_one_thread_and_its_hash():
    policy = OnnxPolicy(DEFAULT_POLICY)
    opts = policy.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert policy.rate_hz == 100.0 and policy.sha256 == policy.card["onnx"]["sha256"]
    assert policy.inference_seconds < 0.01
    assert "torch" not in policy.__class__.__module__


def test_runtime_does_not_import_torch():
    code = "import sys, robo.runtime, robo.runtime.controller; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_changed_model_is_refused(tmp_path):
    path = copy_default(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        OnnxPolicy(path)


def test_a_card_naming_other_tensors_is_refused(tmp_path):
    path = copy_default(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["onnx"]["inputs"][1]["name"] = "hidden_in"
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not match the card"):
        OnnxPolicy(path)


def test_a_card_with_the_wrong_state_size_is_refused(tmp_path):
    path = copy_default(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["onnx"]["inputs"][1]["shape"] = [1, 32]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="shape"):
        OnnxPolicy(path)


def test_missing_card_and_garbage_model(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(OSError, match="policy card not found"):
        OnnxPolicy(tmp_path / "x.onnx")
    with pytest.raises(OSError, match="no such file"):
        OnnxPolicy(tmp_path / "none.onnx")
    path = write_standin(tmp_path / "s")
    path.write_bytes(b"garbage")
    card = json.loads(path.with_suffix(".json").read_text())
    from robo.export.card import sha256_file

    card["onnx"]["sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        OnnxPolicy(path)


def test_actions_are_clamped_and_a_non_finite_observation_gives_the_fallback(tmp_path):
    policy = OnnxPolicy(write_standin(tmp_path, bias=np.array([5.0, -5.0, 0.5, 0.0])))
    step = policy.step(np.zeros(22, np.float32))
    np.testing.assert_allclose(step.action, [1.0, -1.0, 0.5, 0.0])
    assert not step.fallback and policy.state[0][0, 0] == 1.0
    obs = np.zeros(22, np.float32)
    obs[3] = np.nan
    step = policy.step(obs)
    assert step.fallback and np.array_equal(step.action, np.zeros(4))  # the clip's midpoint
    assert policy.state[0][0, 0] == 0.0  # the state starts over
    with pytest.raises(ValueError, match="21 values"):
        policy.step(np.zeros(21))


@pytest.mark.parametrize("call_hz", [100.0, 250.0, 500.0, 1000.0])
def test_recurrent_state_advances_at_the_trained_rate_when_called_faster(tmp_path, call_hz):
    policy = OnnxPolicy(write_standin(tmp_path, rate_hz=100.0))
    jitter = np.random.default_rng(1).uniform(-0.1, 0.1, 1000) / call_hz
    calls = int(call_hz)  # one second
    advanced = sum(policy.step(np.zeros(22, np.float32), k / call_hz + jitter[k]).advanced
                   for k in range(calls))
    # Ticks lie on a fixed 10 ms grid; one second of calls commits 100 of them (101 when the call
    # closest to t = 1 s lands within half a period before it).
    assert advanced in (100, 101)
    assert policy.state[0][0, 0] == pytest.approx(advanced)  # h_out = h_in + 1 per committed tick


def test_controller_with_filter_keeps_the_setpoint_out_of_an_obstacle():
    from robo.safety.config import SafetyConfig, SphereConfig, build_filter
    from robo.safety.setpoint import SetpointFilter

    sf = SetpointFilter(build_filter(SafetyConfig(spheres=[SphereConfig((1.0, 0.0, 1.0), 0.3)])), 4.0, 3.0)
    ctl = Controller(OnnxPolicy(DEFAULT_POLICY), sf)
    state = VehicleState(np.array([0.6, 0.0, 1.0]), np.array([1.0, 0, 0, 0]), np.array([1.0, 0, 0]),
                         np.zeros(3))
    out = ctl.step(state, Setpoint(np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])))
    assert out.filter_status == "modified" and out.setpoint.position[0] < 1.0
    assert out.command.shape == (4,) and np.all((out.command >= 0) & (out.command <= 1))
    bad = VehicleState(np.array([np.nan, 0, 1.0]), np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="non-finite vehicle state"):
        ctl.step(bad, Setpoint(np.zeros(3), np.zeros(3)))
