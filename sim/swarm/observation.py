"""What each agent perceives: its own features and up to K neighbours on a dense, masked tensor.

Only relative quantities, so anything computed from them is translation-invariant: an agent sees
its goal offset and its velocity; an edge is a neighbour (another agent or an obstacle) within the
sensing radius, as its offset, its velocity relative to the agent's, the distance at which the two
touch, and whether it is an obstacle. The K nearest neighbours fill the edge slots in order of
distance; empty slots are zero and masked out.
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


def observe(state: SwarmState, config: SwarmConfig, neighbours: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor]:
    """(agent features [E, N, F], edge features [E, N, K, Fe], mask [E, N, K] bool), K = ``neighbours``,
    in the order of :func:`agent_layout` and :func:`edge_layout`."""
    p, v = state.p, state.v
    E, N, D = p.shape
    O = state.obstacle_p.shape[1]
    nodes = torch.cat([state.goal - p, v], dim=-1)
    # [E, N, N + O, D]: from agent i to agent j, then to obstacle k
    offset = torch.cat([p[:, None] - p[:, :, None], state.obstacle_p[:, None] - p[:, :, None]], dim=2)
    rel_v = torch.cat([v[:, None] - v[:, :, None], (-v)[:, :, None].expand(E, N, O, D)], dim=2)
    reach = torch.cat([torch.full((E, N, N), 2 * config.agent_radius, dtype=p.dtype, device=p.device),
                       (config.agent_radius + state.obstacle_r)[:, None].expand(E, N, O)], dim=2)
    flag = torch.cat([torch.zeros(E, N, N, dtype=p.dtype, device=p.device),
                      torch.ones(E, N, O, dtype=p.dtype, device=p.device)], dim=2)
    dist = torch.cat([pairwise_distances(p), offset[:, :, N:].norm(dim=-1)], dim=2)
    dist = torch.where(dist <= config.sensing_radius, dist, math.inf)
    k = min(neighbours, N - 1 + O)
    near, idx = dist.topk(k, dim=2, largest=False)
    edges = torch.cat([offset, rel_v, reach[..., None], flag[..., None]], dim=-1)
    edges = torch.gather(edges, 2, idx[..., None].expand(E, N, k, edges.shape[-1]))
    mask = torch.isfinite(near)
    edges = edges * mask[..., None]
    if k < neighbours:  # fewer candidates than slots: pad empty slots
        pad = neighbours - k
        edges = torch.cat([edges, edges.new_zeros(E, N, pad, edges.shape[-1])], dim=2)
        mask = torch.cat([mask, mask.new_zeros(E, N, pad)], dim=2)
    return nodes, edges, mask


def flat_layout(dim: int, neighbours: int) -> ObservationLayout:
    """One agent's observation as one vector: node, the ``neighbours`` edge slots, then the mask."""
    edge = edge_layout(dim).fields
    slots = tuple(Field(f"edge{m}.{f.name}", f.unit, f.components, f.clip)
                  for m in range(neighbours) for f in edge)
    return ObservationLayout((*agent_layout(dim).fields, *slots, Field("mask", "1", tuple(
        str(m) for m in range(neighbours)), clip=(0.0, 1.0))))


def flat_observation(state: SwarmState, config: SwarmConfig, neighbours: int) -> torch.Tensor:
    """[E, N, flat_layout(dim, neighbours).size]: :func:`observe` as one vector per agent."""
    nodes, edges, mask = observe(state, config, neighbours)
    return torch.cat([nodes, edges.flatten(2), mask.to(nodes.dtype)], dim=-1)
