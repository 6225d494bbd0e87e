"""On-policy rollout storage: T steps of N environments, GAE, and shuffled minibatches.

Each environment step adds one row per environment. Episodes end in two ways, and GAE treats them
differently (the ``robo.rl.vec_env`` protocol resets an ended environment inside the same step):

* **terminated** - the state is terminal, its future is worth 0: no bootstrap;
* **truncated** - a time limit cut the episode; its future is still worth ``V(s_last)``, where
  ``s_last`` is ``info["final_observation"]`` (never the reset observation ``step`` returned). The
  runner stores that value as ``final_value``.

GAE (Schulman et al. 2016), backwards over t, with ``done = terminated | truncated``::

    next_value_t = V(obs_{t+1})    if not done_t      (last_value after the final step)
                   final_value_t   if truncated_t
                   0               if terminated_t
    delta_t      = r_t + gamma * next_value_t - V(obs_t)
    A_t          = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    return_t     = A_t + V(obs_t)                      (the critic's target)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class RolloutStorage:
    """``[T, N, ...]`` tensors filled one step at a time, then read as ``[T * N, ...]`` minibatches."""

    def __init__(self, num_steps: int, num_envs: int, obs_size: int, act_size: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if num_steps <= 0 or num_envs <= 0:
            raise ValueError(f"rollout storage needs num_steps and num_envs > 0, got {num_steps}, {num_envs}")
        self.num_steps, self.num_envs = num_steps, num_envs
        t, n, kw = num_steps, num_envs, {"device": device, "dtype": dtype}
        self.obs = torch.zeros(t, n, obs_size, **kw)
        self.actions = torch.zeros(t, n, act_size, **kw)
        self.log_probs = torch.zeros(t, n, **kw)
        self.values = torch.zeros(t, n, **kw)
        self.rewards = torch.zeros(t, n, **kw)
        self.terminated = torch.zeros(t, n, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(t, n, dtype=torch.bool, device=device)
        self.final_values = torch.zeros(t, n, **kw)
        self.advantages = torch.zeros(t, n, **kw)
        self.returns = torch.zeros(t, n, **kw)
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step == self.num_steps

    def add(self, obs: torch.Tensor, actions: torch.Tensor, log_probs: torch.Tensor, values: torch.Tensor,
            rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
            final_values: torch.Tensor) -> None:
        """One environment step; ``final_values`` counts only where ``truncated`` (zeros elsewhere)."""
        if self.full:
            raise RuntimeError(f"rollout storage is full ({self.num_steps} steps); call clear() first")
        row = {"obs": obs, "actions": actions, "log_probs": log_probs, "values": values, "rewards": rewards,
               "terminated": terminated, "truncated": truncated, "final_values": final_values}
        for name, value in row.items():
            getattr(self, name)[self.step].copy_(value.detach())
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    @torch.no_grad()
    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        """GAE over the full rollout; ``last_values`` is ``V`` of the observation after the last step."""
        if not self.full:
            raise RuntimeError(f"GAE needs a full rollout, have {self.step} of {self.num_steps} steps")
        advantage = torch.zeros_like(last_values)
        next_values = last_values
        for t in reversed(range(self.num_steps)):
            done = self.terminated[t] | self.truncated[t]
            bootstrap = torch.where(self.truncated[t], self.final_values[t],
                                    torch.where(done, 0.0, next_values))
            delta = self.rewards[t] + gamma * bootstrap - self.values[t]
            advantage = delta + gamma * lam * (~done) * advantage
            self.advantages[t] = advantage
            next_values = self.values[t]
        self.returns = self.advantages + self.values

    def minibatches(self, num_minibatches: int, num_epochs: int, generator: torch.Generator
                    ) -> Iterator[dict[str, torch.Tensor]]:
        """``num_epochs`` passes over all T * N samples, each a fresh shuffle split into
        ``num_minibatches`` near-equal parts, so every sample is used exactly once per epoch."""
        size = self.num_steps * self.num_envs
        if not 0 < num_minibatches <= size:
            raise ValueError(f"cannot split {size} samples into {num_minibatches} minibatches")
        flat = {"obs": self.obs.flatten(0, 1), "actions": self.actions.flatten(0, 1),
                "log_probs": self.log_probs.flatten(), "values": self.values.flatten(),
                "advantages": self.advantages.flatten(), "returns": self.returns.flatten()}
        for _ in range(num_epochs):
            order = torch.randperm(size, generator=generator, device=generator.device)
            for index in order.to(self.obs.device).tensor_split(num_minibatches):
                yield {name: value[index] for name, value in flat.items()}
