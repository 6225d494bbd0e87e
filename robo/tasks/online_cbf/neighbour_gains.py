"""A tuner's outputs -> the gains of every barrier row of every agent's QP.

A tuner outputs per agent (k1, k2), the tilt when it sets the nominal's turn, and with
``per_neighbour`` one (k1, k2) pair per edge slot (:class:`robo.nets.gnn.GainGNN`). The filter
(:func:`robo.safety.batched_multi_agent.filter_accelerations`) takes gains per agent [E, N] or per
row [E, N, N + O] (agents, then obstacles). A slot's pair goes to the row of the neighbour that fills
the slot (the slots of :func:`sim.swarm.flat_observation_and_slots` that gave the tuner its view: a
per-neighbour tuner's slots hold the agents in range first, then obstacles); rows without a slot keep
the agent's own pair.
"""

from __future__ import annotations

import torch


def split_outputs(out: torch.Tensor, sets_tilt: bool, slots: tuple[torch.Tensor, torch.Tensor] | None = None,
                  rows: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(k1, k2, tilt or None) from the tuner's squashed outputs ``out`` [E, N, outputs]: k1 and k2
    [E, N], or with ``slots`` (each slot's row index and mask, [E, N, K]) [E, N, rows] per row; tilt
    [E, N]."""
    base = 2 + sets_tilt
    k1, k2 = out[..., 0], out[..., 1]
    tilt = out[..., 2] if sets_tilt else None
    if slots is not None:
        idx, mask = slots
        pairs = out[..., base:].reshape(*idx.shape, 2)
        k1, k2 = (_rows(k, pairs[..., i], idx, mask, rows) for i, k in enumerate((k1, k2)))
    return k1, k2, tilt


def _rows(agent: torch.Tensor, slot: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor,
          rows: int) -> torch.Tensor:
    own = agent[..., None]
    # an empty slot's index is a placeholder: it writes the agent's own gain, which the row has anyway
    return own.expand(*agent.shape, rows).scatter(2, idx, torch.where(mask, slot, own.expand_as(slot)))
