"""Episodes of one scenario under a controller, their metrics, and the exhaustive grid search.

A controller is the nominal PD (``gains=None``), the filter with fixed gains (k1, k2), or the filter
with the gains a tuner sets every step (a callable ``tuner(state, swarm_config) -> (k1, k2)``, each
[E, N] or per barrier row [E, N, N + O], or ``(k1, k2, tilt)`` for a tuner that also turns each
agent's nominal; otherwise every agent turns by the config's tilt). ``filter.shared_k2`` replaces the
k2 of a tuner, not of fixed gains (one pair for all agents cannot disagree within a pair). All episodes
run as one batch; they stop when every episode has all its agents at their goals, or at the horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robo.safety.batched_multi_agent import filter_accelerations
from robo.tasks.online_cbf.config import OnlineCbfConfig
from sim.swarm import (
    SwarmConfig,
    SwarmState,
    make_scenario,
    nominal_accelerations,
    pairwise_distances,
    reset,
    step,
)

Tuner = Callable[[SwarmState, SwarmConfig], tuple[torch.Tensor, ...]]
Gains = tuple[float, float] | Tuner | None


@dataclass(frozen=True)
class Rollout:
    final: SwarmState
    faults: int            # agent-steps whose QP needed slack
    agent_steps: int
    paths: torch.Tensor    # [T + 1, N, D] the first episode's positions
    gains: dict[str, float] | None = None  # a tuner's gains over agent-steps away from the goal


def run_episodes(config: OnlineCbfConfig, gains: Gains, *, episodes: int | None = None,
                 seed: int | None = None, progress: Callable[[int], None] | None = None) -> Rollout:
    episodes = config.episodes if episodes is None else episodes
    seed = config.seed if seed is None else seed
    sw = config.swarm
    scenario = make_scenario(config.scenario, config.agents, episodes, seed=seed, dim=sw.dim,
                             spacing=config.spacing, jitter=config.jitter, obstacles=config.obstacles)
    state = reset(scenario, sw)
    fc = config.filter_config(uniform_gains=gains is not None and not callable(gains))
    faults, agent_steps, paths = 0, 0, [state.p[0]]
    chosen: dict[str, list[torch.Tensor]] = {}
    for _ in range(sw.episode_steps):
        k = None if gains is None else gains(state, sw) if callable(gains) else gains
        tilt = k[2] if k is not None and len(k) == 3 else config.tilt
        u = nominal_accelerations(state.p, state.v, state.goal, max_speed=sw.max_speed,
                                  max_accel=sw.max_accel, kp=config.kp, kd=config.kd, tilt=tilt)
        if k is not None:
            if callable(gains):
                _record(chosen, k, state, sw, config.filter.shared_k2)
            out = filter_accelerations(state.p, state.v, u, state.obstacle_p, state.obstacle_r, k[0], k[1],
                                       fc)
            u = out.u
            faults += int(out.fault.sum())
        agent_steps += u.shape[0] * u.shape[1]
        state = step(state, u, sw)
        paths.append(state.p[0])
        if progress is not None:
            progress(1)
        if bool((state.arrived_step >= 0).all()):
            break
    stats = _gain_statistics(chosen) if chosen else None
    return Rollout(state, faults, agent_steps, torch.stack(paths), stats)


def _record(chosen: dict[str, list[torch.Tensor]], k: tuple[torch.Tensor, ...], state: SwarmState,
            sw: SwarmConfig, shared_k2: float | None) -> None:
    """Append the values applied for agents away from their goals: per agent, or per barrier row of a
    neighbour within sensing range (a per-neighbour tuner's [E, N, N + O] gains); k2 is the shared one
    when the filter overrides the tuner's."""
    if shared_k2 is not None:
        k = (k[0], torch.full_like(k[1], shared_k2), *k[2:])
    away = (state.p - state.goal).norm(dim=-1) > sw.goal_tolerance
    in_range = None
    if k[0].dim() == 3:  # rows of the neighbours and obstacles the agent senses
        to_obstacles = (state.p[:, :, None] - state.obstacle_p[:, None]).norm(dim=-1)
        dist = torch.cat([pairwise_distances(state.p), to_obstacles], dim=2)
        in_range = (dist <= sw.sensing_radius) & away[..., None]
    for name, x in zip(("k1", "k2", "tilt"), k, strict=False):
        chosen.setdefault(name, []).append(x[in_range] if x.dim() == 3 else x[away])


def _gain_statistics(chosen: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    stats = {}
    for name, values in chosen.items():
        k = torch.cat(values)
        q = np.quantile(k.numpy(), [0.05, 0.5, 0.95])  # torch.quantile stops at 16M values (per-row gains)
        stats.update({f"{name}_mean": float(k.mean()), f"{name}_std": float(k.std()),
                      f"{name}_p05": float(q[0]), f"{name}_median": float(q[1]), f"{name}_p95": float(q[2])})
    return stats


def metrics(rollout: Rollout, config: OnlineCbfConfig) -> dict[str, Any]:
    s = rollout.final
    collided = s.collisions > 0
    success = (s.arrived_step >= 0) & ~collided
    makespan = s.arrived_step[success].double() * config.swarm.dt
    return {
        "episodes": int(s.p.shape[0]),
        "success_rate": float(success.double().mean()),
        "collisions": int(s.collisions.sum()),
        "collision_episode_rate": float(collided.double().mean()),
        "min_distance_m": float(s.min_distance.min()),
        "contact_distance_m": 2 * config.swarm.agent_radius,
        "deadlock_rate": float(s.deadlocked.any(dim=1).double().mean()),
        "makespan_s": float(makespan.mean()) if len(makespan) else None,
        "qp_faults": rollout.faults,
        "qp_fault_rate": rollout.faults / rollout.agent_steps,
        **({"gains": rollout.gains} if rollout.gains is not None else {}),
    }


def mixed_gains(low: float, high: float, seed: int = 0) -> Tuner:
    """Every agent holds (low, low) or (high, high), drawn once per batch of episodes (seeded): the
    disagreement inside the gain range that a corrupt or adversarial tuner can put into a pair's shared
    condition (the two halves then add up to no valid HOCBF: see the README)."""
    chosen: dict[str, torch.Tensor] = {}

    def tuner(state: SwarmState, sw: SwarmConfig) -> tuple[torch.Tensor, torch.Tensor]:
        if "k" not in chosen:
            draw = torch.rand(state.p.shape[:2], generator=torch.Generator().manual_seed(seed))
            chosen["k"] = torch.where(draw < 0.5, low, high).to(state.p.dtype)
        return chosen["k"], chosen["k"].clone()
    return tuner


def gains_by_side(left: float, right: float) -> Tuner:
    """A fixed per-neighbour schedule: the barrier row of a neighbour on the left of the agent's way to
    its goal gets (left, left), on the right (right, right); obstacles the larger pair."""
    def tuner(state: SwarmState, sw: SwarmConfig) -> tuple[torch.Tensor, torch.Tensor]:
        way = state.goal - state.p
        others = state.p[:, None] - state.p[:, :, None]                       # [E, i, j]: j - i
        side = way[:, :, None, 0] * others[..., 1] - way[:, :, None, 1] * others[..., 0]
        k = torch.where(side > 0, left, right).to(state.p.dtype)
        E, N, _ = state.p.shape
        k = torch.cat([k, k.new_full((E, N, state.obstacle_p.shape[1]), max(left, right))], dim=2)
        return k, k.clone()
    return tuner


FIXED_KEYS = ("k1", "k2", "tilt")


def fixed_setting(gains: tuple[float, ...]) -> dict[str, float]:
    """Fixed gains (k1, k2), or (k1, k2, tilt) from a grid that also searched the turn, by name."""
    return dict(zip(FIXED_KEYS, gains, strict=False))


def fixed_label(gains: tuple[float, ...]) -> str:
    return " ".join(f"{name}={value:g}" for name, value in fixed_setting(gains).items())


def _rank(m: dict[str, Any]) -> tuple:
    # Safety first, then success, then speed.
    return (-m["collisions"], m["success_rate"], -m["deadlock_rate"], -(m["makespan_s"] or float("inf")))


def grid_search(config: OnlineCbfConfig, progress: Callable[[int], None] | None = None
                ) -> tuple[tuple[float, ...], list[dict[str, Any]]]:
    """Every (k1, k2) of ``config.grid`` (uniform gains: each runs with its own k2, whatever
    ``filter.shared_k2``), and every tilt of ``grid.tilt`` when it lists some (the fair baseline of a
    tuner that sets the turn too), on the grid's own episodes; returns the best setting (fewest
    collisions, then highest success, lowest deadlock rate, shortest makespan) and the whole table."""
    table = []
    for tilt in config.grid.tilt or [None]:
        for k1 in config.grid.k1:
            for k2 in config.grid.k2:
                fixed = (k1, k2) if tilt is None else (k1, k2, tilt)
                run = run_episodes(config, fixed, episodes=config.grid.episodes, seed=config.grid.seed,
                                   progress=progress)
                table.append({**fixed_setting(fixed), **metrics(run, config)})
    best = max(table, key=_rank)
    return tuple(best[name] for name in FIXED_KEYS if name in best), table
