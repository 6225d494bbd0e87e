"""What each agent perceives: its own features and up to K neighbours on a dense, masked tensor.

Only relative quantities, so anything computed from them is translation-invariant: an agent sees
its goal offset and its velocity; an edge is a neighbour (another agent or an obstacle) within the
sensing radius, as its offset, its velocity relative to the agent's, the distance at which the two
touch, and whether it is an obstacle. The K nearest neighbours fill the edge slots in order of
distance; empty slots are zero and masked out. With ``agents_first`` every agent within range comes
before any obstacle (then each nearest first): a per-neighbour tuner's slots then hold the agents,
whose rows it sets, and not the dozens of circles of a corridor wall.
"""

from __future__ import annotations

import math

import torch

from sim.layout import Field, ObservationLayout
from sim.swarm.env import SwarmConfig, SwarmState, pairwise_distances


def _axes(dim: int) -> tuple[str, ...]:
    return ("x", "y", "z")[:dim]


def agent_layout(dim: int) -> ObservationLayout:
    return ObservationLayout((Field("goal_offset", "m", _axes(dim)), Field("velocity", "m/s", _axes(dim))))


def edge_layout(dim: int) -> ObservationLayout:
    return ObservationLayout((Field("offset", "m", _axes(dim)), Field("relative_velocity", "m/s", _axes(dim)),
                              Field("contact_distance", "m"), Field("obstacle", "1", clip=(0.0, 1.0))))


AGENT_LAYOUT = agent_layout(2)
EDGE_LAYOUT = edge_layout(2)


def _candidates(state: SwarmState, config: SwarmConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every agent's candidate edges: (features [E, N, R, Fe], distance [E, N, R], +inf for itself and
    beyond the sensing radius), R = N agents then O obstacles."""
    p, v = state.p, state.v
    E, N, D = p.shape
    O = state.obstacle_p.shape[1]
    # [E, N, N + O, D]: from agent i to agent j, then to obstacle k
    offset = torch.cat([p[:, None] - p[:, :, None], state.obstacle_p[:, None] - p[:, :, None]], dim=2)
    rel_v = torch.cat([v[:, None] - v[:, :, None], (-v)[:, :, None].expand(E, N, O, D)], dim=2)
    reach = torch.cat([torch.full((E, N, N), 2 * config.agent_radius, dtype=p.dtype, device=p.device),
                       (config.agent_radius + state.obstacle_r)[:, None].expand(E, N, O)], dim=2)
    flag = torch.cat([torch.zeros(E, N, N, dtype=p.dtype, device=p.device),
                      torch.ones(E, N, O, dtype=p.dtype, device=p.device)], dim=2)
    dist = torch.cat([pairwise_distances(p), offset[:, :, N:].norm(dim=-1)], dim=2)
    dist = torch.where(dist <= config.sensing_radius, dist, math.inf)
    return torch.cat([offset, rel_v, reach[..., None], flag[..., None]], dim=-1), dist


AGENTS_FIRST = 1e6  # m added to an obstacle's distance for the slot order only: after every agent in range


def _nearest(dist: torch.Tensor, neighbours: int, agents_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(row index [E, N, K] of each slot, mask [E, N, K]): the K nearest candidates, nearest first
    (agents before obstacles with ``agents_first``); slots beyond the candidates are masked, with the
    agent's own row (never a neighbour's) as index."""
    E, N, R = dist.shape
    if agents_first:
        dist = dist + torch.cat([dist.new_zeros(N), dist.new_full((R - N,), AGENTS_FIRST)])
    near, idx = dist.topk(min(neighbours, R - 1), dim=2, largest=False)
    mask = torch.isfinite(near)
    pad = neighbours - idx.shape[2]
    if pad > 0:  # fewer candidates than slots: pad empty slots
        own = torch.arange(N, device=idx.device)[None, :, None].expand(E, N, pad)
        idx = torch.cat([idx, own], dim=2)
        mask = torch.cat([mask, mask.new_zeros(E, N, pad)], dim=2)
    return idx, mask


def _observe(state: SwarmState, config: SwarmConfig, neighbours: int,
             agents_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`observe`'s three tensors, then each slot's candidate index [E, N, K]."""
    nodes = torch.cat([state.goal - state.p, state.v], dim=-1)
    edges, dist = _candidates(state, config)
    idx, mask = _nearest(dist, neighbours, agents_first)
    edges = torch.gather(edges, 2, idx[..., None].expand(*idx.shape, edges.shape[-1]))
    return nodes, edges * mask[..., None], mask, idx


def observe(state: SwarmState, config: SwarmConfig, neighbours: int,
            agents_first: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(agent features [E, N, F], edge features [E, N, K, Fe], mask [E, N, K] bool), K = ``neighbours``,
    in the order of :func:`agent_layout` and :func:`edge_layout`."""
    return _observe(state, config, neighbours, agents_first)[:3]


def flat_layout(dim: int, neighbours: int) -> ObservationLayout:
    """One agent's observation as one vector: node, the ``neighbours`` edge slots, then the mask."""
    edge = edge_layout(dim).fields
    slots = tuple(Field(f"edge{m}.{f.name}", f.unit, f.components, f.clip)
                  for m in range(neighbours) for f in edge)
    return ObservationLayout((*agent_layout(dim).fields, *slots, Field("mask", "1", tuple(
        str(m) for m in range(neighbours)), clip=(0.0, 1.0))))


def flat_observation(state: SwarmState, config: SwarmConfig, neighbours: int,
                     agents_first: bool = False) -> torch.Tensor:
    """[E, N, flat_layout(dim, neighbours).size]: :func:`observe` as one vector per agent."""
    return flat_observation_and_slots(state, config, neighbours, agents_first)[0]


def flat_observation_and_slots(state: SwarmState, config: SwarmConfig, neighbours: int,
                               agents_first: bool = False
                               ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`flat_observation` and which candidate fills each slot: (index [E, N, K] into the N agents
    then the O obstacles, the order of the filter's rows; mask [E, N, K] of the filled slots)."""
    nodes, edges, mask, idx = _observe(state, config, neighbours, agents_first)
    return torch.cat([nodes, edges.flatten(2), mask.to(nodes.dtype)], dim=-1), (idx, mask)
