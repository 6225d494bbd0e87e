"""A trained gain tuner as a controller of the evaluation: each agent's (k1, k2) from its own view,
its nominal's turn (tilt) when the tuner sets that too, and each neighbour's (k1, k2) from a
per-neighbour tuner.

``policy.onnx`` runs through the one ONNX Runtime wrapper (:class:`robo.runtime.policy.OnnxPolicy`,
one agent per call, as the agent's computer runs it: the card's checks, its gain clip and its
fallback for a non-finite view); ``policy.pt`` runs batched through torch. Both give the same gains
(the export's equivalence check bounds the difference). Gains out of the card's range (a corrupt
model) are clamped and counted; so are fallbacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robo.nets.gnn import output_range
from robo.tasks.online_cbf.neighbour_gains import split_outputs
from sim.swarm import SwarmConfig, SwarmState, flat_observation_and_slots

TASK = "online_cbf"


AS_TRAINED = "as trained"  # GainTuner(path, AS_TRAINED): behind the filter.shared_k2 its card names


class GainTuner:
    """``shared_k2``: the filter's (``filter.shared_k2``) the tuner will run behind; a tuner trained
    behind another one is refused (its k2 outputs would be applied where training ignored them, or the
    other way round). ``AS_TRAINED`` takes the one it was trained behind (``self.shared_k2``)."""

    def __init__(self, path: str | Path, shared_k2: float | str | None):
        from robo.runtime.swarm import trained_shared_k2

        path = Path(path)
        if path.suffix == ".onnx":
            from robo.runtime.policy import OnnxPolicy

            self.onnx = OnnxPolicy(path)
            if self.onnx.task != TASK:
                raise ValueError(f"{path}: the card's task is {self.onnx.task!r}, not {TASK!r}")
            arch = self.onnx.card["training"]["arch"]
        elif path.suffix == ".pt":
            from robo.nets.policy import load_policy

            self.net, meta = load_policy(path)
            arch = self.net.arch
            if arch.get("kind") != "gain-gnn" or meta.get("task") != TASK:
                raise ValueError(f"{path}: not an online_cbf gain tuner (kind {arch.get('kind')!r}, "
                                 f"task {meta.get('task')!r})")
            slots = int(arch["neighbours"]) if arch.get("per_neighbour") else 0
            lo, hi = output_range(float(arch["k_min"]), float(arch["k_max"]), arch.get("tilt_range"), slots)
            self.lo, self.hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
        else:
            raise ValueError(f"--policy {path}: expected a .onnx (with its card) or a .pt policy")
        self.path, self.neighbours, self.outputs = path, int(arch["neighbours"]), int(arch["act_dim"])
        self.dim = int(arch["node_size"]) // 2
        self.sets_tilt, self.per_neighbour = "tilt_range" in arch, bool(arch.get("per_neighbour"))
        self.shared_k2 = trained_shared_k2(self.onnx.card["training"] if hasattr(self, "onnx") else meta)
        if shared_k2 not in (AS_TRAINED, self.shared_k2):
            as_set = "null" if self.shared_k2 is None else self.shared_k2
            raise ValueError(f"{path}: trained with filter.shared_k2={self.shared_k2}, evaluated with "
                             f"{shared_k2}: run it behind the filter it was trained with "
                             f"(filter.shared_k2={as_set})")
        self.clamped = 0     # agent-steps whose gains the model put out of range
        self.fallbacks = 0   # agent-steps answered by the card's fallback (non-finite view or output)

    def __call__(self, state: SwarmState, config: SwarmConfig) -> tuple[torch.Tensor, ...]:
        """(k1, k2), or (k1, k2, tilt) from a tuner that turns the nominal too, for every agent of
        ``state``: each [E, N], the gains [E, N, N + O] per barrier row from a per-neighbour tuner."""
        if config.dim != self.dim:
            raise ValueError(f"{self.path}: the tuner was trained in {self.dim}-D, the swarm is "
                             f"{config.dim}-D")
        E, N, _ = state.p.shape
        obs, slots = flat_observation_and_slots(state, config, self.neighbours,
                                                agents_first=self.per_neighbour)
        obs = obs.reshape(E * N, -1).float()
        if hasattr(self, "onnx"):
            steps = [self.onnx.step(row) for row in obs.numpy()]
            self.fallbacks += sum(s.fallback for s in steps)
            self.clamped += sum(s.clamped for s in steps)
            gains = torch.as_tensor(np.stack([s.action for s in steps]))
        else:
            with torch.no_grad():
                raw = self.net(obs).double()
            finite = torch.isfinite(raw).all(dim=1, keepdim=True)
            self.fallbacks += int((~finite).sum())
            raw = torch.where(finite, raw, self.lo)
            self.clamped += int(((raw < self.lo) | (raw > self.hi)).any(dim=1).sum())
            gains = torch.maximum(torch.minimum(raw, self.hi), self.lo)
        gains = gains.to(state.p.dtype).reshape(E, N, self.outputs)
        k1, k2, tilt = split_outputs(gains, self.sets_tilt, slots if self.per_neighbour else None,
                                     N + state.obstacle_p.shape[1])
        return (k1, k2) if tilt is None else (k1, k2, tilt)
