"""One agent's decentralised HOCBF-QP in plain numpy/Python: what an agent's own computer solves.

The same problem as one agent of :mod:`robo.safety.batched_multi_agent` (derivation there; the cvxpy
statement is :func:`robo.safety.multi_agent.reference_agent_qp`), built from what the agent itself
perceives: its own position and velocity and those of the neighbours and obstacles within its sensing
radius. The rows, one per neighbour (half the pair condition) or obstacle (all of it),

    dp/|dp| . a >= -share * c / (2 |dp|),   c = 2 |dv|^2 + (k1 + k2) h' + k1 k2 h,

plus the per-axis bound |a|_inf <= max_accel, go to the plain-Python active-set solver
(:func:`robo.safety.active_set.solve_projection`, the algorithm of the emitted C). An infeasible QP, or
a barrier multiplier above ``slack_weight`` (the exact L1 slack would be used), is a fault: the agent
brakes, ``clamp(-brake_gain * v, -max_accel, max_accel)``. No torch here: ROS nodes import this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo.safety.active_set import OPTIMAL, solve_projection


@dataclass(frozen=True)
class AgentFilterConfig:
    """Radii, limits and the fault test of the multi-agent filter; the batched torch filter imports it
    as ``MultiAgentFilterConfig``."""

    agent_radius: float = 0.2
    sensing_radius: float = 3.0
    max_accel: float = 2.0
    margin: float = 0.05
    slack_weight: float = 1e4
    brake_gain: float = 10.0
    tol: float = 1e-9
    # Every agent's k2, whatever its tuner says (None: each agent's own). Two agents' halves of a pair
    # condition add up to h'' + S h' + P h >= 0 with S, P the means of their k1 + k2 and k1 k2, a valid
    # HOCBF only while S^2 >= 4 P; with one k2 for all, (S, P) stay on the line P = k2 (S - k2), where
    # every mean keeps S^2 >= 4 P, so no choice of k1 in range can break the pair's guarantee.
    shared_k2: float | None = None

    def __post_init__(self) -> None:
        for name in ("agent_radius", "sensing_radius", "max_accel", "slack_weight", "brake_gain", "tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"filter: {name} must be finite and > 0, got {value}")
        if self.shared_k2 is not None and not (math.isfinite(self.shared_k2) and self.shared_k2 > 0):
            raise ValueError(f"filter: shared_k2 must be finite and > 0 (or unset), got {self.shared_k2}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"filter: margin must be finite and >= 0, got {self.margin}")


@dataclass(frozen=True)
class AgentFilterResult:
    u: np.ndarray       # [D] the acceleration to apply
    fault: bool         # infeasible (or a multiplier above slack_weight): u is the brake command
    modified: bool      # u differs from the nominal command (and no fault)
    rows: int           # barrier rows in the QP (neighbours and obstacles within the sensing radius)


def agent_rows(p: np.ndarray, v: np.ndarray, others_p: np.ndarray, others_v: np.ndarray,
               others_reach: np.ndarray, others_share: np.ndarray, k1: float | np.ndarray,
               k2: float | np.ndarray, config: AgentFilterConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``A a >= b`` (A [M, D] unit rows, b [M]) for the ``others`` [M, D] within the sensing radius.

    ``others_reach``: the contact distance of each (the two radii), ``others_share``: 1/2 for an agent,
    1 for an obstacle (an obstacle's velocity is zero); gains one pair, or one per other [M].
    """
    if config.shared_k2 is not None:
        k2 = config.shared_k2
    k1, k2 = (np.broadcast_to(np.asarray(k, dtype=float), (len(others_p),)) for k in (k1, k2))
    dp = p[None] - others_p
    dv = v[None] - others_v
    dist = np.linalg.norm(dp, axis=1)
    live = dist <= config.sensing_radius
    dp, dv, dist = dp[live], dv[live], dist[live]
    h = dist**2 - (others_reach[live] + config.margin) ** 2
    h_dot = 2 * np.einsum("md,md->m", dp, dv)
    k1, k2 = k1[live], k2[live]
    c = 2 * np.einsum("md,md->m", dv, dv) + (k1 + k2) * h_dot + k1 * k2 * h
    return dp / dist[:, None], -others_share[live] * c / (2 * dist)


def filter_agent(p: np.ndarray, v: np.ndarray, u_nom: np.ndarray, neighbours_p: np.ndarray,
                 neighbours_v: np.ndarray, k1: float | np.ndarray, k2: float | np.ndarray,
                 config: AgentFilterConfig, obstacle_p: np.ndarray | None = None,
                 obstacle_r: np.ndarray | None = None) -> AgentFilterResult:
    """Filter this agent's nominal acceleration ``u_nom`` [D] (D = 2 or 3) against its neighbours
    (positions and velocities [M, D]) and static obstacles (centres [O, D], radii [O]); gains one pair,
    or one per row [M + O] (neighbours, then obstacles)."""
    D = p.shape[0]
    if not all(np.all(np.isfinite(k)) and np.all(np.asarray(k) > 0) for k in (k1, k2)):
        raise ValueError(f"filter: gains must be finite and > 0, got k1={k1}, k2={k2}")
    obstacle_p = np.zeros((0, D)) if obstacle_p is None else obstacle_p
    obstacle_r = np.zeros(0) if obstacle_r is None else obstacle_r
    M, O = len(neighbours_p), len(obstacle_p)
    others_p = np.concatenate([neighbours_p.reshape(M, D), obstacle_p.reshape(O, D)])
    others_v = np.concatenate([neighbours_v.reshape(M, D), np.zeros((O, D))])
    reach = np.concatenate([np.full(M, 2 * config.agent_radius), config.agent_radius + obstacle_r])
    share = np.concatenate([np.full(M, 0.5), np.ones(O)])
    A, b = agent_rows(p, v, others_p, others_v, reach, share, k1, k2, config)
    pad = [0.0] * (3 - D)
    normals = [(*row, *pad) for row in A.tolist()]
    rhs = b.tolist()
    for axis in range(D):  # |a|_inf <= max_accel as two rows per axis
        for sign in (1.0, -1.0):
            n = [0.0, 0.0, 0.0]
            n[axis] = sign
            normals.append(tuple(n))
            rhs.append(-config.max_accel)
    result = solve_projection(normals, rhs, [*u_nom.tolist(), *pad], tol=config.tol)
    barrier_mu = [mu for row, mu in zip(result.active, result.multipliers, strict=True) if row < len(b)]
    if result.status != OPTIMAL or any(mu > config.slack_weight for mu in barrier_mu):
        brake = np.clip(-config.brake_gain * v, -config.max_accel, config.max_accel)
        return AgentFilterResult(brake, True, False, len(b))
    u = np.asarray(result.u[:D])
    return AgentFilterResult(u, False, bool(np.any(np.abs(u - u_nom) > 1e-9)), len(b))
