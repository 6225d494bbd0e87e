"""K independent MLPs computed as one batched program.

Every layer keeps its members' weights stacked as ``[K, in, out]`` and runs ``torch.baddbmm``, so K
small networks (e.g. K RAPTOR teachers) cost one kernel per layer instead of K. Inputs and outputs
are ``[K, B, features]``: member k only ever sees row k, so nothing couples the members.

Conversions to and from plain ``nn.Sequential`` MLPs (``nn.Linear`` + activation, the layout of
:class:`robo.nets.policy.MLPPolicy.net`) let a single member be exported or checked on its own:

    ens = EnsembleMLP(8, 26, (64, 64, 64), 8)
    single = ens.member(3)                  # nn.Sequential, same numbers as ens member 3
    ens2 = EnsembleMLP.from_members([ens.member(k) for k in range(8)])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class EnsembleLinear(nn.Module):
    """K affine maps: ``y[k] = x[k] @ weight[k] + bias[k]`` for ``x [K, B, in]``."""

    def __init__(self, members: int, in_features: int, out_features: int,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        kw = {"device": device, "dtype": dtype}
        # [K, in, out] (transposed against nn.Linear) so baddbmm needs no transpose per call.
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features, **kw))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: kaiming_uniform(a=sqrt(5)) on the weight and U(+-1/sqrt(in)) on the
        # bias both reduce to U(-1/sqrt(in), 1/sqrt(in)); draw it for all members at once.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Module):
    """K MLPs ``in -> hidden... -> out`` (activation between layers, none after the last); with
    ``layer_norm`` every hidden layer's output is normalised (LayerNorm without parameters) before its
    activation, as RLPD's critics (Ball et al. 2023)."""

    def __init__(self, members: int, in_features: int, hidden: Sequence[int], out_features: int,
                 activation: str = "relu", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, layer_norm: bool = False):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"EnsembleMLP: activation {activation!r} is not one of {sorted(_ACTIVATIONS)}")
        if members <= 0:
            raise ValueError(f"EnsembleMLP: members must be > 0, got {members}")
        self.members = members
        self.activation = activation
        self.layer_norm = layer_norm
        self.sizes = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b, device=device, dtype=dtype)
            for a, b in itertools.pairwise(self.sizes)
        )
        self._act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [K, B, in] -> [K, B, out]``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                if self.layer_norm:
                    x = nn.functional.layer_norm(x, (layer.out_features,))
                x = self._act(x)
        return x

    # ----- single members ------------------------------------------------------------------
    def member(self, k: int) -> nn.Sequential:
        """Member ``k`` as a plain ``nn.Sequential`` of ``nn.Linear`` (+ parameter-free ``nn.LayerNorm``)
        + activation (a detached copy)."""
        if not 0 <= k < self.members:
            raise IndexError(f"member {k} out of range for an ensemble of {self.members}")
        w = self.layers[0].weight
        modules: list[nn.Module] = []
        for i, layer in enumerate(self.layers):
            lin = nn.Linear(layer.in_features, layer.out_features, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(layer.weight[k].T)
                lin.bias.copy_(layer.bias[k, 0])
            modules.append(lin)
            if i < len(self.layers) - 1:
                if self.layer_norm:
                    modules.append(nn.LayerNorm(layer.out_features, elementwise_affine=False))
                modules.append(_ACTIVATIONS[self.activation]())
        return nn.Sequential(*modules)

    def load_member(self, k: int, mlp: nn.Sequential) -> None:
        """Overwrite member ``k`` with the weights of a plain MLP of the same shape."""
        linears = [m for m in mlp if isinstance(m, nn.Linear)]
        if len(linears) != len(self.layers):
            raise ValueError(f"load_member: the MLP has {len(linears)} linear layers, "
                             f"the ensemble {len(self.layers)}")
        for i, (layer, lin) in enumerate(zip(self.layers, linears, strict=True)):
            if tuple(lin.weight.shape) != (layer.out_features, layer.in_features):
                raise ValueError(f"load_member: layer {i} is {tuple(lin.weight.shape[::-1])}, "
                                 f"the ensemble expects {(layer.in_features, layer.out_features)}")
            with torch.no_grad():
                layer.weight[k].copy_(lin.weight.T)
                layer.bias[k, 0].copy_(lin.bias)

    @classmethod
    def from_members(cls, mlps: Sequence[nn.Sequential], activation: str = "relu") -> EnsembleMLP:
        """Stack K plain MLPs (``nn.Linear`` + activation) of one shape into an ensemble."""
        if not mlps:
            raise ValueError("from_members: need at least one MLP")
        linears = [m for m in mlps[0] if isinstance(m, nn.Linear)]
        sizes = [linears[0].in_features] + [lin.out_features for lin in linears]
        w = linears[0].weight
        ens = cls(len(mlps), sizes[0], sizes[1:-1], sizes[-1], activation, device=w.device, dtype=w.dtype)
        for k, mlp in enumerate(mlps):
            ens.load_member(k, mlp)
        return ens


def select_members(module: nn.Module, index: torch.Tensor) -> None:
    """Keep only the members ``index`` of every ensemble layer in ``module`` (in place).

    Used to drop finished teachers from a batched group so the remaining ones run on smaller tensors.
    """
    for layer in module.modules():
        if isinstance(layer, EnsembleLinear):
            layer.weight = nn.Parameter(layer.weight.detach()[index].clone())
            layer.bias = nn.Parameter(layer.bias.detach()[index].clone())
            layer.members = int(index.numel())
    for m in module.modules():
        if isinstance(m, EnsembleMLP):
            m.members = int(index.numel())
