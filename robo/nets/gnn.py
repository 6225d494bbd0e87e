"""A dense-neighbour graph neural network that sets each agent's CBF gains (Gao, Yang, Prorok 2023).

Every agent runs the same network on what it perceives, one flat vector per agent (so the runners,
the export and the generated C treat it as any policy)::

    obs = [node (node_size) | edges (neighbours x edge_size, nearest first) | mask (neighbours)]

node: goal offset and own velocity; edge: a neighbour's offset, relative velocity, contact distance,
obstacle flag (``sim.swarm.observation``). All are relative quantities, so the output is
translation-invariant; the neighbours are summed after a shared edge MLP, so the output does not
depend on their order; and every agent applies the same weights to its own view, so permuting the
agents permutes the outputs (equivariance). One round of message passing, because an agent only
perceives its neighbours, not their neighbourhoods.

    m_j  = phi(edge_j)                        shared edge MLP, [B * M, H]
    agg  = (mask @ m) / (1 + mask @ 1)        masked mean-like sum: MatMul, no Reduce op
    out  = rho([node, agg])                   [B, act_dim]
    g_j  = psi([node, agg, edge_j])           per_neighbour: each slot's own (k1, k2), [B, M * 2]

With ``per_neighbour`` the agent's (k1, k2) from rho serve the barrier rows of neighbours that hold no
slot, and each slot's pair from the shared head psi serves that neighbour's row: an agent can hold
one neighbour to a stricter barrier than another (which, unlike one pair of gains for all, can break
the symmetry of a head-on meeting: chosen by side, the gains steer the QP's answer around).

``squash``: the output is ``lo + (hi - lo) * sigmoid(4 * clip(out, -1, 1))``, the gains themselves
(the exported policy), each output in its own range (:func:`output_range`): k1 and k2 in
[k_min, k_max] and, when the tuner also sets the nominal's right-hand-rule turn (``tilt_range``), a
third output, the tilt in rad. Without ``squash`` the raw output, the mean of PPO's Gaussian in the
pre-squash space (the environment applies the same map to the clipped sample). Only Gemm, MatMul,
Relu/Tanh, Sigmoid, Clip and reshapes: ONNX opset 17 and ``robo codegen c`` friendly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from robo.nets.actor_critic import ActorCritic
from robo.nets.policy import register_policy

SQUASH_SCALE = 4.0  # sigmoid(+-4) = 0.018 / 0.982: a clipped action reaches nearly the whole gain range


def squash_gains(a: torch.Tensor, lo: float | torch.Tensor, hi: float | torch.Tensor) -> torch.Tensor:
    """Pre-squash actions (clipped to [-1, 1]) -> outputs in (lo, hi) (per output when tensors)."""
    return lo + (hi - lo) * torch.sigmoid(SQUASH_SCALE * a.clamp(-1.0, 1.0))


def unsquash_gains(out: list[float], lo: list[float], hi: list[float]) -> list[float]:
    """The pre-squash actions whose squashed outputs are ``out``; each must lie strictly inside the part
    of its range a clipped action reaches (:data:`SQUASH_SCALE`)."""
    pre = []
    for x, a, b in zip(out, lo, hi, strict=True):
        u = (x - a) / (b - a)
        z = math.log(u / (1.0 - u)) / SQUASH_SCALE if 0.0 < u < 1.0 else math.inf
        if not abs(z) < 1.0:
            reach = [a + (b - a) / (1.0 + math.exp(s * SQUASH_SCALE)) for s in (1.0, -1.0)]
            raise ValueError(f"initial output {x} is outside ({reach[0]:.3g}, {reach[1]:.3g}), "
                             f"what the tuner reaches in [{a}, {b}]")
        pre.append(z)
    return pre


def output_range(k_min: float, k_max: float, tilt_range: list[float] | None,
                 slots: int = 0) -> tuple[list[float], list[float]]:
    """Per-output (lo, hi) of a tuner: (k1, k2) in [k_min, k_max], then the tilt in ``tilt_range``,
    then ``slots`` per-neighbour (k1, k2) pairs in [k_min, k_max]."""
    lo, hi = [k_min, k_min], [k_max, k_max]
    if tilt_range is not None:
        lo.append(float(tilt_range[0]))
        hi.append(float(tilt_range[1]))
    return lo + [k_min] * 2 * slots, hi + [k_max] * 2 * slots


def base_outputs(tilt_range: list[float] | None) -> int:
    """The agent's own outputs: (k1, k2), and the tilt when the tuner sets it."""
    return 2 + (tilt_range is not None)


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


@register_policy("gain-gnn")
class GainGNN(nn.Module):
    """``obs [B, node_size + neighbours * (edge_size + 1)] -> [B, act_dim]`` (see the module doc)."""

    recurrent = False

    def __init__(self, node_size: int, edge_size: int, neighbours: int, act_dim: int = 2,
                 hidden: int = 64, activation: str = "tanh", squash: bool = True, k_min: float = 0.25,
                 k_max: float = 4.0, tilt_range: list[float] | None = None, obs_dim: int | None = None,
                 per_neighbour: bool = False):
        super().__init__()
        if min(node_size, edge_size, neighbours, act_dim, hidden) < 1:
            raise ValueError("GainGNN: node_size, edge_size, neighbours, act_dim and hidden must be >= 1")
        if activation not in ("relu", "tanh"):
            raise ValueError(f"GainGNN: activation {activation!r} must be 'relu' or 'tanh'")
        if not (math.isfinite(k_min) and math.isfinite(k_max) and 0 < k_min < k_max):
            raise ValueError(f"GainGNN: need 0 < k_min < k_max, got {k_min}, {k_max}")
        slots = neighbours if per_neighbour else 0
        if act_dim != base_outputs(tilt_range) + 2 * slots and not (act_dim == 1 and not per_neighbour):
            raise ValueError(f"GainGNN: act_dim {act_dim} must be 2 (k1, k2), 3 with a tilt_range, plus 2 "
                             f"per neighbour slot when per_neighbour; or 1 (a critic's value)")
        size = node_size + neighbours * (edge_size + 1)
        if obs_dim is not None and obs_dim != size:  # obs_dim is stored in arch for export; it must agree
            raise ValueError(f"GainGNN: obs_dim {obs_dim} != node + neighbours * (edge + 1) = {size}")
        obs_dim = size
        self.arch = {"kind": "gain-gnn", "obs_dim": obs_dim, "act_dim": act_dim, "node_size": node_size,
                     "edge_size": edge_size, "neighbours": neighbours, "hidden": hidden,
                     "activation": activation, "squash": squash, "k_min": k_min, "k_max": k_max}
        if tilt_range is not None:
            self.arch["tilt_range"] = [float(x) for x in tilt_range]
        if per_neighbour:
            self.arch["per_neighbour"] = True
        lo, hi = output_range(k_min, k_max, tilt_range, slots)
        self.register_buffer("out_lo", torch.tensor(lo), persistent=False)
        self.register_buffer("out_hi", torch.tensor(hi), persistent=False)
        self.phi = _mlp([edge_size, hidden, hidden], activation)
        self.rho = _mlp([node_size + hidden, hidden, hidden, act_dim - 2 * slots], activation)
        self.psi = _mlp([node_size + hidden + edge_size, hidden, 2], activation) if per_neighbour else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.arch
        n, e, m = a["node_size"], a["edge_size"], a["neighbours"]
        node = obs[:, :n]
        edges = obs[:, n:n + m * e].reshape(-1, e)                               # [B * M, F]
        mask = obs[:, n + m * e:].reshape(-1, 1, m)                               # [B, 1, M]
        messages = self.phi(edges).reshape(-1, m, a["hidden"])                  # [B, M, H]
        count = mask @ torch.ones(m, 1, dtype=obs.dtype, device=obs.device)    # [B, 1, 1]
        agg = ((mask @ messages) / (count + 1.0)).reshape(-1, a["hidden"])
        context = torch.cat([node, agg], dim=1)
        out = self.rho(context)
        if self.psi is not None:  # every slot's (k1, k2) from the agent's context and that edge
            per_slot = torch.cat([context.repeat_interleave(m, dim=0), edges], dim=1)   # [B * M, ...]
            out = torch.cat([out, self.psi(per_slot).reshape(-1, m * 2)], dim=1)
        return squash_gains(out, self.out_lo, self.out_hi) if a["squash"] else out


class GNNActorCritic(ActorCritic):
    """PPO's Gaussian actor-critic with a :class:`GainGNN` actor (pre-squash output) and a GainGNN
    critic; every agent is one sample (parameter sharing). :meth:`deterministic_actor` is the
    squashed actor, the gains. ``init_out``: the first outputs (k1, k2[, tilt]) every agent starts at,
    before any training; default mid-range."""

    def __init__(self, node_size: int, edge_size: int, neighbours: int, act_dim: int = 2, hidden: int = 64,
                 activation: str = "tanh", init_std: float = 1.0, k_min: float = 0.25, k_max: float = 4.0,
                 tilt_range: list[float] | None = None, init_out: list[float] | None = None,
                 per_neighbour: bool = False):
        nn.Module.__init__(self)
        kw = dict(node_size=node_size, edge_size=edge_size, neighbours=neighbours, hidden=hidden,
                  activation=activation, k_min=k_min, k_max=k_max)
        self.actor = GainGNN(act_dim=act_dim, squash=False, tilt_range=tilt_range,
                             per_neighbour=per_neighbour, **kw)
        self.critic = GainGNN(act_dim=1, squash=False, **kw)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.obs_norm = nn.Identity()
        # a near-zero policy head: every agent starts at mid-range gains with the full exploration noise
        for net, gain in ((self.actor, 0.01), (self.critic, 1.0)):
            heads = [mlp[-1] for mlp in (net.rho, net.psi) if mlp is not None]
            for layer in (mod for mod in net.modules() if isinstance(mod, nn.Linear)):
                nn.init.orthogonal_(layer.weight, gain=gain if layer in heads else math.sqrt(2))
                nn.init.zeros_(layer.bias)
        if init_out is not None:  # start at given outputs (e.g. the best fixed gains), not mid-range
            lo, hi = output_range(k_min, k_max, tilt_range)
            start = torch.tensor(unsquash_gains(init_out, lo[:len(init_out)], hi[:len(init_out)]))
            with torch.no_grad():
                self.actor.rho[-1].bias[:len(init_out)] = start
                if self.actor.psi is not None:  # every neighbour's gains start there too
                    self.actor.psi[-1].bias[:] = start[:2]

    def deterministic_actor(self) -> GainGNN:
        actor = copy.deepcopy(self.actor).eval()
        actor.arch["squash"] = True
        return actor
