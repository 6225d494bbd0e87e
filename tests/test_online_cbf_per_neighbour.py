"""Per-neighbour gains (train.per_neighbour): each edge slot's (k1, k2) reaches that neighbour's barrier
row, the GNN's slot outputs follow their edges, gains chosen by side break the swap's symmetric jam
that one pair of gains for all cannot, and the trained tuner runs the same in torch and ONNX Runtime."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robo.cli import main
from robo.nets.gnn import GainGNN
from robo.runtime.swarm import SwarmTuner, agent_observation, slot_order
from robo.safety.agent_mcu import tuner_outputs
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.neighbour_gains import split_outputs
from robo.tasks.online_cbf.rollout import gains_by_side, metrics, run_episodes
from robo.tasks.online_cbf.tuner import GainTuner
from sim.swarm import (
    Scenario,
    SwarmConfig,
    SwarmState,
    flat_observation,
    flat_observation_and_slots,
    make_scenario,
    reset,
)

CONFIG = SwarmConfig()


def _line() -> SwarmState:
    """Agents at x = 0, 1.0, 2.2 and 5 (beyond sensing from agent 0), an obstacle at x = -0.5."""
    p = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.2, 0.0], [5.0, 0.0]]], dtype=torch.float64)
    return reset(Scenario(p, p + 10.0, torch.tensor([[[-0.5, 2.0]]], dtype=torch.float64),
                          torch.tensor([[0.1]], dtype=torch.float64)), CONFIG)


def _outputs(slots: int) -> torch.Tensor:
    """Agent i's own pair (10 i + 1, 10 i + 2), slot m's pair (10 i + 3 + 2 m, 10 i + 4 + 2 m)."""
    base = 10.0 * torch.arange(4, dtype=torch.float64)[None, :, None]
    return base + torch.arange(1, 3 + 2 * slots, dtype=torch.float64)


def _slots(state: SwarmState, neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    return flat_observation_and_slots(state, CONFIG, neighbours, agents_first=True)[1]


def test_each_slots_gains_reach_the_row_of_the_neighbour_in_that_slot():
    state = _line()
    k1, k2, tilt = split_outputs(_outputs(2), False, _slots(state, 2), rows=5)
    assert tilt is None and k1.shape == k2.shape == (1, 4, 5)  # 4 agent rows, 1 obstacle row
    # agent 0: agents first, nearest first: agent 1 (1.0 m), agent 2 (2.2 m); the obstacle (2.06 m) is
    # nearer than agent 2 but gets no slot; agent 3 is out of sensing range: the agent's own gains
    assert k1[0, 0].tolist() == [1.0, 3.0, 5.0, 1.0, 1.0]
    assert k2[0, 0].tolist() == [2.0, 4.0, 6.0, 2.0, 2.0]
    # more slots than candidates: the empty slots write nowhere that matters, no neighbour loses its gain
    k1, _, _ = split_outputs(_outputs(6), False, _slots(state, 6), rows=5)
    assert k1[0, 0].tolist() == [1.0, 3.0, 5.0, 1.0, 7.0]
    # without per_neighbour: one pair per agent
    k1, k2, _ = split_outputs(_outputs(0), False)
    assert k1.shape == (1, 4) and k1[0].tolist() == [1.0, 11.0, 21.0, 31.0]


def test_the_slot_outputs_follow_their_edges_and_the_agents_own_do_not_depend_on_slot_order():
    torch.manual_seed(0)
    K = 4
    net = GainGNN(node_size=4, edge_size=6, neighbours=K, hidden=16, act_dim=2 + 2 * K,
                  per_neighbour=True).double()
    for param in net.parameters():
        param.data.normal_(0, 0.8)
    state = reset(make_scenario("swap", 5, 1, seed=2), CONFIG)
    obs = flat_observation(state, CONFIG, K).flatten(0, 1)
    out = net(obs).detach()
    assert out.shape == (5, 2 + 2 * K) and float(out.min()) >= 0.25 and float(out.max()) <= 4.0
    n, e = 4, 6
    edges = obs[:, n:n + K * e].reshape(5, K, e).flip(1).flatten(1)
    flipped = net(torch.cat([obs[:, :n], edges, obs[:, n + K * e:].flip(1)], dim=1)).detach()
    assert torch.allclose(flipped[:, :2], out[:, :2], atol=1e-9)
    assert torch.allclose(flipped[:, 2:].reshape(5, K, 2), out[:, 2:].reshape(5, K, 2).flip(1), atol=1e-9)
    assert float(out[:, 2:].std()) > 0.1  # the slots do get gains of their own
    with pytest.raises(ValueError, match="per neighbour slot"):
        GainGNN(4, 6, K, act_dim=2, per_neighbour=True)


def test_gains_chosen_by_side_get_the_swap_through_where_one_pair_of_gains_for_all_jams():
    config = OnlineCbfConfig(agents=8, tilt=0.0)  # no right-hand rule: gains are the only lever
    fixed = metrics(run_episodes(config, (4.0, 4.0), episodes=4), config)
    sided = metrics(run_episodes(config, gains_by_side(4.0, 0.25), episodes=4), config)
    assert fixed["deadlock_rate"] == 1.0 and fixed["success_rate"] < 1.0
    assert sided["success_rate"] == 1.0 and sided["deadlock_rate"] == 0.0 and sided["collisions"] == 0


TINY = ["--set", "train.envs=2", "--set", "agents=4", "--set", "train.neighbours=4",
        "--set", "train.hidden=8", "--set", "train.runner.num_steps=8", "--set", "train.runner.iterations=1",
        "--set", "tilt=0", "--set", "train.per_neighbour=true"]


def test_a_per_neighbour_tuner_trains_exports_and_sets_the_same_row_gains_in_onnx_and_torch(tmp_path, capsys):
    run = tmp_path / "run"
    # trained with each agent's own k2 (not the default shared one)
    assert main(["train", "online-cbf", "--out", str(run), *TINY, "--set", "filter.shared_k2=null"]) == 0
    card = json.loads((run / "policy.json").read_text())
    names = [entry["name"] for entry in card["action"]["layout"]]
    assert names[:4] == ["k1", "k2", "edge0.k1", "edge0.k2"] and len(names) == 2 + 2 * 4
    assert card["action"]["clip"] == [0.25, 4.0] and len(card["action"]["fallback"]) == len(names)
    assert card["training"]["arch"]["per_neighbour"] is True
    state = reset(make_scenario("corridor", 4, 2, seed=1), CONFIG)
    onnx, torch_ = GainTuner(run / "policy.onnx", None), GainTuner(run / "policy.pt", None)
    for a, b in zip(onnx(state, CONFIG), torch_(state, CONFIG), strict=True):
        assert a.shape == b.shape == (2, 4, 4 + state.obstacle_p.shape[1])
        assert torch.allclose(a, b, atol=1e-4)
    assert onnx.fallbacks == onnx.clamped == 0
    # one agent's computer (the ROS filter node's numpy path) sets the same gains on the same rows
    rows = onnx(state, CONFIG)
    node = SwarmTuner(run / "policy.onnx")
    # the k2 the ROS node filters with, read from the card
    assert node.shared_k2 is None and SwarmTuner(COMMITTED / "policy.onnx").shared_k2 == 4.0
    p, v, goal = (x[1].numpy() for x in (state.p, state.v, state.goal))
    obstacles = state.obstacle_p[1].numpy()
    for i in range(4):
        others = [j for j in range(4) if j != i]
        view = dict(sensing_radius=CONFIG.sensing_radius, obstacle_p=obstacles, agents_first=True)
        obs = agent_observation(p[i], v[i], goal[i], p[others], v[others], agent_radius=CONFIG.agent_radius,
                                slots=4, obstacle_r=state.obstacle_r[1].numpy(), **view)
        order = slot_order(p[i], p[others], slots=4, **view)
        k1, k2 = node.gains(obs, order, 3 + len(obstacles))
        assert len(order) == 4 and min(order) >= 0
        for k, torch_rows in ((k1, rows[0]), (k2, rows[1])):
            expected = torch_rows[1, i, [*others, *range(4, 4 + len(obstacles))]].numpy()
            assert k == pytest.approx(expected, abs=1e-4)
    assert tuner_outputs(run / "policy.onnx") == (2, 4)  # own (k1, k2), then 4 slots' pairs
    # trained with each agent's own k2: refused behind the default filter, which overrides it, before
    # any episode, with the setting that runs it
    assert main(["eval", "online-cbf", "--policy", str(run / "policy.pt"), "--scenario", "swap",
                 "--out", str(tmp_path / "shared")]) != 0
    assert not (tmp_path / "shared").exists()
    err = capsys.readouterr().err
    assert "trained with filter.shared_k2=None, evaluated with 4.0" in err and "shared_k2=null)" in err
    assert math.isfinite(card["export"]["equivalence"]["max_abs_error"])


def test_the_same_gains_on_every_row_filter_exactly_as_one_pair_per_agent():
    from robo.safety.batched_multi_agent import MultiAgentFilterConfig, filter_accelerations

    state = reset(make_scenario("obstacles", 6, 2, seed=4), CONFIG)
    v = torch.randn(state.p.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u_nom = torch.randn(state.p.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k1 = 0.5 + 3 * torch.rand(2, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rows = 6 + state.obstacle_p.shape[1]
    args = (state.p, v, u_nom, state.obstacle_p, state.obstacle_r)
    per_agent = filter_accelerations(*args, k1, 2 * k1, MultiAgentFilterConfig())
    every_row = k1[..., None].expand(2, 6, rows)
    per_row = filter_accelerations(*args, every_row, 2 * every_row, MultiAgentFilterConfig())
    assert bool(per_agent.modified.any())  # the rows bind: the gains matter
    assert torch.equal(per_agent.u, per_row.u) and torch.equal(per_agent.fault, per_row.fault)


def test_eval_runs_the_by_side_schedule_and_the_mixed_gains_stress_test(tmp_path, capsys):
    for flag, value, setting in (("--gains-by-side", "4,0.25", {"by_side": [4.0, 0.25]}),
                                 ("--gains-mixed", "0.25,4", {"mixed": [0.25, 4.0], "seed": 0})):
        out = tmp_path / flag
        assert main(["eval", "online-cbf", "--scenario", "swap", "--agents", "8", "--episodes", "2", flag,
                     value, "--set", "tilt=0", "--out", str(out)]) == 0
        result = json.loads((out / "metrics.json").read_text())
        assert result["gains"] == setting and result["episodes"] == 2 and result["controller"] == "filter"
        assert (out / "trajectories.png").is_file()
    assert result["gains"] == {"mixed": [0.25, 4.0], "seed": 0}
    capsys.readouterr()
    assert main(["eval", "online-cbf", "--gains-mixed", "0,4", "--out", str(tmp_path / "bad")]) != 0
    assert "--gains-mixed '0,4': both gains must be finite and > 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


COMMITTED = Path(__file__).resolve().parents[1] / "robo" / "policies" / "online_cbf_gnn_per_neighbour"


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (bash .ci/setup)")
def test_the_per_neighbour_tuner_and_its_filter_replay_a_swap_on_the_mcu_like_python(tmp_path):
    from robo.bench.online_cbf import mcu_step, record_swap_views
    from robo.safety.agent_mcu import AgentView

    views, settings = record_swap_views(str(COMMITTED / "policy.pt"), every=16, shared_k2=4.0)  # trained so
    # obstacles within sensing range: the agents-first slot order decides which rows get slot gains
    settings = dataclasses.replace(settings, obstacle_p=np.array([[0.3, 0.2], [-1.0, 0.5]]),
                                   obstacle_r=np.array([0.2, 0.3]))
    rng = np.random.default_rng(2)
    for _ in range(60):
        p = rng.uniform(-2, 2, 2)
        m = int(rng.integers(1, 9))
        views.append(AgentView(p, rng.normal(size=2), p + rng.normal(size=2) * 3,
                               p + rng.normal(size=(m, 2)) * 1.2, rng.normal(size=(m, 2))))
    out = mcu_step(COMMITTED / "policy.onnx", views, settings, tmp_path)
    report, run = out["vs_python"], out["run"]
    assert run.gains.shape == (len(views), 2 + 2 * 8)
    slots = run.gains[:, 2:].reshape(len(views), 8, 2)
    assert float(np.abs(slots - run.gains[:, None, :2]).max()) > 0.1  # the slots' own gains are used
    assert report["status_mismatches"] == 0, report
    assert report["max_abs_gain_diff"] <= 1e-4, report
    assert report["max_abs_u_diff"] <= 1e-3, report
    assert {"0", "1"} <= set(report["codes"]), report


def test_the_shared_k2_is_the_default_for_tuners_and_fixed_gains_keep_their_own():
    from robo.tasks.online_cbf.config import FilterSettings

    assert OnlineCbfConfig().filter.shared_k2 == 4.0 and OnlineCbfConfig().grid_points() == 9
    # one pair for every agent cannot disagree within a pair: it runs with its own k2, shared or not
    shared = OnlineCbfConfig(agents=4, swarm=SwarmConfig(episode_time=4.0))
    own = dataclasses.replace(shared, filter=FilterSettings(shared_k2=None))
    final = {name: run_episodes(c, gains, episodes=2).final.p
             for name, c, gains in (("shared", shared, (2.0, 1.0)), ("own", own, (2.0, 1.0)),
                                    ("k2=4", own, (2.0, 4.0)))}
    assert torch.equal(final["shared"], final["own"]) and not torch.equal(final["own"], final["k2=4"])
    # the gain statistics report the k2 the filter applied, not the controller's
    short = OnlineCbfConfig(agents=4, swarm=SwarmConfig(episode_time=2.0))
    stats = metrics(run_episodes(short, gains_by_side(1.0, 0.5), episodes=1), short)["gains"]
    assert stats["k2_p05"] == stats["k2_p95"] == 4.0 and stats["k1_p05"] == 0.5 and stats["k1_p95"] == 1.0
