"""Runtime adapter of task ``online_cbf``: one agent's view -> the gain tuner's observation -> gains.

An agent's computer knows its own position, velocity and goal, and what it hears of its neighbours
(positions and velocities). :func:`agent_observation` builds from that the flat per-agent vector of
:func:`sim.swarm.flat_observation` (goal offset, velocity, the K nearest neighbours within the sensing
radius as offset, relative velocity, contact distance, obstacle flag, then the slot mask), in numpy;
:class:`SwarmTuner` runs the card's GNN on it through :class:`OnnxPolicy` and returns (k1, k2), and the
nominal's turn when the card's third output is ``tilt`` (a per-neighbour tuner: k1 and k2 per barrier
row, by :func:`slot_order`), with outputs out of the card's range (a corrupt model) clamped and
counted. :func:`nominal_acceleration` is
the PD-to-goal of :func:`sim.swarm.nominal_accelerations` for one agent. No torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robo.runtime.policy import OnnxPolicy

TASK = "online_cbf"


def agent_observation(p: np.ndarray, v: np.ndarray, goal: np.ndarray, neighbours_p: np.ndarray,
                      neighbours_v: np.ndarray, **view: Any) -> np.ndarray:
    """:func:`agent_observation_and_slots` without the slots."""
    return agent_observation_and_slots(p, v, goal, neighbours_p, neighbours_v, **view)[0]


def agent_observation_and_slots(p: np.ndarray, v: np.ndarray, goal: np.ndarray, neighbours_p: np.ndarray,
                                neighbours_v: np.ndarray, *, agent_radius: float, sensing_radius: float,
                                slots: int, obstacle_p: np.ndarray | None = None,
                                obstacle_r: np.ndarray | None = None,
                                agents_first: bool = False) -> tuple[np.ndarray, list[int]]:
    """The flat observation [D * 2 + slots * (2 D + 2) + slots] of one agent (float32), and which
    neighbour (index < M) or obstacle (M + index) fills each slot (:func:`slot_order`).

    Neighbours and obstacles beyond ``sensing_radius`` are left out; the ``slots`` nearest of the
    rest fill the edge slots, nearest first (ties: agents before obstacles, lower index first, as
    ``torch.topk`` on the simulator's [agents, obstacles] order does for distinct distances); with
    ``agents_first`` (a per-neighbour tuner) every agent before any obstacle.
    """
    D = p.shape[0]
    obstacle_p = np.zeros((0, D)) if obstacle_p is None else obstacle_p.reshape(-1, D)
    obstacle_r = np.zeros(0) if obstacle_r is None else obstacle_r
    M, O = len(neighbours_p), len(obstacle_p)
    offset = np.concatenate([neighbours_p.reshape(M, D), obstacle_p]) - p
    rel_v = np.concatenate([neighbours_v.reshape(M, D) - v, np.broadcast_to(-v, (O, D))])
    reach = np.concatenate([np.full(M, 2 * agent_radius), agent_radius + obstacle_r])
    flag = np.concatenate([np.zeros(M), np.ones(O)])
    near = slot_order(p, neighbours_p, sensing_radius=sensing_radius, slots=slots, obstacle_p=obstacle_p,
                      agents_first=agents_first)
    edges = np.zeros((slots, 2 * D + 2))
    mask = np.zeros(slots)
    for slot, i in enumerate(near):
        edges[slot] = [*offset[i], *rel_v[i], reach[i], flag[i]]
        mask[slot] = 1.0
    return np.concatenate([goal - p, v, edges.ravel(), mask]).astype(np.float32), near


def slot_order(p: np.ndarray, neighbours_p: np.ndarray, *, sensing_radius: float, slots: int,
               obstacle_p: np.ndarray | None = None, agents_first: bool = False) -> list[int]:
    """Which neighbour (index < M) or obstacle (M + index) fills each edge slot of
    :func:`agent_observation`, nearest first (every neighbour before any obstacle with
    ``agents_first``), at most ``slots``."""
    D = p.shape[0]
    M = len(neighbours_p.reshape(-1, D))
    others = np.concatenate([neighbours_p.reshape(M, D), np.zeros((0, D)) if obstacle_p is None
                             else obstacle_p.reshape(-1, D)])
    dist = np.linalg.norm(others - p, axis=1)
    in_range = [int(i) for i in np.argsort(dist, kind="stable") if dist[i] <= sensing_radius]
    if agents_first:
        in_range = [i for i in in_range if i < M] + [i for i in in_range if i >= M]
    return in_range[:slots]


def nominal_acceleration(p: np.ndarray, v: np.ndarray, goal: np.ndarray, *, max_speed: float,
                         max_accel: float, kp: float = 1.0, kd: float = 2.0, tilt: float = 0.0) -> np.ndarray:
    """PD to ``goal``: a desired velocity ``kp / kd * error`` capped at ``max_speed``, tracked with ``kd``;
    ``tilt`` (rad) turns the x-y part of the error clockwise (the right-hand rule of the simulator's)."""
    error = np.array(goal - p, dtype=float)
    c, s = np.cos(tilt), np.sin(tilt)
    error[:2] = c * error[0] + s * error[1], c * error[1] - s * error[0]
    v_des = error * (kp / kd)
    speed = float(np.linalg.norm(v_des))
    v_des = v_des * (max_speed / max(speed, max_speed))
    return np.clip(kd * (v_des - v), -max_accel, max_accel)


TUNER_OUTPUTS = (["k1", "k2"], ["k1", "k2", "tilt"])  # gains only, or gains and the nominal's turn


def neighbour_slots(card: dict[str, Any]) -> int:
    """How many per-neighbour (k1, k2) pairs the card's tuner outputs after its own (0: none)."""
    arch = card.get("training", {}).get("arch", {})
    return int(arch.get("neighbours", 0)) if arch.get("per_neighbour") else 0


def trained_shared_k2(training: dict[str, Any]) -> float | None:
    """The ``filter.shared_k2`` a tuner was trained behind (None: each agent's own k2), from its card's
    (or checkpoint's) training record."""
    return training.get("config", {}).get("filter", {}).get("shared_k2")


def tuner_outputs(card: dict[str, Any], where: str | Path) -> int:
    """How many values the card's tuner outputs for the agent itself: 2 (k1, k2) or 3 (k1, k2, tilt),
    each followed, for a per-neighbour tuner, by edgeM.k1, edgeM.k2 per slot; anything else is refused."""
    names = [entry["name"] for entry in card["action"]["layout"]]
    slots = neighbour_slots(card)
    own = names[:len(names) - 2 * slots]
    edges = [f"edge{m}.{k}" for m in range(slots) for k in ("k1", "k2")]
    if own not in TUNER_OUTPUTS or names[len(own):] != edges:
        raise ValueError(f"{where}: the card's outputs are {names}, not [k1, k2] or [k1, k2, tilt]"
                         + (f" then edgeM.k1, edgeM.k2 for M < {slots}" if slots else ""))
    return len(own)


class SwarmTuner:
    """The committed (or any) ``online_cbf`` gain tuner on one agent's observation."""

    def __init__(self, path: str | Path) -> None:
        self.policy = OnnxPolicy(path)
        if self.policy.task != TASK:
            raise ValueError(f"{path}: the card's task is {self.policy.task!r}, not {TASK!r}")
        arch = self.policy.card["training"]["arch"]
        self.slots = int(arch["neighbours"])
        self.dim = int(arch["node_size"]) // 2
        self.own = tuner_outputs(self.policy.card, path)
        self.sets_tilt = self.own == 3
        self.per_neighbour = neighbour_slots(self.policy.card) > 0
        self.shared_k2 = trained_shared_k2(self.policy.card["training"])
        self.clamped = 0     # calls whose raw outputs the model put out of the card's range
        self.fallbacks = 0   # calls answered by the card's fallback (non-finite view or output)
        self.last_outputs: list[float] = []

    def gains(self, obs: np.ndarray, order: list[int] | None = None, rows: int = 0) -> tuple[Any, ...]:
        """(k1, k2), or (k1, k2, tilt) from a tuner that sets the nominal's turn too. A per-neighbour
        tuner gives k1 and k2 per barrier row [rows]: slot m's pair for row ``order[m]`` (the
        :func:`slot_order` of ``obs``), the agent's own pair for the rest."""
        step = self.policy.step(obs)
        self.fallbacks += step.fallback
        self.clamped += bool(step.clamped)
        out = [float(x) for x in step.action]
        self.last_outputs = out  # every output of this call, as the card clipped them
        own = out[:self.own]
        if not self.per_neighbour:
            return tuple(own)
        k = np.tile(np.array(own[:2]), (rows, 1))
        for m, row in enumerate(order or []):
            k[row] = out[self.own + 2 * m:self.own + 2 * m + 2]
        return (k[:, 0], k[:, 1], *own[2:])
