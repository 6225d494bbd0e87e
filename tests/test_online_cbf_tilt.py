"""A tuner that also sets each agent's right-hand-rule turn: per-agent tilt in the nominal, per-output
ranges in the GNN, the card, ONNX Runtime and the generated C, the grid search over the turn, and the
whole train -> export -> evaluate path."""

import ctypes
import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from robo.cli import main
from robo.codegen.c_emitter import generate_from_file
from robo.codegen.firmware import sequence
from robo.codegen.host import HostPolicy
from robo.export.card import action_clip, card_path_for, load_card, write_card
from robo.export.onnx_export import export_onnx
from robo.nets.gnn import GainGNN
from robo.runtime import OnnxPolicy
from robo.runtime.swarm import SwarmTuner
from robo.tasks.online_cbf.config import GridSettings, OnlineCbfConfig, TrainSettings
from robo.tasks.online_cbf.gain_env import SwarmGainEnv
from robo.tasks.online_cbf.rollout import grid_search, metrics, run_episodes
from robo.tasks.online_cbf.tuner import GainTuner
from sim.swarm import SwarmConfig, flat_layout, flat_observation, make_scenario, nominal_accelerations, reset

torch.set_num_threads(1)
K = 4
RANGE = [0.0, 1.2]


def test_a_per_agent_tilt_turns_each_agent_by_its_own_angle():
    state = reset(make_scenario("swap", 4, 2, seed=1), SwarmConfig())
    kw = dict(max_speed=1.0, max_accel=2.0)
    same = torch.full(state.p.shape[:2], 0.4, dtype=state.p.dtype)
    scalar = nominal_accelerations(state.p, state.v, state.goal, tilt=0.4, **kw)
    assert torch.equal(nominal_accelerations(state.p, state.v, state.goal, tilt=same, **kw), scalar)
    tilts = torch.tensor([[0.0, 0.3, 0.6, 0.9], [1.2, 0.1, 0.0, 0.5]], dtype=state.p.dtype)
    each = nominal_accelerations(state.p, state.v, state.goal, tilt=tilts, **kw)
    for e in range(2):
        for i in range(4):
            one = nominal_accelerations(state.p[e:e + 1, i:i + 1], state.v[e:e + 1, i:i + 1],
                                        state.goal[e:e + 1, i:i + 1], tilt=float(tilts[e, i]), **kw)
            assert torch.allclose(each[e, i], one[0, 0], atol=1e-12)
    assert not torch.allclose(each, scalar)


def _tilt_net() -> GainGNN:
    torch.manual_seed(0)
    net = GainGNN(node_size=4, edge_size=6, neighbours=K, hidden=16, act_dim=3, tilt_range=RANGE)
    for param in net.parameters():  # weights large enough that the outputs spread over their ranges
        param.data.normal_(0, 0.8)
    return net.eval()


def _obs(agents=6) -> torch.Tensor:
    state = reset(make_scenario("obstacles", agents, 2, seed=3), SwarmConfig())
    return flat_observation(state, SwarmConfig(), K).flatten(0, 1).float()


def test_each_output_stays_in_its_own_range():
    out = _tilt_net()(_obs()).detach()
    assert out.shape == (12, 3)
    assert float(out[:, :2].min()) >= 0.25 and float(out[:, :2].max()) <= 4.0
    assert float(out[:, 2].min()) >= 0.0 and float(out[:, 2].max()) <= 1.2
    assert float(out[:, 2].max() - out[:, 2].min()) > 0.2  # the turn is not a constant
    with pytest.raises(ValueError, match=r"act_dim 2 must be 2 .* 3 with a tilt_range"):
        GainGNN(4, 6, K, act_dim=2, tilt_range=RANGE)


def test_per_output_clips_clamp_each_output_alike_in_onnx_runtime_and_the_generated_c(tmp_path):
    meta = {"task": "online_cbf", "observation": flat_layout(2, K).card_entries(),
            "action": [{"name": "k1", "unit": "1/s"}, {"name": "k2", "unit": "1/s"},
                       {"name": "tilt", "unit": "rad"}],
            "action_clip": [[0.25, 4.0], [0.25, 4.0], [0.0, 1.2]], "fallback_action": [0.25, 0.25, 0.4]}
    card = export_onnx(_tilt_net(), meta, tmp_path / "policy.onnx", steps=50)
    assert card["action"]["clip"] == [[0.25, 4.0], [0.25, 4.0], [0.0, 1.2]]
    # a narrower turn range on the card than the network's: the runtimes must clamp the turn only
    card["action"]["clip"] = [[0.25, 4.0], [0.25, 4.0], [0.0, 0.5]]
    write_card(card, card_path_for(tmp_path / "policy.onnx"))
    ort = OnnxPolicy(tmp_path / "policy.onnx")
    obs = _obs().numpy()
    steps = [ort.step(row) for row in obs]
    raw = _tilt_net()(torch.from_numpy(obs)).detach().numpy()
    turned = raw[:, 2] > 0.5
    assert turned.any() and (~turned).any()
    got = np.stack([s.action for s in steps])
    assert np.allclose(got[:, :2], raw[:, :2], atol=1e-5)
    assert np.allclose(got[:, 2], np.minimum(raw[:, 2], 0.5), atol=1e-5)
    assert [s.clamped for s in steps] == turned.tolist()
    generate_from_file(tmp_path / "policy.onnx", tmp_path / "c")
    assert "ACT_HI[POLICY_ACT_SIZE]" in (tmp_path / "c" / "policy.c").read_text()
    host = HostPolicy(tmp_path / "c")
    seq = sequence(host.manifest["obs_size"], 200, 3)
    ref, ref_status = ort.rollout(seq)
    c_out, status = zip(*(host.step(o) for o in seq), strict=True)
    assert np.array_equal(np.array(status), ref_status)
    assert np.abs(np.array(c_out) - ref).max() <= 1e-5
    assert float(np.max(ref[:, 2])) <= 0.5


def test_clip_pairs_must_cover_every_output():
    card = {"action": {"size": 3, "clip": [[0.25, 4.0], [0.0, 1.2]]}}
    with pytest.raises(ValueError, match="2 \\[lo, hi\\] pairs for 3 outputs"):
        action_clip(card)
    lo, hi = action_clip({"action": {"size": 2, "clip": [[0.25, 4.0], [0.0, 1.2]]}})
    assert lo.tolist() == [0.25, 0.0] and hi.tolist() == [4.0, 1.2]


@pytest.mark.parametrize("bad, match", [([1.0, 0.5], "low < high"), ([0.0, 2.0], "tilt must be finite"),
                                        ([0.3], "low < high")])
def test_a_bad_tilt_range_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        OnlineCbfConfig(train=TrainSettings(tilt_range=bad))
    with pytest.raises(ValueError, match="tilt must be finite"):
        OnlineCbfConfig(grid=GridSettings(tilt=[0.2, 3.0]))


def test_the_grid_searches_the_turn_too_when_asked():
    config = OnlineCbfConfig(scenario="swap", agents=4, episodes=2,
                             grid=GridSettings(k1=[2.0], k2=[2.0], tilt=[0.0, 0.7], episodes=2))
    best, table = grid_search(config)
    assert [(r["k1"], r["k2"], r["tilt"]) for r in table] == [(2.0, 2.0, 0.0), (2.0, 2.0, 0.7)]
    assert len(best) == 3 and best[2] in (0.0, 0.7)
    # a fixed (k1, k2, tilt) flies exactly as the config's tilt with (k1, k2)
    turned = run_episodes(config, (2.0, 2.0, 0.7))
    same = run_episodes(dataclasses.replace(config, tilt=0.7), (2.0, 2.0))
    assert metrics(turned, config) == metrics(same, config)
    assert not torch.equal(turned.paths, run_episodes(config, (2.0, 2.0, 0.0)).paths)


def test_the_training_env_turns_each_agent_by_its_action():
    env = SwarmGainEnv(OnlineCbfConfig(agents=4, train=TrainSettings(envs=2, neighbours=K, tilt_range=RANGE)))
    env.reset(seed=0)
    assert env.action_size == 3
    k1, k2, tilt = env.gains(torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]).repeat(4, 1))
    assert tilt.shape == (2, 4) and float(tilt.min()) < 0.05 and float(tilt.max()) > 1.15
    assert torch.allclose(k1, torch.full_like(k1, 0.25 + 3.75 / 2)) and torch.equal(k1, k2)


def test_a_tilt_tuner_trains_exports_and_runs_alike_in_every_runtime(tmp_path, capsys):
    run = tmp_path / "run"
    settings = ["train.envs=2", "agents=4", f"train.neighbours={K}", "train.hidden=8",
                "train.runner.num_steps=8", "train.runner.iterations=1", "train.tilt_range=[0.0, 1.2]"]
    assert main(["train", "online-cbf", "--out", str(run), *(x for s in settings for x in ("--set", s))]) == 0
    card = load_card(run / "policy.onnx")
    assert [e["name"] for e in card["action"]["layout"]] == ["k1", "k2", "tilt"]
    assert card["action"]["fallback"] == [0.25, 0.25, 0.4]
    state = reset(make_scenario("swap", 4, 1, seed=2), SwarmConfig())
    by_torch = GainTuner(run / "policy.pt", 4.0)(state, SwarmConfig())
    by_ort = GainTuner(run / "policy.onnx", 4.0)(state, SwarmConfig())
    assert len(by_torch) == len(by_ort) == 3
    for a, b in zip(by_torch, by_ort, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    swarm_tuner = SwarmTuner(run / "policy.onnx")
    obs = flat_observation(state, SwarmConfig(), K)[0, 0].numpy()
    assert swarm_tuner.sets_tilt and np.allclose(swarm_tuner.gains(obs), [float(x[0, 0]) for x in by_ort],
                                                 atol=1e-5)
    capsys.readouterr()
    grid = ["grid.episodes=1", "grid.k1=[2.0]", "grid.k2=[2.0]", "grid.tilt=[0.0, 0.4]"]
    assert main(["eval", "online-cbf", "--policy", str(run / "policy.onnx"), "--scenario", "swap",
                 "--agents", "4", "--episodes", "2", *(x for s in grid for x in ("--set", s)),
                 "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())["rows"]
    assert {"k1", "k2", "tilt"} <= set(rows[1]["gains"]) and "tilt_median" in rows[2]["gains"]


@pytest.fixture(scope="module")
def tilt_tuner(tmp_path_factory):
    """A tiny trained tilt tuner with the MCU image's 8 neighbour slots."""
    run = tmp_path_factory.mktemp("tilt") / "run"
    settings = ["train.envs=2", "agents=4", "train.hidden=8", "train.runner.num_steps=8",
                "train.runner.iterations=1", "train.tilt_range=[0.0, 1.2]", "train.runner.init_std=2.0"]
    assert main(["train", "online-cbf", "--out", str(run), *(x for s in settings for x in ("--set", s))]) == 0
    return run / "policy.onnx"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_the_emitted_nominal_turns_by_the_tuners_tilt(tmp_path, tilt_tuner):
    from robo.runtime.swarm import nominal_acceleration
    from robo.safety.agent_c import emit_agent_step
    from robo.safety.agent_qp import AgentFilterConfig

    generate_from_file(tilt_tuner, tmp_path)
    for name, text in emit_agent_step(AgentFilterConfig(), max_speed=1.0, kp=1.0, kd=2.0, tilt=0.4,
                                      outputs=3).items():
        (tmp_path / name).write_text(text)
    lib = tmp_path / "agent.so"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-o", str(lib), str(tmp_path / "robo_agent.c"), str(tmp_path / "policy.c")], check=True)
    fn = ctypes.CDLL(str(lib)).robo_agent_nominal
    F = ctypes.POINTER(ctypes.c_float)
    fn.argtypes = [F] * 5
    rng = np.random.default_rng(0)
    for tilt in np.linspace(0.0, 1.2, 13):
        p, v, goal = (rng.normal(size=2).astype(np.float32) for _ in range(3))
        k = np.array([1.0, 1.0, tilt], np.float32)
        u = np.zeros(2, np.float32)
        fn(*(a.ctypes.data_as(F) for a in (p, v, goal, k, u)))
        ref = nominal_acceleration(p.astype(float), v.astype(float), goal.astype(float), max_speed=1.0,
                                   max_accel=2.0, kp=1.0, kd=2.0, tilt=float(k[2]))
        assert np.abs(u - ref).max() <= 1e-5, (tilt, u, ref)


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (bash .ci/setup)")
def test_a_tilt_tuner_and_its_filter_replay_a_swap_on_the_mcu_like_python(tmp_path, tilt_tuner):
    from robo.bench.online_cbf import mcu_step, record_swap_views

    views, settings = record_swap_views(str(tilt_tuner), every=16)
    out = mcu_step(tilt_tuner, views, settings, tmp_path)
    report, run = out["vs_python"], out["run"]
    assert run.gains.shape == (len(views), 3) and float(np.ptp(run.gains[:, 2])) > 0.01  # the turn varies
    assert report["status_mismatches"] == 0, report
    assert report["max_abs_gain_diff"] <= 1e-4, report
    assert report["max_abs_u_diff"] <= 1e-3, report


def test_a_tuner_of_other_outputs_is_refused_before_anything_is_written(tmp_path, tilt_tuner):
    from robo.safety.agent_mcu import StepSettings, assemble_agent_app
    from robo.safety.agent_qp import AgentFilterConfig

    shutil.copy(tilt_tuner, tmp_path / "policy.onnx")
    card = load_card(tilt_tuner)
    card["action"]["layout"][2]["name"] = "speed"
    write_card(card, tmp_path / "policy.json")
    with pytest.raises(ValueError, match="outputs are \\['k1', 'k2', 'speed'\\]"):
        assemble_agent_app(tmp_path / "app", tmp_path / "policy.onnx", [],
                           StepSettings(AgentFilterConfig(), 1.0, 1.0, 2.0), driver_dir=tmp_path)
    assert not (tmp_path / "app").exists()
