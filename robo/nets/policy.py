"""The policy registry every method adds to, and the one checkpoint format that carries any policy.

A policy class is registered under a kind (``@register_policy("mlp")``); it has an ``arch`` dict
(``kind``, ``obs_dim``, ``act_dim`` and its constructor arguments), so :func:`build_policy` rebuilds it
from a checkpoint and export reads its sizes. Two shapes ship here, both with batch-first tensors:

* :class:`MLPPolicy` - ``forward(obs) -> action``, with an optional output activation (``"tanh"``:
  a SAC actor's deterministic policy); :class:`NormalizedMLPPolicy` adds a fixed observation
  normalisation in front (a PPO actor's deterministic policy).
* :class:`RecurrentPolicy` - Linear+ReLU -> GRU or LSTM -> Linear,
  ``forward(obs, state) -> (action, state)``. The recurrent state is explicit (a tuple of
  ``[batch, hidden]`` tensors: ``(h,)`` for a GRU, ``(h, c)`` for an LSTM) and starts at zeros
  (:meth:`RecurrentPolicy.initial_state`), so training, ONNX Runtime, ROS nodes and the generated C
  all carry it the same way. :func:`raptor_student` is the RAPTOR student (22 -> 16 ReLU -> GRU 16
  -> 4, 2068 parameters).

Checkpoints (format ``robo-policy/1``, the only one): :func:`save_policy` writes the network's arch,
its weights and a ``meta`` mapping (what the policy card needs: task, observation and action layout,
control rate, training run and config; see :data:`META_KEYS`) atomically;
:func:`load_policy` rebuilds the network.
A training loop only needs::

    net = raptor_student()
    ...train...
    save_policy(run_dir / "policy.pt", net, {"task": ..., "observation": [...], "run": str(run_dir)})

(``sim.quadrotor.observation.quadrotor_student_meta`` builds the quadrotor's meta from its layout.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from robo.files import save_torch

FORMAT = "robo-policy/1"
OLD_SAC_ACTOR_FORMAT = "robo-sac-actor/1"  # SAC actors before the registry; converted when loaded

# What ``meta`` may hold; robo/export turns it into the policy card (policy.json).
#   task: str                       e.g. "quadrotor-hover"
#   observation: list of {"name", "unit", "clip": [lo, hi] | null}, one entry per input value, in order
#   action: list of {"name", "unit"}, one entry per output value, in order
#   action_clip: [lo, hi]            raw network output is clamped to this by every runtime (or one
#                                    [lo, hi] per output, for outputs of different units)
#   action_mapping: str              how the plant reads an action, e.g. "motor u = (a + 1) / 2"
#   fallback_action: list[float]     what a runtime outputs for non-finite input (default: mid of clip)
#   control_rate_hz: float
#   run: str                         the training run folder
#   config: dict                     the resolved training config
#   origin: dict                     where else the weights came from (a SAC teacher's name, fleet and
#                                    vehicle; an imported policy's source), copied to the card
META_KEYS = (
    "task",
    "observation",
    "action",
    "action_clip",
    "action_mapping",
    "fallback_action",
    "control_rate_hz",
    "run",
    "config",
    "origin",
    "io",
)

POLICIES: dict[str, type[nn.Module]] = {}
# Modules that register more kinds when imported (they import this one, so they load on demand).
KIND_MODULES = ("robo.nets.gnn", "robo.nets.chunking", "robo.nets.diffusion")
_Policy = TypeVar("_Policy", bound=type[nn.Module])


def register_policy(kind: str) -> Callable[[_Policy], _Policy]:
    """Class decorator: checkpoints and export know the class as ``kind`` (its ``arch["kind"]``)."""

    def add(cls: _Policy) -> _Policy:
        if kind in POLICIES and POLICIES[kind] is not cls:
            raise ValueError(f"policy kind {kind!r} is already registered by {POLICIES[kind].__name__}")
        cls.kind = kind
        POLICIES[kind] = cls
        return cls

    return add


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@register_policy("mlp")
class MLPPolicy(nn.Module):
    """Feed-forward policy: ``hidden`` Linear+activation layers, a linear output, then
    ``output_activation`` (None: no squashing; "tanh": actions in (-1, 1), as a SAC actor's mean)."""

    recurrent = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (64, 64, 64),
        activation: str = "relu",
        output_activation: str | None = None,
    ):
        super().__init__()
        for name, value in (("activation", activation), ("output_activation", output_activation or "tanh")):
            if value not in _ACTIVATIONS:
                raise ValueError(f"MLPPolicy: {name} {value!r} is not one of {sorted(_ACTIVATIONS)}")
        self.arch = {
            "kind": "mlp",
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "hidden": list(hidden),
            "activation": activation,
            "output_activation": output_activation,
        }
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        if output_activation is not None:
            layers.append(_ACTIVATIONS[output_activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


@register_policy("normalized-mlp")
class NormalizedMLPPolicy(MLPPolicy):
    """An :class:`MLPPolicy` behind a fixed observation normalisation ``clip((obs - obs_mean) / obs_std)``:
    an on-policy actor with its running statistics frozen in, so every runtime feeds raw observations."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (64, 64, 64),
                 activation: str = "relu", output_activation: str | None = None, clip: float = 10.0):
        super().__init__(obs_dim, act_dim, hidden, activation, output_activation)
        self.arch.update(kind="normalized-mlp", clip=clip)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        clip = self.arch["clip"]
        return self.net(((obs - self.obs_mean) / self.obs_std).clamp(-clip, clip))


@register_policy("recurrent")
class RecurrentPolicy(nn.Module):
    """Linear(obs -> embed) + ReLU -> GRU/LSTM(hidden) -> Linear(hidden -> act), one step per call."""

    recurrent = True

    def __init__(self, obs_dim: int, act_dim: int, embed: int = 16, hidden: int = 16, cell: str = "gru"):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"RecurrentPolicy: cell {cell!r} must be 'gru' or 'lstm'")
        self.arch = {
            "kind": "recurrent",
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "embed": embed,
            "hidden": hidden,
            "cell": cell,
        }
        self.cell = cell
        self.hidden_size = hidden
        self.input = nn.Linear(obs_dim, embed)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(embed, hidden, batch_first=True)
        self.output = nn.Linear(hidden, act_dim)

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h",) if self.cell == "gru" else ("h", "c")

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zeros, one ``[batch, hidden]`` tensor per entry of :attr:`state_names`."""
        w = self.output.weight
        return tuple(
            torch.zeros(batch, self.hidden_size, dtype=w.dtype, device=w.device) for _ in self.state_names
        )

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One control step: ``obs [B, obs_dim]`` and ``state`` -> ``action [B, act_dim]`` and new state."""
        x = torch.relu(self.input(obs)).unsqueeze(1)
        layered = tuple(s.unsqueeze(0) for s in state)
        y, new = self.rnn(x, layered[0] if self.cell == "gru" else layered)
        new = (new,) if self.cell == "gru" else new
        return self.output(y[:, 0]), tuple(s[0] for s in new)

    def forward_sequence(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``obs [B, T, obs_dim]`` in one call (for BPTT); same result as T calls of :meth:`forward`."""
        state = state if state is not None else self.initial_state(obs.shape[0])
        x = torch.relu(self.input(obs))
        layered = tuple(s.unsqueeze(0) for s in state)
        y, new = self.rnn(x, layered[0] if self.cell == "gru" else layered)
        new = (new,) if self.cell == "gru" else new
        return self.output(y), tuple(s[0] for s in new)


def raptor_student() -> RecurrentPolicy:
    """The RAPTOR student: Linear(22->16)+ReLU -> GRU(16) -> Linear(16->4), 2068 parameters."""
    return RecurrentPolicy(22, 4, embed=16, hidden=16, cell="gru")


def build_policy(arch: dict[str, Any]) -> nn.Module:
    """Rebuild a network from its ``arch`` dict (as stored in a checkpoint) through the registry."""
    kind = arch.get("kind")
    for module in KIND_MODULES:
        importlib.import_module(module)
    if kind not in POLICIES:
        raise ValueError(f"unknown policy kind {kind!r} (known: {', '.join(sorted(POLICIES))})")
    return POLICIES[kind](**{k: v for k, v in arch.items() if k != "kind"})


def save_policy(path: str | Path, net: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``net`` and ``meta`` to ``path`` atomically (temporary file + rename)."""
    kind = getattr(net, "arch", {}).get("kind")
    if POLICIES.get(kind) is not type(net):
        raise ValueError(f"save_policy: {type(net).__name__} is not a registered policy "
                         f"(known kinds: {', '.join(sorted(POLICIES))}; add one with @register_policy)")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ValueError(f"save_policy: unknown meta key {unknown[0]!r} (known: {', '.join(META_KEYS)})")
    path = Path(path)
    payload = {"format": FORMAT, "arch": net.arch, "state_dict": net.state_dict(), "meta": dict(meta)}
    return save_torch(payload, path)


def load_policy(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_policy`; returns ``(net in eval mode, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"policy checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable policy checkpoint ({exc.__class__.__name__})") from None
    if isinstance(payload, dict) and payload.get("format") == OLD_SAC_ACTOR_FORMAT:
        payload = _converted_sac_actor(payload)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a robo policy checkpoint (expected format {FORMAT!r})")
    missing = [key for key in ("arch", "state_dict", "meta") if not isinstance(payload.get(key), dict)]
    if missing:
        raise ValueError(f"{path}: the checkpoint has no {' or '.join(missing)} mapping "
                         "(not written by save_policy)")
    try:
        net = build_policy(payload["arch"])
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: its architecture {payload['arch']} cannot be built "
                         f"({exc.__class__.__name__}: {exc})") from None
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        # torch lists every mismatch on its own line; one line keeps the error a one-liner
        found = " ".join(str(exc).split())
        raise ValueError(f"{path}: weights do not match the stored architecture ({found[:400]})") from None
    return net.eval(), dict(payload["meta"])


def _converted_sac_actor(old: dict[str, Any]) -> dict[str, Any]:
    """An old SAC actor file (a ReLU MLP whose last layer gives mean and raw log-std) as the
    ``robo-policy/1`` payload of its deterministic policy ``tanh(mean)``; its meta becomes ``origin``."""
    act = int(old["act_size"])
    arch = MLPPolicy(old["obs_size"], act, tuple(old["hidden"]), "relu", "tanh").arch
    weights = {f"net.{k}": v for k, v in old["state_dict"].items()}
    last = 2 * len(old["hidden"])  # index of the output Linear in the Sequential
    for name in ("weight", "bias"):
        weights[f"net.{last}.{name}"] = weights[f"net.{last}.{name}"][:act]
    return {"format": FORMAT, "arch": arch, "state_dict": weights, "meta": {"origin": dict(old["meta"])}}


def generic_meta(obs_dim: int, act_dim: int, **extra: Any) -> dict[str, Any]:
    """A layout with numbered names, for policies whose task has no named layout yet."""
    meta: dict[str, Any] = {
        "task": "generic",
        "observation": [{"name": f"obs[{i}]", "unit": "1", "clip": None} for i in range(obs_dim)],
        "action": [{"name": f"act[{i}]", "unit": "1"} for i in range(act_dim)],
        "action_clip": [-1.0, 1.0],
        "action_mapping": "raw",
        "control_rate_hz": 100.0,
    }
    meta.update(extra)
    return meta
