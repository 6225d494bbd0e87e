"""``robo bench online-cbf``: the decentralised filter's agent-QP solves per second batched over
agents x environments, against a loop over environments and the cvxpy reference in the same run; one
agent's control step (GNN tuner + filter) on the Cortex-M4F in QEMU, in instructions; and per scenario
the nominal controller beside the grid-searched fixed gains and the GNN tuner."""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robo
from robo.bench.common import require, time_repeated
from robo.safety.agent_mcu import (
    AgentView,
    StepSettings,
    assemble_agent_app,
    compare_agent_run,
    parse_agent_run,
    tuner_outputs,
)
from robo.safety.batched_multi_agent import filter_accelerations
from robo.safety.multi_agent import reference_agent_qp
from robo.tasks.online_cbf.config import FilterSettings, OnlineCbfConfig
from robo.tasks.online_cbf.evaluate import parse_yield_gains
from robo.tasks.online_cbf.rollout import fixed_label, fixed_setting, grid_search, metrics, run_episodes
from robo.tasks.online_cbf.tuner import AS_TRAINED, GainTuner
from robo.tasks.online_cbf.yield_rule import yield_tuner
from sim.swarm import SCENARIOS, make_scenario, nominal_accelerations, reset, step
from sim.swarm.nominal import check_tilt

HELP = ("Online CBFs: decentralised filter solves/s batched (agents x envs) vs a per-environment loop and "
        "cvxpy per agent; GNN + filter instructions per step on the Cortex-M4F (QEMU); per scenario nominal "
        "vs grid-searched fixed gains vs the GNN tuner. Example: robo bench online_cbf --episodes 100 "
        "(quick look: --quick)")
GAINS = (2.0, 2.0)
TUNER = Path(robo.__file__).parent / "policies" / "online_cbf_gnn" / "policy.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=100, help="episodes per scenario and controller")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="torch device of the solve-rate part (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="solve rates and 10 episodes per scenario")
    parser.add_argument("--policy", default=str(TUNER),
                        help="GNN gain tuner (.pt, batched; or .onnx with card); the MCU part uses the .onnx "
                             "beside it (default: the committed tuner)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--tilt", type=float, default=None,
                        help="right-hand rule in rad for every controller (default: the config's, 0.4)")
    parser.add_argument("--grid-tilt", default=None, metavar="T1,T2,...",
                        help="also grid-search the fixed controllers' turn over these angles (rad), the fair "
                             "baseline of a tuner that sets the turn itself (train.tilt_range)")
    parser.add_argument("--shared-k2", type=float, default=None, metavar="K2",
                        help="every agent's k2 under the tuner, the MCU image's too (filter.shared_k2: keeps "
                             "each pair condition valid whatever the gains; 0: each agent's own; default: "
                             "the one the tuner was trained behind, the only one it is run behind)")
    parser.add_argument("--yield-rule", default=None, metavar="LOW,HIGH",
                        help="also run the yield rule with these gains on the same episodes (what "
                             "train.imitate starts PPO from: robo eval online-cbf --gains-yield)")


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
    fc = OnlineCbfConfig().filter_config(uniform_gains=True)  # GAINS for every agent
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


def _scenarios(names: list[str], episodes: int, agents: int, policy: str, tilt: float | None = None,
               grid_tilt: list[float] | None = None, shared_k2: float | None = None,
               rule: tuple[float, float] | None = None) -> dict[str, Any]:
    table = {}
    for name in names:
        config = OnlineCbfConfig(scenario=name, agents=agents, episodes=episodes,
                                 filter=FilterSettings(shared_k2=shared_k2))
        if tilt is not None:
            config = dataclasses.replace(config, tilt=tilt)
        grid_settings = dataclasses.replace(config.grid, episodes=min(20, episodes), tilt=grid_tilt or [])
        config = dataclasses.replace(config, grid=grid_settings)
        best, grid = grid_search(config)
        nominal = metrics(run_episodes(config, None), config)
        fixed = {**fixed_setting(best), **metrics(run_episodes(config, best), config)}
        tuner = GainTuner(policy, shared_k2)
        gnn = {**metrics(run_episodes(config, tuner), config), "clamped_agent_steps": tuner.clamped,
               "fallback_agent_steps": tuner.fallbacks}
        table[name] = {"nominal": nominal, "best_fixed": fixed, "gnn": gnn, "grid": grid}
        rows = [(f"best fixed {fixed_label(best)}", fixed), ("GNN tuner", gnn)]
        if rule is not None:
            table[name]["yield_rule"] = metrics(run_episodes(config, yield_tuner(*rule)), config)
            rows.append((f"yield rule {rule[0]:g} / {rule[1]:g}", table[name]["yield_rule"]))
        print(f"{name:<10} nominal: success {nominal['success_rate']:.0%} collisions {nominal['collisions']}",
              flush=True)
        for label, row in rows:
            print(f"{'':<10} {label}: success {row['success_rate']:.0%} collisions {row['collisions']} "
                  f"deadlocks {row['deadlock_rate']:.0%} makespan {row['makespan_s']}", flush=True)
    return table


def record_swap_views(policy: str, *, agents: int = 8, every: int = 4, seed: int = 0,
                      shared_k2: float | str | None = AS_TRAINED, tilt: float | None = None
                      ) -> tuple[list[AgentView], StepSettings]:
    """Every agent's view at every ``every``-th step of one swap episode under the tuner and the batched
    filter (the recorded states the MCU image replays), and the settings of that step (``tilt``: the
    nominal's turn, default the config's; ``shared_k2``: default the one the tuner was trained behind)."""
    tuner = GainTuner(policy, shared_k2)
    config = OnlineCbfConfig(scenario="swap", agents=agents, episodes=1, seed=seed,
                             filter=FilterSettings(shared_k2=tuner.shared_k2))
    if tilt is not None:
        config = dataclasses.replace(config, tilt=tilt)
    sw, fc = config.swarm, config.filter_config()
    if agents - 1 > config.train.neighbours:
        raise ValueError(f"agents: at most {config.train.neighbours + 1} for the MCU image's neighbour slots")
    state = reset(make_scenario("swap", agents, 1, seed=seed, dim=sw.dim, spacing=config.spacing,
                                jitter=config.jitter), sw)
    views = []
    for t in range(sw.episode_steps):
        if t % every == 0:
            p, v, goal = (x[0].numpy() for x in (state.p, state.v, state.goal))
            for i in range(agents):
                others = np.arange(agents) != i
                views.append(AgentView(p[i], v[i], goal[i], p[others], v[others]))
        k = tuner(state, sw)
        tilt = k[2] if len(k) == 3 else config.tilt
        u = nominal_accelerations(state.p, state.v, state.goal, max_speed=sw.max_speed,
                                  max_accel=sw.max_accel, kp=config.kp, kd=config.kd, tilt=tilt)
        u = filter_accelerations(state.p, state.v, u, state.obstacle_p, state.obstacle_r, k[0], k[1], fc).u
        state = step(state, u, sw)
        if bool((state.arrived_step >= 0).all()):
            break
    settings = StepSettings(fc, sw.max_speed, config.kp, config.kd, slots=config.train.neighbours,
                            tilt=config.tilt, obstacle_p=state.obstacle_p[0].numpy(),
                            obstacle_r=state.obstacle_r[0].numpy())
    return views, settings


def mcu_step(policy_onnx: str | Path, views: list[AgentView], settings: StepSettings,
             work_dir: str | Path) -> dict[str, Any]:
    """Build the GNN + filter image, replay ``views`` in QEMU, compare with Python, count instructions."""
    from robo.codegen.firmware import build, firmware_dir, footprint, run_qemu
    from robo.runtime.swarm import SwarmTuner

    app = assemble_agent_app(Path(work_dir) / "agent_app", policy_onnx, views, settings,
                             driver_dir=firmware_dir() / "apps" / "agent")
    info = build(app, "qemu-mps2-an386")
    q = run_qemu(app, timeout=300)
    if q["exit_code"] != 0:
        raise RuntimeError(f"agent firmware exited with {q['exit_code']}:\n{q['output'][-2000:]}")
    own, slots = tuner_outputs(policy_onnx)
    run = parse_agent_run(q["output"], len(views), len(views[0].p), q["ticks_per_instruction"],
                          own + 2 * slots)
    fp = info["footprint"]
    ours = footprint(Path(info["elf"]).parent, ["robo_agent.c"], 0)  # filter, observation, nominal
    return {"views": len(views), "instructions_per_step": run.summary(),
            "flash_bytes": fp["flash_bytes"], "ram_bytes": fp["ram_bytes"], "uses_heap": fp["uses_heap"],
            "max_stack_frame_bytes": fp["max_stack_frame_bytes"],
            "filter_and_glue": {"flash_bytes": ours["flash_bytes"], "ram_bytes": ours["ram_bytes"]},
            "vs_python": compare_agent_run(run, views, SwarmTuner(policy_onnx), settings),
            "ticks_per_instruction": q["ticks_per_instruction"], "run": run}


def _mcu(policy: str, shared_k2: float | None = None, tilt: float | None = None) -> dict[str, Any]:
    onnx = Path(policy).with_suffix(".onnx")
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(tool) is None]
    if missing or not onnx.is_file():
        return {"skipped": f"needs {' and '.join(missing)}" if missing else f"no {onnx}"}
    views, settings = record_swap_views(policy, shared_k2=shared_k2, tilt=tilt)
    with tempfile.TemporaryDirectory() as work:
        out = mcu_step(onnx, views, settings, work)
    out.pop("run")
    return {"policy_onnx": str(onnx), "scenario": "swap", **out}


def run(args: argparse.Namespace) -> dict[str, Any]:
    require(args, "threads", "episodes")
    require(args, "agents", least=2)
    if args.tilt is not None:
        check_tilt(args.tilt)
    if args.shared_k2 is not None and not (math.isfinite(args.shared_k2) and args.shared_k2 >= 0):
        raise ValueError(f"--shared-k2 {args.shared_k2}: must be finite and > 0 (0: each agent's own)")
    grid_tilt = None
    if args.grid_tilt is not None:
        try:
            grid_tilt = [check_tilt(float(x)) for x in args.grid_tilt.split(",")]
        except ValueError as e:
            raise ValueError(f"--grid-tilt {args.grid_tilt!r}: comma-separated angles in rad ({e})") from None
    rule = None
    if args.yield_rule is not None:
        rule = parse_yield_gains(args.yield_rule, "--yield-rule")
    torch.set_num_threads(args.threads)
    names = [n for n in args.scenarios.split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f"--scenarios: unknown {unknown or names} (known: {', '.join(SCENARIOS)})")
    if not Path(args.policy).is_file():
        raise ValueError(f"--policy: no file {args.policy}")
    tuner = GainTuner(args.policy, AS_TRAINED if args.shared_k2 is None else args.shared_k2 or None)
    args.shared_k2 = tuner.shared_k2
    rates = _solve_rates(args.device)
    for key, row in rates.items():
        print(f"{key:<24} {row['agent_solves_per_s']:>12.0f} agent QPs/s  x{row['x_cvxpy']:.0f} vs cvxpy",
              flush=True)
    mcu = _mcu(args.policy, args.shared_k2, args.tilt)
    if "skipped" in mcu:
        print(f"MCU step: skipped ({mcu['skipped']})", flush=True)
    else:
        ins = mcu["instructions_per_step"]
        print(f"MCU step (Cortex-M4F, {mcu['views']} swap views): GNN {ins['gnn']['mean']:.0f} + filter "
              f"{ins['filter']['mean']:.0f} (max {ins['filter']['max']:.0f}) = {ins['step']['mean']:.0f} "
              f"instructions mean; flash {mcu['flash_bytes']} B, RAM {mcu['ram_bytes']} B", flush=True)
    episodes = 10 if args.quick else args.episodes
    return {"device": args.device, "threads": args.threads, "gains_for_rates": list(GAINS),
            "solve_rates": rates, "mcu": mcu, "policy": args.policy, "episodes": episodes,
            "agents": args.agents, "tilt": args.tilt, "grid_tilt": grid_tilt, "shared_k2": args.shared_k2,
            "yield_rule": None if rule is None else list(rule),
            "scenarios": _scenarios(names, episodes, args.agents, args.policy, args.tilt, grid_tilt,
                                    args.shared_k2, rule)}
