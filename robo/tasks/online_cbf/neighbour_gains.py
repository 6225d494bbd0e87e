"""A tuner's outputs -> the gains of every barrier row of every agent's QP.

A tuner outputs per agent (k1, k2), the tilt when it sets the nominal's turn, and with
``per_neighbour`` one (k1, k2) pair per edge slot (:class:`robo.nets.gnn.GainGNN`). The filter
(:func:`robo.safety.batched_multi_agent.filter_accelerations`) takes gains per agent [E, N] or per
row [E, N, N + O] (agents, then obstacles). A slot's pair goes to the row of the neighbour that fills
the slot (:func:`sim.swarm.slot_rows`, the order the tuner saw: a per-neighbour tuner's slots hold
the agents in range first, then obstacles); rows without a slot keep the agent's own pair.
"""

from __future__ import annotations

import torch

from sim.swarm import SwarmConfig, SwarmState, slot_rows


def split_outputs(out: torch.Tensor, state: SwarmState, config: SwarmConfig, neighbours: int,
                  sets_tilt: bool, per_neighbour: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(k1, k2, tilt or None) from the tuner's squashed outputs ``out`` [E, N, outputs]: k1 and k2
    [E, N], or [E, N, N + O] per row when ``per_neighbour``; tilt [E, N]."""
    base = 2 + sets_tilt
    k1, k2 = out[..., 0], out[..., 1]
    tilt = out[..., 2] if sets_tilt else None
    if per_neighbour:
        E, N, _ = out.shape
        rows = N + state.obstacle_p.shape[1]
        idx, mask = slot_rows(state, config, neighbours, agents_first=True)
        slots = out[..., base:].reshape(E, N, neighbours, 2)
        k1, k2 = (_rows(k, slots[..., i], idx, mask, rows) for i, k in enumerate((k1, k2)))
    return k1, k2, tilt


def _rows(agent: torch.Tensor, slot: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor,
          rows: int) -> torch.Tensor:
    own = agent[..., None]
    # an empty slot's index is a placeholder: it writes the agent's own gain, which the row has anyway
    return own.expand(*agent.shape, rows).scatter(2, idx, torch.where(mask, slot, own.expand_as(slot)))
