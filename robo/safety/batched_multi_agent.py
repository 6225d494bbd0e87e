"""The decentralised multi-agent CBF filter, batched over agents x environments in torch.

Every agent i of every environment solves its own QP over its acceleration a_i:

    minimize |a_i - a_nom_i|^2 + rho * sum(s)   s.t.   row_j . a_i + s_j >= b_j,  |a_i|_inf <= a_max

with one row per neighbour (another agent or an obstacle) within the sensing radius. The barrier is
h = |p_i - p_j|^2 - d^2 (d: the two radii plus a margin), of relative degree two for a double
integrator, so it enters as a high-order CBF with the agent's own gains (k1, k2):

    psi = h' + k1 h,    psi' + k2 psi = h'' + (k1 + k2) h' + k1 k2 h >= 0,
    h' = 2 dp.dv,       h'' = 2 |dv|^2 + 2 dp.(a_i - a_j).

For a pair of agents each takes half of the condition, 2 dp.a_i >= -c/2 with
c = 2 |dv|^2 + (k1 + k2) h' + k1 k2 h (the two halves add up to the whole when both agents use the
same gains; with different gains they add up to a valid HOCBF only while the means S, P of k1 + k2
and k1 k2 keep S^2 >= 4 P, which ``shared_k2``, one k2 for all, guarantees for any k1: see
:class:`robo.safety.agent_qp.AgentFilterConfig`); an obstacle is taken fully, 2 dp.a_i >= -c.
Rows are divided by |2 dp| so they have unit length (the solver's tolerance and the slack are then in
m/s^2). The gains are inputs per agent, or per agent and row (a pair of gains for each neighbour), so
a tuner can set them online.

The QP is the projection solved by :func:`robo.safety.batched_active_set.solve_active_set` (the
algorithm of the fast path and the emitted C), a 2-D problem padded with a zero third axis. The
slack is an exact (L1) penalty: it is zero whenever the hard problem is feasible with multipliers
below rho, and otherwise (infeasible, or a multiplier above rho) the agent is at fault: it gets the
defined brake command ``clamp(-brake_gain * v, -a_max, a_max)`` and the fault is counted.

A braking agent no longer holds its half of a pair condition, and that was the cause of every
collision of the fixed-gain baselines (each followed a fault of one of the pair). So the fault is
shared responsibility's hand-over: the faulted agents announce their brake command, and their
neighbours solve again taking the whole condition with that known acceleration,
2 dp.a_i >= -c + 2 dp.a_j. Solving again can fault another agent; the rounds repeat until no new
agent faults (at most N rounds, a fault is final). The cvxpy statement of one agent's QP is
:func:`robo.safety.multi_agent.reference_agent_qp` (``fixed`` neighbours included).

Not imported by ``robo.safety``: torch stays off the runtime's import path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robo.safety.agent_qp import AgentFilterConfig as MultiAgentFilterConfig  # one definition, no torch
from robo.safety.batched_active_set import solve_active_set


@dataclass(frozen=True)
class FilterOutput:
    u: torch.Tensor         # [E, N, D] accelerations to apply
    fault: torch.Tensor     # [E, N] bool: QP infeasible (slack needed): u is the brake command
    modified: torch.Tensor  # [E, N] bool: u differs from the nominal command (and no fault)


def _check_gains(k: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(k).all()) or bool((k <= 0).any()):
        raise ValueError(f"filter: gain {name} must be finite and > 0 for every agent")


def barrier_rows(p: torch.Tensor, v: torch.Tensor, obstacle_p: torch.Tensor, obstacle_r: torch.Tensor,
                 k1: torch.Tensor, k2: torch.Tensor, config: MultiAgentFilterConfig,
                 fixed: torch.Tensor | None = None,
                 fixed_accel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each agent's rows ``A . a_i >= b``: A [E, N, N + O, D] (unit rows), b [E, N, N + O]; gains
    [E, N] or per row [E, N, N + O].

    Slot j < N is agent j, slot N + k obstacle k; a slot out of sensing range (or the agent itself)
    is the empty row 0 >= -1, which never binds. Agents marked ``fixed`` [E, N] apply the known
    ``fixed_accel`` [E, N, D] (their brake): a neighbour takes the whole condition against them.
    """
    E, N, D = p.shape
    O = obstacle_p.shape[1]
    dp = torch.cat([p[:, :, None] - p[:, None], p[:, :, None] - obstacle_p[:, None]], dim=2)   # [E, N, R, D]
    dv = torch.cat([v[:, :, None] - v[:, None], v[:, :, None].expand(E, N, O, D)], dim=2)
    r = config.agent_radius
    reach = torch.cat([torch.full((E, N, N), 2 * r, dtype=p.dtype, device=p.device),
                       (r + obstacle_r)[:, None].expand(E, N, O)], dim=2) + config.margin
    share = torch.cat([torch.full((N,), 0.5), torch.ones(O)]).to(p).expand(E, N, N + O)       # [E, N, R]
    dist = dp.norm(dim=-1)
    h = dist**2 - reach**2
    h_dot = 2 * (dp * dv).sum(-1)
    if config.shared_k2 is not None:  # one k2 for every agent: no pair of choices voids the pair condition
        k2 = torch.full_like(k1, config.shared_k2)
    if k1.dim() == 2:
        k1, k2 = k1[..., None], k2[..., None]
    c = 2 * (dv * dv).sum(-1) + (k1 + k2) * h_dot + k1 * k2 * h
    if fixed is not None and fixed_accel is not None:
        whole = torch.cat([fixed[:, None].expand(E, N, N), fixed.new_zeros(E, N, O)], dim=2)
        share = torch.where(whole, 1.0, share)
        # the neighbour's own term of h'': -2 dp.a_j, known for a braking neighbour
        known = -2 * (dp[:, :, :N] * fixed_accel[:, None]).sum(-1)
        c = c + torch.cat([torch.where(fixed[:, None], known, 0.0), c.new_zeros(E, N, O)], dim=2)
    live = (dist <= config.sensing_radius) & ~torch.eye(N + O, dtype=torch.bool, device=p.device)[:N]
    safe_dist = torch.where(live, dist, 1.0)
    A = torch.where(live[..., None], dp / safe_dist[..., None], 0.0)
    b = torch.where(live, -share * c / (2 * safe_dist), -1.0)
    return A, b


def filter_accelerations(p: torch.Tensor, v: torch.Tensor, u_nom: torch.Tensor, obstacle_p: torch.Tensor,
                         obstacle_r: torch.Tensor, k1: torch.Tensor | float, k2: torch.Tensor | float,
                         config: MultiAgentFilterConfig) -> FilterOutput:
    """Filter every agent's nominal acceleration ``u_nom`` [E, N, D] (positions ``p``, velocities
    ``v``; obstacles [E, O, D] and radii [E, O]; gains scalars, [E, N], or [E, N, N + O] per row: agents,
    then obstacles)."""
    E, N, _ = p.shape
    k1 = torch.as_tensor(k1, dtype=p.dtype, device=p.device)
    k2 = torch.as_tensor(k2, dtype=p.dtype, device=p.device)
    if k1.dim() < 3:
        k1, k2 = k1.expand(E, N), k2.expand(E, N)
    _check_gains(k1, "k1")
    _check_gains(k2, "k2")
    brake = (-config.brake_gain * v).clamp(-config.max_accel, config.max_accel)
    fault = torch.zeros(E, N, dtype=torch.bool, device=p.device)
    for _ in range(N):
        u, new_fault = _solve(p, v, u_nom, obstacle_p, obstacle_r, k1, k2, config, fault, brake)
        new_fault = new_fault & ~fault
        fault = fault | new_fault
        if not bool(new_fault.any()):
            break
    u = torch.where(fault[..., None], brake, u)
    modified = ~fault & ((u - u_nom).abs() > 1e-9).any(dim=-1)
    return FilterOutput(u, fault, modified)


def _solve(p: torch.Tensor, v: torch.Tensor, u_nom: torch.Tensor, obstacle_p: torch.Tensor,
           obstacle_r: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, config: MultiAgentFilterConfig,
           fixed: torch.Tensor, fixed_accel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One round: every agent's QP given the ``fixed`` (braking) neighbours; (u, fault) [E, N]."""
    E, N, D = p.shape
    A, b = barrier_rows(p, v, obstacle_p, obstacle_r, k1, k2, config, fixed, fixed_accel)
    R = A.shape[2]
    B = E * N
    eye = torch.eye(3, dtype=p.dtype, device=p.device)[:D]                                  # [D, 3]
    G = torch.cat([torch.nn.functional.pad(A.reshape(B, R, D), (0, 3 - D)),
                   eye.expand(B, D, 3), -eye.expand(B, D, 3)], dim=1)                     # [B, R + 2D, 3]
    g = torch.cat([b.reshape(B, R), torch.full((B, 2 * D), -config.max_accel, dtype=p.dtype,
                                               device=p.device)], dim=1)
    u_flat = torch.nn.functional.pad(u_nom.reshape(B, D), (0, 3 - D))
    u, ok, act, mu = solve_active_set(G, g, u_flat, tol=config.tol, dependent=1e-20,
                                      max_steps=4 * G.shape[1] + 8)
    barrier = (act >= 0) & (act < R)
    fault = (~ok | (barrier & (mu > config.slack_weight)).any(dim=1)).reshape(E, N)
    return u[:, :D].reshape(E, N, D), fault
