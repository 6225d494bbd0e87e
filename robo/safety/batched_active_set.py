"""The dual active-set method of :mod:`robo.safety.active_set`, batched over environments in torch.

Every environment runs the same Goldfarb-Idnani steps as the plain-Python and C solvers; the
batch advances one step at a time with masks (an environment that is done keeps its values), and
the loop ends when all are done. The active set is three slots per environment (three independent
rows span R^3), so every step is a fixed handful of elementwise ops on (B, 3) and (B, M) tensors:
no per-candidate enumeration, which on CPU costs far more memory traffic at 14 rows.

Not imported by ``robo.safety``: torch stays off the runtime's import path.
"""

from __future__ import annotations

import torch

PASS, MODIFIED, FAULT_INFEASIBLE = 0, 1, 2


def _adjugate_solve(Q: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve (B, 3, 3) symmetric systems by the adjugate; returns (solution, determinant)."""
    a, b, cc = Q[:, 0, 0], Q[:, 0, 1], Q[:, 0, 2]
    d, e, f = Q[:, 1, 1], Q[:, 1, 2], Q[:, 2, 2]
    c00, c01, c02 = d * f - e * e, cc * e - b * f, b * e - cc * d
    c11, c12, c22 = a * f - cc * cc, b * cc - a * e, a * d - b * b
    det = a * c00 + b * c01 + cc * c02
    inv = 1.0 / torch.where(det > 0, det, 1.0)
    r0, r1, r2 = c[:, 0], c[:, 1], c[:, 2]
    y = torch.stack([(c00 * r0 + c01 * r1 + c02 * r2) * inv, (c01 * r0 + c11 * r1 + c12 * r2) * inv,
                     (c02 * r0 + c12 * r1 + c22 * r2) * inv], dim=1)
    return y, det


def _active_normals(G: torch.Tensor, act: torch.Tensor, slot_on: torch.Tensor) -> torch.Tensor:
    """(B, 3, n) normals of the active slots, zero rows for empty slots."""
    N = torch.gather(G, 1, act.clamp_min(0)[..., None].expand(-1, -1, G.shape[2]))
    return N * slot_on[..., None]


def _gram(N: torch.Tensor, slot_on: torch.Tensor) -> torch.Tensor:
    # Empty slots get a unit diagonal, so the 3x3 solve gives 0 for them and stays well posed.
    Q = N @ N.transpose(1, 2)
    return Q + torch.diag_embed((~slot_on).to(Q.dtype))


def solve_active_set(G: torch.Tensor, g: torch.Tensor, u_nom: torch.Tensor, *, tol: float,
                     dependent: float, max_steps: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                 torch.Tensor, torch.Tensor]:
    """Project each u_nom (B, 3) onto {u : G u >= g} with G (B, M, 3), g (B, M).

    Returns u (B, 3), ok (B,) (False: infeasible or out of steps), act (B, 3) active rows (-1 for
    an empty slot) and mu (B, 3) their multipliers for the |u - u_nom|^2 objective.
    """
    B = G.shape[0]
    dev, dt = G.device, G.dtype
    rows = torch.arange(B, device=dev)
    slots = torch.arange(3, device=dev)
    u = u_nom.clone()
    act = torch.full((B, 3), -1, dtype=torch.long, device=dev)
    mu = torch.zeros(B, 3, dtype=dt, device=dev)
    nact = torch.zeros(B, dtype=torch.long, device=dev)
    adding = torch.zeros(B, dtype=torch.bool, device=dev)   # inside the "add row p" loop
    p = torch.zeros(B, dtype=torch.long, device=dev)
    s_p = torch.zeros(B, dtype=dt, device=dev)
    mu_p = torch.zeros(B, dtype=dt, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    ok = torch.ones(B, dtype=torch.bool, device=dev)
    for _ in range(max_steps):
        # Environments not adding a row pick the most violated one (or are done).
        s = torch.einsum("bmn,bn->bm", G, u) - g
        s_min, p_new = s.min(dim=1)
        start = ~done & ~adding
        finished = start & (s_min >= -tol)
        done |= finished
        start &= ~finished
        p = torch.where(start, p_new, p)
        s_p = torch.where(start, s_min, s_p)
        mu_p = torch.where(start, 0.0, mu_p)
        adding |= start
        live = adding & ~done
        if not bool(live.any()):
            break
        slot_on = slots < nact[:, None]
        N = _active_normals(G, act, slot_on)
        n_p = G[rows, p]                                            # (B, 3)
        r, det = _adjugate_solve(_gram(N, slot_on), torch.einsum("bkn,bn->bk", N, n_p))
        z = n_p - torch.einsum("bk,bkn->bn", r, N)
        z = torch.where((nact == 3)[:, None], 0.0, z)               # three rows span R^3
        zz = (z * z).sum(1)
        full = zz > dependent
        t_full = torch.where(full, -s_p / torch.where(full, zz, 1.0), torch.inf)
        can_drop = slot_on & (r > 0)
        ratio = torch.where(can_drop, mu / torch.where(can_drop, r, 1.0), torch.inf)
        t_drop, drop = ratio.min(dim=1)
        stuck = live & ((~full & ~can_drop.any(1)) | (det <= dependent))   # row p is unreachable
        ok &= ~stuck
        done |= stuck
        live &= ~stuck
        add = full & (t_full <= t_drop)
        t = torch.where(add, t_full, t_drop)
        t = torch.where(live, t, 0.0)
        mu = mu - t[:, None] * r * slot_on
        mu_p = mu_p + t
        u = u + torch.where((live & full)[:, None], t[:, None] * z, 0.0)
        s_p = s_p + torch.where(full, t * zz, 0.0)
        # Add p to the next free slot ...
        put = live & add
        slot_new = (slots == nact[:, None]) & put[:, None]
        act = torch.where(slot_new, p[:, None], act)
        mu = torch.where(slot_new, mu_p[:, None], mu)
        nact = nact + put.long()
        adding &= ~put
        # ... or drop the blocking slot, shifting the later slots down by one.
        rm = live & ~add
        shift = (slots[None, :] >= drop[:, None]) & rm[:, None]
        src = (slots[None, :] + shift.long()).clamp_max(2)
        act = torch.where(shift, torch.gather(act, 1, src), act)
        mu = torch.where(shift, torch.gather(mu, 1, src), mu)
        nact = nact - rm.long()
        last = (slots == nact[:, None]) & rm[:, None]
        act = torch.where(last, -1, act)
        mu = torch.where(last, 0.0, mu)
    ok &= done  # out of steps: a fault, never an unfinished answer
    # Polish: the projection onto the final active set, in one solve from u_nom.
    slot_on = slots < nact[:, None]
    N = _active_normals(G, act, slot_on)
    g_act = torch.gather(g, 1, act.clamp_min(0)) * slot_on
    y, _ = _adjugate_solve(_gram(N, slot_on), g_act - torch.einsum("bkn,bn->bk", N, u_nom))
    y = y * slot_on
    polished = u_nom + torch.einsum("bk,bkn->bn", y, N)
    has = nact > 0
    u = torch.where(has[:, None], polished, u)
    mu = torch.where(has[:, None], y, mu)
    return u, ok, act, 2.0 * mu
