"""Batched multi-agent navigation: double-integrator agents with speed and acceleration limits.

Tensors are ``[envs, agents, dim]`` (dim 2 or 3). The environment is plain functions of state and
action (MuJoCo Playground style): :func:`reset` builds a :class:`SwarmState` from a
:class:`Scenario`, :func:`step` advances it under accelerations and counts collisions, deadlocks and
arrival. :mod:`sim.swarm.scenarios` makes the seeded scenarios, :mod:`sim.swarm.observation` the
per-agent features (written down once as layouts), :mod:`sim.swarm.nominal` the PD-to-goal controller.
"""

from sim.swarm.env import SwarmConfig, SwarmState, at_goal, pairwise_distances, replace_envs, reset, step
from sim.swarm.nominal import nominal_accelerations
from sim.swarm.observation import (
    AGENT_LAYOUT,
    EDGE_LAYOUT,
    agent_layout,
    edge_layout,
    flat_layout,
    flat_observation,
    flat_observation_and_slots,
    observe,
)
from sim.swarm.scenarios import SCENARIOS, Scenario, make_scenario

__all__ = [
    "AGENT_LAYOUT", "EDGE_LAYOUT", "SCENARIOS", "Scenario", "SwarmConfig", "SwarmState", "agent_layout",
    "at_goal", "edge_layout", "flat_layout", "flat_observation", "flat_observation_and_slots",
    "make_scenario", "nominal_accelerations", "observe", "pairwise_distances",
    "replace_envs", "reset", "step",
]
