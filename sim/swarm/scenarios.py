"""Seeded navigation scenarios: where every agent starts, where it goes, and the static obstacles.

Every scenario is laid out in the x-y plane (a 3-D swarm gets a small random height per agent, so
nothing is exactly symmetric) with the agents ``spacing`` apart, then jittered. Environment ``e``
draws from ``numpy.random.default_rng([seed, e])``: an episode is the same whatever the batch size.

* ``swap``: agents on a circle, each goes to the antipodal point (all meet in the middle);
* ``crossing``: two groups in grids, one heading +x and one heading +y, crossing at the origin;
* ``corridor``: a corridor of wall obstacles along x, half the agents on each side, each goes to the
  mirror image of its start (the two groups swap through the corridor);
* ``obstacles``: the circle swap with random circular obstacles inside the circle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SCENARIOS = ("swap", "crossing", "corridor", "obstacles")


@dataclass(frozen=True)
class Scenario:
    starts: torch.Tensor      # [E, N, D]
    goals: torch.Tensor       # [E, N, D]
    obstacle_p: torch.Tensor  # [E, O, D]
    obstacle_r: torch.Tensor  # [E, O]


@dataclass(frozen=True)
class _Layout:
    starts: np.ndarray        # [N, 2]
    goals: np.ndarray
    obstacles: np.ndarray     # [O, 3]: x, y, radius


def _circle_radius(agents: int, spacing: float, least: float) -> float:
    return max(least, spacing / (2 * math.sin(math.pi / agents)))


def _swap(rng: np.random.Generator, agents: int, spacing: float, jitter: float,
          least: float = 2.0) -> _Layout:
    radius = _circle_radius(agents, spacing, least)
    angle = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(agents) / agents
    angle += rng.uniform(-jitter, jitter, agents) / radius
    starts = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _Layout(starts, -starts, np.zeros((0, 3)))


def _grid(count: int, spacing: float) -> np.ndarray:
    """``count`` points in a near-square grid, columns going -x from 0, rows centred on y = 0."""
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    k = np.arange(count)
    return np.stack([-(k // rows) * spacing, (k % rows - (rows - 1) / 2) * spacing], axis=1)


def _crossing(rng: np.random.Generator, agents: int, spacing: float, jitter: float) -> _Layout:
    half = agents // 2
    a, b = _grid(half, spacing), _grid(agents - half, spacing)
    gap = max(np.abs(a[:, 1]).max(), np.abs(b[:, 1]).max()) + 1.5 * spacing  # clear of the other group
    a[:, 0] -= gap
    b = np.stack([b[:, 1], b[:, 0] - gap], axis=1)  # the second group below, heading +y
    starts = np.concatenate([a, b]) + rng.uniform(-jitter, jitter, (agents, 2))
    goals = np.concatenate([starts[:half] * [-1, 1], starts[half:] * [1, -1]])
    return _Layout(starts, goals, np.zeros((0, 3)))


CORRIDOR_LENGTH = 3.0       # m
CORRIDOR_HALF_WIDTH = 0.5   # m, wall surface to the axis: two agents of radius 0.2 pass side by side
WALL_RADIUS = 0.15          # m, the wall is a row of touching circles


def _corridor(rng: np.random.Generator, agents: int, spacing: float, jitter: float) -> _Layout:
    xs = np.arange(-CORRIDOR_LENGTH / 2, CORRIDOR_LENGTH / 2 + 1e-9, WALL_RADIUS)
    y = CORRIDOR_HALF_WIDTH + WALL_RADIUS
    walls = np.concatenate([np.stack([xs, np.full_like(xs, s * y), np.full_like(xs, WALL_RADIUS)], axis=1)
                            for s in (-1, 1)])
    half = agents // 2
    left = _grid(half, spacing)
    left[:, 0] -= CORRIDOR_LENGTH / 2 + spacing
    right = _grid(agents - half, spacing) * [-1, 1]
    right[:, 0] += CORRIDOR_LENGTH / 2 + spacing
    starts = np.concatenate([left, right]) + rng.uniform(-jitter, jitter, (agents, 2))
    return _Layout(starts, starts * [-1, 1], walls)


OBSTACLE_RADII = (0.2, 0.5)  # m, drawn uniformly
OBSTACLE_CIRCLE = 3.0        # m, the least radius of the start circle: room for the obstacles inside


def _obstacles(rng: np.random.Generator, agents: int, spacing: float, jitter: float,
               count: int) -> _Layout:
    swap = _swap(rng, agents, spacing, jitter, least=OBSTACLE_CIRCLE)
    inner = 0.6 * _circle_radius(agents, spacing, OBSTACLE_CIRCLE)  # the starts and goals stay clear
    placed: list[np.ndarray] = []
    for _ in range(100 * count):
        if len(placed) == count:
            break
        r = rng.uniform(*OBSTACLE_RADII)
        c = rng.uniform(-inner, inner, 2)
        if np.linalg.norm(c) + r > inner:
            continue
        if all(np.linalg.norm(c - o[:2]) > r + o[2] + spacing / 2 for o in placed):  # an agent fits between
            placed.append(np.array([c[0], c[1], r]))
    if len(placed) < count:
        raise ValueError(f"scenario obstacles: could not place {count} obstacles apart inside a circle of "
                         f"radius {inner:.2f} m (ask for fewer)")
    return _Layout(swap.starts, swap.goals, np.array(placed).reshape(-1, 3))


def make_scenario(name: str, agents: int, envs: int, *, seed: int, dim: int = 2, spacing: float = 0.8,
                  jitter: float = 0.05, obstacles: int = 4, dtype: torch.dtype = torch.float64,
                  device: str | torch.device = "cpu") -> Scenario:
    """``envs`` seeded instances of scenario ``name`` with ``agents`` agents in ``dim`` dimensions.

    ``spacing``: distance between neighbouring starts (m); ``jitter``: uniform perturbation of each
    start (m); ``obstacles``: how many random obstacles the ``obstacles`` scenario places.
    """
    makers: dict[str, Callable[[np.random.Generator], _Layout]] = {
        "swap": lambda rng: _swap(rng, agents, spacing, jitter),
        "crossing": lambda rng: _crossing(rng, agents, spacing, jitter),
        "corridor": lambda rng: _corridor(rng, agents, spacing, jitter),
        "obstacles": lambda rng: _obstacles(rng, agents, spacing, jitter, obstacles),
    }
    if name not in makers:
        raise ValueError(f"scenario: unknown {name!r} (known: {', '.join(SCENARIOS)})")
    if agents < 2:
        raise ValueError(f"scenario: needs at least 2 agents, got {agents}")
    if envs < 1:
        raise ValueError(f"scenario: needs at least 1 environment, got {envs}")
    if dim not in (2, 3):
        raise ValueError(f"scenario: dim must be 2 or 3, got {dim}")
    layouts, heights = [], []
    for e in range(envs):
        rng = np.random.default_rng([seed, e])
        layouts.append(makers[name](rng))
        heights.append(rng.uniform(-jitter, jitter, agents))

    def lift(xy: np.ndarray, z: np.ndarray) -> np.ndarray:
        return xy if dim == 2 else np.concatenate([xy, z[..., None]], axis=-1)

    starts = np.stack([lift(x.starts, h) for x, h in zip(layouts, heights, strict=True)])
    goals = np.stack([lift(x.goals, -h) for x, h in zip(layouts, heights, strict=True)])
    obstacles_xyr = np.stack([x.obstacles for x in layouts])
    centres = lift(obstacles_xyr[..., :2], np.zeros(obstacles_xyr.shape[:2]))

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype, device=device)

    return Scenario(tensor(starts), tensor(goals), tensor(centres), tensor(obstacles_xyr[..., 2]))
