"""The swarm's state and its step: double integrators, limits, collisions, deadlocks, arrival.

Each agent is a point mass with radius ``agent_radius``: acceleration clipped per axis to
``max_accel``, speed clipped to ``max_speed`` (the velocity keeps its direction), position integrated
with the mean of the old and new velocity (exact for a double integrator when nothing clips).

Counting, per environment:
* a collision is the onset of a contact (agent pair closer than two radii, agent closer than its
  radius plus an obstacle's), so a pair that stays in contact counts once;
* an agent is deadlocked once it has been slower than ``deadlock_speed`` for ``deadlock_time``
  seconds while farther than ``goal_tolerance`` from its goal (sticky for the episode);
* the episode's makespan is the first time every agent is within ``goal_tolerance`` of its goal.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from sim.swarm.scenarios import Scenario


@dataclass
class SwarmConfig:
    dim: int = 2                  # 2 (plane) or 3
    dt: float = 0.05              # s
    max_speed: float = 1.0        # m/s
    max_accel: float = 2.0        # m/s^2, per axis
    agent_radius: float = 0.2     # m
    sensing_radius: float = 3.0   # m, centre to centre (obstacles: to the obstacle's centre)
    goal_tolerance: float = 0.1   # m
    deadlock_speed: float = 0.02  # m/s
    deadlock_time: float = 3.0    # s
    episode_time: float = 30.0    # s

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise ValueError(f"swarm: dim must be 2 or 3, got {self.dim}")
        for name in ("dt", "max_speed", "max_accel", "agent_radius", "sensing_radius", "goal_tolerance",
                     "deadlock_speed", "deadlock_time", "episode_time"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"swarm: {name} must be finite and > 0, got {value}")

    @property
    def episode_steps(self) -> int:
        return round(self.episode_time / self.dt)

    @property
    def deadlock_steps(self) -> int:
        return round(self.deadlock_time / self.dt)


@dataclass(frozen=True)
class SwarmState:
    p: torch.Tensor                 # [E, N, D] positions
    v: torch.Tensor                 # [E, N, D] velocities
    goal: torch.Tensor              # [E, N, D]
    obstacle_p: torch.Tensor        # [E, O, D] static circular (spherical) obstacles
    obstacle_r: torch.Tensor        # [E, O]
    steps: int                      # steps taken
    contact: torch.Tensor           # [E, N, N] bool, agent pairs in contact now
    obstacle_contact: torch.Tensor  # [E, N, O] bool
    collisions: torch.Tensor        # [E] long, contact onsets so far
    still_steps: torch.Tensor       # [E, N] long, consecutive slow steps away from the goal
    deadlocked: torch.Tensor        # [E, N] bool
    arrived_step: torch.Tensor      # [E] long, first step with every agent at its goal, -1 before
    min_distance: torch.Tensor      # [E] smallest centre distance between two agents so far (m)


def at_goal(state: SwarmState, config: SwarmConfig) -> torch.Tensor:
    """[E, N] bool: within ``goal_tolerance`` of the goal."""
    return (state.p - state.goal).norm(dim=-1) <= config.goal_tolerance


def pairwise_distances(p: torch.Tensor) -> torch.Tensor:
    """[E, N, N] centre distances, +inf on the diagonal."""
    d = (p[:, :, None] - p[:, None]).norm(dim=-1)
    return d + torch.diag_embed(torch.full(d.shape[:2], math.inf, dtype=d.dtype, device=d.device))


def _contacts(p: torch.Tensor, obstacle_p: torch.Tensor, obstacle_r: torch.Tensor,
              radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    d = pairwise_distances(p)
    to_obstacle = (p[:, :, None] - obstacle_p[:, None]).norm(dim=-1)          # [E, N, O]
    return d < 2 * radius, to_obstacle < radius + obstacle_r[:, None], d


def reset(scenario: Scenario, config: SwarmConfig) -> SwarmState:
    """The first state of every environment; refuses agents that start overlapping each other or an
    obstacle (a scenario bug, never a collision to count)."""
    p, goal = scenario.starts, scenario.goals
    if p.shape[-1] != config.dim:
        raise ValueError(f"swarm: scenario is {p.shape[-1]}-D but the config says dim {config.dim}")
    contact, obstacle_contact, d = _contacts(p, scenario.obstacle_p, scenario.obstacle_r,
                                             config.agent_radius)
    if contact.any():
        e, i, j = (int(x) for x in torch.nonzero(contact)[0])
        raise ValueError(f"swarm: agents {i} and {j} of environment {e} start overlapping "
                         f"(centres {float(d[e, i, j]):.3f} m apart, radius {config.agent_radius} m)")
    if obstacle_contact.any():
        e, i, k = (int(x) for x in torch.nonzero(obstacle_contact)[0])
        raise ValueError(f"swarm: agent {i} of environment {e} starts overlapping obstacle {k}")
    E, N, _ = p.shape
    long = dict(dtype=torch.long, device=p.device)
    return SwarmState(p=p.clone(), v=torch.zeros_like(p), goal=goal.clone(), obstacle_p=scenario.obstacle_p,
                      obstacle_r=scenario.obstacle_r, steps=0, contact=contact,
                      obstacle_contact=obstacle_contact, collisions=torch.zeros(E, **long),
                      still_steps=torch.zeros(E, N, **long),
                      deadlocked=torch.zeros(E, N, dtype=torch.bool, device=p.device),
                      arrived_step=torch.full((E,), -1, **long), min_distance=d.amin(dim=(1, 2)))


def step(state: SwarmState, accel: torch.Tensor, config: SwarmConfig) -> SwarmState:
    """Advance every environment by one ``dt`` under ``accel`` [E, N, D] (clipped to the limits)."""
    a = accel.clamp(-config.max_accel, config.max_accel)
    v = state.v + a * config.dt
    speed = v.norm(dim=-1, keepdim=True)
    v = v * (config.max_speed / speed.clamp_min(config.max_speed))
    p = state.p + 0.5 * (state.v + v) * config.dt
    contact, obstacle_contact, d = _contacts(p, state.obstacle_p, state.obstacle_r, config.agent_radius)
    onsets = ((contact & ~state.contact).sum(dim=(1, 2)) // 2  # each pair appears twice
              + (obstacle_contact & ~state.obstacle_contact).sum(dim=(1, 2)))
    state = dataclasses.replace(state, p=p, v=v)
    away = ~at_goal(state, config)
    slow = v.norm(dim=-1) < config.deadlock_speed
    still = (state.still_steps + 1) * (away & slow)
    steps = state.steps + 1
    all_there = ~away.any(dim=1)
    arrived = torch.where((state.arrived_step < 0) & all_there, steps, state.arrived_step)
    return dataclasses.replace(
        state, p=p, v=v, steps=steps, contact=contact, obstacle_contact=obstacle_contact,
        collisions=state.collisions + onsets, still_steps=still,
        deadlocked=state.deadlocked | (still >= config.deadlock_steps), arrived_step=arrived,
        min_distance=torch.minimum(state.min_distance, d.amin(dim=(1, 2))))


def replace_envs(state: SwarmState, fresh: SwarmState, envs: torch.Tensor) -> SwarmState:
    """``state`` with environments ``envs`` (indices) replaced by ``fresh`` (one row per index, as
    :func:`reset` makes them): same-step autoreset for training. ``steps`` stays the batch's."""
    def put(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        out = old.clone()
        out[envs] = new
        return out

    return dataclasses.replace(state, **{f.name: put(getattr(state, f.name), getattr(fresh, f.name))
                                         for f in dataclasses.fields(state) if f.name != "steps"})
