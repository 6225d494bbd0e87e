"""``robo eval online-cbf``: one scenario's metrics under the nominal controller, fixed gains or the
grid-searched gains, with a PNG of the first episode's trajectories; or, with ``--policy``, a trained
tuner beside the nominal controller and the grid-searched gains on every scenario (or the one given),
at the trained agent count and twice it, with a PNG strip per scenario."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from robo.files import save_figure, write_json
from robo.registry import Context
from robo.tasks.online_cbf.config import OnlineCbfConfig
from robo.tasks.online_cbf.rollout import (
    Gains,
    Rollout,
    fixed_label,
    fixed_setting,
    gains_by_side,
    grid_search,
    metrics,
    mixed_gains,
    run_episodes,
)
from robo.tasks.online_cbf.tuner import GainTuner
from robo.tasks.online_cbf.yield_rule import yield_tuner
from sim.swarm import SCENARIOS


def parse_gains(text: str, flag: str = "--gains") -> tuple[float, float]:
    try:
        k1, k2 = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected two numbers, e.g. {flag} 2,2") from None
    if not (math.isfinite(k1) and math.isfinite(k2) and k1 > 0 and k2 > 0):
        raise ValueError(f"{flag} {text!r}: both gains must be finite and > 0")
    return k1, k2


def parse_yield_gains(text: str, flag: str) -> tuple[float, float]:
    low, high = parse_gains(text, flag)
    if not low < high:
        raise ValueError(f"{flag} {text!r}: LOW must be below HIGH (LOW: the rows that give way)")
    return low, high


def _controller(args: argparse.Namespace, seed: int) -> tuple[Gains, str, dict[str, Any] | None]:
    """The controller the flags ask for (the grid's is searched later), its label and its settings."""
    if args.gains:
        gains = parse_gains(args.gains)
        return gains, f"filter {fixed_label(gains)}", fixed_setting(gains)
    if getattr(args, "gains_mixed", None):
        low, high = parse_gains(args.gains_mixed, "--gains-mixed")
        return (mixed_gains(low, high, seed), f"filter, each agent's gains {low:g} or {high:g}",
                {"mixed": [low, high], "seed": seed})
    if getattr(args, "gains_by_side", None):
        left, right = parse_gains(args.gains_by_side, "--gains-by-side")
        return (gains_by_side(left, right), f"filter, gains {left:g} left / {right:g} right",
                {"by_side": [left, right]})
    if getattr(args, "gains_yield", None):
        low, high = parse_yield_gains(args.gains_yield, "--gains-yield")
        return (yield_tuner(low, high), f"filter, yield rule {low:g} / {high:g}", {"yield": [low, high]})
    return None, "nominal", None


def _with_flags(config: OnlineCbfConfig, args: argparse.Namespace) -> OnlineCbfConfig:
    flags = {k: getattr(args, k) for k in ("scenario", "agents", "episodes")
             if getattr(args, k, None) is not None}
    return dataclasses.replace(config, **flags)  # __post_init__ validates the flags too


def plot_trajectories(rollout: Rollout, config: OnlineCbfConfig, title: str, ax: Any = None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = rollout.final
    paths = rollout.paths.numpy()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    colours = plt.cm.hsv([i / paths.shape[1] for i in range(paths.shape[1])])
    for i, c in enumerate(colours):
        ax.plot(paths[:, i, 0], paths[:, i, 1], color=c, lw=1)
        ax.add_patch(plt.Circle(tuple(paths[0, i, :2]), config.swarm.agent_radius, color=c, fill=False))
        ax.add_patch(plt.Circle(tuple(paths[-1, i, :2]), config.swarm.agent_radius, color=c, alpha=0.5))
        ax.plot(*s.goal[0, i, :2].tolist(), "x", color=c)
    for centre, r in zip(s.obstacle_p[0].tolist(), s.obstacle_r[0].tolist(), strict=True):
        ax.add_patch(plt.Circle(tuple(centre[:2]), r, color="0.4"))
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title)
    return fig


def evaluate(config: OnlineCbfConfig, args: argparse.Namespace, ctx: Context) -> str:
    if getattr(args, "policy", None):
        return compare(config, args, ctx)
    config = _with_flags(config, args)
    gains, controller, setting = _controller(args, config.seed)
    torch.set_num_threads(config.threads)
    steps = config.swarm.episode_steps
    summary: dict[str, Any] = {"scenario": config.scenario, "agents": config.agents, "seed": config.seed,
                               "dim": config.swarm.dim, "tilt": config.tilt,
                               "filter": dataclasses.asdict(config.filter)}
    if args.grid:
        total = steps * config.grid_points()
        with ctx.bar("grid search", total=total) as bar:
            gains, table = grid_search(config, progress=bar.update)
        summary["grid"] = {"episodes": config.grid.episodes, "seed": config.grid.seed, "table": table}
        controller, setting = f"filter {fixed_label(gains)}", fixed_setting(gains)
    with ctx.bar(controller, total=steps) as bar:
        rollout = run_episodes(config, gains, progress=bar.update)
    result = metrics(rollout, config)
    statistics = result.pop("gains", None)  # of the gains a per-step controller set
    summary.update(controller="nominal" if gains is None else "filter", gains=setting, **result)
    if statistics is not None:
        summary["gain_statistics"] = statistics
    out = Path(ctx.out) if ctx.out else Path("runs/online_cbf/eval")
    written = write_json(out / "metrics.json", summary)
    title = f"{config.scenario}, {config.agents} agents: {controller}"
    save_figure(plot_trajectories(rollout, config, title), out / "trajectories.png")
    makespan = "-" if result["makespan_s"] is None else f"{result['makespan_s']:.1f} s"
    return (f"{config.scenario}, {config.agents} agents, {result['episodes']} episodes: {controller}\n"
            f"  success {result['success_rate']:.0%}  collisions {result['collisions']}  "
            f"deadlocks {result['deadlock_rate']:.0%}  makespan {makespan}  "
            f"min distance {result['min_distance_m']:.3f} m  QP faults {result['qp_fault_rate']:.2%}\n"
            f"wrote {written} and trajectories.png")


def _line(name: str, m: dict[str, Any]) -> str:
    makespan = "-" if m["makespan_s"] is None else f"{m['makespan_s']:.1f} s"
    return (f"    {name:<22} success {m['success_rate']:>4.0%}  collisions {m['collisions']:>5}  deadlocks "
            f"{m['deadlock_rate']:>4.0%}  makespan {makespan:>7}  min distance {m['min_distance_m']:.3f} m  "
            f"QP faults {m['qp_fault_rate']:.2%}")


def compare(config: OnlineCbfConfig, args: argparse.Namespace, ctx: Context) -> str:
    """The tuner of ``--policy`` beside the nominal controller and the grid-searched fixed gains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tuner = GainTuner(args.policy, config.filter.shared_k2)
    torch.set_num_threads(config.threads)
    base = _with_flags(config, args)
    scenarios = [args.scenario] if args.scenario else list(SCENARIOS)
    counts = [base.agents, 2 * base.agents]
    out = Path(ctx.out) if ctx.out else Path(args.policy).parent / "eval"
    rows, report, figures = [], [f"{tuner.path}: {base.episodes} episodes per scenario and controller"], {}
    for scenario in scenarios:
        fig, axes = plt.subplots(1, 3, figsize=(15, 5))
        for agents in counts:
            c = dataclasses.replace(base, scenario=scenario, agents=agents)
            steps = c.swarm.episode_steps
            with ctx.bar(f"{scenario} x{agents}: grid", total=steps * c.grid_points()) as bar:
                gains, _ = grid_search(c, progress=bar.update)
            runs = {}
            report.append(f"  {scenario}, {agents} agents (fixed gains: the grid's best)")
            for name, controller in (("nominal", None), (f"fixed {fixed_label(gains)}", gains),
                                     ("GNN tuner", tuner)):
                with ctx.bar(f"{scenario} x{agents}: {name}", total=steps) as bar:
                    runs[name] = run_episodes(c, controller, progress=bar.update)
                m = metrics(runs[name], c)
                rows.append({"scenario": scenario, "agents": agents, "controller": name.split(" ")[0],
                             "gains": None if controller is None or controller is tuner
                             else fixed_setting(gains), **m})
                report.append(_line(name, m))
                if agents == base.agents:
                    plot_trajectories(runs[name], c, f"{scenario}, {agents} agents: {name}",
                                      ax=axes[len(runs) - 1])
        fig.tight_layout()
        figures[scenario] = fig
    summary = {"policy": str(tuner.path), "episodes": base.episodes, "seed": base.seed, "tilt": base.tilt,
               "filter": dataclasses.asdict(base.filter),
               "grid": {"k1": base.grid.k1, "k2": base.grid.k2, "tilt": base.grid.tilt,
                        "episodes": base.grid.episodes, "seed": base.grid.seed},
               "tuner_clamped_agent_steps": tuner.clamped, "tuner_fallback_agent_steps": tuner.fallbacks,
               "rows": rows}
    written = write_json(out / "metrics.json", summary)
    for scenario, fig in figures.items():
        save_figure(fig, out / f"strip_{scenario}.png")
    report.append(f"wrote {written} and strip_<scenario>.png")
    return "\n".join(report)
