"""``robo bench online-cbf``: the decentralised filter's agent-QP solves per second batched over
agents x environments, against a loop over environments and the cvxpy reference in the same run, and
per scenario the nominal controller beside the grid-searched fixed gains."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import numpy as np
import torch

from robo.bench.common import time_repeated
from robo.safety.batched_multi_agent import filter_accelerations
from robo.safety.multi_agent import reference_agent_qp
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.rollout import grid_search, metrics, run_episodes
from sim.swarm import SCENARIOS, make_scenario, nominal_accelerations, reset, step

HELP = ("Online CBFs: decentralised filter solves/s batched (agents x envs) vs a per-environment loop and "
        "cvxpy per agent; per scenario nominal vs grid-searched fixed gains. Example: robo bench online_cbf "
        "--episodes 100   (quick look: --quick)")
GAINS = (2.0, 2.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=100, help="episodes per scenario and controller")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="torch device of the solve-rate part (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="solve rates and 10 episodes per scenario")


def _mid_episode(envs: int, agents: int, device: str):
    """States 3 s into the swap under the nominal controller: agents converging, many rows active."""
    config = OnlineCbfConfig(agents=agents).swarm
    state = reset(make_scenario("swap", agents, envs, seed=0, device=device), config)
    for _ in range(60):
        state = step(state, nominal_accelerations(state.p, state.v, state.goal, max_speed=1.0, max_accel=2.0),
                     config)
    u = nominal_accelerations(state.p, state.v, state.goal, max_speed=1.0, max_accel=2.0)
    return state, u


def _solve_rates(device: str) -> dict[str, Any]:
    fc = OnlineCbfConfig().filter_config()
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    out: dict[str, Any] = {}
    for envs, agents in ((1, 8), (16, 8), (256, 8), (64, 32)):
        s, u = _mid_episode(envs, agents, device)
        t, _ = time_repeated(lambda s=s, u=u: filter_accelerations(s.p, s.v, u, s.obstacle_p, s.obstacle_r,
                                                                   *GAINS, fc), sync=sync)
        out[f"batched_{envs}x{agents}"] = {"agent_solves_per_s": envs * agents / t, "ms_per_call": t * 1e3}
    s, u = _mid_episode(16, 8, device)

    def per_env_loop() -> None:
        for e in range(16):
            filter_accelerations(s.p[e:e + 1], s.v[e:e + 1], u[e:e + 1], s.obstacle_p[e:e + 1],
                                 s.obstacle_r[e:e + 1], *GAINS, fc)

    t, _ = time_repeated(per_env_loop, sync=sync)
    out["loop_over_16_envs_x8"] = {"agent_solves_per_s": 16 * 8 / t}
    p, v, un = (x[0].cpu().numpy() for x in (s.p, s.v, u))
    def reference(i: int) -> None:
        reference_agent_qp(i, p, v, un[i], np.zeros((0, 2)), np.zeros(0), *GAINS,
                           agent_radius=fc.agent_radius, sensing_radius=fc.sensing_radius,
                           max_accel=fc.max_accel, margin=fc.margin, slack_weight=fc.slack_weight)

    reference(0)  # cvxpy's first import and solve are not part of the rate
    start = time.perf_counter()
    for i in range(8):
        reference(i)
    out["cvxpy_per_agent"] = {"agent_solves_per_s": 8 / (time.perf_counter() - start)}
    base = out["cvxpy_per_agent"]["agent_solves_per_s"]
    loop = out["loop_over_16_envs_x8"]["agent_solves_per_s"]
    for row in out.values():
        row["x_cvxpy"] = row["agent_solves_per_s"] / base
        row["x_env_loop"] = row["agent_solves_per_s"] / loop
    return out


def _scenarios(episodes: int, agents: int) -> dict[str, Any]:
    table = {}
    for name in SCENARIOS:
        config = OnlineCbfConfig(scenario=name, agents=agents, episodes=episodes)
        grid_settings = dataclasses.replace(config.grid, episodes=min(20, episodes))
        config = dataclasses.replace(config, grid=grid_settings)
        best, grid = grid_search(config)
        nominal = metrics(run_episodes(config, None), config)
        fixed = {"k1": best[0], "k2": best[1], **metrics(run_episodes(config, best), config)}
        table[name] = {"nominal": nominal, "best_fixed": fixed, "grid": grid}
        print(f"{name:<10} nominal: success {nominal['success_rate']:.0%} collisions {nominal['collisions']}"
              f"   best fixed {best}: success {fixed['success_rate']:.0%} collisions {fixed['collisions']} "
              f"deadlocks {fixed['deadlock_rate']:.0%} makespan {fixed['makespan_s']}", flush=True)
    return table


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    rates = _solve_rates(args.device)
    for key, row in rates.items():
        print(f"{key:<24} {row['agent_solves_per_s']:>12.0f} agent QPs/s  x{row['x_cvxpy']:.0f} vs cvxpy",
              flush=True)
    episodes = 10 if args.quick else args.episodes
    return {"device": args.device, "threads": args.threads, "gains_for_rates": list(GAINS),
            "solve_rates": rates, "episodes": episodes, "agents": args.agents,
            "scenarios": _scenarios(episodes, args.agents)}
