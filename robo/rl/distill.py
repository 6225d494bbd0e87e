"""On-policy DAgger with backpropagation through time, for recurrent students (RAPTOR's meta-imitation).

One epoch: roll a batch of environments for ``steps`` steps, flown either by the teachers (the first
epochs, so the student starts from sensible states) or by the student itself (afterwards, so it
learns to recover from the states its own mistakes lead to). Every visited state is labelled with the
teacher's action, and the student is fitted to those labels by MSE over whole episodes, its recurrent
state carried from the first step to the last (BPTT), so it learns to infer the vehicle from history.

The environment is any batched env with Gymnasium's vector API and ``auto_reset`` off, so a row of the
batch is one episode. A row that terminates is masked from its termination on: the recorded inputs are
zeroed there (finite, so the masked loss stays finite) and the loss ignores them. Because the network is
causal, what a row sees after its end cannot change the outputs the loss keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robo.rl.sac import NonFiniteLoss  # one error for every loss that became NaN or infinite


@dataclass
class Sequences:
    """One epoch's data: ``inputs [N, T, obs]``, ``targets [N, T, act]``, ``mask [N, T]`` (1 = alive)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


Labeller = Callable[[torch.Tensor], torch.Tensor]  # env observation [N, obs] -> teacher action [N, act]
InputMap = Callable[[torch.Tensor], torch.Tensor]  # env observation -> the student's input


@torch.no_grad()
def collect(env, steps: int, teacher: Labeller, student_input: InputMap, student: nn.Module | None
            ) -> Sequences:
    """Roll ``env`` from a reset for ``steps`` steps; the student flies when given, else the teacher."""
    obs, _ = env.reset()
    n = obs.shape[0]
    state = student.initial_state(n) if student is not None else None
    alive = torch.ones(n, dtype=torch.bool, device=obs.device)
    inputs, targets, masks = [], [], []
    for _ in range(steps):
        label = teacher(obs)
        x = student_input(obs)
        keep = alive[:, None]
        inputs.append(torch.where(keep, x, 0.0))
        targets.append(torch.where(keep, label, 0.0))
        masks.append(alive.clone())
        if student is not None:
            action, state = student(x, state)
        else:
            action = label
        obs, _, terminated, _, _ = env.step(action.clamp(-1.0, 1.0))
        alive &= ~terminated.to(alive.device)
        obs = torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
    return Sequences(torch.stack(inputs, 1), torch.stack(targets, 1), torch.stack(masks, 1).float())


def sequence_loss(student: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Masked mean squared error of the student's raw outputs over whole sequences (BPTT)."""
    outputs, _ = student.forward_sequence(inputs)
    squared = (outputs - targets).pow(2).mean(-1) * mask
    return squared.sum() / mask.sum().clamp(min=1.0)


def fit(student: nn.Module, optimizer: torch.optim.Optimizer, data: Sequences, batch_size: int,
        generator: torch.Generator, grad_clip: float | None = None) -> float:
    """One pass over ``data`` in shuffled batches of whole sequences; returns the mean batch loss."""
    order = torch.randperm(len(data), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(data), batch_size):
        rows = order[start: start + batch_size]
        loss = sequence_loss(student, data.inputs[rows], data.targets[rows], data.mask[rows])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"imitation loss is {value} (batch {batches}); stopped, the last good "
                                "checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(student.parameters(), grad_clip)
        optimizer.step()
        total += value
        batches += 1
    return total / max(batches, 1)


@torch.no_grad()
def imitation_loss(student: nn.Module, data: Sequences) -> float:
    """The loss on ``data`` without training (for held-out data and tests)."""
    return float(sequence_loss(student, data.inputs, data.targets, data.mask))
