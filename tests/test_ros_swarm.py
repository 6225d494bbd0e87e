"""The swarm over ROS 2: one agent's numpy safety layer against the batched torch filter and the
simulator's observation, and four agents swapping places on a circle over real DDS."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from robo.runtime.swarm import SwarmTuner, agent_observation, nominal_acceleration
from robo.safety.agent_qp import AgentFilterConfig, filter_agent
from robo.safety.batched_multi_agent import MultiAgentFilterConfig, filter_accelerations
from sim.swarm import SwarmConfig, flat_observation, make_scenario, nominal_accelerations, reset

ROOT = Path(__file__).resolve().parents[1]
TUNER = ROOT / "robo" / "policies" / "online_cbf_gnn" / "policy.onnx"


def _state(scenario: str, agents: int, envs: int):
    config = SwarmConfig()
    state = reset(make_scenario(scenario, agents, envs, seed=3), config)
    g = torch.Generator().manual_seed(0)
    v = 0.6 * torch.randn(state.p.shape, generator=g, dtype=torch.float64)
    return dataclasses.replace(state, v=v), config


def _others(state, e: int, i: int):
    keep = [j for j in range(state.p.shape[1]) if j != i]
    return state.p[e, keep].numpy(), state.v[e, keep].numpy()


def test_one_agents_observation_is_the_simulators():
    state, config = _state("obstacles", 6, 3)
    flat = flat_observation(state, config, 8).numpy()
    for e in range(3):
        for i in range(6):
            obs = agent_observation(state.p[e, i].numpy(), state.v[e, i].numpy(), state.goal[e, i].numpy(),
                                    *_others(state, e, i), agent_radius=config.agent_radius,
                                    sensing_radius=config.sensing_radius, slots=8,
                                    obstacle_p=state.obstacle_p[e].numpy(),
                                    obstacle_r=state.obstacle_r[e].numpy())
            np.testing.assert_allclose(obs, flat[e, i], atol=1e-6)


@pytest.mark.parametrize("shared_k2", [None, 2.0], ids=["own-k2", "shared-k2"])
@pytest.mark.parametrize("per_row", [False, True], ids=["gains-per-agent", "gains-per-neighbour"])
@pytest.mark.parametrize("scenario", ["swap", "obstacles", "corridor"])
def test_one_agents_qp_is_the_batched_filters(scenario, per_row, shared_k2):
    state, _ = _state(scenario, 8, 4)
    g = torch.Generator().manual_seed(1)
    shape = (4, 8, 8 + state.obstacle_p.shape[1]) if per_row else (4, 8)
    k1 = 0.3 + 3.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    k2 = 0.3 + 3.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    u_nom = nominal_accelerations(state.p, state.v, state.goal, max_speed=1.0, max_accel=2.0, tilt=0.4)
    batched = filter_accelerations(state.p, state.v, u_nom, state.obstacle_p, state.obstacle_r, k1, k2,
                                   MultiAgentFilterConfig(shared_k2=shared_k2))
    modified = 0
    for e in range(4):
        for i in range(8):
            p, v = state.p[e, i].numpy(), state.v[e, i].numpy()
            nominal = nominal_acceleration(p, v, state.goal[e, i].numpy(), max_speed=1.0, max_accel=2.0,
                                           tilt=0.4)
            np.testing.assert_allclose(nominal, u_nom[e, i].numpy(), atol=1e-12)
            rows = [j for j in range(k1.shape[2]) if j != i] if per_row else []  # others, then obstacles
            gains = [k[e, i, rows].numpy() if per_row else float(k[e, i]) for k in (k1, k2)]
            out = filter_agent(p, v, nominal, *_others(state, e, i), *gains,
                               AgentFilterConfig(shared_k2=shared_k2), state.obstacle_p[e].numpy(),
                               state.obstacle_r[e].numpy())
            if batched.fault[e].any():
                continue  # the batched filter's hand-over rounds change the neighbours' problems
            assert out.fault is False
            np.testing.assert_allclose(out.u, batched.u[e, i].numpy(), atol=1e-9)
            modified += out.modified
    assert modified > 0  # the comparison covered active barriers, not only pass-through


def test_out_of_range_gains_are_clamped_and_counted():
    tuner = SwarmTuner(TUNER)
    assert (tuner.slots, tuner.dim) == (8, 2)
    k1, k2 = tuner.gains(np.zeros(tuner.policy.obs_size, np.float32))
    lo, hi = tuner.policy.clip
    assert lo <= min(k1, k2) and max(k1, k2) <= hi and tuner.clamped == 0 and not tuner.sets_tilt
    tuner.policy.clip = (1.0, 1.5)  # a model whose gains leave the card's range
    k1, k2 = tuner.gains(np.zeros(tuner.policy.obs_size, np.float32))
    assert min(k1, k2) >= 1.0 and max(k1, k2) <= 1.5 and tuner.clamped == 1
    tuner.gains(np.full(tuner.policy.obs_size, np.nan, np.float32))
    assert tuner.fallbacks == 1


def test_the_launch_file_starts_one_agent_per_namespace(monkeypatch, tmp_path):
    from tests.ros_harness import load_launch_file

    launch = load_launch_file(monkeypatch, tmp_path, "swarm.launch.py")
    pairs = launch["swap_positions"](4, 2.0, 1.0)
    starts = np.array([s for s, _ in pairs])
    goals = np.array([g for _, g in pairs])
    np.testing.assert_allclose(goals[:, :2], -starts[:, :2])
    d = np.linalg.norm(starts[:, None] - starts[None], axis=-1) + np.eye(4) * 10
    assert d.min() > 1.0

    class Context:
        def __init__(self) -> None:
            self.values = {"agents": "4", "scenario": "swap", "radius": "2.0", "altitude": "1.0",
                           "params_file": "p.yaml", "policy": "", "separate": "false"}

    monkeypatch.setattr(launch["LaunchConfiguration"], "perform",
                        lambda self, context: context.values[self.args[0]], raising=False)
    context = Context()
    nodes = launch["agent_nodes"](context)
    assert [n.kwargs["namespace"] for n in nodes] == [f"agent{i}" for i in range(4)]
    assert all(n.kwargs["executable"] == "swarm_agent" and "name" not in n.kwargs for n in nodes)
    context.values["separate"] = "true"
    assert len(launch["agent_nodes"](context)) == 8


def _counted(graph, key: str, least: int) -> bool:
    """Whether every filter's latest diagnostics has ``key`` >= ``least``."""
    latest = {s.name: {kv.key: kv.value for kv in s.values} for s in graph.diagnostics
              if s.name.endswith("/swarm_filter")}
    return len(latest) == 4 and all(int(v[key]) >= least for v in latest.values())


def _publish_until(graph, pub, msg, cond, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for the fifth agent: {what}"
        pub.publish(msg)
        graph.spin_for(0.05)


def _odometry_positions(graph, agents: int) -> dict[int, np.ndarray]:
    from nav_msgs.msg import Odometry

    from robo.ros.common import CONTROL_QOS

    latest: dict[int, np.ndarray] = {}

    def record(i: int, msg) -> None:
        p = msg.pose.pose.position
        latest[i] = np.array([p.x, p.y, p.z])

    for i in range(agents):
        graph.node.create_subscription(Odometry, f"/agent{i}/odom", lambda m, i=i: record(i, m), CONTROL_QOS)
    return latest


PER_NEIGHBOUR = {"policy": str(ROOT / "robo" / "policies" / "online_cbf_gnn_per_neighbour" / "policy.onnx")}


@pytest.mark.ros
@pytest.mark.parametrize("tuner", [{}, PER_NEIGHBOUR], ids=["committed-tuner", "per-neighbour-tuner"])
def test_four_agents_swap_places_over_dds_without_a_collision(monkeypatch, tmp_path, tuner):
    from builtin_interfaces.msg import Time
    from nav_msgs.msg import Odometry

    from robo.ros.common import CONTROL_QOS
    from robo.ros.convert import state_to_odometry
    from robo.ros.processes import SWARM_PARAMS_FILE
    from tests.ros_harness import Graph, load_launch_file

    agents = 4
    pairs = load_launch_file(monkeypatch, tmp_path, "swarm.launch.py")["swap_positions"](agents, 2.0, 1.0)
    graph = Graph(tmp_path)
    try:
        latest = _odometry_positions(graph, agents)
        for i, (start, goal) in enumerate(pairs):
            graph.start("swarm_agent", name=f"agent{i}", namespace=f"agent{i}",
                        params_files=[SWARM_PARAMS_FILE],
                        parameters={"initial_position": start, "goal": goal, "agents": agents, **tuner})
        graph.spin_until(lambda: len(latest) == agents, 60.0, "odometry from every agent")
        goals = np.array([g for _, g in pairs])
        closest = [np.inf]

        def arrived() -> bool:
            p = np.array([latest[i] for i in range(agents)])
            d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(agents) * 1e3
            closest[0] = min(closest[0], float(d.min()))
            return bool(np.all(np.linalg.norm(p - goals, axis=1) < 0.1))

        graph.spin_until(arrived, 90.0, "every agent at its goal")
        assert closest[0] > 2 * 0.2, f"two agents came {closest[0]:.3f} m close (radii 0.2 m)"
        filters = [s for s in graph.diagnostics if s.name.endswith("/swarm_filter")]
        assert filters, "no diagnostics from the filters"
        values = {kv.key: kv.value for kv in filters[-1].values}
        assert int(values["solves"]) > 0 and values["neighbours"] == str(agents - 1)
        assert values["faults"] == values["stale_neighbour_steps"] == values["clamped_gains"] == "0"
        card = json.loads(Path(tuner.get("policy", TUNER)).with_suffix(".json").read_text())
        assert values["policy_sha256"] == card["onnx"]["sha256"]  # the tuner asked for

        # A fifth agent appears in the middle (2 m from everyone), then its messages turn non-finite:
        # discovered, counted, and kept where it was last seen, coming at each agent (stale).
        phantom = graph.node.create_publisher(Odometry, "/agent4/odom", CONTROL_QOS)
        graph.diagnostics.clear()
        centre = state_to_odometry(np.array([0, 0, 1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Time())
        _publish_until(graph, phantom, centre, lambda: _counted(graph, "heard_neighbours", agents), "heard")
        nan = state_to_odometry(np.full(13, np.nan), Time())
        _publish_until(graph, phantom, nan, lambda: _counted(graph, "stale_neighbour_steps", 1), "stale")
        assert _counted(graph, "nonfinite_neighbour_messages", 1)
        p = np.array([latest[i] for i in range(agents)])
        assert np.linalg.norm(p[:, :2], axis=1).min() > 2 * 0.2  # nobody ran into it
        for name in graph.procs:
            assert graph.procs[name].poll() is None, graph.log(name)[-2000:]
    finally:
        graph.close()

