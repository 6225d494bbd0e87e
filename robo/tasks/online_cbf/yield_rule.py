"""The yield rule: a fixed per-neighbour gain schedule under which one direction of travel gives way.

An agent whose goal lies toward +x holds every neighbouring agent that moves toward -x (faster than
:data:`YIELD_SPEED`) to the ``low`` gains and every other barrier row to the ``high`` ones; agents
heading -x hold every row to ``high``. Two groups meeting head-on in a corridor then stop being a
symmetric pair: the +x group brakes early and stands aside while the -x group drives through, then
follows. Gains alone can do this because a low-gain row binds from far away (its ``k1 k2 h`` term no
longer covers the closing speed), while the high-gain agent's row stays loose. Without the rule every
fixed gain deadlocks the tilt-0 corridor (the README's tables). The direction is a convention, like
the right-hand rule's side: any fixed direction breaks the symmetry.

The rule reads only what a per-neighbour tuner perceives (its flat view, :func:`sim.swarm.flat_layout`:
its goal offset, its velocity and each slot's relative velocity, obstacle flag and mask) and writes
that tuner's outputs, so it runs through the same slots as a trained tuner and serves as the
demonstrations PPO starts from (``train.imitate``).
"""

from __future__ import annotations

import torch

from robo.tasks.online_cbf.neighbour_gains import split_outputs
from sim.swarm import SwarmConfig, SwarmState, agent_layout, edge_layout, flat_observation_and_slots

YIELD_SPEED = 0.05  # m/s toward -x: a neighbour slower than this is standing, not coming through


def yield_outputs(obs: torch.Tensor, dim: int, neighbours: int, low: float, high: float) -> torch.Tensor:
    """[B, 2 + 2 * neighbours]: a per-neighbour tuner's squashed outputs (the agent's own (k1, k2), then
    each slot's) under the yield rule, from flat views ``obs`` [B, flat_layout(dim, neighbours).size]."""
    node, edge = agent_layout(dim), edge_layout(dim)
    n, e = node.size, edge.size
    heads_plus_x = obs[:, node.slice("goal_offset")][:, 0] > 0                      # [B]
    edges = obs[:, n:n + neighbours * e].reshape(-1, neighbours, e)
    mask = obs[:, n + neighbours * e:] > 0.5                                         # [B, K]
    own_vx = obs[:, node.slice("velocity")][:, 0]
    neighbour_vx = own_vx[:, None] + edges[..., edge.slice("relative_velocity")][..., 0]
    is_agent = edges[..., edge.slice("obstacle")][..., 0] < 0.5
    gives_way = heads_plus_x[:, None] & mask & is_agent & (neighbour_vx < -YIELD_SPEED)
    own = obs.new_full((obs.shape[0], 2), high)
    slot = torch.where(gives_way, obs.new_tensor(low), obs.new_tensor(high))
    return torch.cat([own, slot.repeat_interleave(2, dim=1)], dim=1)


def yield_tuner(low: float, high: float, neighbours: int = 8):
    """The rule as a controller of the evaluation (``robo eval online-cbf --gains-yield LOW,HIGH``):
    the gains of every barrier row [E, N, N + O], through the slots of the ``neighbours`` nearest agents
    (then obstacles) as a per-neighbour tuner with that many slots gets them; rows without a slot (agents
    beyond them, obstacles) keep ``high``."""
    def tuner(state: SwarmState, sw: SwarmConfig) -> tuple[torch.Tensor, torch.Tensor]:
        E, N, _ = state.p.shape
        obs, slots = flat_observation_and_slots(state, sw, neighbours, agents_first=True)
        out = yield_outputs(obs.reshape(E * N, -1), sw.dim, neighbours, low, high).reshape(E, N, -1)
        k1, k2, _ = split_outputs(out, False, slots, N + state.obstacle_p.shape[1])
        return k1, k2
    return tuner
