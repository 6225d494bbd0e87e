"""The safety filter for thousands of environments at once, in torch (CPU or CUDA, same code).

Same barriers, same HOCBF rows, same QP and the same fault rules as :class:`robo.safety.SafetyFilter`.
The QP is solved by default with the batched dual active-set method (the algorithm of the fast path
and of the emitted C, see :mod:`robo.safety.batched_active_set`); ``solver="enumeration"`` keeps the
active-set enumeration (see :class:`robo.safety.qp.EnumerationQP`): level by level, only the
environments not yet solved go on, each level one batched Gram solve over all candidates. It has
no step loop, but at 14 rows it moves far more memory (about 10x slower on CPU at 4096 envs,
robo bench safety).

Not imported by ``robo.safety`` on purpose: the runtime uses the filter without torch.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import torch

from robo.safety.barriers import BarrierSet
from robo.safety.batched_active_set import solve_active_set
from robo.safety.models import check_gain
from robo.safety.qp import check_bounds

PASS, MODIFIED, FAULT_INFEASIBLE, FAULT_INPUT = 0, 1, 2, 3
Triple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _combos(rows: int, size: int) -> list[torch.Tensor]:
    levels = []
    for k in range(1, size + 1):
        keep = []
        for c in combinations(range(rows + 2 * size), k):
            axes = [(i - rows) % size for i in c if i >= rows]
            if len(axes) == len(set(axes)):  # lower_i and upper_i are never active together
                keep.append(c)
        levels.append(torch.tensor(keep, dtype=torch.long).reshape(-1, k))
    return levels


def _solve_gram(gram: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve (..., k, k) symmetric systems for k <= 3 in closed form (adjugate / determinant).

    Batched LAPACK calls on millions of 3x3 matrices are far slower than these few elementwise
    products. Returns (solution, determinant); the solution is garbage where the determinant is ~0.
    """
    k = gram.shape[-1]
    if k == 1:
        det = gram[..., 0, 0]
        return rhs / torch.where(det > 0, det, 1.0)[..., None], det
    if k == 2:
        a, b, c = gram[..., 0, 0], gram[..., 0, 1], gram[..., 1, 1]
        det = a * c - b * b
        inv = 1.0 / torch.where(det > 0, det, 1.0)
        r0, r1 = rhs[..., 0], rhs[..., 1]
        return torch.stack([(c * r0 - b * r1) * inv, (a * r1 - b * r0) * inv], dim=-1), det
    a, b, c = gram[..., 0, 0], gram[..., 0, 1], gram[..., 0, 2]
    d, e, f = gram[..., 1, 1], gram[..., 1, 2], gram[..., 2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = 1.0 / torch.where(det > 0, det, 1.0)
    r0, r1, r2 = rhs[..., 0], rhs[..., 1], rhs[..., 2]
    return torch.stack([(c00 * r0 + c01 * r1 + c02 * r2) * inv,
                        (c01 * r0 + c11 * r1 + c12 * r2) * inv,
                        (c02 * r0 + c12 * r1 + c22 * r2) * inv], dim=-1), det


def solve_batched(A: torch.Tensor, b: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                  u_nom: torch.Tensor, *, slack_weight: float, levels: list[torch.Tensor],
                  tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve B problems  min |u - u_nom|^2  s.t.  A u >= b, lower <= u <= upper.

    A (B, m, n), b (B, m), lower/upper (n,), u_nom (B, n), n <= 3. Returns u (B, n) and a status
    (B,) of PASS, MODIFIED or FAULT_INFEASIBLE (no solution, or a barrier multiplier above the
    slack weight: the same test as the cvxpy path's slack). u is undefined where the status is a fault.
    Everything works on the Gram matrix Q = G G' of the stacked rows G = [A; I; -I]: a candidate
    u = u_nom + G_S' mu has row values G u - g = r + Q[:, S] mu.
    """
    B, m, n = A.shape
    eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(B, n, n)
    G = torch.cat([A, eye, -eye], dim=1)                               # (B, M, n)
    g = torch.cat([b, lower.expand(B, n), -upper.expand(B, n)], dim=1)  # (B, M)
    r = torch.einsum("bmn,bn->bm", G, u_nom) - g
    violated = r < -tol
    # A row no input in the box can meet is infeasible at once (the common infeasible case).
    reach = torch.maximum(A * lower, A * upper).sum(-1)
    hopeless = (b > reach + tol).any(dim=1)
    u = u_nom.clone()
    status = torch.where(violated.any(dim=1), FAULT_INFEASIBLE, PASS)
    pending = torch.nonzero(violated.any(dim=1) & ~hopeless).flatten()
    for combos in levels:
        if pending.numel() == 0:
            break
        Gp = G[pending]
        Q = Gp @ Gp.transpose(1, 2)                                     # (P, M, M)
        rp, vp = r[pending], violated[pending]
        gram = Q[:, combos[:, :, None], combos[:, None, :]]             # (P, K, k, k)
        mu, det = _solve_gram(gram, -rp[:, combos])                     # (P, K, k)
        ok = (det > 1e-12) & vp[:, combos].any(-1) & (mu >= -tol).all(-1)
        values = rp[:, None, :] + torch.einsum("pmkj,pkj->pkm", Q[:, :, combos], mu)   # (P, K, M)
        candidate = ok & (values >= -tol).all(-1)
        found = candidate.any(dim=1)
        if found.any():
            idx = pending[found]
            mu_f = mu[found]
            # Any KKT candidate is the optimum; the shortest step breaks ties from round-off.
            step = torch.einsum("pkj,pkjn->pkn", mu_f, Gp[found][:, combos])
            dist = torch.where(candidate[found], (step * step).sum(-1), torch.inf)
            pick = dist.argmin(dim=1)
            rows_f = torch.arange(len(idx), device=A.device)
            u[idx] = u_nom[idx] + step[rows_f, pick]
            lam = 2.0 * mu_f[rows_f, pick]                                 # (F, k)
            barrier_lam = torch.where(combos[pick] < m, lam, torch.zeros_like(lam))
            over = (barrier_lam > slack_weight).any(-1)
            status[idx] = torch.where(over, FAULT_INFEASIBLE, MODIFIED)
        pending = pending[~found]
    return u, status


def solve_batched_active_set(A: torch.Tensor, b: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                             u_nom: torch.Tensor, *, slack_weight: float,
                             tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`solve_batched`, solved by the batched dual active-set method
    (:mod:`robo.safety.batched_active_set`): the algorithm of the fast path and the C code."""
    B, m, n = A.shape
    eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(B, n, n)
    G = torch.cat([A, eye, -eye], dim=1)
    g = torch.cat([b, lower.expand(B, n), -upper.expand(B, n)], dim=1)
    violated = (torch.einsum("bmn,bn->bm", G, u_nom) - g < -tol).any(dim=1)
    dependent = 1e-20 if A.dtype == torch.float64 else 1e-10
    u, ok, act, lam = solve_active_set(G, g, u_nom, tol=tol, dependent=dependent,
                                       max_steps=4 * G.shape[1] + 9)
    # A barrier multiplier above the slack weight: the penalised QP would need slack (a fault).
    over = ((act >= 0) & (act < m) & (lam > slack_weight)).any(dim=1)
    status = torch.where(violated, MODIFIED, PASS)
    status = torch.where(~ok | over, FAULT_INFEASIBLE, status)
    return u, status


class BatchedSafetyFilter:
    """Filter (B, 6) double-integrator states (or (B, 3) single-integrator positions) at once.

    Obstacles default to those of ``barriers``; ``centers``/``radii`` given per call (B, k, 3)/(B, k)
    replace the round obstacles per environment (a randomised scene per env), as long as their
    count matches. Gains may be (B, m) tensors, e.g. chosen by a policy.
    """

    def __init__(self, barriers: BarrierSet, model: str = "double_integrator", *, lower: Any, upper: Any,
                 alpha1: float = 1.0, alpha2: float | None = None, slack_weight: float = 1e4,
                 brake_gain: float = 2.0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, tol: float | None = None,
                 solver: str = "active_set") -> None:
        if model not in ("double_integrator", "single_integrator"):
            raise ValueError(f"model: unknown {model!r} (known: single_integrator, double_integrator)")
        lower, upper = check_bounds(lower, upper, 3)
        m = barriers.num_rows
        check_gain("alpha1", alpha1, m)
        check_gain("alpha2", alpha1 if alpha2 is None else alpha2, m)
        if not np.isfinite(slack_weight) or slack_weight <= 0:
            raise ValueError(f"slack_weight: must be finite and positive, got {slack_weight}")
        if solver not in ("active_set", "enumeration"):
            raise ValueError(f"solver: unknown {solver!r} (known: active_set, enumeration)")
        self.solver = solver
        self.double = model == "double_integrator"
        self.barriers = barriers
        self.rows = m
        kw = {"dtype": dtype, "device": device}
        self.lower, self.upper = torch.tensor(lower, **kw), torch.tensor(upper, **kw)
        self.centers = torch.tensor(barriers._centers, **kw)
        self.masks = torch.tensor(barriers._masks, **kw)
        self.radii = torch.tensor(barriers._radii, **kw)
        self.planes = torch.tensor(barriers._planes, **kw)
        self.offsets = torch.tensor(barriers._offsets, **kw)
        self.max_neighbours = barriers.num_neighbours
        self.separation = barriers.separation.distance if barriers.separation else 0.0
        self.alpha1, self.alpha2 = float(alpha1), float(alpha1 if alpha2 is None else alpha2)
        self.slack_weight, self.brake_gain = float(slack_weight), float(brake_gain)
        # Round-off scales with the precision: float32 rows are only good to ~1e-6 relative.
        self.tol = tol if tol is not None else (1e-9 if dtype == torch.float64 else 2e-5)
        self.levels = [c.to(device) for c in _combos(m, 3)]
        self.dtype, self.device = dtype, torch.device(device)

    def rows_for(self, x: torch.Tensor, alpha1: torch.Tensor | float | None = None,
                 alpha2: torch.Tensor | float | None = None, centers: torch.Tensor | None = None,
                 radii: torch.Tensor | None = None, neighbours: torch.Tensor | None = None,
                 neighbour_mask: torch.Tensor | None = None) -> Triple:
        """(A, b, h) for a batch of states, the batched twin of SafetyFilter.rows.

        Rows: round obstacles, fence planes, then ``max_neighbours`` separation slots (unused slots
        are padding rows 0 . u >= -1 with h = inf, as in the numpy filter)."""
        B = x.shape[0]
        p = x[:, :3]
        v = x[:, 3:6] if self.double else torch.zeros_like(p)
        c = self.centers.expand(B, -1, -1) if centers is None else centers
        rad = self.radii.expand(B, -1) if radii is None else radii
        masks = self.masks.expand(B, -1, -1)
        vrel = v[:, None, :] * masks
        # share/active are in row order already: obstacles and planes (all 1 / True), then neighbours.
        share = torch.ones(B, c.shape[1] + len(self.offsets), dtype=x.dtype, device=x.device)
        active = torch.ones_like(share, dtype=torch.bool)
        if self.max_neighbours:
            nb, mask = self._neighbour_slots(B, neighbours, neighbour_mask)
            c = torch.cat([c, nb[..., :3]], dim=1)
            masks = torch.cat([masks, torch.ones_like(nb[..., :3])], dim=1)
            rad = torch.cat([rad, torch.full_like(nb[..., 0], self.separation)], dim=1)
            w = v[:, None, :] - nb[..., 3:] if self.double else torch.zeros_like(nb[..., :3])
            vrel = torch.cat([vrel, w], dim=1)
            share = torch.cat([share, torch.full_like(nb[..., 0], 0.5)], dim=1)  # half each
            active = torch.cat([active, mask], dim=1)
        n_round = c.shape[1] - self.max_neighbours
        d = (p[:, None, :] - c) * masks
        dist = torch.linalg.vector_norm(d, dim=-1)
        safe = dist.clamp_min(1e-9)
        n = d / safe[..., None]
        vn = (n * vrel).sum(-1)
        curv = ((vrel * vrel).sum(-1) - vn * vn).clamp_min(0.0) / safe
        h_round = dist - rad
        planes = self.planes.expand(B, -1, -1)
        h = torch.cat([h_round[:, :n_round], p @ self.planes.T - self.offsets, h_round[:, n_round:]], dim=1)
        grad = torch.cat([n[:, :n_round], planes, n[:, n_round:]], dim=1)
        hdot = torch.cat([vn[:, :n_round], v @ self.planes.T, vn[:, n_round:]], dim=1)
        zeros = torch.zeros_like(p[:, :1]).expand(B, len(self.offsets))
        curv = torch.cat([curv[:, :n_round], zeros, curv[:, n_round:]], dim=1)
        a1 = self.alpha1 if alpha1 is None else alpha1
        a2 = self.alpha2 if alpha2 is None else alpha2
        h0 = torch.where(active, h, 0.0)  # padding rows must not put inf * gain into b
        b = -(curv + (a1 + a2) * hdot + a1 * a2 * h0) if self.double else -a1 * h0
        b = torch.where(active, share * b, -1.0)
        grad = torch.where(active[..., None], grad, 0.0)
        h = torch.where(active, h, torch.inf)
        return grad, b, h

    def _neighbour_slots(self, B: int, neighbours: torch.Tensor | None,
                         mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, max_neighbours, 6) positions and velocities, and which slots hold a neighbour."""
        k_max = self.max_neighbours
        kw = {"dtype": self.dtype, "device": self.device}
        nb = torch.zeros(B, 0, 6, **kw) if neighbours is None else neighbours.to(**kw)
        if nb.ndim != 3 or nb.shape[0] != B or nb.shape[2] not in (3, 6) or nb.shape[1] > k_max:
            raise ValueError(f"neighbours: expected ({B}, k<={k_max}, 3 or 6), got {tuple(nb.shape)}")
        if nb.shape[2] == 3:
            nb = torch.cat([nb, torch.zeros_like(nb)], dim=2)
        k = nb.shape[1]
        if mask is None:
            mask = torch.ones(B, k, dtype=torch.bool, device=self.device)
        mask = mask.to(self.device)
        if mask.shape != (B, k):
            raise ValueError(f"neighbour_mask: expected ({B}, {k}), got {tuple(mask.shape)}")
        # Padding slots sit far away (finite), then are flagged inactive.
        pad = torch.zeros(B, k_max - k, 6, **kw)
        pad[..., :3] = 1e6
        nb = torch.where(mask[..., None], nb, torch.tensor([1e6, 1e6, 1e6, 0.0, 0.0, 0.0], **kw))
        return torch.cat([nb, pad], dim=1), torch.cat([mask, mask.new_zeros(B, k_max - k)], dim=1)

    def __call__(self, x: torch.Tensor, u_nom: torch.Tensor, *, alpha1: torch.Tensor | float | None = None,
                 alpha2: torch.Tensor | float | None = None, centers: torch.Tensor | None = None,
                 radii: torch.Tensor | None = None, neighbours: torch.Tensor | None = None,
                 neighbour_mask: torch.Tensor | None = None) -> Triple:
        """Returns (u (B, 3), status (B,) of PASS/MODIFIED/FAULT_*, h_min (B,)).

        Per environment, a non-finite state, command, gain, obstacle or (present) neighbour, or a
        radius <= 0, is FAULT_INPUT with the brake command; the other environments are unaffected.
        ``neighbours`` (B, k, 3 or 6) with k <= max_neighbours; ``neighbour_mask`` (B, k) marks
        which slots hold a neighbour (default all). Shapes that do not fit raise ValueError."""
        x = x.to(self.dtype)
        u_nom = u_nom.to(self.dtype)
        B = x.shape[0]
        bad = ~(torch.isfinite(x).all(1) & torch.isfinite(u_nom).all(1))
        for name, gain in (("alpha1", alpha1), ("alpha2", alpha2)):
            if isinstance(gain, torch.Tensor):
                bad |= ~(torch.isfinite(gain) & (gain > 0)).reshape(B, -1).all(1)
                if name == "alpha1":
                    alpha1 = torch.where(torch.isfinite(gain) & (gain > 0), gain, 1.0)
                else:
                    alpha2 = torch.where(torch.isfinite(gain) & (gain > 0), gain, 1.0)
        if centers is not None:
            centers = centers.to(self.dtype)
            bad |= ~torch.isfinite(centers).reshape(B, -1).all(1)
            centers = torch.where(torch.isfinite(centers), centers, 0.0)
        if radii is not None:
            radii = radii.to(self.dtype)
            good = torch.isfinite(radii) & (radii > 0)
            bad |= ~good.reshape(B, -1).all(1)
            radii = torch.where(good, radii, 1.0)
        if neighbours is not None:
            neighbours = neighbours.to(self.dtype)
            present = torch.ones(neighbours.shape[:2], dtype=torch.bool, device=neighbours.device) \
                if neighbour_mask is None else neighbour_mask
            finite = torch.isfinite(neighbours).all(-1)
            if finite.shape == present.shape:
                bad |= (present & ~finite).any(1)
            neighbours = torch.where(torch.isfinite(neighbours), neighbours, 0.0)
        # Faulty rows are solved on zeros (never NaN in the batch), then overwritten.
        x_ok = torch.where(bad[:, None], 0.0, x)
        u_ok = torch.where(bad[:, None], 0.0, u_nom)
        A, b, h = self.rows_for(x_ok, alpha1, alpha2, centers, radii, neighbours, neighbour_mask)
        if self.solver == "active_set":
            u, status = solve_batched_active_set(A, b, self.lower, self.upper, u_ok,
                                                 slack_weight=self.slack_weight, tol=self.tol)
        else:
            u, status = solve_batched(A, b, self.lower, self.upper, u_ok, slack_weight=self.slack_weight,
                                      levels=self.levels, tol=self.tol)
        status = torch.where(bad, FAULT_INPUT, status)
        fault = status >= FAULT_INFEASIBLE
        if self.double:
            # Brake on the velocity when it is known, like SafetyFilter's safe command.
            v = x[:, 3:6]
            v = torch.where(torch.isfinite(v).all(1, keepdim=True), v, 0.0)
            safe = torch.clamp(-self.brake_gain * v, self.lower, self.upper)
        else:
            safe = torch.clamp(torch.zeros_like(u), self.lower, self.upper)
        u = torch.where(fault[:, None], safe, torch.clamp(u, self.lower, self.upper))
        h_min = torch.where(bad, torch.nan, h.min(dim=1).values)
        return u, status, h_min
