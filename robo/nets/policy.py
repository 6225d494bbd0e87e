"""The policy networks every method exports, and the checkpoint format that carries them.

Two shapes of policy, both with batch-first tensors:

* :class:`MLPPolicy` - ``forward(obs) -> action``.
* :class:`RecurrentPolicy` - Linear+ReLU -> GRU or LSTM -> Linear,
  ``forward(obs, state) -> (action, state)``. The recurrent state is explicit (a tuple of
  ``[batch, hidden]`` tensors: ``(h,)`` for a GRU, ``(h, c)`` for an LSTM) and starts at zeros
  (:meth:`RecurrentPolicy.initial_state`), so training, ONNX Runtime, ROS nodes and the generated C
  all carry it the same way. :func:`raptor_student` is the RAPTOR student (22 -> 16 ReLU -> GRU 16
  -> 4, 2068 parameters).

Checkpoints: :func:`save_policy` writes the network's constructor arguments, its weights and a
``meta`` mapping (what the policy card needs: task, observation and action layout, control rate,
training run and config; see :data:`META_KEYS`) atomically; :func:`load_policy` rebuilds the network.
A training loop only needs::

    net = raptor_student()
    ...train...
    save_policy(run_dir / "policy.pt", net, quadrotor_student_meta(run=str(run_dir), config=cfg_dict))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "robo-policy/1"

# What ``meta`` may hold; robo/export turns it into the policy card (policy.json).
#   task: str                       e.g. "quadrotor-hover"
#   observation: list of {"name", "unit", "clip": [lo, hi] | null}, one entry per input value, in order
#   action: list of {"name", "unit"}, one entry per output value, in order
#   action_clip: [lo, hi]            raw network output is clamped to this by every runtime
#   action_mapping: str              how the plant reads an action, e.g. "motor u = (a + 1) / 2"
#   fallback_action: list[float]     what a runtime outputs for non-finite input (default: mid of clip)
#   control_rate_hz: float
#   run: str                         the training run folder
#   config: dict                     the resolved training config
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
)

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MLPPolicy(nn.Module):
    """Feed-forward policy: ``hidden`` Linear+activation layers, then a linear output (no squashing)."""

    recurrent = False

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (64, 64, 64), activation: str = "relu"
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLPPolicy: activation {activation!r} is not one of {sorted(_ACTIVATIONS)}")
        self.arch = {
            "kind": "mlp",
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "hidden": list(hidden),
            "activation": activation,
        }
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


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
    """Rebuild a network from its ``arch`` dict (as stored in a checkpoint)."""
    kwargs = {k: v for k, v in arch.items() if k != "kind"}
    if arch.get("kind") == "mlp":
        kwargs["hidden"] = tuple(kwargs.get("hidden", ()))
        return MLPPolicy(**kwargs)
    if arch.get("kind") == "recurrent":
        return RecurrentPolicy(**kwargs)
    raise ValueError(f"unknown policy kind {arch.get('kind')!r} (expected 'mlp' or 'recurrent')")


def save_policy(path: str | Path, net: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``net`` and ``meta`` to ``path`` atomically (temporary file + rename)."""
    if not hasattr(net, "arch"):
        raise ValueError("save_policy: the network must be an MLPPolicy or RecurrentPolicy (it has no .arch)")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ValueError(f"save_policy: unknown meta key {unknown[0]!r} (known: {', '.join(META_KEYS)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "arch": net.arch, "state_dict": net.state_dict(), "meta": dict(meta)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_policy(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_policy`; returns ``(net in eval mode, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"policy checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable policy checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a robo policy checkpoint (expected format {FORMAT!r})")
    net = build_policy(payload["arch"])
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the stored architecture ({exc})") from None
    return net.eval(), dict(payload["meta"])


def quadrotor_student_meta(**extra: Any) -> dict[str, Any]:
    """The 22-value RAPTOR observation and 4 motor actions (reference/quadrotor.md), for the card."""
    obs: list[dict[str, Any]] = []
    obs += [{"name": f"p_err.{a}", "unit": "m", "clip": None} for a in "xyz"]
    obs += [{"name": f"R.{r}{c}", "unit": "1", "clip": [-1.0, 1.0]} for r in range(3) for c in range(3)]
    obs += [{"name": f"v_err.{a}", "unit": "m/s", "clip": None} for a in "xyz"]
    obs += [{"name": f"omega.{a}", "unit": "rad/s", "clip": None} for a in "xyz"]
    obs += [{"name": f"prev_action.{m}", "unit": "1", "clip": [-1.0, 1.0]} for m in ("FR", "BR", "BL", "FL")]
    meta: dict[str, Any] = {
        "task": "quadrotor",
        "observation": obs,
        "action": [{"name": f"motor.{m}", "unit": "1"} for m in ("FR", "BR", "BL", "FL")],
        "action_clip": [-1.0, 1.0],
        "action_mapping": "motor setpoint u = (a + 1) / 2 in [0, 1], motors FR, BR, BL, FL",
        "control_rate_hz": 100.0,
    }
    meta.update(extra)
    return meta


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
