"""Replay storage for K independent off-policy agents: ``[K, rows, ...]`` per field, on the training device.

Every member adds one row per environment step (or E rows with E environments per member), in lockstep,
into its own first-in-first-out slice; storage grows by doubling up to ``capacity`` rows, so a member
that stops early never pays for the full buffer.

Demonstrations (G-PAYN and other methods that learn from an expert) come in two ways:

* a **demonstration partition**, :meth:`ReplayBuffer.add_demonstrations`: rows per member that FIFO
  never overwrites, mixed into every batch at a fixed ratio: each sampled batch holds exactly
  ``round(demo_fraction * batch_size)`` demonstration rows per member (Python's ``round``), the rest
  agent rows, the agent rows first;
* a **prefilled buffer** (G-PAYN's own variant): one FIFO buffer that starts full of demonstrations and
  whose agent rows push them out over time. That is plain :meth:`ReplayBuffer.add` of the demonstration
  transitions before training, with ``demo_fraction = 0``.

With no demonstrations and ``demo_fraction = 0`` sampling draws exactly the indices it always drew
(one ``randint`` per batch), so a seeded run samples the same batches as before the partition existed.
"""

from __future__ import annotations

from typing import Any

import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    """``[K, capacity, ...]`` FIFO buffers filled in lockstep, plus a per-member demonstration partition."""

    FIELDS = FIELDS

    def __init__(self, members: int, obs_size: int, act_size: int, capacity: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, *,
                 demo_fraction: float = 0.0):
        if capacity <= 0:
            raise ValueError(f"replay capacity must be > 0, got {capacity}")
        if not 0.0 <= demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {demo_fraction}")
        self.members, self.obs_size, self.act_size = members, obs_size, act_size
        self.capacity = capacity
        self.demo_fraction = demo_fraction
        self.device, self.dtype = torch.device(device), dtype
        self.pos = 0
        self.size = 0
        self.data = self._empty(min(capacity, 4096))
        self.demo = self._empty(0)

    def _empty(self, rows: int) -> dict[str, torch.Tensor]:
        k, kw = self.members, {"device": self.device, "dtype": self.dtype}
        return {"obs": torch.zeros(k, rows, self.obs_size, **kw),
                "action": torch.zeros(k, rows, self.act_size, **kw),
                "reward": torch.zeros(k, rows, **kw),
                "next_obs": torch.zeros(k, rows, self.obs_size, **kw),
                "terminated": torch.zeros(k, rows, **kw)}

    @property
    def allocated(self) -> int:
        return self.data["reward"].shape[1]

    @property
    def demo_size(self) -> int:
        """Demonstration rows per member."""
        return self.demo["reward"].shape[1]

    def _rows(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
              terminated: torch.Tensor) -> dict[str, torch.Tensor]:
        if reward.dim() == 1:
            obs, action, reward, next_obs, terminated = (
                t.unsqueeze(1) for t in (obs, action, reward, next_obs, terminated))
        if reward.shape[0] != self.members:
            raise ValueError(f"transitions for {reward.shape[0]} members, the buffer holds {self.members}")
        row = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs, "terminated": terminated}
        return {name: value.to(self.device, self.dtype) for name, value in row.items()}

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            next_obs: torch.Tensor, terminated: torch.Tensor) -> None:
        """One transition per member (``obs [K, obs]``) or E per member (``obs [K, E, obs]``)."""
        row = self._rows(obs, action, reward, next_obs, terminated)
        rows = row["reward"].shape[1]
        if rows > self.capacity:
            raise ValueError(f"{rows} transitions per member do not fit a buffer of {self.capacity}")
        while self.pos + rows > self.allocated < self.capacity:
            bigger = self._empty(min(2 * self.allocated, self.capacity))
            for name, old in self.data.items():
                bigger[name][:, : old.shape[1]] = old
            self.data = bigger
        index = (self.pos + torch.arange(rows, device=self.device)) % self.capacity
        for name, value in row.items():
            self.data[name].index_copy_(1, index, value)
        self.pos = (self.pos + rows) % self.capacity
        self.size = min(self.size + rows, self.capacity)

    def add_demonstrations(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                           next_obs: torch.Tensor, terminated: torch.Tensor) -> None:
        """Append N rows per member (``obs [K, N, obs]``) to the demonstration partition."""
        row = self._rows(obs, action, reward, next_obs, terminated)
        self.demo = {name: torch.cat((self.demo[name], row[name]), 1) for name in FIELDS}

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Independent indices per member: ``[K, batch_size, ...]`` per field, agent rows then
        ``round(demo_fraction * batch_size)`` demonstration rows; with demonstrations the batch also
        holds ``demo`` ([K, batch_size] bool, True on the demonstration rows)."""
        demos = round(self.demo_fraction * batch_size)
        agent = batch_size - demos
        if demos and not self.demo_size:
            raise ValueError(f"demo_fraction {self.demo_fraction} asks for demonstrations; none were added")
        if agent and not self.size:
            raise ValueError("the replay buffer holds no agent transitions to sample")
        members = torch.arange(self.members, device=self.device)[:, None]
        idx = torch.randint(0, self.size, (self.members, agent), generator=generator, device=self.device)
        batch = {name: value[members, idx] for name, value in self.data.items()}
        if not demos:
            return batch
        didx = torch.randint(0, self.demo_size, (self.members, demos), generator=generator,
                             device=self.device)
        batch = {name: torch.cat((batch[name], self.demo[name][members, didx]), 1) for name in FIELDS}
        batch["demo"] = torch.arange(batch_size, device=self.device).expand(self.members, -1) >= agent
        return batch

    def select(self, index: torch.Tensor) -> None:
        """Keep only members ``index`` (in that order)."""
        self.data = {name: value[index] for name, value in self.data.items()}
        self.demo = {name: value[index] for name, value in self.demo.items()}
        self.members = int(index.numel())

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "size": self.size, "capacity": self.capacity,
                **{name: value[:, : self.size].clone() for name, value in self.data.items()},
                "demo": {name: value.clone() for name, value in self.demo.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity, self.pos, self.size = state["capacity"], state["pos"], state["size"]
        self.members = state["reward"].shape[0]
        self.data = self._empty(max(self.size, min(self.capacity, 4096)))
        for name in FIELDS:
            self.data[name][:, : self.size] = state[name].to(self.device, self.dtype)
        demo = state.get("demo")  # absent in checkpoints written before the partition existed
        self.demo = self._empty(0)
        if demo is not None:
            self.demo = {name: value.to(self.device, self.dtype) for name, value in demo.items()}
