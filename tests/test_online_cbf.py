"""The decentralised CBF filter (batched torch vs its cvxpy statement), its closed loop on the swap,
and robo eval online-cbf."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from robo.cli import main
from robo.safety.batched_multi_agent import MultiAgentFilterConfig, filter_accelerations
from robo.safety.multi_agent import reference_agent_qp
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.rollout import grid_search, metrics, run_episodes
from sim.swarm import SwarmConfig

FILTER = MultiAgentFilterConfig(sensing_radius=2.0)


def _random_instance(rng, agents=5, obstacles=2):
    while True:  # agents and obstacles apart, within a box where most pairs sense each other
        p = rng.uniform(-1.5, 1.5, (agents, 2))
        c = rng.uniform(-1.5, 1.5, (obstacles, 2))
        r = rng.uniform(0.1, 0.3, obstacles)
        d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(agents) * 9
        do = np.linalg.norm(p[:, None] - c[None], axis=-1)
        if d.min() > 0.5 and (do > 0.25 + r + 0.05).all():
            return p, rng.uniform(-1, 1, (agents, 2)), rng.uniform(-3, 3, (agents, 2)), c, r


def test_the_batched_filter_solves_each_agents_cvxpy_qp():
    rng = np.random.default_rng(0)
    cases = [_random_instance(rng) for _ in range(12)]
    p, v, u_nom, c, r = (torch.tensor(np.stack(x)) for x in zip(*cases, strict=True))
    k1 = torch.tensor(rng.uniform(0.3, 4.0, (12, 5)))
    k2 = torch.tensor(rng.uniform(0.3, 4.0, (12, 5)))
    out = filter_accelerations(p, v, u_nom, c, r, k1, k2, FILTER)
    brake = (-FILTER.brake_gain * v).clamp(-FILTER.max_accel, FILTER.max_accel)
    statuses, worst, faults = [], 0.0, int(out.fault.sum())
    for e in range(12):
        # the agents that faulted brake, and the others' QPs take those neighbours whole
        fixed = {j: brake[e, j].numpy() for j in range(5) if out.fault[e, j]}
        for i in range(5):
            if out.fault[e, i]:
                continue
            ref = reference_agent_qp(i, p[e].numpy(), v[e].numpy(), u_nom[e, i].numpy(), c[e].numpy(),
                                     r[e].numpy(), float(k1[e, i]), float(k2[e, i]),
                                     agent_radius=FILTER.agent_radius, sensing_radius=FILTER.sensing_radius,
                                     max_accel=FILTER.max_accel, margin=FILTER.margin,
                                     slack_weight=FILTER.slack_weight, fixed=fixed)
            statuses.append(ref.status)
            worst = max(worst, float(np.abs(out.u[e, i].numpy() - ref.u).max()))
    assert statuses.count("optimal") == len(statuses) >= 40
    assert worst < 1e-5
    assert int(out.modified.sum()) >= 10  # the instances exercise the constraints ...
    assert faults >= 1  # ... and the fault
    assert torch.equal(out.u[out.fault], brake[out.fault])


def test_a_fault_hands_the_whole_pair_condition_to_the_neighbour():
    # Agent 0 heads into a wall it cannot avoid (a fault: it brakes); agent 1 behind it, closing in, must
    # then hold the whole condition against agent 0's known braking, not only its half.
    p = torch.tensor([[[0.15, 0.0], [-0.55, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    wall_p = torch.tensor([[[0.5, 0.0]]], dtype=torch.float64)
    wall_r = torch.tensor([[0.05]], dtype=torch.float64)
    u_nom = torch.tensor([[[2.0, 0.0], [2.0, 0.0]]], dtype=torch.float64)
    gains = torch.tensor([[4.0, 1.0]], dtype=torch.float64)  # agent 0 aggressive, agent 1 timid
    out = filter_accelerations(p, v, u_nom, wall_p, wall_r, gains, gains, FILTER)
    assert out.fault.tolist() == [[True, False]]
    brake = (-FILTER.brake_gain * v[0, 0]).clamp(-2, 2).numpy()
    args = dict(agent_radius=FILTER.agent_radius, sensing_radius=FILTER.sensing_radius,
                max_accel=FILTER.max_accel, margin=FILTER.margin, slack_weight=FILTER.slack_weight)
    whole = reference_agent_qp(1, p[0].numpy(), v[0].numpy(), u_nom[0, 1].numpy(), wall_p[0].numpy(),
                               wall_r[0].numpy(), 1.0, 1.0, fixed={0: brake}, **args)
    half = reference_agent_qp(1, p[0].numpy(), v[0].numpy(), u_nom[0, 1].numpy(), wall_p[0].numpy(),
                              wall_r[0].numpy(), 1.0, 1.0, **args)
    assert np.abs(out.u[0, 1].numpy() - whole.u).max() < 1e-5
    assert whole.u[0] < half.u[0] - 0.1  # the hand-over brakes agent 1 harder


def test_the_fixed_gain_crossing_that_collided_after_faults_has_none():
    # Before faults handed their pair conditions over, these episodes collided 8 times in their first
    # 7 s (every one just after one of the pair faulted and braked); the faults stay, the collisions not.
    config = dataclasses.replace(SHORT, scenario="crossing", episodes=100, tilt=0.0,
                                 swarm=SwarmConfig(episode_time=7.0))
    result = metrics(run_episodes(config, (1.0, 2.0)), config)
    assert result["qp_faults"] > 100
    assert result["collisions"] == 0 and result["min_distance_m"] > 0.4


def test_the_filter_refuses_bad_gains():
    p = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    none = torch.zeros(1, 0, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="gain k2 must be finite and > 0"):
        filter_accelerations(p, p * 0, p * 0, none, none[..., 0], 1.0, torch.tensor([[1.0, -1.0]]), FILTER)


def _head_on(k1: list[float], k2: list[float], config: MultiAgentFilterConfig) -> tuple[int, float]:
    """Two agents 4 m apart swap places head-on (plain PD), each with its own gains: (collisions,
    closest distance)."""
    from sim.swarm import Scenario, nominal_accelerations, reset, step

    sw = SwarmConfig()
    p = torch.tensor([[[-2.0, 0.0], [2.0, 0.05]]], dtype=torch.float64)
    none = torch.zeros(1, 0, 2, dtype=torch.float64)
    s = reset(Scenario(p, -p, none, none[..., 0]), sw)
    gains = [torch.tensor([k], dtype=torch.float64) for k in (k1, k2)]
    for _ in range(300):
        u = nominal_accelerations(s.p, s.v, s.goal, max_speed=sw.max_speed, max_accel=sw.max_accel)
        s = step(s, filter_accelerations(s.p, s.v, u, s.obstacle_p, s.obstacle_r, *gains, config).u, sw)
    return int(s.collisions[0]), float(s.min_distance[0])


def test_a_pair_whose_gains_disagree_collides_unless_every_agent_shares_k2():
    # Both gain pairs are in the tuner's range; their halves add up to h'' + 4.25 h' + 8.03 h >= 0,
    # whose roots are complex: h overshoots below zero. A shared k2 keeps the sum a valid HOCBF.
    own = MultiAgentFilterConfig()
    assert _head_on([4.0, 4.0], [4.0, 4.0], own) == (0, pytest.approx(0.45, abs=0.01))  # the margin
    collisions, closest = _head_on([0.25, 4.0], [0.25, 4.0], own)
    assert collisions == 1 and closest < 0.4
    shared = MultiAgentFilterConfig(shared_k2=4.0)
    collisions, closest = _head_on([0.25, 4.0], [0.25, 4.0], shared)
    assert collisions == 0 and closest > 0.4
    with pytest.raises(ValueError, match="shared_k2 must be finite and > 0"):
        MultiAgentFilterConfig(shared_k2=0.0)


SHORT = OnlineCbfConfig(scenario="swap", agents=8, episodes=2, swarm=SwarmConfig(episode_time=12.0))


def test_the_filtered_swap_of_eight_agents_has_no_collision_where_the_nominal_controller_collides():
    plain = dataclasses.replace(SHORT, tilt=0.0)  # with the right-hand rule the nominal swap may not collide
    nominal = metrics(run_episodes(plain, None), plain)
    filtered = metrics(run_episodes(plain, (2.0, 2.0)), plain)
    assert nominal["collisions"] > 0 and nominal["min_distance_m"] < 0.4
    assert filtered["collisions"] == 0 and filtered["min_distance_m"] > 0.4


def test_the_right_hand_rule_gets_a_head_on_pair_through_the_corridor_where_gains_alone_deadlock():
    # Two agents meet exactly on the corridor's axis (no jitter): with the plain PD the pair stays
    # symmetric and the QP only slows both down; with the nominal's error turned clockwise each keeps
    # right and they pass.
    config = dataclasses.replace(SHORT, scenario="corridor", agents=2, episodes=1, jitter=0.0,
                                 swarm=SwarmConfig(episode_time=15.0))
    for gains in ((2.0, 2.0), (4.0, 4.0)):
        stuck = metrics(run_episodes(dataclasses.replace(config, tilt=0.0), gains), config)
        passed = metrics(run_episodes(config, gains), config)
        assert stuck["success_rate"] == 0 and stuck["deadlock_rate"] == 1
        assert passed["success_rate"] == 1 and passed["deadlock_rate"] == 0
        assert stuck["collisions"] == passed["collisions"] == 0 and passed["min_distance_m"] > 0.4
    with pytest.raises(ValueError, match="tilt must be finite and within"):
        dataclasses.replace(config, tilt=float("nan"))


def test_grid_search_tries_every_pair_and_picks_the_safest_then_most_successful():
    grid = dataclasses.replace(SHORT.grid, k1=[0.5, 2.0], k2=[2.0], episodes=2)
    config = dataclasses.replace(SHORT, agents=4, grid=grid, swarm=SwarmConfig(episode_time=4.0))
    best, table = grid_search(config)
    assert sorted((row["k1"], row["k2"]) for row in table) == [(0.5, 2.0), (2.0, 2.0)]
    row = next(r for r in table if (r["k1"], r["k2"]) == best)
    assert row["collisions"] == min(r["collisions"] for r in table)
    tied = [r for r in table if r["collisions"] == row["collisions"]]
    assert row["success_rate"] == max(r["success_rate"] for r in tied)


def test_cli_eval_writes_metrics_and_trajectories(tmp_path, capsys):
    out = tmp_path / "e"
    args = ["eval", "online-cbf", "--scenario", "corridor", "--agents", "4", "--episodes", "2",
            "--set", "swarm.episode_time=3.0", "--out", str(out)]
    assert main([*args, "--gains", "2,2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["scenario"] == "corridor" and m["agents"] == 4 and m["episodes"] == 2
    assert m["gains"] == {"k1": 2.0, "k2": 2.0}  # fixed gains keep their k2 under the shared one
    assert m["filter"]["shared_k2"] == 4.0 and m["tilt"] == 0.4  # the settings that produced the numbers
    keys = ("success_rate", "collisions", "min_distance_m", "deadlock_rate", "makespan_s", "qp_fault_rate")
    assert all(key in m for key in keys)
    assert (out / "trajectories.png").stat().st_size > 1000
    before = (out / "metrics.json").read_bytes()
    assert main([*args, "--gains", "2,-1"]) == 1
    assert "--gains '2,-1': both gains must be finite and > 0" in capsys.readouterr().err
    assert main([*args, "--nominal", "--agents", "1"]) == 1
    assert "agents must be >= 2" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
